/*
 * Unit tests of the hashing byte source (bytesrc_hash.c): whichever way a
 * format reads the file (in order, at offsets in any order, from several
 * threads, skipping ranges), finish gives the SHA-256 of the whole file,
 * reading again only what was never read or could not be held. A fake
 * source in memory counts what it was asked to read and fails on demand.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bytesrc.h"
#include "imgdev.h"
#include "internal.h"
#include "sha256.h"

#define MiB ((size_t)1 << 20)
#define HOLD_MAX (64 * MiB) /* bytesrc_hash.c's */
#define FILL_SIZE (4 * MiB) /* bytesrc_hash.c's */
#define NEVER UINT64_MAX

/* The fake source: bytes the test owns, what was read from them, where reads fail. */
struct fake {
	const uint8_t *bytes;
	size_t size, pos;
	atomic_ullong pread_bytes, read_bytes;
	atomic_ullong fail_from; /* a read touching this offset or beyond fails */
};

static int fake_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
{
	struct fake *f = bs->priv;

	if (off > f->size || len > f->size - off)
		return -EIO;
	if (off + len > atomic_load(&f->fail_from)) {
		snprintf(bs->msg, sizeof(bs->msg), "injected failure at %llu",
			 (unsigned long long)atomic_load(&f->fail_from));
		return -EIO;
	}
	memcpy(buf, f->bytes + off, len);
	atomic_fetch_add(&f->pread_bytes, len);
	return 0;
}

static ssize_t fake_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct fake *f = bs->priv;
	size_t n = f->size - f->pos < len ? f->size - f->pos : len;

	if (n && f->pos + n > atomic_load(&f->fail_from)) {
		snprintf(bs->msg, sizeof(bs->msg), "injected failure at %llu",
			 (unsigned long long)atomic_load(&f->fail_from));
		return -EIO;
	}
	memcpy(buf, f->bytes + f->pos, n);
	f->pos += n;
	atomic_fetch_add(&f->read_bytes, n);
	return (ssize_t)n;
}

static int fake_rewind(struct bytesrc *bs)
{
	struct fake *f = bs->priv;

	f->pos = 0;
	return 0;
}

static void fake_close(struct bytesrc *bs)
{
	free(bs->priv);
}

static const struct bytesrc_ops fake_ops = {
	.pread = fake_pread,
	.read = fake_read,
	.rewind = fake_rewind,
	.close = fake_close,
};
static const struct bytesrc_ops fake_stream_ops = {
	.read = fake_read,
	.rewind = fake_rewind,
	.close = fake_close,
};

/* What a test works with: the data, the wrapper over a fake over it, and the log. */
struct rig {
	uint8_t *data;
	size_t size;
	struct imgdev_ctx *ctx;
	struct bytesrc *bs; /* the wrapper */
	struct fake *fake;  /* the inner's, alive until bs is closed */
	char log[4096];
};

static void log_fn(void *userdata, int priority, const char *msg)
{
	struct rig *r = userdata;
	size_t used = strlen(r->log);

	if (priority <= LOGP_INFO)
		snprintf(r->log + used, sizeof(r->log) - used, "%s\n", msg);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint8_t *make_data(size_t size, uint64_t seed)
{
	uint8_t *d = malloc(size ? size : 1);

	assert_non_null(d);
	for (size_t i = 0; i < size; i += 8) {
		uint64_t v = rng_next(&seed);

		memcpy(d + i, &v, size - i < 8 ? size - i : 8);
	}
	return d;
}

static void rig_open(struct rig *r, size_t size, bool with_pread)
{
	struct bytesrc *inner = calloc(1, sizeof(*inner));
	struct fake *f = calloc(1, sizeof(*f));

	memset(r, 0, sizeof(*r));
	assert_non_null(inner);
	assert_non_null(f);
	r->size = size;
	r->data = make_data(size, 0x9e3779b97f4a7c15ull ^ size);
	f->bytes = r->data;
	f->size = size;
	atomic_init(&f->fail_from, NEVER);
	inner->ops = with_pread ? &fake_ops : &fake_stream_ops;
	inner->name = strdup("fake:image");
	inner->size = size;
	inner->size_known = true;
	inner->fd = -1;
	inner->priv = f;
	assert_int_equal(imgdev_ctx_new(&r->ctx), 0);
	imgdev_ctx_set_log(r->ctx, log_fn, r, LOGP_DEBUG);
	assert_int_equal(bytesrc_hash_wrap(r->ctx, inner, &r->bs), 0);
	r->fake = f;
}

static void rig_close(struct rig *r)
{
	bytesrc_close(r->bs);
	imgdev_ctx_free(r->ctx);
	free(r->data);
}

/* Bytes the fake gave so far, by pread and read. */
static uint64_t fake_total(const struct rig *r)
{
	return atomic_load(&r->fake->pread_bytes) + atomic_load(&r->fake->read_bytes);
}

/* Finish, expect the digest of the data, and that finish read at_end bytes. */
static void expect_finish(struct rig *r, uint64_t at_end)
{
	uint8_t want[SHA256_SIZE], got[SHA256_SIZE];
	uint64_t before = fake_total(r), size = 0;
	char line[128];

	assert_int_equal(sha256_digest(r->data, r->size, want), 0);
	assert_int_equal(bytesrc_hash_finish(r->ctx, r->bs, got, &size), 0);
	assert_int_equal(size, r->size);
	assert_memory_equal(got, want, SHA256_SIZE);
	assert_int_equal(fake_total(r) - before, at_end);
	snprintf(line, sizeof(line), "read %llu bytes more at the end", (unsigned long long)at_end);
	if (at_end)
		assert_non_null(strstr(r->log, line));
	else
		assert_null(strstr(r->log, "at the end"));
}

static void pread_ok(struct rig *r, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	assert_int_equal(bytesrc_pread(r->bs, buf, len, off), 0);
	assert_memory_equal(buf, r->data + off, len);
	free(buf);
}

/* Cut [0, size) into pieces of random lengths up to max; how many. */
static size_t cut(size_t size, size_t max, uint64_t seed, uint64_t (**offs)[2])
{
	size_t n = 0, cap = size / (max / 2 ? max / 2 : 1) + 16;
	uint64_t(*p)[2] = malloc(cap * sizeof(*p));

	assert_non_null(p);
	for (uint64_t off = 0; off < size; n++) {
		uint64_t len = 1 + rng_next(&seed) % max;

		if (n == cap) {
			cap *= 2;
			p = realloc(p, cap * sizeof(*p));
			assert_non_null(p);
		}
		if (len > size - off)
			len = size - off;
		p[n][0] = off;
		p[n][1] = len;
		off += len;
	}
	*offs = p;
	return n;
}

static void shuffle(uint64_t (*p)[2], size_t n, uint64_t seed)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(rng_next(&seed) % i);
		uint64_t t0 = p[i - 1][0], t1 = p[i - 1][1];

		p[i - 1][0] = p[j][0];
		p[i - 1][1] = p[j][1];
		p[j][0] = t0;
		p[j][1] = t1;
	}
}

static void test_wraps_a_file(void **state)
{
	char path[] = "/var/tmp/imgdev-hash.XXXXXX";
	int fd = mkstemp(path);
	uint8_t want[SHA256_SIZE], got[SHA256_SIZE], buf[7];
	struct imgdev_ctx *ctx;
	struct bytesrc *inner, *bs;
	uint64_t size;
	ssize_t n;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abcdefghijklmnopqrstuvwxyz", 26), 26);
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(bytesrc_from_fd(ctx, dup(fd), path, &inner), 0);
	assert_int_equal(bytesrc_hash_wrap(ctx, inner, &bs), 0);
	assert_string_equal(bs->name, path);
	assert_true(bs->size_known);
	assert_int_equal(bs->size, 26);
	assert_int_equal(bs->fd, -1);
	assert_false(bs->in_memory);
	assert_non_null(bs->ops->pread);
	assert_int_equal(bytesrc_peek(bs, buf, 3), 3);
	assert_memory_equal(buf, "abc", 3);
	while ((n = bytesrc_read(bs, buf, sizeof(buf))) > 0)
		;
	assert_int_equal(n, 0);
	assert_int_equal(bytesrc_check_unchanged(ctx, bs), 0);
	assert_int_equal(bytesrc_hash_finish(ctx, bs, got, &size), 0);
	assert_int_equal(sha256_digest("abcdefghijklmnopqrstuvwxyz", 26, want), 0);
	assert_memory_equal(got, want, SHA256_SIZE);
	assert_int_equal(size, 26);
	/* Asking again gives the same; the change check still goes to the file. */
	memset(got, 0, sizeof(got));
	assert_int_equal(bytesrc_hash_finish(ctx, bs, got, &size), 0);
	assert_memory_equal(got, want, SHA256_SIZE);
	assert_int_equal(write(fd, "!", 1), 1);
	assert_int_equal(bytesrc_check_unchanged(ctx, bs), -ESTALE);
	bytesrc_close(bs);
	close(fd);
	unlink(path);
	imgdev_ctx_free(ctx);
}

static void test_not_a_hashing_source(void **state)
{
	struct rig r;
	struct bytesrc *plain = calloc(1, sizeof(*plain));
	uint8_t got[SHA256_SIZE];
	uint64_t size;

	(void)state;
	rig_open(&r, 100, true);
	assert_non_null(plain);
	plain->ops = &fake_stream_ops;
	plain->name = strdup("plain");
	plain->priv = calloc(1, sizeof(struct fake));
	assert_int_equal(bytesrc_hash_finish(r.ctx, plain, got, &size), -EINVAL);
	bytesrc_close(plain);
	rig_close(&r);
}

static void test_empty_file(void **state)
{
	struct rig r;

	(void)state;
	rig_open(&r, 0, true);
	expect_finish(&r, 0);
	rig_close(&r);
	rig_open(&r, 0, false);
	expect_finish(&r, 0);
	rig_close(&r);
}

static void test_read_in_odd_pieces(void **state)
{
	static const size_t lens[] = { 1, 4097, 13, 65537, 100000, 3 };
	struct rig r;
	uint8_t *buf = malloc(100000);
	size_t got = 0;
	ssize_t n;

	(void)state;
	assert_non_null(buf);
	rig_open(&r, 3 * MiB + 333, false);
	assert_null(r.bs->ops->pread);
	assert_int_equal(bytesrc_pread(r.bs, buf, 1, 0), -ESPIPE);
	for (size_t i = 0; (n = bytesrc_read(r.bs, buf, lens[i % 6])) > 0; i++) {
		assert_memory_equal(buf, r.data + got, (size_t)n);
		got += (size_t)n;
	}
	assert_int_equal(n, 0);
	assert_int_equal(got, r.size);
	expect_finish(&r, 0);
	free(buf);
	rig_close(&r);
}

/* A compressed stream ends before the file: finish reads the rest, by read. */
static void test_read_part_then_finish_drains(void **state)
{
	uint8_t buf[1000];
	struct rig r;

	(void)state;
	rig_open(&r, MiB + 7, true);
	assert_int_equal(bytesrc_read(r.bs, buf, sizeof(buf)), sizeof(buf));
	expect_finish(&r, r.size - sizeof(buf));
	assert_int_equal(atomic_load(&r.fake->pread_bytes), 0); /* the stream went on */
	rig_close(&r);
}

static void test_peek_does_not_hash(void **state)
{
	uint8_t buf[512];
	struct rig r;

	(void)state;
	rig_open(&r, 8192, true);
	assert_int_equal(bytesrc_peek(r.bs, buf, sizeof(buf)), sizeof(buf));
	assert_memory_equal(buf, r.data, sizeof(buf));
	expect_finish(&r, r.size);
	rig_close(&r);
}

static void test_pread_in_order(void **state)
{
	uint64_t(*p)[2];
	struct rig r;
	size_t n;

	(void)state;
	rig_open(&r, 5 * MiB + 17, true);
	n = cut(r.size, 200000, 1, &p);
	for (size_t i = 0; i < n; i++)
		pread_ok(&r, p[i][0], (size_t)p[i][1]);
	expect_finish(&r, 0);
	assert_int_equal(atomic_load(&r.fake->pread_bytes), r.size);
	free(p);
	rig_close(&r);
}

static void test_pread_reverse_and_shuffled(void **state)
{
	uint64_t(*p)[2];
	struct rig r;
	size_t n;

	(void)state;
	rig_open(&r, 6 * MiB + 1, true);
	n = cut(r.size, 300000, 2, &p);
	for (size_t i = n; i-- > 0;)
		pread_ok(&r, p[i][0], (size_t)p[i][1]);
	expect_finish(&r, 0);
	rig_close(&r);
	free(p);

	rig_open(&r, 6 * MiB + 1, true);
	n = cut(r.size, 100000, 3, &p);
	shuffle(p, n, 4);
	for (size_t i = 0; i < n; i++) {
		pread_ok(&r, p[i][0], (size_t)p[i][1]);
		if (i % 7 == 0) /* overlaps and re-reads */
			pread_ok(&r, p[i][0] / 2, (size_t)p[i][1]);
	}
	expect_finish(&r, 0);
	free(p);
	rig_close(&r);
}

/* Holes and refcount blocks are never read: finish reads them, and says so. */
static void test_sparse_preads(void **state)
{
	uint64_t(*p)[2];
	uint64_t skipped = 0;
	struct rig r;
	size_t n;

	(void)state;
	rig_open(&r, 9 * MiB + 5, true);
	n = cut(r.size, 256 * 1024, 5, &p);
	shuffle(p, n, 6);
	for (size_t i = 0; i < n; i++) {
		if (i % 3 == 1 || p[i][0] == 0 || p[i][0] + p[i][1] == r.size)
			skipped += p[i][1]; /* the first and the last piece too */
		else
			pread_ok(&r, p[i][0], (size_t)p[i][1]);
	}
	expect_finish(&r, skipped);
	assert_int_equal(fake_total(&r), r.size); /* nothing read twice */
	free(p);
	rig_close(&r);
}

/*
 * More comes early than may be held: the gap before the held pieces is read
 * once (FILL_SIZE of it), what still finds no room is dropped, and finish
 * reads it again, using what is held.
 */
static void test_beyond_the_hold_limit(void **state)
{
	const size_t piece = MiB, skip = 16 * MiB;
	struct rig r;
	char line[128];

	(void)state;
	rig_open(&r, skip + HOLD_MAX, true);
	for (size_t off = skip; off < r.size; off += piece)
		pread_ok(&r, off, piece); /* all held: exactly the limit */
	assert_int_equal(fake_total(&r), HOLD_MAX);
	pread_ok(&r, 8 * MiB, piece); /* no room: the gap read, this one dropped */
	assert_int_equal(fake_total(&r), HOLD_MAX + piece + FILL_SIZE);
	pread_ok(&r, 0, piece); /* already hashed */
	expect_finish(&r, skip - FILL_SIZE);
	snprintf(line, sizeof(line), "read %zu bytes ahead of the format", FILL_SIZE);
	assert_non_null(strstr(r.log, line));
	rig_close(&r);
}

/* A qcow2's refcount blocks, never read: the gap is read when the held pieces fill up. */
static void test_unread_gap_is_filled(void **state)
{
	const size_t gap_from = 4096, gap_to = 3 * 65536, piece = MiB;
	struct rig r;
	char line[128];

	(void)state;
	rig_open(&r, 72 * MiB, true);
	pread_ok(&r, 0, gap_from);
	for (size_t off = gap_to; off < r.size; off += piece)
		pread_ok(&r, off, r.size - off < piece ? r.size - off : piece);
	expect_finish(&r, 0);
	assert_int_equal(fake_total(&r), r.size); /* the gap once, nothing twice */
	snprintf(line, sizeof(line), "read %zu bytes ahead of the format", gap_to - gap_from);
	assert_non_null(strstr(r.log, line));
	rig_close(&r);
}

/* Reads in order and at offsets on one source: the xz index first, then the stream. */
static void test_mixed_read_and_pread(void **state)
{
	uint8_t *buf = malloc(65536);
	struct rig r;
	ssize_t n;

	(void)state;
	assert_non_null(buf);
	rig_open(&r, 2 * MiB + 99, true);
	pread_ok(&r, r.size - 4000, 4000);
	pread_ok(&r, 0, 12);
	assert_int_equal(bytesrc_rewind(r.bs), 0);
	while ((n = bytesrc_read(r.bs, buf, 65536)) > 0)
		;
	assert_int_equal(n, 0);
	expect_finish(&r, 0);
	rig_close(&r);

	/* A stream read part way, then at an offset: finish reads on where the stream is. */
	rig_open(&r, 2 * MiB + 99, true);
	assert_int_equal(bytesrc_read(r.bs, buf, 65536), 65536);
	pread_ok(&r, 65536 + 1000, 5000);
	expect_finish(&r, r.size - 65536); /* by read: the stream goes on */
	free(buf);
	rig_close(&r);
}

static void test_inner_failure(void **state)
{
	uint8_t buf[4096], got[SHA256_SIZE];
	uint64_t size;
	struct rig r;

	(void)state;
	rig_open(&r, MiB, true);
	atomic_store(&r.fake->fail_from, 300000);
	pread_ok(&r, 0, 4096);
	assert_int_equal(bytesrc_pread(r.bs, buf, sizeof(buf), 299000), -EIO);
	assert_string_equal(r.bs->msg, "injected failure at 300000");
	assert_string_equal(bytesrc_error(r.bs, -EIO), "injected failure at 300000");
	assert_int_equal(bytesrc_hash_finish(r.ctx, r.bs, got, &size), -EIO);
	assert_non_null(strstr(imgdev_ctx_last_error(r.ctx), "fake:image"));
	assert_non_null(strstr(imgdev_ctx_last_error(r.ctx), "injected failure at 300000"));
	/* The failure gone, finish goes on from where it was. */
	atomic_store(&r.fake->fail_from, NEVER);
	expect_finish(&r, r.size - 4096);
	rig_close(&r);

	rig_open(&r, MiB, false);
	atomic_store(&r.fake->fail_from, 5000);
	assert_int_equal(bytesrc_read(r.bs, buf, 4096), 4096);
	assert_int_equal(bytesrc_read(r.bs, buf, 4096), -EIO);
	assert_string_equal(r.bs->msg, "injected failure at 5000");
	assert_int_equal(bytesrc_hash_finish(r.ctx, r.bs, got, &size), -EIO);
	assert_non_null(strstr(imgdev_ctx_last_error(r.ctx), "injected failure at 5000"));
	rig_close(&r);
}

/* Stopped, read passes the bytes on (and its failures' words), and finish refuses. */
static void test_stopped_only_passes_on(void **state)
{
	uint8_t buf[4096], got[SHA256_SIZE];
	uint64_t size;
	struct rig r;

	(void)state;
	rig_open(&r, MiB, false);
	atomic_store(&r.fake->fail_from, 5000);
	assert_int_equal(bytesrc_read(r.bs, buf, 8), 8);
	bytesrc_hash_stop(r.bs);
	assert_int_equal(bytesrc_read(r.bs, buf, 4000), 4000);
	assert_memory_equal(buf, r.data + 8, 4000);
	assert_int_equal(bytesrc_read(r.bs, buf, 4096), -EIO);
	assert_string_equal(r.bs->msg, "injected failure at 5000");
	assert_int_equal(bytesrc_hash_finish(r.ctx, r.bs, got, &size), -EINVAL);
	assert_non_null(strstr(imgdev_ctx_last_error(r.ctx), "stopped"));
	rig_close(&r);
}

static void test_rewind_resets(void **state)
{
	uint8_t *buf = malloc(MiB);
	struct rig r;
	ssize_t n;

	(void)state;
	assert_non_null(buf);
	rig_open(&r, MiB + 3, false);
	assert_int_equal(bytesrc_read(r.bs, buf, 1000), 1000);
	assert_int_equal(bytesrc_rewind(r.bs), 0);
	while ((n = bytesrc_read(r.bs, buf, 77777)) > 0)
		;
	expect_finish(&r, 0);
	/* And after a finish: the stream and the hash start over. */
	assert_int_equal(bytesrc_rewind(r.bs), 0);
	r.log[0] = '\0';
	assert_int_equal(bytesrc_read(r.bs, buf, MiB), MiB);
	expect_finish(&r, 3);
	free(buf);
	rig_close(&r);
}

struct job {
	struct rig *r;
	uint64_t (*p)[2];
	size_t n;
	atomic_size_t next;
	atomic_int bad;
};

static void *reader(void *arg)
{
	struct job *j = arg;
	uint8_t *buf = malloc(MiB);
	size_t i;

	while (buf && (i = atomic_fetch_add(&j->next, 1)) < j->n) {
		uint64_t off = j->p[i][0];
		size_t len = (size_t)j->p[i][1];

		if (bytesrc_pread(j->r->bs, buf, len, off) < 0 ||
		    memcmp(buf, j->r->data + off, len) != 0)
			atomic_fetch_add(&j->bad, 1);
	}
	if (!buf)
		atomic_fetch_add(&j->bad, 1);
	free(buf);
	return NULL;
}

static void run_readers(struct rig *r, uint64_t (*p)[2], size_t n)
{
	struct job j = { .r = r, .p = p, .n = n };
	pthread_t t[4];

	atomic_init(&j.next, 0);
	atomic_init(&j.bad, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &j), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&j.bad), 0);
}

static void test_threads(void **state)
{
	uint64_t(*p)[2];
	struct rig r;
	size_t n, extra;

	(void)state;
	/* Handed out in order, so out of order between the threads. */
	rig_open(&r, 24 * MiB + 11, true);
	n = cut(r.size, 512 * 1024, 7, &p);
	run_readers(&r, p, n);
	expect_finish(&r, 0);
	free(p);
	rig_close(&r);

	/* In a random order, with re-reads of ranges read already or not yet. */
	rig_open(&r, 24 * MiB + 11, true);
	n = cut(r.size, 256 * 1024, 8, &p);
	extra = n / 5;
	p = realloc(p, (n + extra) * sizeof(*p));
	assert_non_null(p);
	for (size_t i = 0; i < extra; i++) {
		p[n + i][0] = p[i * 5][0] / 2;
		p[n + i][1] = p[i * 5][1];
	}
	shuffle(p, n + extra, 9);
	run_readers(&r, p, n + extra);
	expect_finish(&r, 0);
	free(p);
	rig_close(&r);

	/* More than may be held, after a gap never read: whatever is dropped, the hash holds. */
	rig_open(&r, 80 * MiB, true);
	n = cut(r.size, MiB, 10, &p);
	for (size_t i = 1; i < 4; i++)
		p[i][1] = 0; /* not read */
	run_readers(&r, p, n);
	{
		uint8_t want[SHA256_SIZE], got[SHA256_SIZE];
		uint64_t size;

		assert_int_equal(sha256_digest(r.data, r.size, want), 0);
		assert_int_equal(bytesrc_hash_finish(r.ctx, r.bs, got, &size), 0);
		assert_memory_equal(got, want, SHA256_SIZE);
		assert_int_equal(size, r.size);
	}
	free(p);
	rig_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wraps_a_file),
		cmocka_unit_test(test_not_a_hashing_source),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_read_in_odd_pieces),
		cmocka_unit_test(test_read_part_then_finish_drains),
		cmocka_unit_test(test_peek_does_not_hash),
		cmocka_unit_test(test_stopped_only_passes_on),
		cmocka_unit_test(test_pread_in_order),
		cmocka_unit_test(test_pread_reverse_and_shuffled),
		cmocka_unit_test(test_sparse_preads),
		cmocka_unit_test(test_beyond_the_hold_limit),
		cmocka_unit_test(test_unread_gap_is_filled),
		cmocka_unit_test(test_mixed_read_and_pread),
		cmocka_unit_test(test_inner_failure),
		cmocka_unit_test(test_rewind_resets),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
