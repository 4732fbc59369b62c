/*
 * libFuzzer target for the qcow2 reader: the input is an image file in
 * memory. Open it (header, extensions, L1) and, when it opens, read the
 * first megabytes of the virtual disk chunk by chunk (L2 walking and
 * decompression; zero ranges through the callback the image source uses, its
 * contract checked), then read each chunk again as a mapped read does (runs
 * of data to a place callback, no buffer at all: zeros and runs in order,
 * inside the read and the file; a chunk that read fine fails here only for
 * a compressed cluster), and once more locating compressed clusters too (as
 * the page-cache drop does: each a range inside the file, and a chunk that
 * read fine never fails), and count allocated clusters. Any input must fail
 * cleanly or succeed; never crash, hang or allocate without bound.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
	const uint8_t *data;
	size_t size;
};

static int mem_pread(void *arg, void *buf, size_t len, uint64_t off)
{
	const struct mem *m = arg;

	if (off > m->size || len > m->size - off)
		return -EIO;
	memcpy(buf, m->data + off, len);
	return 0;
}

/* The callbacks' contract: ranges non-empty, in order, inside the read. */
struct zeros_check {
	uint32_t len, last_to;
	uint64_t file_size;	/* for placed runs */
};

static void check_zeros(void *arg, uint32_t from, uint32_t to)
{
	struct zeros_check *z = arg;

	if (from >= to || from < z->last_to || to > z->len)
		abort();
	z->last_to = to;
}

static int check_place(void *arg, uint32_t at, uint32_t len, uint64_t host)
{
	struct zeros_check *z = arg;

	check_zeros(z, at, at + len);
	if (host > z->file_size || len > z->file_size - host)
		abort();
	return 0;
}

/* A located compressed cluster: a non-empty range inside the file. */
static int check_compressed(void *arg, uint64_t host, uint64_t len)
{
	const struct zeros_check *z = arg;

	if (len == 0 || host > z->file_size || len > z->file_size - host)
		abort();
	return 0;
}

#define READ_LIMIT (8u * 1024 * 1024)
#define CHUNK (4u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size };
	struct qcow2 q;
	char err[256];
	uint64_t alloc, comp;
	uint8_t *buf;

	if (qcow2_open(&q, mem_pread, &m, size, err, sizeof(err)) < 0) {
		qcow2_close(&q);
		return 0;
	}
	buf = malloc(CHUNK);
	for (uint64_t off = 0; buf && off < q.size && off < READ_LIMIT; off += CHUNK) {
		uint32_t len = q.size - off < CHUNK ? (uint32_t)(q.size - off) : CHUNK;
		struct zeros_check z = { .len = len };
		/* Every other chunk through the callback, as the image source reads. */
		struct qcow2_out out = { .buf = buf, .zeros = off / CHUNK % 2 ? NULL : check_zeros,
					 .arg = &z };

		struct zeros_check zp = { .len = len, .file_size = size };
		struct qcow2_out placed = { .zeros = check_zeros, .place = check_place, .arg = &zp };
		struct zeros_check zl = { .len = len, .file_size = size };
		struct qcow2_out located = { .zeros = check_zeros, .place = check_place,
					     .place_compressed = check_compressed, .arg = &zl };
		int rc = qcow2_read(&q, &out, off, len, err, sizeof(err));
		int prc = qcow2_read(&q, &placed, off, len, err, sizeof(err));
		int lrc = qcow2_read(&q, &located, off, len, err, sizeof(err));

		if (rc == 0 && ((prc < 0 && prc != -EXDEV) || lrc < 0))
			abort();
		if (rc < 0)
			break;
	}
	free(buf);
	if (q.size <= READ_LIMIT)
		(void)qcow2_check(&q, &alloc, &comp, err, sizeof(err));
	qcow2_close(&q);
	return 0;
}
