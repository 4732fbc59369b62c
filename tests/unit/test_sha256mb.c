/*
 * Unit tests of multi-buffer SHA-256: every implementation this CPU runs
 * gives OpenSSL's digest for every message, across lengths around the
 * padding boundaries (55, 56, 63, 64 bytes past a block), counts that leave
 * lanes spare or hand one or two messages to OpenSSL, and messages at odd
 * addresses, each ending where its allocation ends (so ASan sees a read past
 * it). Known-answer vectors from FIPS 180-4 pin every path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

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
	check_impl(impl, 17, 65536 - 9);
	check_impl(impl, 17, 65536);
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

static void test_best_is_supported(void **state)
{
	(void)state;
	assert_true(sha256mb_supported(sha256mb_best()));
	assert_string_equal(sha256mb_name(SHA256MB_OPENSSL), "openssl");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_best_is_supported),
	};

	for (int i = 0; i < SHA256MB_NIMPL; i++)
		print_message("sha256mb: %s %s\n", sha256mb_name((enum sha256mb_impl)i),
			      sha256mb_supported((enum sha256mb_impl)i) ? "runs here" : "not on this CPU");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
