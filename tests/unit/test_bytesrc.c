/*
 * Unit tests of the byte-source seam (bytesrc.h) under the image formats:
 * a source kept in memory (no file descriptor, as an HTTP body would be)
 * carries a raw image and a gzip stream of one, and the formats read the
 * same payload from it as from the bytes themselves; a pure stream (no
 * pread, no length), and a real pipe, are read as a stream to their end,
 * raw or compressed, and one that outgrows the room is an error at the
 * room; and the file source reads in order, rewinds, and notices a file
 * that changed after it was opened.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "bytesrc.h"
#include "imgdev.h"
#include "imgsrc.h"
#include "pipeline.h"

#define IMAGE_SIZE (CHUNK_SIZE + 3 * 65536 + 512)	/* a short last chunk */

struct mem {
	uint8_t *bytes;
	size_t size, pos;
};

static int mem_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
{
	const struct mem *m = bs->priv;

	if (off > m->size || len > m->size - off)
		return -EIO;
	memcpy(buf, m->bytes + off, len);
	return 0;
}

static ssize_t mem_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct mem *m = bs->priv;
	size_t n = m->size - m->pos < len ? m->size - m->pos : len;

	memcpy(buf, m->bytes + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int mem_rewind(struct bytesrc *bs)
{
	struct mem *m = bs->priv;

	m->pos = 0;
	return 0;
}

static ssize_t mem_peek(struct bytesrc *bs, void *buf, size_t len)
{
	struct mem *m = bs->priv;
	size_t n = m->size < len ? m->size : len;

	memcpy(buf, m->bytes, n);
	return (ssize_t)n;
}

static void mem_close(struct bytesrc *bs)
{
	struct mem *m = bs->priv;

	free(m->bytes);
	free(m);
}

static const struct bytesrc_ops mem_ops = {
	.pread = mem_pread, .read = mem_read, .rewind = mem_rewind, .close = mem_close,
};
static const struct bytesrc_ops stream_only_ops = {
	.read = mem_read, .peek = mem_peek, .close = mem_close,
};

/* A byte source over a copy of bytes, with ops. */
static struct bytesrc *mem_source(const uint8_t *bytes, size_t size, const struct bytesrc_ops *ops)
{
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	struct mem *m = calloc(1, sizeof(*m));

	assert_non_null(bs);
	assert_non_null(m);
	m->bytes = malloc(size);
	assert_non_null(m->bytes);
	memcpy(m->bytes, bytes, size);
	m->size = size;
	bs->ops = ops;
	bs->name = strdup("mem:image");
	bs->size = size;
	bs->size_known = true;
	bs->fd = -1;
	bs->priv = m;
	return bs;
}

/* A payload with data, a zero run and a short tail. */
static uint8_t *make_image(void)
{
	uint8_t *img = calloc(1, IMAGE_SIZE);

	assert_non_null(img);
	for (size_t i = 0; i < IMAGE_SIZE; i++)
		img[i] = (i / 65536) % 3 == 1 ? 0 : (uint8_t)(i * 7 + i / 4096);
	return img;
}

static uint8_t *gzip_of(const uint8_t *in, size_t len, size_t *out_len)
{
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);
	z_stream z = { 0 };

	assert_non_null(out);
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = z.total_out;
	deflateEnd(&z);
	return out;
}

/*
 * Read every chunk of src and compare with want: to its size, or, of an
 * unknown size, until a chunk says the payload ends.
 */
static void expect_payload(struct imgsrc *src, const uint8_t *want, size_t size)
{
	struct chunk *c = calloc(1, sizeof(*c));
	uint8_t *got = malloc(CHUNK_SIZE);
	bool ended = false;

	assert_non_null(c);
	assert_non_null(got);
	assert_int_equal(posix_memalign((void **)&c->buf, BUF_ALIGN, CHUNK_SIZE + CHUNK_PAD), 0);
	if (src->size_known)
		assert_int_equal(src->size, size);
	for (uint64_t off = 0; src->size_known ? off < size : !ended; off += CHUNK_SIZE) {
		uint32_t len = CHUNK_SIZE;

		if (src->size_known && size - off < CHUNK_SIZE)
			len = (uint32_t)(size - off);
		chunk_reset(c, off, len);
		assert_int_equal(imgsrc_read_chunk(src, c), 0);
		if (!src->size_known) {
			ended = c->end;
			len = c->len;
			assert_true(off + len <= size);
			assert_true(ended == (off + len == size));
		}
		for (uint32_t b = 0; b < len; b += CONTENT_BLOCK_SIZE) {
			uint32_t n = len - b < CONTENT_BLOCK_SIZE ? len - b : CONTENT_BLOCK_SIZE;
			bool zero = c->all_zero || c->zero[b / CONTENT_BLOCK_SIZE];

			memcpy(got + b, zero ? (const uint8_t *)memset(c->buf + b, 0, n) : c->data + b, n);
		}
		assert_memory_equal(got, want + off, len);
		imgsrc_release_chunk(src, c);
	}
	free(c->buf);
	free(c);
	free(got);
}

/*
 * Open bytes from memory as an image and check that it is a raw payload
 * compressed as named, read back as the image.
 */
static void expect_image_over(struct bytesrc *bs, const struct imgsrc_policy *policy,
			      const char *compression, const uint8_t *image)
{
	struct imgdev_ctx *ctx;
	struct imgsrc *src;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(imgsrc_open(ctx, bs, policy, &src), 0);
	assert_string_equal(src->format, "raw");
	assert_string_equal(src->compression, compression);
	assert_int_equal(src->identity_is_payload, strcmp(compression, "none") == 0);
	expect_payload(src, image, IMAGE_SIZE);
	imgsrc_close(src);
	imgdev_ctx_free(ctx);
}

static void expect_image(const uint8_t *bytes, size_t len, const struct imgsrc_policy *policy,
			 const char *compression, const uint8_t *image)
{
	expect_image_over(mem_source(bytes, len, &mem_ops), policy, compression, image);
}

static void test_raw_over_memory(void **state)
{
	const struct imgsrc_policy policy = { .map_chunks = true };	/* no fd: read anyway */
	uint8_t *img = make_image();

	(void)state;
	expect_image(img, IMAGE_SIZE, &policy, "none", img);
	free(img);
}

static void test_gzip_over_memory(void **state)
{
	uint8_t *img = make_image(), *gz;
	size_t gz_len;

	(void)state;
	gz = gzip_of(img, IMAGE_SIZE, &gz_len);
	expect_image(gz, gz_len, NULL, "gzip", img);
	free(gz);
	free(img);
}

/* A source that only reads forward, of no known length. */
static struct bytesrc *stream_source(const uint8_t *bytes, size_t size)
{
	struct bytesrc *bs = mem_source(bytes, size, &stream_only_ops);

	bs->size_known = false;
	bs->size = 0;
	return bs;
}

static void test_stream_without_pread_is_read(void **state)
{
	uint8_t *img = make_image(), *gz;
	size_t gz_len;

	(void)state;
	expect_image_over(stream_source(img, IMAGE_SIZE), NULL, "none", img);
	gz = gzip_of(img, IMAGE_SIZE, &gz_len);
	expect_image_over(stream_source(gz, gz_len), NULL, "gzip", img);
	free(gz);
	free(img);
}

struct pipe_feed {
	int fd;
	const uint8_t *bytes;
	size_t len;
};

static void *feed_pipe(void *arg)
{
	struct pipe_feed *f = arg;

	/* In odd pieces, as a pipe delivers them. */
	for (size_t off = 0; off < f->len;) {
		size_t n = f->len - off < 77777 ? f->len - off : 77777;
		ssize_t w = write(f->fd, f->bytes + off, n);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

/* bytes through a real pipe (bytesrc_open_pipe), read as an image. */
static void expect_image_through_pipe(const uint8_t *bytes, size_t len, const char *compression,
				      const uint8_t *image)
{
	struct imgdev_ctx *ctx;
	struct bytesrc *bs;
	struct pipe_feed f = { .bytes = bytes, .len = len };
	pthread_t t;
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	f.fd = fds[1];
	assert_int_equal(pthread_create(&t, NULL, feed_pipe, &f), 0);
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(bytesrc_open_pipe(ctx, fds[0], "-", &bs), 0);
	assert_int_equal(bs->fd, -1);
	assert_false(bs->size_known);
	expect_image_over(bs, NULL, compression, image);
	pthread_join(t, NULL);
	close(fds[0]);
	imgdev_ctx_free(ctx);
}

static void test_pipe_is_read_as_a_stream(void **state)
{
	uint8_t *img = make_image(), *gz;
	size_t gz_len;

	(void)state;
	expect_image_through_pipe(img, IMAGE_SIZE, "none", img);
	gz = gzip_of(img, IMAGE_SIZE, &gz_len);
	expect_image_through_pipe(gz, gz_len, "gzip", img);
	free(gz);
	free(img);
}

/* A stream of unknown size that reaches the room with more to come: -ENOSPC there. */
static void test_stream_outgrowing_the_room_fails_there(void **state)
{
	uint8_t *img = make_image(), *gz;
	struct chunk *c = calloc(1, sizeof(*c));
	struct imgdev_ctx *ctx;
	struct imgsrc *src;
	size_t gz_len;

	(void)state;
	assert_non_null(c);
	assert_int_equal(posix_memalign((void **)&c->buf, BUF_ALIGN, CHUNK_SIZE + CHUNK_PAD), 0);
	gz = gzip_of(img, IMAGE_SIZE, &gz_len);
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(imgsrc_open(ctx, stream_source(gz, gz_len), NULL, &src), 0);
	assert_false(src->size_known);
	src->room = CHUNK_SIZE;
	chunk_reset(c, 0, CHUNK_SIZE);
	assert_int_equal(imgsrc_read_chunk(src, c), -ENOSPC);
	assert_non_null(strstr(c->msg, "too small"));
	imgsrc_close(src);
	/* Exactly the room: fine, and the next chunk ends it. */
	assert_int_equal(imgsrc_open(ctx, stream_source(img, CHUNK_SIZE), NULL, &src), 0);
	src->room = CHUNK_SIZE;
	chunk_reset(c, 0, CHUNK_SIZE);
	assert_int_equal(imgsrc_read_chunk(src, c), 0);
	assert_true(c->len == CHUNK_SIZE);
	imgsrc_close(src);
	imgdev_ctx_free(ctx);
	free(c->buf);
	free(c);
	free(gz);
	free(img);
}

static void test_file_reads_rewinds_and_sees_change(void **state)
{
	char path[] = "/var/tmp/imgdev-bs.XXXXXX";
	int fd = mkstemp(path);
	struct imgdev_ctx *ctx;
	struct bytesrc *bs;
	uint8_t buf[8];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abcdefghij", 10), 10);
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(bytesrc_open_file(ctx, path, &bs), 0);
	assert_true(bs->size_known);
	assert_int_equal(bs->size, 10);
	assert_true(bs->fd >= 0);
	assert_int_equal(bytesrc_read(bs, buf, 8), 8);
	assert_int_equal(bytesrc_read(bs, buf, 8), 2);
	assert_memory_equal(buf, "ij", 2);
	assert_int_equal(bytesrc_read(bs, buf, 8), 0);
	assert_int_equal(bytesrc_rewind(bs), 0);
	assert_int_equal(bytesrc_read(bs, buf, 3), 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(bytesrc_pread(bs, buf, 4, 6), 0);
	assert_memory_equal(buf, "ghij", 4);
	assert_int_equal(bytesrc_pread(bs, buf, 4, 8), -EIO);
	assert_int_equal(bytesrc_check_unchanged(ctx, bs), 0);
	assert_int_equal(write(fd, "k", 1), 1);
	assert_int_equal(bytesrc_check_unchanged(ctx, bs), -ESTALE);
	bytesrc_close(bs);
	close(fd);
	unlink(path);
	imgdev_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_over_memory),
		cmocka_unit_test(test_gzip_over_memory),
		cmocka_unit_test(test_stream_without_pread_is_read),
		cmocka_unit_test(test_pipe_is_read_as_a_stream),
		cmocka_unit_test(test_stream_outgrowing_the_room_fails_there),
		cmocka_unit_test(test_file_reads_rewinds_and_sees_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
