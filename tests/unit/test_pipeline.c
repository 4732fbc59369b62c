/*
 * Unit tests of the chunk pipeline: the content hash equals the definition
 * (SHA-256 over the SHA-256 of each 64 KiB block), computed here the slow and
 * obvious way; the identity hash equals a plain SHA-256 of the payload; zero
 * blocks are flagged, and blocks a source only flags are hashed as zeros
 * whatever their stale bytes; progress comes once per chunk, in order; the
 * first failing chunk's message is reported, a read's or a write's; blocks
 * carried from one chunk to the next hash right, also with every slot full;
 * a run hashes with its context's choice: measured, or IMGDEV_SHA256_IMPL's.
 * A payload of unknown size ends where the source says (chunk->end), also
 * exactly at a chunk's end and on a chunk claimed past it, and hashes as
 * one of that size.
 * Chunks mapped from a sparse
 * file (chunk_map.c) hash like copied ones, are unmapped before they are
 * released, and a range past the file's end is an error, not SIGBUS.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "imgdev.h"
#include "internal.h"
#include "pipeline.h"
#include "sha256mb.h"

struct memsrc {
	const uint8_t *data;
	uint64_t size;
	uint64_t fail_at;		/* chunk index whose read fails, or UINT64_MAX */
	uint64_t write_fail_at;		/* chunk index whose write fails (not 0) */
	uint64_t chunks_written;
	unsigned int write_delay_us;	/* a slow device */
	uint64_t zero_blocks;		/* counted by write_fn */
	uint64_t bytes_seen;
};

#define PAGE 4096

/*
 * Like a hole-aware source: a zero chunk is all_zero, and runs of zero
 * pages go to chunk_zero_range. The buffer first gets stale bytes, so a
 * zero block whose bytes were skipped would show in the hashes.
 */
static int mem_read(void *arg, struct chunk *c)
{
	struct memsrc *m = arg;
	const uint8_t *src = m->data + c->off;

	if (c->index == m->fail_at)
		return chunk_error(c, EIO, "chunk %llu failed", (unsigned long long)c->index);
	if (buf_is_zero(src, c->len)) {
		c->all_zero = true;
		return 0;
	}
	memset(c->buf, 0xa5, c->len);
	for (uint32_t off = 0; off < c->len;) {
		uint32_t end = off, n;
		bool zero = buf_is_zero(src + off, c->len - off < PAGE ? c->len - off : PAGE);

		do {
			end += PAGE;
			n = c->len - end < PAGE ? c->len - end : PAGE;
		} while (end < c->len && buf_is_zero(src + end, n) == zero);
		if (end > c->len)
			end = c->len;
		if (zero)
			chunk_zero_range(c, off, end);
		else
			memcpy(c->buf + off, src + off, end - off);
		off = end;
	}
	return 0;
}

static int mem_write(void *arg, struct chunk *c)
{
	struct memsrc *m = arg;

	if (m->write_fail_at && c->index == m->write_fail_at)
		return chunk_error(c, ENOSPC, "write of chunk %llu failed",
				   (unsigned long long)c->index);
	if (m->write_fail_at && c->index < m->write_fail_at)
		__atomic_fetch_add(&m->chunks_written, 1, __ATOMIC_RELAXED);
	if (m->write_delay_us)
		usleep(m->write_delay_us);
	for (uint32_t b = 0; b * CONTENT_BLOCK_SIZE < c->len; b++)
		if (c->zero[b])
			__atomic_fetch_add(&m->zero_blocks, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&m->bytes_seen, c->len, __ATOMIC_RELAXED);
	return 0;
}

/* Progress, as the folding thread reports it: every chunk, in order. */
struct progress_seen {
	uint64_t calls, last, total;
	bool in_order;
};

static void record_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress_seen *p = arg;
	uint64_t want = p->last + CHUNK_SIZE < total ? p->last + CHUNK_SIZE : total;

	p->in_order = p->in_order && done == want;
	p->calls++;
	p->last = done;
	p->total = total;
}

/* The definition, block by block. */
static void reference_hash(const uint8_t *data, uint64_t size, uint8_t out[32])
{
	EVP_MD_CTX *outer = EVP_MD_CTX_new();
	unsigned int len;

	EVP_DigestInit_ex(outer, EVP_sha256(), NULL);
	for (uint64_t off = 0; off < size; off += CONTENT_BLOCK_SIZE) {
		uint64_t n = size - off < CONTENT_BLOCK_SIZE ? size - off : CONTENT_BLOCK_SIZE;
		uint8_t d[32];

		EVP_Digest(data + off, n, d, &len, EVP_sha256(), NULL);
		EVP_DigestUpdate(outer, d, 32);
	}
	EVP_DigestFinal_ex(outer, out, &len);
	EVP_MD_CTX_free(outer);
}

/* Random data with zero blocks and part blocks, a whole zero chunk, and an odd tail. */
static uint8_t *make_payload(uint64_t size)
{
	uint8_t *p = malloc(size);
	uint32_t x = 12345;

	assert_non_null(p);
	for (uint64_t i = 0; i < size; i++) {
		x = x * 1103515245 + 12345;
		p[i] = (uint8_t)(x >> 16);
	}
	memset(p + 3 * CONTENT_BLOCK_SIZE, 0, CONTENT_BLOCK_SIZE);
	/* Zeros over whole and part blocks, starting and ending mid-block. */
	if (size > 8 * CONTENT_BLOCK_SIZE)
		memset(p + 5 * CONTENT_BLOCK_SIZE + PAGE, 0, 2 * CONTENT_BLOCK_SIZE);
	if (size > 2 * (uint64_t)CHUNK_SIZE)
		memset(p + CHUNK_SIZE, 0, CHUNK_SIZE);
	return p;
}

/* Run job over data (job->size bytes): content and identity hashes as defined. */
static void run_and_check(struct pipeline_job *job, const uint8_t *data)
{
	uint8_t got[32], want[32], id_got[32], id_want[32];
	struct imgdev_ctx *ctx;
	unsigned int len;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	job->identity = sha256_new();
	assert_non_null(job->identity);
	assert_int_equal(pipeline_run(ctx, job, got, NULL), 0);
	sha256_final(job->identity, id_got);
	reference_hash(data, job->size, want);
	assert_memory_equal(got, want, 32);
	EVP_Digest(data, job->size, id_want, &len, EVP_sha256(), NULL);
	assert_memory_equal(id_got, id_want, 32);
	sha256_free(job->identity);
	job->identity = NULL;
	imgdev_ctx_free(ctx);
}

/* One run; the identity fed by the folding thread, or (fed) by a thread of its own. */
static void run_case_fed(uint64_t size, unsigned int workers, bool fed)
{
	uint8_t *data = make_payload(size);
	struct memsrc m = { .data = data, .size = size, .fail_at = UINT64_MAX };
	struct progress_seen seen = { .in_order = true };
	struct pipeline_job job = { .size = size,
				    .workers = workers,
				    .read_fn = mem_read,
				    .write_fn = mem_write,
				    .arg = &m,
				    .identity_thread = fed,
				    .progress = record_progress,
				    .progress_arg = &seen };

	run_and_check(&job, data);
	assert_true(m.bytes_seen == size);
	assert_true(seen.in_order);
	assert_true(seen.calls == (size + CHUNK_SIZE - 1) / CHUNK_SIZE);
	assert_true(seen.last == size && seen.total == size);
	assert_true(m.zero_blocks >= 1 + (size > 2 * (uint64_t)CHUNK_SIZE ? CHUNK_BLOCKS : 0));
	free(data);
}

static void run_case(uint64_t size, unsigned int workers)
{
	run_case_fed(size, workers, false);
	run_case_fed(size, workers, true);
}

static void test_hash_matches_definition(void **state)
{
	(void)state;
	run_case(3 * (uint64_t)CHUNK_SIZE + 12345, 1);
	run_case(3 * (uint64_t)CHUNK_SIZE + 12345, 3);
	run_case(9 * (uint64_t)CHUNK_SIZE, 2);
	run_case(4 * CONTENT_BLOCK_SIZE + 1, 2);
	run_case(4 * CONTENT_BLOCK_SIZE, 8);
}

/* Like mem_read, for a stream of unknown size: the chunk that reaches m->size ends it. */
static int stream_read(void *arg, struct chunk *c)
{
	struct memsrc *m = arg;

	if (c->off >= m->size) {
		c->len = 0;
		c->end = true;
		return 0;
	}
	/* A full chunk that ends at the end does not know it: the next, empty, says so. */
	if (c->off + c->len >= m->size) {
		c->len = (uint32_t)(m->size - c->off);
		c->end = c->len < CHUNK_SIZE;
	}
	return mem_read(arg, c);
}

static void run_unknown_size(uint64_t size, uint64_t limit, unsigned int workers)
{
	uint8_t *data = make_payload(size), got[32], want[32];
	struct memsrc m = { .data = data, .size = size, .fail_at = UINT64_MAX };
	struct progress_seen seen = { .in_order = true };
	struct pipeline_job job = { .size = limit,
				    .size_unknown = true,
				    .workers = workers,
				    .read_fn = stream_read,
				    .write_fn = mem_write,
				    .arg = &m,
				    .identity = sha256_new(),
				    .identity_thread = true,
				    .progress = record_progress,
				    .progress_arg = &seen };
	struct imgdev_ctx *ctx;
	uint64_t seen_size = 0;
	unsigned int len;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(pipeline_run(ctx, &job, got, &seen_size), 0);
	reference_hash(data, size, want);
	assert_memory_equal(got, want, 32);
	/* The identity's own thread stopped where the payload ended. */
	sha256_final(job.identity, got);
	EVP_Digest(data, size, want, &len, EVP_sha256(), NULL);
	assert_memory_equal(got, want, 32);
	sha256_free(job.identity);
	assert_true(seen_size == size);
	assert_true(m.bytes_seen == size);
	assert_true(seen.total == 0 && seen.last == size);
	imgdev_ctx_free(ctx);
	free(data);
}

static void test_unknown_size_ends_where_the_source_says(void **state)
{
	(void)state;
	run_unknown_size(3 * (uint64_t)CHUNK_SIZE + 12345, 64ull * CHUNK_SIZE, 2);
	/* Exactly at a chunk's end: the next chunk, empty, says so. */
	run_unknown_size(3 * (uint64_t)CHUNK_SIZE, 64ull * CHUNK_SIZE, 3);
	run_unknown_size(4 * CONTENT_BLOCK_SIZE + 1, 64ull * CHUNK_SIZE, 8);
	/* Ending at the limit itself. */
	run_unknown_size(2 * (uint64_t)CHUNK_SIZE + 100, 2 * (uint64_t)CHUNK_SIZE + 100, 2);
}

/*
 * run_and_check with each implementation this CPU runs that hashes several
 * blocks at once (AVX2, AVX-512, SHA-NI 2- and 4-way), so blocks are
 * carried from chunk to chunk; returns how many ran.
 */
static unsigned int run_each_vector_impl(struct pipeline_job *job, const uint8_t *data)
{
	unsigned int runs = 0;

	for (int i = 0; i < SHA256MB_NIMPL; i++) {
		if (sha256mb_lanes(i) < 2 || !sha256mb_supported(i))
			continue;
		job->use_impl = true;
		job->impl = i;
		run_and_check(job, data);
		runs++;
	}
	job->use_impl = false;
	return runs;
}

/*
 * A run without a job's impl hashes with its context's (ctx_hash_impl):
 * the fastest measured when IMGDEV_SHA256_IMPL is unset, else the one it
 * names; the hash is the definition's either way.
 */
static void test_ctx_chooses_the_hashing(void **state)
{
	uint64_t size = 3 * (uint64_t)CHUNK_SIZE + 7 * CONTENT_BLOCK_SIZE + 99;
	uint8_t *data = make_payload(size), got[32], want[32];
	struct memsrc m = { .data = data, .size = size, .fail_at = UINT64_MAX };
	struct pipeline_job job = { .size = size, .workers = 2, .read_fn = mem_read, .arg = &m };

	(void)state;
	reference_hash(data, size, want);
	for (int i = -1; i < SHA256MB_NIMPL; i++) {
		struct imgdev_ctx *ctx;

		if (i >= 0 && !sha256mb_supported((enum sha256mb_impl)i))
			continue;
		if (i < 0)
			unsetenv(IMGDEV_SHA256_IMPL_ENV);
		else
			setenv(IMGDEV_SHA256_IMPL_ENV, sha256mb_name((enum sha256mb_impl)i), 1);
		assert_int_equal(imgdev_ctx_new(&ctx), 0);
		assert_int_equal(pipeline_run(ctx, &job, got, NULL), 0);
		assert_memory_equal(got, want, 32);
		assert_true(ctx->hash_chosen);
		if (i < 0) {
			assert_int_equal(ctx->hash_impl, sha256mb_fastest(ctx->hash_mbps));
			assert_true(ctx->hash_mbps[ctx->hash_impl] > 0);
		} else {
			assert_int_equal(ctx->hash_impl, i);
		}
		imgdev_ctx_free(ctx);
	}
	unsetenv(IMGDEV_SHA256_IMPL_ENV);
	free(data);
}

/*
 * Slow writes keep every slot full, so a worker that carries a chunk's last
 * blocks (struct carry in pipeline.c) keeps finding no slot free and hashes
 * them alone instead of waiting, as the folder may be waiting for that
 * chunk. The hashes must match the definition on that path and on the path
 * where they join the next chunk's.
 */
static void test_full_window_with_carried_blocks(void **state)
{
	uint64_t size = 40 * (uint64_t)CHUNK_SIZE + 3 * CONTENT_BLOCK_SIZE;
	uint8_t *data = make_payload(size);
	struct memsrc m = { .data = data, .size = size, .fail_at = UINT64_MAX,
			    .write_delay_us = 3000 };
	struct pipeline_job job = { .size = size, .workers = 1, .read_fn = mem_read,
				    .write_fn = mem_write, .arg = &m };
	unsigned int runs;

	(void)state;
	/* Chunks of 63 data blocks: every one leaves blocks short of a group. */
	for (uint64_t i = 0; i < 40; i++)
		memset(data + i * CHUNK_SIZE + 7 * CONTENT_BLOCK_SIZE, 0, CONTENT_BLOCK_SIZE);
	runs = run_each_vector_impl(&job, data);
	job.workers = 2;
	runs += run_each_vector_impl(&job, data);
	assert_true(m.bytes_seen == runs * size);
	free(data);
}

/*
 * Chunks of 3 and of 5 data blocks in turn, and chunks of none: blocks join
 * a carry that is not empty without making a group, several chunks' blocks
 * wait together, and a chunk with nothing to hash passes a carry by; with
 * writes and without (as verify).
 */
static void test_small_chunks_join_the_carry(void **state)
{
	uint64_t size = 14 * (uint64_t)CHUNK_SIZE + 5;
	uint8_t *data = make_payload(size);
	struct memsrc m = { .data = data, .size = size, .fail_at = UINT64_MAX };
	struct pipeline_job job = { .size = size, .workers = 1, .read_fn = mem_read,
				    .write_fn = mem_write, .arg = &m };

	(void)state;
	for (uint64_t i = 0; i < 14; i++) {
		uint64_t keep = i % 7 == 6 ? 0 : i % 2 ? 5 : 3;

		memset(data + i * CHUNK_SIZE + keep * CONTENT_BLOCK_SIZE, 0,
		       CHUNK_SIZE - keep * CONTENT_BLOCK_SIZE);
	}
	run_each_vector_impl(&job, data);
	job.write_fn = NULL;
	run_each_vector_impl(&job, data);
	job.workers = 3;
	run_each_vector_impl(&job, data);
	free(data);
}

/*
 * Run over m's payload with workers, the identity fed by a thread of its
 * own (which must stop too); the run fails with want_rc and want_msg.
 */
static void run_expecting_error(struct memsrc *m, unsigned int workers, int want_rc,
				const char *want_msg)
{
	struct imgdev_ctx *ctx;
	struct pipeline_job job = { .size = m->size,
				    .workers = workers,
				    .read_fn = mem_read,
				    .write_fn = mem_write,
				    .arg = m,
				    .identity = sha256_new(),
				    .identity_thread = true };
	uint8_t got[32];

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(pipeline_run(ctx, &job, got, NULL), want_rc);
	assert_string_equal(imgdev_ctx_last_error(ctx), want_msg);
	sha256_free(job.identity);
	imgdev_ctx_free(ctx);
}

static void test_first_error_is_reported(void **state)
{
	uint64_t size = 20 * (uint64_t)CHUNK_SIZE;
	uint8_t *data = make_payload(size);
	struct memsrc m = { .data = data, .size = size, .fail_at = 5 };

	(void)state;
	run_expecting_error(&m, 2, -EIO, "chunk 5 failed");
	/* It stopped: not every chunk was written. */
	assert_true(m.bytes_seen < size);
	free(data);
}

/*
 * A write that fails (in a writer thread) is reported before a later
 * chunk's read error, and every chunk before it was written first.
 */
static void test_write_error_is_reported_in_order(void **state)
{
	uint64_t size = 20 * (uint64_t)CHUNK_SIZE;
	uint8_t *data = make_payload(size);
	struct memsrc m = { .data = data, .size = size, .fail_at = 9, .write_fail_at = 3 };

	(void)state;
	run_expecting_error(&m, 3, -ENOSPC, "write of chunk 3 failed");
	assert_true(m.chunks_written == 3);
	free(data);
}

/* Whole blocks in the range are flagged and left alone; the ends are zeroed. */
static void test_chunk_zero_range(void **state)
{
	struct chunk *c = calloc(1, sizeof(*c));
	const uint32_t B = CONTENT_BLOCK_SIZE;

	(void)state;
	assert_non_null(c);
	c->buf = malloc(CHUNK_SIZE);
	assert_non_null(c->buf);
	chunk_reset(c, 0, 3 * B + 100);	/* a short last block */
	memset(c->buf, 0xa5, CHUNK_SIZE);
	chunk_zero_range(c, 100, 2 * B + 50);
	assert_false(c->zero[0]);
	assert_true(c->zero[1]);
	assert_false(c->zero[2]);
	assert_true(buf_is_zero(c->buf + 100, B - 100));
	assert_int_equal(c->buf[99], 0xa5);
	assert_int_equal(c->buf[B], 0xa5);	/* flagged: not written */
	assert_true(buf_is_zero(c->buf + 2 * B, 50));
	assert_int_equal(c->buf[2 * B + 50], 0xa5);
	chunk_zero_range(c, 3 * B, 3 * B + 100);	/* the whole short block */
	assert_true(c->zero[3]);
	assert_int_equal(c->buf[3 * B], 0xa5);
	chunk_zero_range(c, 2 * B + 60, 2 * B + 60);	/* empty */
	chunk_zero_range(c, 2 * B + 70, 2 * B + 60);	/* reversed: nothing */
	assert_int_equal(c->buf[2 * B + 60], 0xa5);
	chunk_zero_range(c, 3 * B + 50, 9 * B);	/* past the end: clamped */
	assert_true(buf_is_zero(c->buf + 3 * B + 50, 50));
	assert_false(c->zero[4]);
	chunk_reset(c, 0, CHUNK_SIZE);
	assert_false(c->zero[1] || c->zero[3]);
	free(c->buf);
	free(c);
}

static void test_buf_is_zero(void **state)
{
	uint8_t b[100] = { 0 };

	(void)state;
	assert_true(buf_is_zero(b, sizeof(b)));
	assert_true(buf_is_zero(b, 0));
	assert_true(buf_is_zero(b, 5));
	b[99] = 1;
	assert_false(buf_is_zero(b, sizeof(b)));
	assert_true(buf_is_zero(b, 99));
	b[3] = 1;
	assert_false(buf_is_zero(b, 5));
	assert_false(buf_is_zero(b, 17));
}

/* A sparse file holding a payload: only its pages with a non-zero byte are written. */
struct filesrc {
	struct memsrc mem;	/* the same payload in memory, for short chunks */
	int fd;
	uint64_t mapped, released, released_mapped;
};

static int sparse_file(const uint8_t *data, uint64_t size)
{
	FILE *f = tmpfile();
	int fd;

	assert_non_null(f);
	fd = dup(fileno(f));
	fclose(f);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	for (uint64_t off = 0; off < size; off += PAGE) {
		size_t n = size - off < PAGE ? size - off : PAGE;

		if (!buf_is_zero(data + off, n))
			assert_int_equal(pwrite(fd, data + off, n, (off_t)off), (ssize_t)n);
	}
	return fd;
}

/* Whole chunks: map the file's non-zero pages and flag the rest; else copy. */
static int file_map_read(void *arg, struct chunk *c)
{
	struct filesrc *f = arg;
	const uint8_t *src = f->mem.data + c->off;

	if (c->len != CHUNK_SIZE)
		return mem_read(&f->mem, c);
	assert_int_equal(chunk_map_begin(c), 0);
	for (uint32_t off = 0; off < c->len; off += PAGE) {
		if (buf_is_zero(src + off, PAGE))
			chunk_zero_range(c, off, off + PAGE);	/* must not write */
		else
			assert_int_equal(chunk_map_file(c, off, PAGE, f->fd, c->off + off), 0);
	}
	__atomic_fetch_add(&f->mapped, 1, __ATOMIC_RELAXED);
	return 0;
}

static int file_write(void *arg, struct chunk *c)
{
	struct filesrc *f = arg;

	return mem_write(&f->mem, c);
}

static void file_release(void *arg, const struct chunk *c)
{
	struct filesrc *f = arg;

	f->released++;
	if (c->data != c->buf)
		f->released_mapped++;
}

static void test_mapped_chunks_hash_like_copied(void **state)
{
	uint64_t size = 5 * (uint64_t)CHUNK_SIZE + 12345;
	uint8_t *data = make_payload(size);
	struct filesrc f = { .mem = { .data = data, .size = size, .fail_at = UINT64_MAX } };
	struct pipeline_job job = { .size = size, .workers = 3, .read_fn = file_map_read,
				    .write_fn = file_write, .release_fn = file_release, .arg = &f };

	(void)state;
	/* Zeros that start and end inside blocks, and a page of them inside data. */
	memset(data + 2 * (uint64_t)CHUNK_SIZE + 3 * PAGE, 0, CONTENT_BLOCK_SIZE + 5 * PAGE);
	memset(data + 3 * (uint64_t)CHUNK_SIZE + 7 * PAGE, 0, PAGE);
	f.fd = sparse_file(data, size);
	run_and_check(&job, data);
	assert_true(f.mapped == 5);
	assert_true(f.released == 6 && f.released_mapped == 0);
	assert_true(f.mem.bytes_seen == size);
	close(f.fd);
	free(data);
}

/* The contract's refusals; past the end of the file is an error, not SIGBUS. */
static void test_chunk_map_refusals(void **state)
{
	struct chunk *c = calloc(1, sizeof(*c));
	uint8_t page[PAGE];
	int fd;

	(void)state;
	memset(page, 7, sizeof(page));
	fd = sparse_file(page, PAGE);
	assert_non_null(c);
	c->buf = malloc(CHUNK_SIZE);
	assert_non_null(c->buf);
	chunk_reset(c, 0, CHUNK_SIZE - 512);
	assert_int_equal(chunk_map_begin(c), -EINVAL);	/* not a whole chunk */
	assert_true(c->data == c->buf);
	assert_int_equal(chunk_map_file(c, 0, PAGE, fd, 0), -EINVAL);	/* not mapped */
	chunk_reset(c, CHUNK_SIZE, CHUNK_SIZE);
	assert_int_equal(chunk_map_begin(c), 0);
	assert_true(c->data != c->buf);
	assert_true(buf_is_zero(c->data, CHUNK_SIZE));
	assert_int_equal(chunk_map_file(c, 512, PAGE, fd, 0), -EINVAL);
	assert_int_equal(chunk_map_file(c, 0, PAGE, fd, 512), -EINVAL);
	assert_int_equal(chunk_map_file(c, CHUNK_SIZE - PAGE, 2 * PAGE, fd, 0), -EINVAL);
	assert_int_equal(chunk_map_file(c, 0, PAGE, fd, 0), 0);
	assert_int_equal(c->data[0], 7);
	assert_int_equal(c->data[PAGE], 0);
	assert_true(chunk_map_file(c, PAGE, PAGE, fd, PAGE) < 0);	/* past the end */
	chunk_zero_range(c, CONTENT_BLOCK_SIZE, 2 * CONTENT_BLOCK_SIZE);
	assert_true(c->zero[1]);
	chunk_reset(c, 0, CHUNK_SIZE);	/* unmaps */
	assert_true(c->data == c->buf);
	assert_false(c->zero[1]);
	close(fd);
	free(c->buf);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_matches_definition),
		cmocka_unit_test(test_ctx_chooses_the_hashing),
		cmocka_unit_test(test_unknown_size_ends_where_the_source_says),
		cmocka_unit_test(test_full_window_with_carried_blocks),
		cmocka_unit_test(test_small_chunks_join_the_carry),
		cmocka_unit_test(test_first_error_is_reported),
		cmocka_unit_test(test_write_error_is_reported_in_order),
		cmocka_unit_test(test_chunk_zero_range),
		cmocka_unit_test(test_buf_is_zero),
		cmocka_unit_test(test_mapped_chunks_hash_like_copied),
		cmocka_unit_test(test_chunk_map_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
