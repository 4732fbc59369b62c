/*
 * Unit tests of the text parsers: linear target parameters, uevent DEVNAME
 * lines, and checksum files (GNU and BSD SHA256SUMS), including the
 * malformed shapes they must refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "checksums.h"
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

#define H1 "0f2d2e9d6b1c1f3f26c3b7b3e6bb6b6b8e5c5a1d1e7c6a9f4b2e0d3c5a7b9e1f"
#define H2 "aa2d2e9d6b1c1f3f26c3b7b3e6bb6b6b8e5c5a1d1e7c6a9f4b2e0d3c5a7b9e1f"

/* The first byte of the digest found for name in text, or the error. */
static int find_first_byte(const char *text, const char *name)
{
	uint8_t d[32];
	char why[256];
	int rc = checksums_find(text, strlen(text), name, d, why, sizeof(why));

	return rc < 0 ? rc : d[0];
}

static void test_checksums(void **state)
{
	const char *gnu = "# made by sha256sum\n" H2 "  disk.img.xz\n" H1 "  disk.img\n";
	const char *bin = H2 " *other.qcow2\r\n" H1 " *disk.img\r\n";
	const char *bsd = "SHA256 (disk.img.xz) = " H2 "\nSHA256 (disk.img) = " H1 "\n";
	const char *md5 = "MD5 (disk.img) = 0123456789abcdef0123456789abcdef\n";

	(void)state;
	assert_int_equal(find_first_byte(gnu, "disk.img"), 0x0f);
	assert_int_equal(find_first_byte(gnu, "disk.img.xz"), 0xaa);
	assert_int_equal(find_first_byte(bin, "disk.img"), 0x0f);
	assert_int_equal(find_first_byte(bsd, "disk.img"), 0x0f);
	assert_int_equal(find_first_byte(bsd, "disk.img.xz"), 0xaa);
	/* No line, a name that only starts like it, another algorithm: none. */
	assert_int_equal(find_first_byte(gnu, "disk"), -ENOENT);
	assert_int_equal(find_first_byte(gnu, "missing.img"), -ENOENT);
	assert_int_equal(find_first_byte(md5, "disk.img"), -ENOENT);
	assert_int_equal(find_first_byte("", "disk.img"), -ENOENT);
	/* A line for it that is malformed, or two that disagree: never a guess. */
	assert_int_equal(find_first_byte("0f2d  disk.img\n", "disk.img"), -EINVAL);
	assert_int_equal(find_first_byte("SHA256 (disk.img) = xyz\n", "disk.img"), -EINVAL);
	assert_int_equal(find_first_byte(H1 "  disk.img\n" H2 "  disk.img\n", "disk.img"), -EINVAL);
	assert_int_equal(find_first_byte(H1 "  disk.img\n" H1 " *disk.img", "disk.img"), 0x0f);
	/* No newline at the end. */
	assert_int_equal(find_first_byte(H1 "  disk.img", "disk.img"), 0x0f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linear_ok),
		cmocka_unit_test(test_linear_bad),
		cmocka_unit_test(test_uevent),
		cmocka_unit_test(test_checksums),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
