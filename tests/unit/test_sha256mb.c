/*
 * Unit tests of multi-buffer SHA-256: every implementation this CPU runs
 * (vector lanes and SHA-NI 2- and 4-way) gives OpenSSL's digest for every
 * message, across lengths around the padding boundaries (55, 56, 63, 64
 * bytes past a block), counts that leave lanes spare or hand one or two
 * messages to OpenSSL, and messages at odd addresses, each ending where its
 * allocation ends (so ASan sees a read past it). Known-answer vectors from
 * FIPS 180-4 pin every path. Then the choice (hash_choice.c): calibration
 * measures every implementation the CPU runs, a context uses the fastest
 * measured, and IMGDEV_SHA256_IMPL forces one or, when it names none this
 * CPU runs, is warned about and measuring chooses. No test asserts a speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "internal.h"
#include "sha256mb.h"

#define MAX_MSGS 40

static void openssl_digest(const uint8_t *p, size_t len, uint8_t out[32])
{
	unsigned int dlen = 0;

	assert_int_equal(EVP_Digest(p, len, out, &dlen, EVP_sha256(), NULL), 1);
}

/* Fill buf with a reproducible pseudo-random pattern. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

/*
 * n messages of len bytes, each in an allocation of its own that ends where
 * the message ends (ASan sees any read past it), at an odd offset.
 */
static void check_impl(enum sha256mb_impl impl, size_t n, size_t len)
{
	uint8_t *blocks[MAX_MSGS];
	const uint8_t *msgs[MAX_MSGS];
	uint8_t got[MAX_MSGS][32], want[32];

	for (size_t i = 0; i < n; i++) {
		size_t skew = (i * 13) % 61;	/* uneven alignment */

		blocks[i] = malloc(skew + len + 1);
		assert_non_null(blocks[i]);
		msgs[i] = blocks[i] + skew + 1;
		fill(blocks[i] + skew + 1, len, (uint32_t)(n * 7919 + len + i));
	}
	memset(got, 0xa5, sizeof(got));
	assert_int_equal(sha256mb_hash(impl, msgs, n, len, got), 0);
	for (size_t i = 0; i < n; i++) {
		openssl_digest(msgs[i], len, want);
		if (memcmp(got[i], want, 32) != 0)
			fail_msg("%s: message %zu of %zu, %zu bytes: digest differs",
				 sha256mb_name(impl), i, n, len);
		free(blocks[i]);
	}
}

static void for_each_impl(void (*fn)(enum sha256mb_impl))
{
	int ran = 0;

	for (int i = 0; i < SHA256MB_NIMPL; i++)
		if (sha256mb_supported((enum sha256mb_impl)i)) {
			fn((enum sha256mb_impl)i);
			ran++;
		}
	assert_true(ran >= 1);
}

static void lengths(enum sha256mb_impl impl)
{
	for (size_t len = 0; len <= 200; len++)
		check_impl(impl, 17, len);
	check_impl(impl, 17, 4095);
	check_impl(impl, 17, 65536 - 9);
	check_impl(impl, 17, 65536);
	check_impl(impl, 17, 65537);
	check_impl(impl, 5, 100003);
}

static void counts(enum sha256mb_impl impl)
{
	for (size_t n = 1; n <= MAX_MSGS; n++)
		check_impl(impl, n, 65536);
	check_impl(impl, 3, 65536 + 56);
}

static void test_lengths(void **state)
{
	(void)state;
	for_each_impl(lengths);
}

static void test_counts(void **state)
{
	(void)state;
	for_each_impl(counts);
}

/* FIPS 180-4 examples ("abc", and the 448-bit message) through every impl. */
static void known_answers(enum sha256mb_impl impl)
{
	static const char *const text[2] = {
		"abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" };
	static const char *const hex[2] = {
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" };

	for (int i = 0; i < 2; i++) {
		/* Three copies: fewer would go to OpenSSL rather than to the lanes. */
		const uint8_t *msg[3] = { (const uint8_t *)text[i], (const uint8_t *)text[i],
					  (const uint8_t *)text[i] };
		uint8_t got[3][32];
		char got_hex[65];

		assert_int_equal(sha256mb_hash(impl, msg, 3, strlen(text[i]), got), 0);
		for (int k = 0; k < 3; k++) {
			for (int j = 0; j < 32; j++)
				snprintf(got_hex + 2 * j, 3, "%02x", got[k][j]);
			assert_string_equal(got_hex, hex[i]);
		}
	}
}

static void test_known_answers(void **state)
{
	(void)state;
	for_each_impl(known_answers);
}

static void test_names(void **state)
{
	(void)state;
	for (int i = 0; i < SHA256MB_NIMPL; i++)
		assert_int_equal(sha256mb_by_name(sha256mb_name((enum sha256mb_impl)i)), i);
	assert_string_equal(sha256mb_name(SHA256MB_OPENSSL), "openssl");
	assert_string_equal(sha256mb_name(SHA256MB_SHANI2), "shani2");
	assert_int_equal(sha256mb_by_name("md5"), -1);
	assert_int_equal(sha256mb_by_name(""), -1);
	assert_true(sha256mb_supported(SHA256MB_OPENSSL));
}

static void test_fastest_is_argmax(void **state)
{
	double none[SHA256MB_NIMPL] = { 0 }, some[SHA256MB_NIMPL] = { 0 };

	(void)state;
	assert_int_equal(sha256mb_fastest(none), SHA256MB_OPENSSL);
	some[SHA256MB_OPENSSL] = 1370;
	some[SHA256MB_AVX2] = 1122;
	some[SHA256MB_SHANI2] = 1500;
	assert_int_equal(sha256mb_fastest(some), SHA256MB_SHANI2);
	some[SHA256MB_AVX512] = 2820;
	assert_int_equal(sha256mb_fastest(some), SHA256MB_AVX512);
}

/* A speed above 0 for each implementation this CPU runs, 0 for the others. */
static void check_measured(const double mbps[SHA256MB_NIMPL])
{
	for (int i = 0; i < SHA256MB_NIMPL; i++)
		if (sha256mb_supported((enum sha256mb_impl)i))
			assert_true(mbps[i] > 0);
		else
			assert_true(mbps[i] == 0);
}

static void test_calibrate_measures_each(void **state)
{
	double mbps[SHA256MB_NIMPL];

	(void)state;
	assert_int_equal(sha256mb_calibrate(mbps), 0);
	check_measured(mbps);
}

/* What a context logged: "<priority> <message>" lines. */
struct log_capture {
	char text[4096];
};

static void capture_log(void *data, int priority, const char *msg)
{
	struct log_capture *cap = data;
	size_t used = strlen(cap->text);

	snprintf(cap->text + used, sizeof(cap->text) - used, "%d %s\n", priority, msg);
}

/* A new context logging into cap, with IMGDEV_SHA256_IMPL set to value (NULL: unset). */
static struct imgdev_ctx *ctx_with_override(const char *value, struct log_capture *cap)
{
	struct imgdev_ctx *ctx;

	if (value)
		assert_int_equal(setenv(IMGDEV_SHA256_IMPL_ENV, value, 1), 0);
	else
		assert_int_equal(unsetenv(IMGDEV_SHA256_IMPL_ENV), 0);
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	cap->text[0] = '\0';
	imgdev_ctx_set_log(ctx, capture_log, cap, LOGP_DEBUG);
	return ctx;
}

/* The context measured, chose the fastest measured, and said so. */
static void check_measured_choice(struct imgdev_ctx *ctx, const struct log_capture *cap)
{
	enum sha256mb_impl impl = ctx_hash_impl(ctx);
	char want[64];

	check_measured(ctx->hash_mbps);
	assert_int_equal(impl, sha256mb_fastest(ctx->hash_mbps));
	for (int i = 0; i < SHA256MB_NIMPL; i++)
		assert_true(ctx->hash_mbps[impl] >= ctx->hash_mbps[i]);
	snprintf(want, sizeof(want), "6 block hashing: %s (measured MB/s: openssl ",
		 sha256mb_name(impl));
	assert_non_null(strstr(cap->text, want));
}

static void test_ctx_uses_fastest_measured(void **state)
{
	struct log_capture cap;
	struct imgdev_ctx *ctx = ctx_with_override(NULL, &cap);
	enum sha256mb_impl impl;

	(void)state;
	check_measured_choice(ctx, &cap);
	/* Once per context: the second call neither measures nor logs. */
	impl = ctx_hash_impl(ctx);
	cap.text[0] = '\0';
	assert_int_equal(ctx_hash_impl(ctx), impl);
	assert_string_equal(cap.text, "");
	imgdev_ctx_free(ctx);
	ctx = ctx_with_override("auto", &cap);
	check_measured_choice(ctx, &cap);
	imgdev_ctx_free(ctx);
	unsetenv(IMGDEV_SHA256_IMPL_ENV);
}

static void test_override_forces(void **state)
{
	(void)state;
	for (int i = 0; i < SHA256MB_NIMPL; i++) {
		struct log_capture cap;
		struct imgdev_ctx *ctx;

		if (!sha256mb_supported((enum sha256mb_impl)i))
			continue;
		ctx = ctx_with_override(sha256mb_name((enum sha256mb_impl)i), &cap);
		assert_int_equal(ctx_hash_impl(ctx), i);
		assert_non_null(strstr(cap.text, "(set by IMGDEV_SHA256_IMPL, not measured)"));
		assert_null(strstr(cap.text, "measured MB/s"));
		imgdev_ctx_free(ctx);
	}
	unsetenv(IMGDEV_SHA256_IMPL_ENV);
}

static void test_override_unknown_measures(void **state)
{
	struct log_capture cap;
	struct imgdev_ctx *ctx = ctx_with_override("md5", &cap);

	(void)state;
	check_measured_choice(ctx, &cap);
	assert_non_null(strstr(cap.text, "4 IMGDEV_SHA256_IMPL=md5: no such implementation; "
					 "measuring instead"));
	imgdev_ctx_free(ctx);
	unsetenv(IMGDEV_SHA256_IMPL_ENV);
}

static void test_override_unsupported_measures(void **state)
{
	struct log_capture cap;
	struct imgdev_ctx *ctx;
	char want[128];
	int impl = -1;

	(void)state;
	for (int i = 0; i < SHA256MB_NIMPL && impl < 0; i++)
		if (!sha256mb_supported((enum sha256mb_impl)i))
			impl = i;
	if (impl < 0)
		skip();		/* this CPU runs every implementation */
	ctx = ctx_with_override(sha256mb_name((enum sha256mb_impl)impl), &cap);
	check_measured_choice(ctx, &cap);
	snprintf(want, sizeof(want), "4 IMGDEV_SHA256_IMPL=%s: this CPU cannot run it",
		 sha256mb_name((enum sha256mb_impl)impl));
	assert_non_null(strstr(cap.text, want));
	imgdev_ctx_free(ctx);
	unsetenv(IMGDEV_SHA256_IMPL_ENV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_fastest_is_argmax),
		cmocka_unit_test(test_calibrate_measures_each),
		cmocka_unit_test(test_ctx_uses_fastest_measured),
		cmocka_unit_test(test_override_forces),
		cmocka_unit_test(test_override_unknown_measures),
		cmocka_unit_test(test_override_unsupported_measures),
	};

	for (int i = 0; i < SHA256MB_NIMPL; i++)
		print_message("sha256mb: %s %s\n", sha256mb_name((enum sha256mb_impl)i),
			      sha256mb_supported((enum sha256mb_impl)i) ? "runs here" : "not on this CPU");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
