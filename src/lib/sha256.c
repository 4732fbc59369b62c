/*
 * SHA-256 through OpenSSL's EVP interface (see sha256.h). The algorithm is
 * fetched once per running hash or per batch, not per call, so many small
 * digests do not pay OpenSSL 3's implicit fetch each time.
 */
#include <errno.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "sha256.h"

struct sha256 {
	EVP_MD_CTX *md;
};

struct sha256 *sha256_new(void)
{
	struct sha256 *h = malloc(sizeof(*h));

	if (!h)
		return NULL;
	h->md = EVP_MD_CTX_new();
	if (!h->md || !EVP_DigestInit_ex(h->md, EVP_sha256(), NULL)) {
		sha256_free(h);
		return NULL;
	}
	return h;
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
	EVP_DigestUpdate(h->md, data, len);
}

void sha256_final(struct sha256 *h, uint8_t out[SHA256_SIZE])
{
	unsigned int len = 0;

	EVP_DigestFinal_ex(h->md, out, &len);
}

void sha256_free(struct sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->md);
	free(h);
}

int sha256_digest(const void *data, size_t len, uint8_t out[SHA256_SIZE])
{
	unsigned int dlen = 0;

	return EVP_Digest(data, len, out, &dlen, EVP_sha256(), NULL) ? 0 : -ENOMEM;
}

int sha256_digest_each(const uint8_t *const msgs[], size_t n, size_t len,
		       uint8_t (*digests)[SHA256_SIZE])
{
	unsigned int dlen = 0;
	EVP_MD *md;
	int rc;

	if (n == 0)
		return 0;
	md = EVP_MD_fetch(NULL, "SHA256", NULL);
	rc = md ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!EVP_Digest(msgs[i], len, digests[i], &dlen, md, NULL))
			rc = -ENOMEM;
	EVP_MD_free(md);
	return rc;
}
