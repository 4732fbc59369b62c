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
	/* A version this build does not know: no known payload offset. */
	assert_false(hdr_version_known(&out));
	assert_int_equal(hdr_data_offset(&out), 0);
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

static void make_complete(struct hdr *h, uint8_t sector[SECTOR_SIZE])
{
	uint8_t hash[IMGDEV_HASH_SIZE];

	fill_hash(hash);
	hdr_init_v1(h, hash);
	h->rec_status = REC_VALID;
	h->rec.version = REC_VERSION;
	h->rec.state = REC_STATE_COMPLETE;
	h->rec.block_size = CONTENT_BLOCK_SIZE;
	h->rec.data_offset = 512;
	h->rec.image_size = UINT64_C(0x123456789);
	memset(h->rec.content_hash, 0x11, IMGDEV_HASH_SIZE);
	memcpy(h->rec.target_hash, hash, IMGDEV_HASH_SIZE);
	h->rec.commit_time = 1700000000;
	hdr_encode(h, sector);
}

/* The record sits at 64..511 and leaves Virtlet's 42 bytes as they were. */
static void test_record_layout(void **state)
{
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;

	(void)state;
	make_complete(&h, sector);
	for (int i = HDR_SIZE; i < REC_OFFSET; i++)
		assert_int_equal(sector[i], 0);
	assert_memory_equal(sector + 64, "IMGDEVCR", 8);
	assert_int_equal(get_be16(sector + 72), 1);
	assert_int_equal(get_be16(sector + 74), REC_STATE_COMPLETE);
	assert_int_equal(get_be32(sector + 76), 65536);
	assert_true(get_be64(sector + 80) == 512);
	assert_true(get_be64(sector + 88) == UINT64_C(0x123456789));
	assert_int_equal(sector[96], 0x11);
	assert_memory_equal(sector + 128, h.image_hash, IMGDEV_HASH_SIZE);
	assert_true(get_be64(sector + 160) == 1700000000);
	for (int i = 168; i < REC_SUM_OFFSET; i++)
		assert_int_equal(sector[i], 0);
}

/* A "writing" record's resume point: a u64 at 168, covered by the checksum. */
static void test_record_resume_point(void **state)
{
	uint8_t sector[SECTOR_SIZE];
	struct hdr in, out;

	(void)state;
	make_complete(&in, sector);
	in.rec.state = REC_STATE_WRITING;
	in.rec.resume_at = UINT64_C(0x0102030405060708);
	hdr_encode(&in, sector);
	assert_true(get_be64(sector + 168) == UINT64_C(0x0102030405060708));
	for (int i = 176; i < REC_SUM_OFFSET; i++)
		assert_int_equal(sector[i], 0);
	hdr_decode(sector, sizeof(sector), &out);
	assert_int_equal(out.rec_status, REC_VALID);
	assert_true(out.rec.resume_at == in.rec.resume_at);
	sector[170] ^= 1;
	hdr_decode(sector, sizeof(sector), &out);
	assert_int_equal(out.rec_status, REC_CORRUPT);
}

static void test_record_roundtrip(void **state)
{
	uint8_t sector[SECTOR_SIZE];
	struct hdr in, out;

	(void)state;
	make_complete(&in, sector);
	hdr_decode(sector, sizeof(sector), &out);
	assert_int_equal(out.rec_status, REC_VALID);
	assert_memory_equal(&out.rec, &in.rec, sizeof(in.rec));
	assert_true(hdr_is_complete(&out, in.image_hash));
	out.image_hash[0] ^= 1;
	assert_false(hdr_is_complete(&out, in.image_hash));
}

/* Any flipped bit in the covered range makes the record corrupt, never valid. */
static void test_record_checksum(void **state)
{
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;

	(void)state;
	/* (bytes 72-73, the version, read as a newer record: refused, not trusted) */
	for (int i = 74; i < SECTOR_SIZE; i += 7) {
		make_complete(&h, sector);
		sector[i] ^= 0x04;
		hdr_decode(sector, sizeof(sector), &h);
		assert_int_equal(h.rec_status, REC_CORRUPT);
		assert_false(hdr_is_complete(&h, h.image_hash));
	}
}

static void test_record_absent_newer_and_writing(void **state)
{
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;

	(void)state;
	make_complete(&h, sector);
	memset(sector + 64, 0, SECTOR_SIZE - 64);	/* what Virtlet and ensure write */
	hdr_decode(sector, sizeof(sector), &h);
	assert_int_equal(h.rec_status, REC_ABSENT);
	assert_false(hdr_is_complete(&h, h.image_hash));
	assert_int_equal(hdr_data_offset(&h), 512);
	make_complete(&h, sector);
	put_be16(sector + 72, 2);
	hdr_decode(sector, sizeof(sector), &h);
	assert_int_equal(h.rec_status, REC_NEWER);
	assert_int_equal(h.rec.version, 2);
	make_complete(&h, sector);
	h.rec.state = REC_STATE_WRITING;
	hdr_encode(&h, sector);
	hdr_decode(sector, sizeof(sector), &h);
	assert_int_equal(h.rec_status, REC_VALID);
	assert_false(hdr_is_complete(&h, h.image_hash));
	/* A record behind a foreign sector is not even looked at. */
	make_complete(&h, sector);
	sector[0] ^= 0xff;
	hdr_decode(sector, sizeof(sector), &h);
	assert_int_equal(h.rec_status, REC_ABSENT);
}

/*
 * Version 2, the aligned layout: the 42 bytes as in version 1 but for the
 * version, the payload at 1 MiB, and a record that must say so.
 */
static void test_version2(void **state)
{
	uint8_t sector[SECTOR_SIZE], v1[SECTOR_SIZE];
	struct hdr in, out;

	(void)state;
	make_complete(&in, v1);
	in.version = HDR_VERSION_ALIGNED;
	in.rec.data_offset = ALIGNED_DATA_OFFSET;
	hdr_encode(&in, sector);
	assert_int_equal(get_be16(sector + 8), 2);
	assert_memory_equal(sector, v1, 8);
	assert_memory_equal(sector + 10, v1 + 10, IMGDEV_HASH_SIZE);
	assert_true(get_be64(sector + 80) == 1048576);
	hdr_decode(sector, sizeof(sector), &out);
	assert_int_equal(out.rec_status, REC_VALID);
	assert_true(hdr_version_known(&out));
	assert_true(hdr_data_offset(&out) == 1048576);
	assert_true(hdr_is_complete(&out, in.image_hash));
	/* A record whose offset is not its header's layout is corrupt, never trusted. */
	in.rec.data_offset = 512;
	hdr_encode(&in, sector);
	hdr_decode(sector, sizeof(sector), &out);
	assert_int_equal(out.rec_status, REC_CORRUPT);
	assert_false(hdr_is_complete(&out, in.image_hash));
	make_complete(&in, sector);
	in.rec.data_offset = ALIGNED_DATA_OFFSET;
	hdr_encode(&in, sector);
	hdr_decode(sector, sizeof(sector), &out);
	assert_int_equal(out.rec_status, REC_CORRUPT);
	/* Under a version this build does not know, the record still decodes. */
	make_complete(&in, sector);
	in.version = 3;
	hdr_encode(&in, sector);
	hdr_decode(sector, sizeof(sector), &out);
	assert_int_equal(out.rec_status, REC_VALID);
	assert_false(hdr_is_complete(&out, in.image_hash));
	assert_true(hdr_layout_offset(1) == 512 && hdr_layout_offset(2) == 1048576 &&
		    hdr_layout_offset(0) == 0 && hdr_layout_offset(3) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_layout),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_decode_foreign),
		cmocka_unit_test(test_be_helpers),
		cmocka_unit_test(test_record_layout),
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_record_resume_point),
		cmocka_unit_test(test_record_checksum),
		cmocka_unit_test(test_record_absent_newer_and_writing),
		cmocka_unit_test(test_version2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
