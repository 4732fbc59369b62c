/*
 * Unit tests of the kernel-text parsers: linear target parameters and
 * uevent DEVNAME lines, including the malformed shapes they must refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "parse.h"

static void test_linear_ok(void **state)
{
	unsigned int maj, min;
	uint64_t off;

	(void)state;
	assert_int_equal(parse_linear_params("98:16 1", &maj, &min, &off), 0);
	assert_int_equal(maj, 98);
	assert_int_equal(min, 16);
	assert_true(off == 1);
	assert_int_equal(parse_linear_params("259:1048575 18446744073709551615", &maj, &min, &off), 0);
	assert_int_equal(min, 1048575);
	assert_true(off == UINT64_MAX);
}

static void test_linear_bad(void **state)
{
	static const char *const bad[] = {
		"", "98:16", "98:16 ", "98 16 1", ":16 1", "98: 1", "98:16 1 ", "98:16  1",
		"98:16 x", "-1:16 1", "4294967296:0 1", "98:16 18446744073709551616",
		"/dev/sda 1", "98:16 1\n",
	};
	unsigned int maj, min;
	uint64_t off;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_linear_params(bad[i], &maj, &min, &off), -EINVAL);
}

static int devname(const char *text, char *out, size_t outlen)
{
	return parse_uevent_devname(text, strlen(text), out, outlen);
}

static void test_uevent(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(devname("MAJOR=98\nMINOR=16\nDEVNAME=ubdb\nDEVTYPE=disk\n", out, sizeof(out)), 0);
	assert_string_equal(out, "ubdb");
	assert_int_equal(devname("DEVNAME=loop3", out, sizeof(out)), 0);
	assert_string_equal(out, "loop3");
	assert_int_equal(devname("XDEVNAME=a\nDEVNAME=mapper/x\n", out, sizeof(out)), 0);
	assert_string_equal(out, "mapper/x");
	assert_int_equal(devname("MAJOR=1\n", out, sizeof(out)), -ENOENT);
	assert_int_equal(devname("", out, sizeof(out)), -ENOENT);
	assert_int_equal(devname("DEVNAME=\n", out, sizeof(out)), -EINVAL);
	assert_int_equal(devname("DEVNAME=/etc/passwd\n", out, sizeof(out)), -EINVAL);
	assert_int_equal(devname("DEVNAME=../etc/passwd\n", out, sizeof(out)), -EINVAL);
	assert_int_equal(devname("DEVNAME=a/../../x\n", out, sizeof(out)), -EINVAL);
	assert_int_equal(devname("DEVNAME=..\n", out, sizeof(out)), -EINVAL);
	assert_int_equal(devname("DEVNAME=0123456789012345678901234567890123456789\n", out,
				 sizeof(out)), -EINVAL);
	/* "..x" is an ordinary name, not a parent reference. */
	assert_int_equal(devname("DEVNAME=..x\n", out, sizeof(out)), 0);
	/* A NUL inside the value is refused. */
	assert_int_equal(parse_uevent_devname("DEVNAME=a\0b\n", 12, out, sizeof(out)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linear_ok),
		cmocka_unit_test(test_linear_bad),
		cmocka_unit_test(test_uevent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
