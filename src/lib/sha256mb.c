/*
 * Multi-buffer SHA-256: which implementations this CPU runs, measuring
 * them (sha256mb_calibrate), dispatching a hash to one, and the OpenSSL
 * path. The vector and SHA-NI code is built only on x86-64
 * (IMGDEV_SHA256MB_X86), in files of its own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if IMGDEV_SHA256MB_X86
#include <cpuid.h>
#endif

#include "sha256.h"
#include "sha256mb.h"
#include "sha256mb_impl.h"

/* Whether the CPU has the SHA extensions (CPUID leaf 7, EBX bit 29) and SSE4.1. */
static bool cpu_has_sha_ni(void)
{
#if IMGDEV_SHA256MB_X86
	unsigned int eax, ebx, ecx, edx;

	__builtin_cpu_init();
	return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx >> 29 & 1) &&
	       __builtin_cpu_supports("sse4.1");
#else
	return false;
#endif
}

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
	case SHA256MB_SHANI2:
	case SHA256MB_SHANI4:
		return cpu_has_sha_ni();
#endif
	default:
		return false;
	}
}

unsigned int sha256mb_lanes(enum sha256mb_impl impl)
{
	static const unsigned int lanes[SHA256MB_NIMPL] = { 1, 8, 16, 2, 4 };

	return impl < SHA256MB_NIMPL ? lanes[impl] : 1;
}

static const char *const impl_names[SHA256MB_NIMPL] = {
	"openssl", "avx2", "avx512", "shani2", "shani4"
};

const char *sha256mb_name(enum sha256mb_impl impl)
{
	return impl < SHA256MB_NIMPL ? impl_names[impl] : "unknown";
}

int sha256mb_by_name(const char *name)
{
	for (int i = 0; i < SHA256MB_NIMPL; i++)
		if (strcmp(name, impl_names[i]) == 0)
			return i;
	return -1;
}

/*
 * A group of lanes costs the same however few of them carry a message: from
 * 3 messages up it beats OpenSSL (measured: a 16-lane group 0.43 ms of
 * 64 KiB blocks, OpenSSL 0.175 ms each), so 1 or 2 left over go to OpenSSL.
 */
#define FEWEST_FOR_LANES 3

int sha256mb_hash(enum sha256mb_impl impl, const uint8_t *const msgs[], size_t n,
		  size_t len, uint8_t (*digests)[SHA256MB_DIGEST])
{
	size_t lanes = sha256mb_lanes(impl), rest = n % lanes;

	if (impl == SHA256MB_OPENSSL || !IMGDEV_SHA256MB_X86)
		return sha256_digest_each(msgs, n, len, digests);
#if IMGDEV_SHA256MB_X86
	if (impl == SHA256MB_SHANI2 || impl == SHA256MB_SHANI4) {
		/* One left over runs alone through the same instructions. */
		(impl == SHA256MB_SHANI4 ? sha256mb_shani4 : sha256mb_shani2)(msgs, n, len, digests);
		return 0;
	}
	if (rest >= FEWEST_FOR_LANES)
		rest = 0;
	if (impl == SHA256MB_AVX512)
		sha256mb_avx512(msgs, n - rest, len, digests);
	else
		sha256mb_avx2(msgs, n - rest, len, digests);
#endif
	return sha256_digest_each(msgs + (n - rest), rest, len, digests + (n - rest));
}

/*
 * Calibration: 16 messages (a whole group for every lane count) of 8 KiB,
 * 128 KiB in all, so it stays in the L2 cache and a pass of the slowest
 * implementation takes about 0.15 ms; 64 KiB blocks hash at the same rate
 * (the final block and setup are under 2 % of either). The bytes do not
 * change the speed of SHA-256.
 */
#define CALIB_MSGS 16
#define CALIB_LEN (8 * 1024)
#define CALIB_PASSES 3

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One timed pass of impl over msgs; its MB/s, or <0 on error. */
static double calib_pass(enum sha256mb_impl impl, const uint8_t *const msgs[],
			 uint8_t (*digests)[SHA256MB_DIGEST])
{
	double t0 = seconds(), dt;

	if (sha256mb_hash(impl, msgs, CALIB_MSGS, CALIB_LEN, digests) < 0)
		return -1;
	dt = seconds() - t0;
	return (double)CALIB_MSGS * CALIB_LEN / 1e6 / (dt > 1e-9 ? dt : 1e-9);
}

int sha256mb_calibrate(double mbps[SHA256MB_NIMPL])
{
	uint8_t *buf = malloc((size_t)CALIB_MSGS * CALIB_LEN);
	const uint8_t *msgs[CALIB_MSGS];
	uint8_t digests[CALIB_MSGS][SHA256MB_DIGEST];
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0x5a, (size_t)CALIB_MSGS * CALIB_LEN);
	for (int m = 0; m < CALIB_MSGS; m++)
		msgs[m] = buf + (size_t)m * CALIB_LEN;
	for (int i = 0; i < SHA256MB_NIMPL; i++)
		mbps[i] = 0;
	for (int pass = 0; pass < CALIB_PASSES && rc == 0; pass++)
		for (int i = 0; i < SHA256MB_NIMPL && rc == 0; i++) {
			double r;

			if (!sha256mb_supported((enum sha256mb_impl)i))
				continue;
			r = calib_pass((enum sha256mb_impl)i, msgs, digests);
			if (r < 0)
				rc = -ENOMEM;
			else if (r > mbps[i])
				mbps[i] = r;
		}
	free(buf);
	return rc;
}

enum sha256mb_impl sha256mb_fastest(const double mbps[SHA256MB_NIMPL])
{
	enum sha256mb_impl best = SHA256MB_OPENSSL;

	for (int i = 0; i < SHA256MB_NIMPL; i++)
		if (mbps[i] > mbps[best])
			best = (enum sha256mb_impl)i;
	return best;
}
