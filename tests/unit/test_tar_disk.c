/*
 * Unit tests of the disk found in a containerDisk's layers (tar_disk.h),
 * on tar layers the test writes in memory with libarchive and gives
 * through an in-memory stream source that counts what it hands out: the
 * disk streamed byte-exact from a plain, gzip and zstd layer (peek, then
 * read); path spellings; whiteouts, opaque directories and shadowing
 * across layers; two disks refused, or one chosen by path; no disk;
 * symlinks, hard links, devices and ".." paths never taken; a layer that
 * is not a tar, one cut inside the disk, and a layer source's failure;
 * every layer read to its last byte; and the data's offset in a plain
 * layer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>

#include "bytesrc.h"
#include "imgdev.h"
#include "tar_disk.h"

#define DSIZE (3 * 1024 * 1024 + 12345) /* a few MiB and an odd tail */
#define MAX_LAYERS 4

enum filt { F_NONE, F_GZIP, F_ZSTD };

struct ent {
	const char *path;
	unsigned int type;
	const uint8_t *data;
	size_t size;
	const char *link; /* a symlink's target, or a hard link's (type 0) */
};

/*
 * A stream over bytes it owns, handing out at most piece at a time, failing
 * at fail_at (every read from there on, or with fail_once only the first).
 */
struct mem {
	uint8_t *bytes;
	size_t size, pos, piece, fail_at;
	bool fail_once;
};

static ssize_t mem_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct mem *m = bs->priv;
	size_t n = m->size - m->pos < len ? m->size - m->pos : len;

	if (m->pos >= m->fail_at) {
		snprintf(bs->msg, sizeof(bs->msg), "mem: connection reset at %zu", m->pos);
		if (m->fail_once)
			m->fail_at = SIZE_MAX;
		return -ECONNRESET;
	}
	if (n > m->piece)
		n = m->piece;
	if (n > m->fail_at - m->pos)
		n = m->fail_at - m->pos;
	memcpy(buf, m->bytes + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static void mem_close(struct bytesrc *bs)
{
	struct mem *m = bs->priv;

	free(m->bytes);
	free(m);
}

static const struct bytesrc_ops mem_ops = { .read = mem_read, .close = mem_close };

/* A stream source over bytes (which it then owns). */
static struct bytesrc *mem_source(uint8_t *bytes, size_t size, size_t piece)
{
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	struct mem *m = calloc(1, sizeof(*m));

	assert_non_null(bs);
	assert_non_null(m);
	m->bytes = bytes;
	m->size = size;
	m->piece = piece;
	m->fail_at = SIZE_MAX;
	bs->ops = &mem_ops;
	bs->name = strdup("mem:layer");
	bs->fd = -1;
	bs->priv = m;
	return bs;
}

static struct mem *mem_of(struct bytesrc *bs)
{
	return bs->priv;
}

/* Deterministic bytes that do not compress. */
static uint8_t *random_bytes(size_t len, uint32_t seed)
{
	uint8_t *b = malloc(len ? len : 1);
	uint32_t x = seed | 1;

	assert_non_null(b);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
	return b;
}

/* A tar (pax) of ents, through filter f, in malloc'ed memory: its bytes, *len their count. */
static uint8_t *make_tar(const struct ent *ents, size_t n, enum filt f, size_t *len)
{
	size_t cap = 1024 * 1024;
	struct archive *a = archive_write_new();
	uint8_t *buf;

	for (size_t i = 0; i < n; i++)
		cap += ents[i].size + 4096;
	buf = malloc(cap);
	assert_non_null(buf);
	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	if (f == F_GZIP)
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	else if (f == F_ZSTD)
		assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
	else
		assert_int_equal(archive_write_add_filter_none(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();

		archive_entry_set_pathname(e, ents[i].path);
		archive_entry_set_filetype(e, ents[i].type ? ents[i].type : AE_IFREG);
		archive_entry_set_perm(e, ents[i].type == AE_IFDIR ? 0755 : 0644);
		archive_entry_set_size(e, (la_int64_t)ents[i].size);
		if (ents[i].link && ents[i].type == AE_IFLNK)
			archive_entry_set_symlink(e, ents[i].link);
		else if (ents[i].link)
			archive_entry_set_hardlink(e, ents[i].link);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (ents[i].size)
			assert_int_equal(archive_write_data(a, ents[i].data, ents[i].size),
					 (la_ssize_t)ents[i].size);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return buf;
}

struct layers {
	struct bytesrc *bs[MAX_LAYERS];
	struct tar_layer tl[MAX_LAYERS];
	size_t n;
};

/* Adds a layer (above those added before) of ents through f, read piece bytes at a time. */
static struct bytesrc *add_layer(struct layers *l, const struct ent *ents, size_t n, enum filt f,
				 size_t piece)
{
	size_t len;
	uint8_t *tar = make_tar(ents, n, f, &len);

	assert_true(l->n < MAX_LAYERS);
	l->bs[l->n] = mem_source(tar, len, piece);
	l->tl[l->n].bs = l->bs[l->n];
	return l->bs[l->n++];
}

static void free_layers(struct layers *l)
{
	for (size_t i = 0; i < l->n; i++)
		bytesrc_close(l->bs[i]);
	l->n = 0;
}

/* Reads disk to its end (or failure) in pieces: the final rc (0: EOF), the bytes in *out. */
static ssize_t read_all(struct bytesrc *disk, size_t piece, uint8_t **out, size_t *len)
{
	size_t cap = DSIZE + 65536;
	uint8_t *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	*len = 0;
	for (;;) {
		size_t want = cap - *len < piece ? cap - *len : piece;

		assert_true(want > 0);
		n = bytesrc_read(disk, buf + *len, want);
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	*out = buf;
	return n;
}

/* Opens layers l with disk_path (or none), reads all and checks it is want. Returns the info. */
static struct tar_disk_info expect_disk(struct layers *l, const char *disk_path,
					const uint8_t *want, size_t want_len)
{
	struct imgdev_ctx *ctx;
	struct tar_disk_opts o = { .disk_path = disk_path };
	struct tar_disk_info info;
	struct bytesrc *disk;
	uint8_t *got;
	size_t len;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(tar_disk_open(ctx, l->tl, l->n, &o, &disk), 0);
	assert_true(disk->size_known);
	assert_int_equal(disk->size, want_len);
	assert_int_equal(read_all(disk, 100003, &got, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(got, want, want_len);
	assert_int_equal(bytesrc_read(disk, got, 1), 0);
	tar_disk_info(disk, &info);
	assert_int_equal(info.size, want_len);
	for (size_t i = 0; i < l->n; i++)
		assert_int_equal(mem_of(l->bs[i])->pos, mem_of(l->bs[i])->size);
	free(got);
	bytesrc_close(disk);
	imgdev_ctx_free(ctx);
	return info;
}

/* Opens layers l and expects err with the message msg in the context. */
static void expect_open_error(struct layers *l, const char *disk_path, int err, const char *msg)
{
	struct imgdev_ctx *ctx;
	struct tar_disk_opts o = { .disk_path = disk_path };
	struct bytesrc *disk = NULL;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(tar_disk_open(ctx, l->tl, l->n, &o, &disk), err);
	assert_null(disk);
	assert_string_equal(imgdev_ctx_last_error(ctx), msg);
	imgdev_ctx_free(ctx);
}

/* Opens layers l, reads to the end and expects err there, with a message starting msg. */
static void expect_read_error(struct layers *l, const char *disk_path, int err, const char *msg)
{
	struct imgdev_ctx *ctx;
	struct tar_disk_opts o = { .disk_path = disk_path };
	struct bytesrc *disk;
	uint8_t *got;
	size_t len;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(tar_disk_open(ctx, l->tl, l->n, &o, &disk), 0);
	assert_int_equal(read_all(disk, 65536, &got, &len), err);
	assert_int_equal(strncmp(disk->msg, msg, strlen(msg)), 0);
	assert_int_equal(bytesrc_read(disk, got, 1), err); /* and stays failed */
	free(got);
	bytesrc_close(disk);
	imgdev_ctx_free(ctx);
}

/* One layer through f: peek, then read in odd pieces; the info; the data's offset in a plain tar. */
static void stream_one(enum filt f)
{
	uint8_t *data = random_bytes(DSIZE, 1);
	uint8_t note[100] = "a file beside the disk";
	struct ent ents[] = {
		{ "etc/", AE_IFDIR },
		{ "etc/notes", AE_IFREG, note, sizeof(note) },
		{ "disk/", AE_IFDIR },
		{ "disk/x.img", AE_IFREG, data, DSIZE },
	};
	struct layers l = { 0 };
	struct imgdev_ctx *ctx;
	struct bytesrc *disk;
	struct tar_disk_info info;
	uint8_t head[8192], *got;
	size_t len;

	add_layer(&l, ents, 4, f, 1 << 20);
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(tar_disk_open(ctx, l.tl, l.n, NULL, &disk), 0);
	assert_int_equal(bytesrc_peek(disk, head, 16), 16);
	assert_memory_equal(head, data, 16);
	assert_int_equal(bytesrc_peek(disk, head, sizeof(head)), 4096);
	assert_memory_equal(head, data, 4096);
	assert_int_equal(read_all(disk, 100003, &got, &len), 0);
	assert_int_equal(len, DSIZE);
	assert_memory_equal(got, data, DSIZE);
	tar_disk_info(disk, &info);
	assert_string_equal(info.path, "disk/x.img");
	assert_int_equal(info.layer, 0);
	assert_int_equal(info.size, DSIZE);
	assert_int_equal(info.layer_uncompressed, f == F_NONE);
	if (f == F_NONE) {
		assert_true(info.data_offset + DSIZE <= mem_of(l.bs[0])->size);
		assert_memory_equal(mem_of(l.bs[0])->bytes + info.data_offset, data, DSIZE);
	}
	assert_int_equal(mem_of(l.bs[0])->pos, mem_of(l.bs[0])->size);
	free(got);
	free(data);
	bytesrc_close(disk);
	free_layers(&l);
	imgdev_ctx_free(ctx);
}

static void test_stream_plain(void **state)
{
	(void)state;
	stream_one(F_NONE);
}

static void test_stream_gzip(void **state)
{
	(void)state;
	stream_one(F_GZIP);
}

static void test_stream_zstd(void **state)
{
	(void)state;
	stream_one(F_ZSTD);
}

/* A disk smaller than peek asks for: peek gives it all, read the same, then EOF. */
static void test_small_disk(void **state)
{
	uint8_t data[1000];
	struct ent ents[] = { { "disk/tiny.img", AE_IFREG, data, sizeof(data) } };
	struct layers l = { 0 };
	struct imgdev_ctx *ctx;
	struct bytesrc *disk;
	uint8_t buf[4096];

	(void)state;
	memset(data, 0x5a, sizeof(data));
	add_layer(&l, ents, 1, F_GZIP, 4096);
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(tar_disk_open(ctx, l.tl, l.n, NULL, &disk), 0);
	assert_int_equal(bytesrc_peek(disk, buf, sizeof(buf)), sizeof(data));
	assert_int_equal(bytesrc_read(disk, buf, sizeof(buf)), sizeof(data));
	assert_memory_equal(buf, data, sizeof(data));
	assert_int_equal(bytesrc_read(disk, buf, sizeof(buf)), 0);
	assert_int_equal(bytesrc_peek(disk, buf, 1), -ESPIPE);
	bytesrc_close(disk);
	free_layers(&l);
	imgdev_ctx_free(ctx);
}

/* "./disk/x.img", "/disk//x.img" and "disk/x.img" are the same path. */
static void test_path_spellings(void **state)
{
	static const char *const names[] = { "./disk/x.img", "/disk//x.img", "disk/./x.img",
					     "disk/x.img" };
	uint8_t *data = random_bytes(70000, 2);

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		struct ent ents[] = { { names[i], AE_IFREG, data, 70000 } };
		struct layers l = { 0 };
		struct tar_disk_info info;

		add_layer(&l, ents, 1, F_NONE, 1 << 20);
		info = expect_disk(&l, NULL, data, 70000);
		assert_string_equal(info.path, "disk/x.img");
		free_layers(&l);
		add_layer(&l, ents, 1, F_NONE, 1 << 20);
		expect_disk(&l, "./disk/x.img", data, 70000);
		free_layers(&l);
	}
	free(data);
}

/* Lower: disk/old.img; upper: its whiteout and disk/new.img: new.img, and no second disk. */
static void test_whiteout(void **state)
{
	uint8_t *old = random_bytes(50000, 3), *new = random_bytes(60000, 4);
	struct ent lower[] = { { "disk/", AE_IFDIR }, { "disk/old.img", AE_IFREG, old, 50000 } };
	struct ent upper[] = { { "disk/.wh.old.img", AE_IFREG },
			       { "disk/new.img", AE_IFREG, new, 60000 } };
	struct ent only_wh[] = { { "disk/.wh.old.img", AE_IFREG } };
	struct ent dir_wh[] = { { ".wh.disk", AE_IFREG } };
	struct layers l = { 0 };
	struct tar_disk_info info;

	(void)state;
	add_layer(&l, lower, 2, F_NONE, 1 << 20);
	add_layer(&l, upper, 2, F_GZIP, 1 << 20);
	info = expect_disk(&l, NULL, new, 60000);
	assert_string_equal(info.path, "disk/new.img");
	assert_int_equal(info.layer, 1);
	free_layers(&l);

	add_layer(&l, lower, 2, F_NONE, 1 << 20);
	add_layer(&l, only_wh, 1, F_NONE, 1 << 20);
	expect_open_error(&l, NULL, -ENOENT, "no disk: no regular file under disk/ in 2 layers");
	free_layers(&l);

	add_layer(&l, lower, 2, F_NONE, 1 << 20);
	add_layer(&l, dir_wh, 1, F_NONE, 1 << 20);
	expect_open_error(&l, "disk/old.img", -ENOENT,
			  "no disk: no regular file disk/old.img in 2 layers");
	free_layers(&l);

	/* A whiteout applies below only: its own layer's file of that name stays. */
	struct ent same[] = { { "disk/.wh.old.img", AE_IFREG },
			      { "disk/old.img", AE_IFREG, new, 60000 } };
	add_layer(&l, lower, 2, F_NONE, 1 << 20);
	add_layer(&l, same, 2, F_NONE, 1 << 20);
	expect_disk(&l, NULL, new, 60000);
	free_layers(&l);
	free(old);
	free(new);
}

/* An opaque disk/ in the upper layer hides the lower layer's disk. */
static void test_opaque(void **state)
{
	uint8_t *old = random_bytes(50000, 5), *new = random_bytes(60000, 6);
	struct ent lower[] = { { "disk/old.img", AE_IFREG, old, 50000 } };
	struct ent upper[] = { { "disk/", AE_IFDIR },
			       { "disk/.wh..wh..opq", AE_IFREG },
			       { "disk/new.img", AE_IFREG, new, 60000 } };
	struct ent root_opq[] = { { ".wh..wh..opq", AE_IFREG }, { "etc/x", AE_IFREG } };
	struct layers l = { 0 };

	(void)state;
	add_layer(&l, lower, 1, F_ZSTD, 1 << 20);
	add_layer(&l, upper, 3, F_NONE, 1 << 20);
	assert_string_equal(expect_disk(&l, NULL, new, 60000).path, "disk/new.img");
	free_layers(&l);

	add_layer(&l, lower, 1, F_NONE, 1 << 20);
	add_layer(&l, upper, 2, F_NONE, 1 << 20); /* the opaque marker alone */
	expect_open_error(&l, NULL, -ENOENT, "no disk: no regular file under disk/ in 2 layers");
	free_layers(&l);

	add_layer(&l, lower, 1, F_NONE, 1 << 20);
	add_layer(&l, root_opq, 2, F_NONE, 1 << 20);
	expect_open_error(&l, NULL, -ENOENT, "no disk: no regular file under disk/ in 2 layers");
	free_layers(&l);
	free(old);
	free(new);
}

/* The same path in two layers: the upper one, the lower shadowed and not a second disk. */
static void test_shadowed(void **state)
{
	uint8_t *old = random_bytes(50000, 7), *new = random_bytes(60000, 8);
	struct ent lower[] = { { "disk/x.img", AE_IFREG, old, 50000 } };
	struct ent upper[] = { { "./disk/x.img", AE_IFREG, new, 60000 } };
	struct layers l = { 0 };

	(void)state;
	add_layer(&l, lower, 1, F_NONE, 1 << 20);
	add_layer(&l, upper, 1, F_NONE, 1 << 20);
	assert_int_equal(expect_disk(&l, NULL, new, 60000).layer, 1);
	free_layers(&l);
	free(old);
	free(new);
}

/* Two disks are refused at the end of the read, naming both; disk_path picks either. */
static void test_two_disks(void **state)
{
	uint8_t *a = random_bytes(40000, 9), *b = random_bytes(30000, 10);
	struct ent lower[] = { { "disk/b.img", AE_IFREG, b, 30000 } };
	struct ent upper[] = { { "disk/a.img", AE_IFREG, a, 40000 } };
	struct ent both[] = { { "disk/a.img", AE_IFREG, a, 40000 },
			      { "disk/b.img", AE_IFREG, b, 30000 } };
	struct layers l = { 0 };

	(void)state;
	add_layer(&l, lower, 1, F_NONE, 1 << 20);
	add_layer(&l, upper, 1, F_GZIP, 1 << 20);
	expect_read_error(&l, NULL, -ENOTUNIQ,
			  "two disks: disk/a.img (layer 2) and disk/b.img (layer 1); choose one with --disk-path");
	free_layers(&l);

	add_layer(&l, lower, 1, F_NONE, 1 << 20);
	add_layer(&l, upper, 1, F_GZIP, 1 << 20);
	assert_int_equal(expect_disk(&l, "disk/b.img", b, 30000).layer, 0);
	free_layers(&l);

	add_layer(&l, lower, 1, F_NONE, 1 << 20);
	add_layer(&l, upper, 1, F_GZIP, 1 << 20);
	assert_int_equal(expect_disk(&l, "/disk/a.img", a, 40000).layer, 1);
	free_layers(&l);

	add_layer(&l, both, 2, F_NONE, 1 << 20);
	expect_read_error(&l, NULL, -ENOTUNIQ,
			  "two disks: disk/a.img (layer 1) and disk/b.img (layer 1)");
	free_layers(&l);

	add_layer(&l, both, 2, F_NONE, 1 << 20);
	expect_open_error(&l, "disk/../disk/a.img", -EINVAL,
			  "disk/../disk/a.img: not a path a disk can have");
	free_layers(&l);
	free(a);
	free(b);
}

/* Symlinks, hard links, devices, deeper files and ".." paths under disk/ are never the disk. */
static void test_not_candidates(void **state)
{
	uint8_t *data = random_bytes(20000, 11);
	struct ent odd[] = {
		{ "etc/real.img", AE_IFREG, data, 20000 },
		{ "disk/link.img", AE_IFLNK, NULL, 0, "../etc/real.img" },
		{ "disk/hard.img", 0, NULL, 0, "etc/real.img" },
		{ "disk/dev.img", AE_IFBLK },
		{ "disk/sub/deep.img", AE_IFREG, data, 20000 },
		{ "disk/../disk/evil.img", AE_IFREG, data, 20000 },
		{ "../disk/evil.img", AE_IFREG, data, 20000 },
		{ "disk", AE_IFDIR },
	};
	struct ent with_disk[] = {
		{ "disk/link.img", AE_IFLNK, NULL, 0, "x.img" },
		{ "disk/x.img", AE_IFREG, data, 20000 },
		{ "disk/hard.img", 0, NULL, 0, "disk/x.img" },
		{ "disk/../disk/evil.img", AE_IFREG, data, 20000 },
	};
	struct layers l = { 0 };

	(void)state;
	add_layer(&l, odd, 8, F_NONE, 1 << 20);
	expect_open_error(&l, NULL, -ENOENT, "no disk: no regular file under disk/ in 1 layer");
	free_layers(&l);

	add_layer(&l, with_disk, 4, F_NONE, 1 << 20);
	expect_disk(&l, NULL, data, 20000);
	free_layers(&l);
	free(data);
}

/* No layers, or layers without a disk; an empty layer above the disk's. */
static void test_no_disk(void **state)
{
	uint8_t note[10] = "x";
	struct ent ents[] = { { "etc/hostname", AE_IFREG, note, sizeof(note) } };
	struct layers l = { 0 };

	(void)state;
	expect_open_error(&l, NULL, -ENOENT, "no disk: no regular file under disk/ in 0 layers");
	add_layer(&l, ents, 1, F_GZIP, 1 << 20);
	add_layer(&l, ents, 1, F_ZSTD, 1 << 20);
	expect_open_error(&l, NULL, -ENOENT, "no disk: no regular file under disk/ in 2 layers");
	for (size_t i = 0; i < l.n; i++)
		assert_int_equal(mem_of(l.bs[i])->pos, mem_of(l.bs[i])->size);
	free_layers(&l);

	/* An empty tar (its end blocks only) is a layer with nothing in it. */
	struct ent disk[] = { { "disk/x.img", AE_IFREG, note, sizeof(note) } };
	add_layer(&l, disk, 1, F_NONE, 1 << 20);
	l.bs[l.n] = mem_source(calloc(1, 1024), 1024, 1 << 20);
	l.tl[l.n].bs = l.bs[l.n];
	l.n++;
	expect_disk(&l, NULL, note, sizeof(note));
	free_layers(&l);
}

/* Random bytes as a layer: not a tar, named by its number. */
static void test_not_tar(void **state)
{
	uint8_t *data = random_bytes(20000, 12);
	struct ent ents[] = { { "disk/x.img", AE_IFREG, data, 20000 } };
	struct layers l = { 0 };
	struct imgdev_ctx *ctx;
	struct bytesrc *disk = NULL;
	const char *want = "layer 2 is not a tar archive: ";

	(void)state;
	add_layer(&l, ents, 1, F_NONE, 1 << 20);
	l.bs[l.n] = mem_source(random_bytes(100000, 13), 100000, 1 << 20);
	l.tl[l.n].bs = l.bs[l.n];
	l.n++;
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(tar_disk_open(ctx, l.tl, l.n, NULL, &disk), -EBADMSG);
	assert_null(disk);
	assert_int_equal(strncmp(imgdev_ctx_last_error(ctx), want, strlen(want)), 0);
	imgdev_ctx_free(ctx);
	free_layers(&l);
	free(data);
}

/* A layer cut inside the disk's data: -ENODATA at the read that meets the cut, naming the entry. */
static void test_truncated(void **state)
{
	uint8_t *data = random_bytes(DSIZE, 14);
	struct ent ents[] = { { "disk/x.img", AE_IFREG, data, DSIZE } };
	struct layers l = { 0 };
	struct bytesrc *bs;

	(void)state;
	for (int f = F_NONE; f <= F_ZSTD; f++) {
		bs = add_layer(&l, ents, 1, (enum filt)f, 1 << 20);
		mem_of(bs)->size = f == F_NONE ? 512 + DSIZE / 2 : mem_of(bs)->size / 2;
		expect_read_error(&l, NULL, -ENODATA, "layer 1 ends inside disk/x.img (");
		free_layers(&l);
	}
	free(data);
}

/* A layer source's failure, before the disk or inside it, passed through with its message. */
static void test_layer_read_error(void **state)
{
	uint8_t *data = random_bytes(DSIZE, 15);
	uint8_t note[10] = "x";
	struct ent lower[] = { { "disk/x.img", AE_IFREG, data, DSIZE } };
	struct ent upper[] = { { "etc/hostname", AE_IFREG, note, sizeof(note) } };
	struct layers l = { 0 };
	struct bytesrc *bs;
	char msg[100];

	(void)state;
	bs = add_layer(&l, lower, 1, F_GZIP, 65536);
	mem_of(bs)->fail_at = DSIZE / 2;
	add_layer(&l, upper, 1, F_NONE, 65536);
	expect_read_error(&l, NULL, -ECONNRESET, "mem: connection reset at ");
	free_layers(&l);

	add_layer(&l, lower, 1, F_NONE, 65536);
	bs = add_layer(&l, upper, 1, F_NONE, 512);
	mem_of(bs)->fail_at = mem_of(bs)->size - 100; /* in the end-of-archive blocks */
	snprintf(msg, sizeof(msg), "mem: connection reset at %zu", mem_of(bs)->size - 100);
	expect_open_error(&l, NULL, -ECONNRESET, msg);
	free_layers(&l);

	/*
	 * One failure only, where the blob ends (a digest checked there), and
	 * 0 after it: libarchive has the end-of-archive blocks by then and
	 * takes the failed read for the end; the disk must fail all the same.
	 */
	bs = add_layer(&l, lower, 1, F_GZIP, 65536);
	mem_of(bs)->fail_at = mem_of(bs)->size;
	mem_of(bs)->fail_once = true;
	snprintf(msg, sizeof(msg), "mem: connection reset at %zu", mem_of(bs)->size);
	expect_read_error(&l, NULL, -ECONNRESET, msg);
	free_layers(&l);
	free(data);
}

/*
 * Every layer read to its last byte, given in small pieces so that
 * libarchive's read-ahead stops short of the end: a layer above the
 * disk, the disk's with bytes after the tar's end, and one below.
 */
static void test_layers_drained(void **state)
{
	uint8_t *data = random_bytes(DSIZE, 16), *tail = random_bytes(7777, 17);
	uint8_t note[10] = "x";
	struct ent notes[] = { { "etc/hostname", AE_IFREG, note, sizeof(note) } };
	struct ent mid[] = { { "disk/x.img", AE_IFREG, data, DSIZE } };
	struct layers l = { 0 };
	struct mem *m;
	uint8_t *bytes;

	(void)state;
	add_layer(&l, notes, 1, F_GZIP, 512);
	m = mem_of(add_layer(&l, mid, 1, F_NONE, 512));
	bytes = realloc(m->bytes, m->size + 7777);
	assert_non_null(bytes);
	memcpy(bytes + m->size, tail, 7777);
	m->bytes = bytes;
	m->size += 7777;
	add_layer(&l, notes, 1, F_NONE, 512);
	expect_disk(&l, NULL, data, DSIZE); /* which checks every pos == size */
	free_layers(&l);
	free(data);
	free(tail);
}

/* The data's offset in a plain layer after other entries and a long (pax) name. */
static void test_data_offset(void **state)
{
	uint8_t *data = random_bytes(100001, 18), *other = random_bytes(12345, 19);
	char name[200];
	struct ent ents[] = {
		{ "etc/other", AE_IFREG, other, 12345 },
		{ "disk/", AE_IFDIR },
		{ name, AE_IFREG, data, 100001 },
	};
	struct layers l = { 0 };
	struct tar_disk_info info;
	const uint8_t *bytes;

	(void)state;
	snprintf(name, sizeof(name), "disk/%0150d.img", 7);
	add_layer(&l, ents, 3, F_NONE, 4096);
	bytes = mem_of(l.bs[0])->bytes;
	info = expect_disk(&l, NULL, data, 100001);
	assert_true(info.layer_uncompressed);
	assert_string_equal(info.path, name);
	assert_true(info.data_offset > 12345 + 1024);
	assert_memory_equal(bytes + info.data_offset, data, 100001);
	free_layers(&l);
	free(data);
	free(other);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_plain),
		cmocka_unit_test(test_stream_gzip),
		cmocka_unit_test(test_stream_zstd),
		cmocka_unit_test(test_small_disk),
		cmocka_unit_test(test_path_spellings),
		cmocka_unit_test(test_whiteout),
		cmocka_unit_test(test_opaque),
		cmocka_unit_test(test_shadowed),
		cmocka_unit_test(test_two_disks),
		cmocka_unit_test(test_not_candidates),
		cmocka_unit_test(test_no_disk),
		cmocka_unit_test(test_not_tar),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_layer_read_error),
		cmocka_unit_test(test_layers_drained),
		cmocka_unit_test(test_data_offset),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
