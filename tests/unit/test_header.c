/*
 * Unit tests of the sector-0 header codec: the exact byte layout Virtlet
 * wrote, the zeroed remainder of the sector, and decoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "header.h"

static void fill_hash(uint8_t *hash)
{
	for (int i = 0; i < IMGDEV_HASH_SIZE; i++)
		hash[i] = (uint8_t)(0xa0 + i);
}

/* The layout, byte by byte, as Go's binary.Write(BigEndian) produced it. */
static void test_encode_layout(void **state)
{
	static const uint8_t magic[8] = { 0x26, 0x3d, 0xbe, 0x52, 0xba, 0x57, 0x67, 0x02 };
	uint8_t sector[SECTOR_SIZE], hash[IMGDEV_HASH_SIZE];
	struct hdr h;

	(void)state;
	fill_hash(hash);
	memset(sector, 0xff, sizeof(sector));
	hdr_init_v1(&h, hash);
	hdr_encode(&h, sector);
	assert_memory_equal(sector, magic, 8);
	assert_int_equal(sector[8], 0x00);
	assert_int_equal(sector[9], 0x01);
	assert_memory_equal(sector + 10, hash, IMGDEV_HASH_SIZE);
	for (int i = HDR_SIZE; i < SECTOR_SIZE; i++)
		assert_int_equal(sector[i], 0);
}

static void test_roundtrip(void **state)
{
	uint8_t sector[SECTOR_SIZE], hash[IMGDEV_HASH_SIZE];
	struct hdr in, out;

	(void)state;
	fill_hash(hash);
	hdr_init_v1(&in, hash);
	in.version = 7;
	hdr_encode(&in, sector);
	hdr_decode(sector, sizeof(sector), &out);
	assert_true(hdr_has_magic(&out));
	assert_int_equal(out.version, 7);
	assert_memory_equal(out.image_hash, hash, IMGDEV_HASH_SIZE);
	assert_int_equal(hdr_data_offset(&out), 512);
}

static void test_decode_foreign(void **state)
{
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;

	(void)state;
	memset(sector, 0, sizeof(sector));
	sector[510] = 0x55;	/* an MBR boot signature */
	sector[511] = 0xaa;
	hdr_decode(sector, sizeof(sector), &h);
	assert_false(hdr_has_magic(&h));
	/* A buffer shorter than the header decodes as nothing. */
	memset(sector, 0x26, sizeof(sector));
	hdr_decode(sector, HDR_SIZE - 1, &h);
	assert_false(hdr_has_magic(&h));
	assert_int_equal(h.version, 0);
}

static void test_be_helpers(void **state)
{
	uint8_t b[8];

	(void)state;
	put_be64(b, UINT64_C(0x0102030405060708));
	assert_int_equal(b[0], 1);
	assert_int_equal(b[7], 8);
	assert_true(get_be64(b) == UINT64_C(0x0102030405060708));
	put_be32(b, 0xdeadbeef);
	assert_true(get_be32(b) == 0xdeadbeef);
	put_be16(b, 0xbeef);
	assert_int_equal(get_be16(b), 0xbeef);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_layout),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_decode_foreign),
		cmocka_unit_test(test_be_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
