/*
 * Opening an image: the format is chosen by the first bytes, never by the
 * name — qcow2 by its magic, a gzip, xz or zstd stream by theirs, raw
 * otherwise — and the read policy turned into what the source may do. Also
 * what callers ask of any source whatever its format: its info, the plain
 * SHA-256 of the image as given (for formats whose payload is not the file
 * itself), the change check, and dropping its pages once it has been read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"
#include "imgsrc.h"
#include "internal.h"
#include "qcow2.h"
#include "sha256.h"

#define HASH_READ_SIZE (1024 * 1024)
#define MAGIC_SIZE 8

enum probed {
	PROBED_RAW,
	PROBED_QCOW2,
	PROBED_GZIP,
	PROBED_XZ,
	PROBED_ZSTD,
};

/* What the magic at the start of the image (n bytes of it) says. */
static enum probed probe_magic(const uint8_t *magic, size_t n)
{
	static const uint8_t gz[] = { 0x1f, 0x8b }, xz[] = { 0xfd, '7', 'z', 'X', 'Z', 0 },
			     zst[] = { 0x28, 0xb5, 0x2f, 0xfd };

	if (qcow2_probe(magic, n))
		return PROBED_QCOW2;
	if (n >= sizeof(gz) && memcmp(magic, gz, sizeof(gz)) == 0)
		return PROBED_GZIP;
	if (n >= sizeof(xz) && memcmp(magic, xz, sizeof(xz)) == 0)
		return PROBED_XZ;
	if (n >= sizeof(zst) && memcmp(magic, zst, sizeof(zst)) == 0)
		return PROBED_ZSTD;
	return PROBED_RAW;
}

/*
 * A qcow2 from a source that is not a file: read at offsets when it can
 * (HTTP ranges), else as a stream, through a temporary file.
 */
static int qcow2_not_a_file(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	if (!src->bytes->ops->pread)
		return imgsrc_stream_init(ctx, src, IMGSRC_STREAM_PLAIN);
	bytesrc_advise(src->bytes, 0, 0, BYTESRC_NO_STREAM);
	return imgsrc_qcow2_init(ctx, src);
}

/*
 * The format by the first bytes. A file's raw image is read at offsets;
 * another source's is a stream.
 */
static int imgsrc_probe(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	uint8_t magic[MAGIC_SIZE] = { 0 };
	ssize_t n = bytesrc_peek(src->bytes, magic, MAGIC_SIZE);
	bool file = src->bytes->fd >= 0;

	/* A source's own failure (a server's) keeps its errno; a read error is the image's. */
	if (n < 0 && src->bytes->msg[0])
		return ctx_error(ctx, (int)-n, "%s", src->bytes->msg);
	if (n < 0)
		return ctx_error(ctx, n == -ENOMEM ? ENOMEM : ENOMEDIUM, "%s: cannot read: %s",
				 src->name, strerror((int)-n));
	if (n == 0)
		return ctx_error(ctx, ENOMEDIUM, "%s: the image is empty", src->name);
	switch (probe_magic(magic, (size_t)n)) {
	case PROBED_QCOW2:
		return file ? imgsrc_qcow2_init(ctx, src) : qcow2_not_a_file(ctx, src);
	case PROBED_GZIP:
		return imgsrc_stream_init(ctx, src, IMGSRC_STREAM_GZIP);
	case PROBED_XZ:
		return imgsrc_stream_init(ctx, src, IMGSRC_STREAM_XZ);
	case PROBED_ZSTD:
		return imgsrc_stream_init(ctx, src, IMGSRC_STREAM_ZSTD);
	default:
		return file ? imgsrc_raw_init(ctx, src) :
			      imgsrc_stream_init(ctx, src, IMGSRC_STREAM_PLAIN);
	}
}

/* A source over bytes (which it then owns) with the policy, its format not yet set; NULL without memory. */
static struct imgsrc *imgsrc_new(struct bytesrc *bytes, const struct imgsrc_policy *policy)
{
	struct imgsrc *src = calloc(1, sizeof(*src));

	if (!src) {
		bytesrc_close(bytes);
		return NULL;
	}
	src->bytes = src->data = bytes;
	src->name = bytes->name;
	if (policy)
		src->policy = *policy;
	src->size_known = true;
	src->room = UINT64_MAX;
	return src;
}

/* The format set up (rc 0): what the policy then allows; else the source closed. */
static int imgsrc_opened(struct imgsrc *src, int rc, struct imgsrc **out)
{
	/* Without a digest, a file that is not the payload is hashed beside the chunks. */
	src->drop_behind =
		!src->bytes->in_memory && (src->policy.hash_given || src->identity_is_payload);
	if (rc < 0)
		imgsrc_close(src);
	else
		*out = src;
	return rc;
}

int imgsrc_open(struct imgdev_ctx *ctx, struct bytesrc *bytes, const struct imgsrc_policy *policy,
		struct imgsrc **out)
{
	struct imgsrc *src = imgsrc_new(bytes, policy);
	int rc = 0;

	if (!src)
		return ctx_error(ctx, ENOMEM, "out of memory");
	if (bytes->size_known && bytes->size == 0)
		rc = ctx_error(ctx, ENOMEDIUM, "%s: the image is empty", src->name);
	if (rc == 0)
		rc = imgsrc_probe(ctx, src);
	if (rc == 0 && src->size_known && src->size == 0)
		rc = ctx_error(ctx, ENOMEDIUM, "%s: the image's virtual size is 0", src->name);
	return imgsrc_opened(src, rc, out);
}

int imgsrc_open_raw_at(struct imgdev_ctx *ctx, struct bytesrc *bytes, uint64_t start,
		       const struct imgsrc_policy *policy, struct imgsrc **out)
{
	struct imgsrc *src = imgsrc_new(bytes, policy);

	if (!src)
		return ctx_error(ctx, ENOMEM, "out of memory");
	return imgsrc_opened(src, imgsrc_stream_init_at(ctx, src, start), out);
}

void imgsrc_close(struct imgsrc *src)
{
	if (!src)
		return;
	if (src->ops)
		src->ops->close(src);
	if (src->data != src->bytes)
		bytesrc_close(src->data);
	bytesrc_close(src->bytes);
	free(src);
}

void imgsrc_peek(struct bytesrc *bytes, struct imgdev_image_info *info)
{
	uint8_t h[QCOW2_PEEK_SIZE];
	struct qcow2_peek q;

	snprintf(info->format, sizeof(info->format), "raw");
	snprintf(info->compression, sizeof(info->compression), "none");
	if (!bytes->size_known || bytes->size < sizeof(h) || bytesrc_pread(bytes, h, sizeof(h), 0) < 0 ||
	    !qcow2_peek(h, sizeof(h), &q))
		return;
	snprintf(info->format, sizeof(info->format), "qcow2");
	info->qcow2_version = q.version;
	info->cluster_size = q.cluster_size;
	info->virtual_size = q.size;
}

void imgsrc_info(const struct imgsrc *src, struct imgdev_image_info *info)
{
	snprintf(info->format, sizeof(info->format), "%s", src->format);
	snprintf(info->compression, sizeof(info->compression), "%s", src->compression);
	info->virtual_size = src->size;
	if (src->ops->info)
		src->ops->info(src, info);
}

int imgsrc_read_chunk(struct imgsrc *src, struct chunk *c)
{
	atomic_store_explicit(&src->read_through, true, memory_order_relaxed);
	return src->ops->read_chunk(src, c);
}

void imgsrc_release_chunk(struct imgsrc *src, const struct chunk *c)
{
	if (src->ops->release_chunk)
		src->ops->release_chunk(src, c);
}

int imgsrc_check_unchanged(struct imgdev_ctx *ctx, const struct imgsrc *src)
{
	return bytesrc_check_unchanged(ctx, src->bytes);
}

void imgsrc_drop_cache(const struct imgsrc *src)
{
	if (atomic_load(&src->read_through) && !src->bytes->in_memory)
		bytesrc_advise(src->bytes, 0, 0, BYTESRC_DONE);
}

int imgsrc_hash_file(struct imgdev_ctx *ctx, struct imgsrc *src, uint8_t hash[IMGDEV_HASH_SIZE])
{
	struct sha256 *md = sha256_new();
	uint8_t *buf = malloc(HASH_READ_SIZE);
	uint64_t size = src->bytes->size;
	int rc = 0;

	atomic_store(&src->read_through, true);
	if (!md || !buf)
		rc = ctx_error(ctx, ENOMEM, "out of memory");
	for (uint64_t off = 0; rc == 0 && off < size; off += HASH_READ_SIZE) {
		size_t n = size - off < HASH_READ_SIZE ? (size_t)(size - off) : HASH_READ_SIZE;

		rc = bytesrc_pread(src->bytes, buf, n, off);
		if (rc < 0)
			rc = ctx_error(ctx, ENOMEDIUM, "%s: read error at offset %llu: %s", src->name,
				       (unsigned long long)off, strerror(-rc));
		else
			sha256_update(md, buf, n);
	}
	if (rc == 0)
		sha256_final(md, hash);
	free(buf);
	sha256_free(md);
	return rc;
}
