/*
 * SHA-256 of many equal-length messages at once ("multi-buffer"). The
 * content hash's 64 KiB blocks are independent, so one core can hash 16
 * of them (AVX-512) or 8 (AVX2) in the lanes of its vector registers, which
 * on CPUs without SHA instructions is several times faster than hashing
 * them one by one. The digests are plain SHA-256, identical to OpenSSL's;
 * OpenSSL stays the path on CPUs with SHA instructions or no vector units.
 */
#ifndef IMGDEV_SHA256MB_H
#define IMGDEV_SHA256MB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256MB_DIGEST 32
#define SHA256MB_MAX_LANES 16

enum sha256mb_impl {
	SHA256MB_OPENSSL,	/* one message at a time */
	SHA256MB_AVX2,		/* 8 lanes */
	SHA256MB_AVX512,	/* 16 lanes */
	SHA256MB_NIMPL
};

/* Whether this CPU (and this build) can run impl. */
bool sha256mb_supported(enum sha256mb_impl impl);

/* The fastest implementation this CPU runs. */
enum sha256mb_impl sha256mb_best(void);

/* How many messages impl hashes at once: 16, 8, or 1 (OpenSSL). */
unsigned int sha256mb_lanes(enum sha256mb_impl impl);

/* "openssl", "avx2" or "avx512". */
const char *sha256mb_name(enum sha256mb_impl impl);

/*
 * Hash n messages of len bytes each (any len) into digests[0..n), with impl,
 * which must be supported (a vector impl hands OpenSSL the one or two
 * messages that would leave a group of lanes mostly idle). Returns 0, or
 * -ENOMEM when OpenSSL cannot set up.
 */
int sha256mb_hash(enum sha256mb_impl impl, const uint8_t *const msgs[], size_t n,
		  size_t len, uint8_t (*digests)[SHA256MB_DIGEST]);

#endif
