/*
 * Unit tests of the qcow2 reader's compressed clusters, on images built here
 * in memory: a deflate cluster that fills the cluster exactly (the fast path,
 * libdeflate, decompressing in place), one in the short last cluster, one
 * whose stream runs on past the cluster (accepted with the cluster's bytes,
 * as QEMU does, through the zlib path), one that comes up short (refused);
 * zeros of an unallocated cluster handed to the zeros callback once, buf
 * left alone, also when a read starts with them; with a place callback
 * (mapped reads), runs of uncompressed clusters go to it joined, nothing is
 * written to buf, a compressed cluster fails with -EXDEV (or, with
 * place_compressed, is located: its file range) and the callback's error
 * ends the read. The qemu-img oracle tests (test_images.sh) cover
 * real images.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "header.h"
#include "qcow2.h"

#define CBITS 16
#define CSIZE (1u << CBITS)
#define VSIZE (3 * CSIZE + 4096)	/* four clusters, the last one short */
#define DATA_AT (3 * CSIZE)		/* header, L1, L2, then compressed data */

struct image {
	uint8_t *bytes;
	size_t size;
};

static int mem_pread(void *arg, void *buf, size_t len, uint64_t off)
{
	const struct image *im = arg;

	if (off > im->size || len > im->size - off)
		return -EIO;
	memcpy(buf, im->bytes + off, len);
	return 0;
}

/* Raw deflate with QEMU's 4 KiB window; returns the compressed length. */
static size_t deflate_raw(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	z_stream z = { 0 };

	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	deflateEnd(&z);
	return z.total_out;
}

/* Cluster i's plain bytes: compressible text that differs per cluster. */
static void cluster_text(uint8_t *buf, size_t len, int i)
{
	for (size_t j = 0; j < len; j++)
		buf[j] = (uint8_t)('a' + (j * 7 + j / 97 + (size_t)i * 3) % 26);
}

/* A v2 header, VSIZE virtual bytes, one L1 entry at CSIZE naming the L2 table at 2 * CSIZE. */
static void put_layout(uint8_t *bytes)
{
	put_be32(bytes, QCOW2_MAGIC);
	put_be32(bytes + 4, 2);
	put_be32(bytes + 20, CBITS);
	put_be64(bytes + 24, VSIZE);
	put_be32(bytes + 36, 1);		/* l1_size */
	put_be64(bytes + 40, CSIZE);		/* l1_table_offset */
	put_be64(bytes + CSIZE, 2 * (uint64_t)CSIZE);
}

/*
 * A v2 image: clusters 0, 2 and 3 compressed, cluster 1 unallocated.
 * Cluster 0's stream inflates to CSIZE + delta bytes (delta may be < 0).
 */
static struct image build_image(int delta)
{
	struct image im = { .size = DATA_AT + 4 * CSIZE };
	uint8_t *plain = malloc(CSIZE + 4096);
	size_t at = DATA_AT;

	im.bytes = calloc(1, im.size);
	assert_true(im.bytes && plain);
	put_layout(im.bytes);
	for (int i = 0; i <= 3; i += 1 + (i == 0)) {
		size_t plain_len = i == 0 ? (size_t)((int)CSIZE + delta) : CSIZE;
		size_t clen, nsec;

		cluster_text(plain, plain_len, i);
		clen = deflate_raw(plain, plain_len, im.bytes + at, im.size - at);
		nsec = (at % 512 + clen + 511) / 512;
		put_be64(im.bytes + 2 * CSIZE + 8 * i,
			 (1ull << 62) | ((uint64_t)(nsec - 1) << (62 - (CBITS - 8))) | at);
		at += clen + 100;		/* clusters need not be sector-aligned */
	}
	im.size = (at + 511) / 512 * 512;
	free(plain);
	return im;
}

/* Every range handed to the zeros callback, in order. */
struct zeros_seen {
	uint32_t from[8], to[8];
	int calls;
};

static void record_zeros(void *arg, uint32_t from, uint32_t to)
{
	struct zeros_seen *z = arg;

	if (z->calls < 8) {
		z->from[z->calls] = from;
		z->to[z->calls] = to;
	}
	z->calls++;
}

/* Virtual bytes [off, VSIZE) into buf. */
static int read_from(struct image *im, uint64_t off, uint8_t *buf, struct zeros_seen *z,
		     char *err)
{
	struct qcow2 q;
	struct qcow2_out out = { .buf = buf, .zeros = record_zeros, .arg = z };
	int rc = qcow2_open(&q, mem_pread, im, im->size, err, 256);

	if (rc == 0)
		rc = qcow2_read(&q, &out, off, (uint32_t)(VSIZE - off), err, 256);
	qcow2_close(&q);
	return rc;
}

static int read_all(struct image *im, uint8_t *buf, struct zeros_seen *z, char *err)
{
	return read_from(im, 0, buf, z, err);
}

/* The first len bytes at got are cluster i's text. */
static void assert_cluster(const uint8_t *got, int i, size_t len)
{
	uint8_t *want = malloc(CSIZE);

	assert_non_null(want);
	cluster_text(want, CSIZE, i);
	assert_memory_equal(got, want, len);
	free(want);
}

/* Exactly one range went to the zeros callback: [from, to). */
static void assert_one_zero_range(const struct zeros_seen *z, uint32_t from, uint32_t to)
{
	assert_int_equal(z->calls, 1);
	assert_int_equal(z->from[0], from);
	assert_int_equal(z->to[0], to);
}

static void test_exact_clusters(void **state)
{
	struct image im = build_image(0);
	uint8_t *buf = malloc(VSIZE);
	struct zeros_seen z = { 0 };
	char err[256] = "";

	(void)state;
	memset(buf, 0xa5, VSIZE);
	assert_int_equal(read_all(&im, buf, &z, err), 0);
	assert_cluster(buf, 0, CSIZE);
	assert_cluster(buf + 2 * CSIZE, 2, CSIZE);
	assert_cluster(buf + 3 * CSIZE, 3, 4096);	/* the short last cluster */
	/* The unallocated cluster went to the callback, once; its bytes were not written. */
	assert_one_zero_range(&z, CSIZE, 2 * CSIZE);
	assert_int_equal(buf[CSIZE], 0xa5);
	free(buf);
	free(im.bytes);
}

/* A read starting at a cluster of zeros: the leading zeros come once, and
 * the clusters after them land at their offsets within buf. */
static void test_read_starting_with_zeros(void **state)
{
	struct image im = build_image(0);
	uint8_t *buf = malloc(VSIZE);
	struct zeros_seen z = { 0 };
	char err[256] = "";

	(void)state;
	memset(buf, 0xa5, VSIZE);
	assert_int_equal(read_from(&im, CSIZE, buf, &z, err), 0);
	assert_one_zero_range(&z, 0, CSIZE);
	assert_int_equal(buf[0], 0xa5);
	assert_cluster(buf + CSIZE, 2, CSIZE);		/* in place */
	assert_cluster(buf + 2 * CSIZE, 3, 4096);	/* through the cluster buffer */
	free(buf);
	free(im.bytes);
}

static void test_stream_longer_than_cluster(void **state)
{
	struct image im = build_image(1000);
	uint8_t *buf = malloc(VSIZE), *want = malloc(CSIZE + 1000);
	struct zeros_seen z = { 0 };
	char err[256] = "";

	(void)state;
	assert_int_equal(read_all(&im, buf, &z, err), 0);
	cluster_text(want, CSIZE + 1000, 0);
	assert_memory_equal(buf, want, CSIZE);
	free(buf);
	free(want);
	free(im.bytes);
}

static void test_stream_shorter_than_cluster(void **state)
{
	struct image im = build_image(-1000);
	uint8_t *buf = malloc(VSIZE);
	struct zeros_seen z = { 0 };
	char err[256] = "";

	(void)state;
	assert_int_equal(read_all(&im, buf, &z, err), -EINVAL);
	assert_non_null(strstr(err, "does not decompress (deflate)"));
	free(buf);
	free(im.bytes);
}

/*
 * A v2 image of uncompressed clusters: 0, 2 and 3 (short) in that order in
 * the file, 1 unallocated, so 2 and 3 make one run in both spaces.
 */
static struct image build_plain_image(void)
{
	struct image im = { .size = DATA_AT + 3 * CSIZE };
	static const int order[] = { 0, 2, 3 };

	im.bytes = calloc(1, im.size);
	assert_non_null(im.bytes);
	put_layout(im.bytes);
	for (int k = 0; k < 3; k++) {
		uint64_t host = DATA_AT + (uint64_t)k * CSIZE;

		put_be64(im.bytes + 2 * CSIZE + 8 * order[k], host);
		cluster_text(im.bytes + host, CSIZE, order[k]);
	}
	return im;
}

/* Every run handed to the place callback; fail_with: what it returns. */
struct places_seen {
	struct zeros_seen z;	/* first: the zeros callback's argument too */
	uint32_t at[8], len[8];
	uint64_t host[8];
	int calls, fail_with;
	uint64_t chost[8], clen[8];	/* place_compressed's ranges */
	int ccalls;
};

static int record_place_compressed(void *arg, uint64_t host, uint64_t len)
{
	struct places_seen *p = arg;

	if (p->ccalls < 8) {
		p->chost[p->ccalls] = host;
		p->clen[p->ccalls] = len;
	}
	p->ccalls++;
	return 0;
}

static int record_place(void *arg, uint32_t at, uint32_t len, uint64_t host)
{
	struct places_seen *p = arg;

	if (p->calls < 8) {
		p->at[p->calls] = at;
		p->len[p->calls] = len;
		p->host[p->calls] = host;
	}
	p->calls++;
	return p->fail_with;
}

/* A read with place: no buf at all, so a write to it would crash. */
static int read_placed(struct image *im, struct places_seen *p, char *err)
{
	struct qcow2 q;
	struct qcow2_out out = { .zeros = record_zeros, .place = record_place, .arg = p };
	int rc = qcow2_open(&q, mem_pread, im, im->size, err, 256);

	if (rc == 0)
		rc = qcow2_read(&q, &out, 0, VSIZE, err, 256);
	qcow2_close(&q);
	return rc;
}

static void test_place_gets_joined_runs(void **state)
{
	struct image im = build_plain_image();
	struct places_seen p = { 0 };
	uint8_t *buf = malloc(VSIZE);
	struct zeros_seen z = { 0 };
	char err[256] = "";

	(void)state;
	assert_int_equal(read_placed(&im, &p, err), 0);
	assert_int_equal(p.calls, 2);
	assert_int_equal(p.at[0], 0);
	assert_int_equal(p.len[0], CSIZE);
	assert_true(p.host[0] == DATA_AT);
	assert_int_equal(p.at[1], 2 * CSIZE);
	assert_int_equal(p.len[1], CSIZE + 4096);
	assert_true(p.host[1] == DATA_AT + CSIZE);
	assert_one_zero_range(&p.z, CSIZE, 2 * CSIZE);
	/* The same image read into a buffer: the bytes the runs name. */
	assert_int_equal(read_all(&im, buf, &z, err), 0);
	assert_cluster(buf, 0, CSIZE);
	assert_memory_equal(buf + 2 * CSIZE, im.bytes + DATA_AT + CSIZE, CSIZE + 4096);
	assert_one_zero_range(&z, CSIZE, 2 * CSIZE);
	p = (struct places_seen){ .fail_with = -ENOMEM };
	assert_int_equal(read_placed(&im, &p, err), -ENOMEM);
	assert_int_equal(p.calls, 1);
	free(buf);
	free(im.bytes);
}

static void test_place_refuses_compressed(void **state)
{
	struct image im = build_image(0);
	struct places_seen p = { 0 };
	char err[256] = "";

	(void)state;
	assert_int_equal(read_placed(&im, &p, err), -EXDEV);
	assert_int_equal(p.calls, 0);
	free(im.bytes);
}

/*
 * With place_compressed too, a compressed cluster is located, not refused:
 * its file range is where its L2 entry says (offset, and sectors counted
 * from that offset's own sector), nothing is read into a buffer.
 */
static void test_place_compressed_gets_file_ranges(void **state)
{
	struct image im = build_image(0);
	struct places_seen p = { 0 };
	struct qcow2 q;
	struct qcow2_out out = { .zeros = record_zeros, .place = record_place,
				 .place_compressed = record_place_compressed, .arg = &p };
	char err[256] = "";
	int k = 0;

	(void)state;
	assert_int_equal(qcow2_open(&q, mem_pread, &im, im.size, err, 256), 0);
	assert_int_equal(qcow2_read(&q, &out, 0, VSIZE, err, 256), 0);
	qcow2_close(&q);
	assert_int_equal(p.calls, 0);
	assert_int_equal(p.ccalls, 3);
	for (int i = 0; i <= 3; i += 1 + (i == 0), k++) {
		uint64_t e = get_be64(im.bytes + 2 * CSIZE + 8 * i);
		uint64_t coff = e & ((1ull << (62 - (CBITS - 8))) - 1);
		uint64_t nsec = ((e >> (62 - (CBITS - 8))) & ((1ull << (CBITS - 8)) - 1)) + 1;
		uint64_t end = (coff & ~511ull) + nsec * 512;

		assert_true(p.chost[k] == coff);
		assert_true(p.clen[k] == (end < im.size ? end : im.size) - coff);
	}
	assert_one_zero_range(&p.z, CSIZE, 2 * CSIZE);
	free(im.bytes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_clusters),
		cmocka_unit_test(test_read_starting_with_zeros),
		cmocka_unit_test(test_stream_longer_than_cluster),
		cmocka_unit_test(test_stream_shorter_than_cluster),
		cmocka_unit_test(test_place_gets_joined_runs),
		cmocka_unit_test(test_place_refuses_compressed),
		cmocka_unit_test(test_place_compressed_gets_file_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
