/*
 * Which SHA-256 implementation (sha256mb.h) a context hashes the content's
 * blocks with: the fastest that sha256mb_calibrate() measures on this CPU,
 * measured once per context on first use, unless IMGDEV_SHA256_IMPL names
 * one the CPU runs. The choice changes only the speed, never a digest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* The override's impl; -1 (after a warning if it is set) to measure instead. */
static int hash_override(struct imgdev_ctx *ctx)
{
	const char *name = getenv(IMGDEV_SHA256_IMPL_ENV);
	int impl;

	if (!name || !*name || strcmp(name, "auto") == 0)
		return -1;
	impl = sha256mb_by_name(name);
	if (impl < 0) {
		ctx_log(ctx, LOGP_WARNING, "%s=%s: no such implementation; measuring instead",
			IMGDEV_SHA256_IMPL_ENV, name);
		return -1;
	}
	if (!sha256mb_supported((enum sha256mb_impl)impl)) {
		ctx_log(ctx, LOGP_WARNING, "%s=%s: this CPU cannot run it; measuring instead",
			IMGDEV_SHA256_IMPL_ENV, name);
		return -1;
	}
	return impl;
}

static double msec_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* "openssl 1370, avx2 1122, ..." of what was measured, into buf. */
static void format_speeds(const double mbps[SHA256MB_NIMPL], char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < SHA256MB_NIMPL; i++) {
		int n;

		if (mbps[i] <= 0)
			continue;
		n = snprintf(buf + used, size - used, "%s%s %.0f", used ? ", " : "",
			     sha256mb_name((enum sha256mb_impl)i), mbps[i]);
		if (n < 0 || (size_t)n >= size - used)
			return;
		used += (size_t)n;
	}
}

/* Measure and keep the fastest; on failure (no memory) OpenSSL, not kept. */
static void hash_measure(struct imgdev_ctx *ctx)
{
	struct timespec t0;
	char speeds[256];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (sha256mb_calibrate(ctx->hash_mbps) < 0) {
		ctx_log(ctx, LOGP_WARNING, "block hashing: cannot measure (out of memory): openssl");
		ctx->hash_impl = SHA256MB_OPENSSL;
		return;
	}
	ctx->hash_impl = sha256mb_fastest(ctx->hash_mbps);
	ctx->hash_chosen = true;
	format_speeds(ctx->hash_mbps, speeds, sizeof(speeds));
	ctx_log(ctx, LOGP_INFO, "block hashing: %s (measured MB/s: %s; in %.1f ms)",
		sha256mb_name(ctx->hash_impl), speeds, msec_since(&t0));
}

enum sha256mb_impl ctx_hash_impl(struct imgdev_ctx *ctx)
{
	int forced;

	if (ctx->hash_chosen)
		return ctx->hash_impl;
	forced = hash_override(ctx);
	if (forced < 0) {
		hash_measure(ctx);
		return ctx->hash_impl;
	}
	ctx->hash_impl = (enum sha256mb_impl)forced;
	ctx->hash_chosen = true;
	for (int i = 0; i < SHA256MB_NIMPL; i++)
		ctx->hash_mbps[i] = 0;
	ctx_log(ctx, LOGP_INFO, "block hashing: %s (set by %s, not measured)",
		sha256mb_name(ctx->hash_impl), IMGDEV_SHA256_IMPL_ENV);
	return ctx->hash_impl;
}
