/*
 * Unit tests of `ensure`, header reading and hash parsing on plain files:
 * every branch of the seed's EnsureDevHeaderMatches, and that the bytes a
 * failing or matching call must not touch stay untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "header.h"
#include "imgdev.h"

#define FILE_SIZE (4 * SECTOR_SIZE)

struct fixture {
	struct imgdev_ctx *ctx;
	char dir[64];
	char path[96];
	uint8_t hash_a[IMGDEV_HASH_SIZE];
	uint8_t hash_b[IMGDEV_HASH_SIZE];
};

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *path, uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(data, 1, len, f);
	fclose(f);
	return n;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	uint8_t data[FILE_SIZE];

	assert_non_null(fx);
	assert_int_equal(imgdev_ctx_new(&fx->ctx), 0);
	strcpy(fx->dir, "/tmp/imgdev-unit-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/disk", fx->dir);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	write_file(fx->path, data, sizeof(data));
	memset(fx->hash_a, 0xaa, IMGDEV_HASH_SIZE);
	memset(fx->hash_b, 0xbb, IMGDEV_HASH_SIZE);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	unlink(fx->path);
	rmdir(fx->dir);
	imgdev_ctx_free(fx->ctx);
	free(fx);
	return 0;
}

/* A fresh file: written, whole sector 0 replaced, the payload untouched. */
static void test_ensure_writes_fresh(void **state)
{
	struct fixture *fx = *state;
	uint8_t before[FILE_SIZE], after[FILE_SIZE], expect[SECTOR_SIZE];
	struct hdr h;

	read_file(fx->path, before, sizeof(before));
	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_a, 0), IMGDEV_WRITTEN);
	assert_int_equal(read_file(fx->path, after, sizeof(after)), FILE_SIZE);
	hdr_init_v1(&h, fx->hash_a);
	hdr_encode(&h, expect);
	assert_memory_equal(after, expect, SECTOR_SIZE);
	assert_memory_equal(after + SECTOR_SIZE, before + SECTOR_SIZE, FILE_SIZE - SECTOR_SIZE);
}

/* Matching magic and hash: matched, and not one byte written. */
static void test_ensure_matched_writes_nothing(void **state)
{
	struct fixture *fx = *state;
	uint8_t sector[SECTOR_SIZE], after[SECTOR_SIZE];
	struct hdr h;

	hdr_init_v1(&h, fx->hash_a);
	hdr_encode(&h, sector);
	memset(sector + 100, 0x5a, 50);	/* would be zeroed by any rewrite */
	write_file(fx->path, sector, sizeof(sector));
	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_a, 0), IMGDEV_MATCHED);
	read_file(fx->path, after, sizeof(after));
	assert_memory_equal(after, sector, SECTOR_SIZE);
}

/* Another hash: rewritten with the new hash. */
static void test_ensure_rewrites_other_hash(void **state)
{
	struct fixture *fx = *state;
	struct imgdev_header hd;

	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_a, 0), IMGDEV_WRITTEN);
	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_b, 0), IMGDEV_WRITTEN);
	assert_int_equal(imgdev_header_read(fx->ctx, fx->path, &hd), 0);
	assert_true(hd.present);
	assert_int_equal(hd.version, 1);
	assert_memory_equal(hd.image_hash, fx->hash_b, IMGDEV_HASH_SIZE);
	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_b, 0), IMGDEV_MATCHED);
}

/* Magic and hash match but another version: an error naming it, no write. */
static void test_ensure_other_version_fails(void **state)
{
	struct fixture *fx = *state;
	uint8_t sector[SECTOR_SIZE], after[SECTOR_SIZE];
	struct hdr h;

	hdr_init_v1(&h, fx->hash_a);
	h.version = 2;
	hdr_encode(&h, sector);
	write_file(fx->path, sector, sizeof(sector));
	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_a, 0), -EPROTO);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "version 2"));
	read_file(fx->path, after, sizeof(after));
	assert_memory_equal(after, sector, SECTOR_SIZE);
}

/* An old MBR's partition table does not survive beside the header. */
static void test_ensure_clears_stale_mbr(void **state)
{
	struct fixture *fx = *state;
	uint8_t sector[SECTOR_SIZE];

	memset(sector, 0x11, sizeof(sector));
	sector[510] = 0x55;
	sector[511] = 0xaa;
	write_file(fx->path, sector, sizeof(sector));
	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_a, 0), IMGDEV_WRITTEN);
	read_file(fx->path, sector, sizeof(sector));
	for (int i = HDR_SIZE; i < SECTOR_SIZE; i++)
		assert_int_equal(sector[i], 0);
}

/* Too small, a directory, a missing path: errors that name the path. */
static void test_ensure_bad_targets(void **state)
{
	struct fixture *fx = *state;
	uint8_t small[100], after[100];

	memset(small, 0x42, sizeof(small));
	write_file(fx->path, small, sizeof(small));
	assert_int_equal(imgdev_ensure(fx->ctx, fx->path, fx->hash_a, 0), -ENOSPC);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "too small"));
	assert_int_equal(read_file(fx->path, after, sizeof(after)), sizeof(small));
	assert_memory_equal(after, small, sizeof(small));
	assert_true(imgdev_ensure(fx->ctx, fx->dir, fx->hash_a, 0) < 0);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "directory"));
	assert_int_equal(imgdev_ensure(fx->ctx, "/nonexistent/disk", fx->hash_a, 0), -ENOENT);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "/nonexistent/disk"));
	assert_true(imgdev_ensure(fx->ctx, "/dev/null", fx->hash_a, 0) < 0);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "character device"));
}

static void test_header_read_absent(void **state)
{
	struct fixture *fx = *state;
	struct imgdev_header hd;

	assert_int_equal(imgdev_header_read(fx->ctx, fx->path, &hd), 0);
	assert_false(hd.present);
}

static void test_parse_hash(void **state)
{
	struct fixture *fx = *state;
	const char *hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
	uint8_t hash[IMGDEV_HASH_SIZE];
	char text[80], formatted[72];

	assert_int_equal(imgdev_parse_hash(fx->ctx, hex, hash), 0);
	assert_int_equal(hash[0], 0x00);
	assert_int_equal(hash[5], 0x55);
	assert_int_equal(hash[31], 0xff);
	snprintf(text, sizeof(text), "sha256:%s", hex);
	assert_int_equal(imgdev_parse_hash(fx->ctx, text, hash), 0);
	imgdev_format_hash(hash, formatted);
	assert_string_equal(formatted,
			    "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	assert_int_equal(imgdev_parse_hash(fx->ctx, "abc", hash), -EINVAL);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "64 hex digits"));
	snprintf(text, sizeof(text), "md5:%s", hex);
	assert_int_equal(imgdev_parse_hash(fx->ctx, text, hash), -EINVAL);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "algorithm"));
	snprintf(text, sizeof(text), "%.63sg", hex);
	assert_int_equal(imgdev_parse_hash(fx->ctx, text, hash), -EINVAL);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "character 64"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ensure_writes_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_matched_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_rewrites_other_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_other_version_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_clears_stale_mbr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_bad_targets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_read_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_hash, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
