/*
 * Multi-buffer SHA-256: choosing the implementation for this CPU, and the
 * OpenSSL path used where no vector one runs. The vector code is built
 * only on x86-64 (IMGDEV_SHA256MB_X86), in files of its own.
 */
#include <errno.h>

#include <openssl/evp.h>

#include "sha256mb.h"
#include "sha256mb_impl.h"

bool sha256mb_supported(enum sha256mb_impl impl)
{
	switch (impl) {
	case SHA256MB_OPENSSL:
		return true;
#if IMGDEV_SHA256MB_X86
	case SHA256MB_AVX2:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2");
	case SHA256MB_AVX512:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
	default:
		return false;
	}
}

enum sha256mb_impl sha256mb_best(void)
{
	if (sha256mb_supported(SHA256MB_AVX512))
		return SHA256MB_AVX512;
	if (sha256mb_supported(SHA256MB_AVX2))
		return SHA256MB_AVX2;
	return SHA256MB_OPENSSL;
}

const char *sha256mb_name(enum sha256mb_impl impl)
{
	static const char *const names[SHA256MB_NIMPL] = { "openssl", "avx2", "avx512" };

	return impl < SHA256MB_NIMPL ? names[impl] : "unknown";
}

static int hash_each_openssl(const uint8_t *const msgs[], size_t n, size_t len,
			     uint8_t (*digests)[SHA256MB_DIGEST])
{
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	unsigned int dlen = 0;
	int rc = md ? 0 : -ENOMEM;

	for (size_t i = 0; i < n && rc == 0; i++)
		if (!EVP_Digest(msgs[i], len, digests[i], &dlen, md, NULL))
			rc = -ENOMEM;
	EVP_MD_free(md);
	return rc;
}

int sha256mb_hash(enum sha256mb_impl impl, const uint8_t *const msgs[], size_t n,
		  size_t len, uint8_t (*digests)[SHA256MB_DIGEST])
{
	switch (impl) {
#if IMGDEV_SHA256MB_X86
	case SHA256MB_AVX2:
		sha256mb_avx2(msgs, n, len, digests);
		return 0;
	case SHA256MB_AVX512:
		sha256mb_avx512(msgs, n, len, digests);
		return 0;
#endif
	default:
		return hash_each_openssl(msgs, n, len, digests);
	}
}
