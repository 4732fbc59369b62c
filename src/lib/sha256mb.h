/*
 * SHA-256 of many equal-length messages at once ("multi-buffer"). The
 * content hash's 64 KiB blocks are independent, so one core can hash 16
 * of them (AVX-512) or 8 (AVX2) in the lanes of its vector registers, or
 * 2 or 4 interleaved through the SHA instructions (SHA-NI), instead of one
 * by one (OpenSSL). The digests are plain SHA-256, identical to OpenSSL's.
 * Which is fastest depends on the CPU, so none is assumed: the caller
 * measures them (sha256mb_calibrate) and keeps the fastest.
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
	SHA256MB_SHANI2,	/* SHA-NI, 2 messages interleaved */
	SHA256MB_SHANI4,	/* SHA-NI, 4 messages interleaved */
	SHA256MB_NIMPL
};

/* Whether this CPU (and this build) can run impl. */
bool sha256mb_supported(enum sha256mb_impl impl);

/* How many messages impl hashes at once: 16, 8, 4, 2, or 1 (OpenSSL). */
unsigned int sha256mb_lanes(enum sha256mb_impl impl);

/* "openssl", "avx2", "avx512", "shani2" or "shani4". */
const char *sha256mb_name(enum sha256mb_impl impl);

/* The implementation called name (sha256mb_name), or -1. */
int sha256mb_by_name(const char *name);

/*
 * Measure each implementation this CPU runs: MB/s of one core hashing a
 * few 8 KiB messages, best of a few passes taken in turn (a noisy moment
 * slows one pass, not one implementation), into mbps[impl]; 0 for those it
 * does not run. Takes 1.5-3 ms. Returns 0, or -ENOMEM.
 */
int sha256mb_calibrate(double mbps[SHA256MB_NIMPL]);

/* The implementation with the highest mbps (OpenSSL if none is above 0). */
enum sha256mb_impl sha256mb_fastest(const double mbps[SHA256MB_NIMPL]);

/*
 * Hash n messages of len bytes each (any len) into digests[0..n), with impl,
 * which must be supported (a vector impl hands OpenSSL the one or two
 * messages that would leave a group of lanes mostly idle; SHA-NI hashes a
 * message left over alone). Returns 0, or -ENOMEM when OpenSSL cannot set
 * up.
 */
int sha256mb_hash(enum sha256mb_impl impl, const uint8_t *const msgs[], size_t n,
		  size_t len, uint8_t (*digests)[SHA256MB_DIGEST]);

#endif
