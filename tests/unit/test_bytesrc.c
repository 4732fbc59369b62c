/*
 * Unit tests of the byte-source seam (bytesrc.h) under the image formats:
 * a source kept in memory (no file descriptor, as an HTTP body would be)
 * carries a raw image and a gzip stream of one, and the formats read the
 * same payload from it as from the bytes themselves; a pure stream (no
 * pread) is refused cleanly; and the file source reads in order, rewinds,
 * and notices a file that changed after it was opened.
 */
#include <errno.h>
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
	.read = mem_read, .rewind = mem_rewind, .close = mem_close,
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

/* Read every chunk of src and compare with want. */
static void expect_payload(struct imgsrc *src, const uint8_t *want, size_t size)
{
	struct chunk *c = calloc(1, sizeof(*c));
	uint8_t *got = malloc(CHUNK_SIZE);

	assert_non_null(c);
	assert_non_null(got);
	assert_int_equal(posix_memalign((void **)&c->buf, BUF_ALIGN, CHUNK_SIZE + CHUNK_PAD), 0);
	assert_int_equal(src->size, size);
	for (uint64_t off = 0; off < size; off += CHUNK_SIZE) {
		uint32_t len = size - off < CHUNK_SIZE ? (uint32_t)(size - off) : CHUNK_SIZE;

		chunk_reset(c, off, len);
		assert_int_equal(imgsrc_read_chunk(src, c), 0);
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
static void expect_image(const uint8_t *bytes, size_t len, const struct imgsrc_policy *policy,
			 const char *compression, const uint8_t *image)
{
	struct imgdev_ctx *ctx;
	struct imgsrc *src;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(imgsrc_open(ctx, mem_source(bytes, len, &mem_ops), policy, &src), 0);
	assert_string_equal(src->format, "raw");
	assert_string_equal(src->compression, compression);
	assert_int_equal(src->identity_is_payload, strcmp(compression, "none") == 0);
	expect_payload(src, image, IMAGE_SIZE);
	imgsrc_close(src);
	imgdev_ctx_free(ctx);
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

static void test_stream_without_pread_is_refused(void **state)
{
	uint8_t *img = make_image();
	struct imgdev_ctx *ctx;
	struct imgsrc *src = NULL;

	(void)state;
	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(imgsrc_open(ctx, mem_source(img, IMAGE_SIZE, &stream_only_ops), NULL, &src),
			 -ESPIPE);
	assert_null(src);
	assert_non_null(strstr(imgdev_ctx_last_error(ctx), "mem:image"));
	imgdev_ctx_free(ctx);
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
		cmocka_unit_test(test_stream_without_pread_is_refused),
		cmocka_unit_test(test_file_reads_rewinds_and_sees_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
