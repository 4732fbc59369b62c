/*
 * SHA-256 for the rest of the library, through OpenSSL's libcrypto: this
 * header's sha256.c is the one file that includes it. A running hash, a
 * one-shot digest, and many equal-length messages with one set-up (the
 * multi-buffer code's fallback, sha256mb.c).
 */
#ifndef IMGDEV_SHA256_H
#define IMGDEV_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_SIZE 32

struct sha256;

/* A new running hash; NULL when out of memory. */
struct sha256 *sha256_new(void);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* The digest of everything given to h; h takes no more updates after it. */
void sha256_final(struct sha256 *h, uint8_t out[SHA256_SIZE]);
/* Free h; NULL is allowed. */
void sha256_free(struct sha256 *h);

/* The digest of len bytes at data; 0 or -ENOMEM. */
int sha256_digest(const void *data, size_t len, uint8_t out[SHA256_SIZE]);

/* digests[i] of msgs[i], len bytes each, for i < n; 0 or -ENOMEM. */
int sha256_digest_each(const uint8_t *const msgs[], size_t n, size_t len,
		       uint8_t (*digests)[SHA256_SIZE]);

#endif
