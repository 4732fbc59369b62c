/*
 * The qcow2 image source: chunks of the virtual disk through the qcow2
 * reader, from any worker at once (decompression spreads over the cores).
 * When the caller allows it (src->map_chunks), a chunk's uncompressed
 * clusters are mapped from the file rather than read (chunk_map.c).
 * The identity hash is of the qcow2 file, not of the payload.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev.h"
#include "imgsrc.h"
#include "internal.h"
#include "qcow2.h"

static int fd_pread(void *arg, void *buf, size_t len, uint64_t off)
{
	const struct imgsrc *src = arg;

	return bdev_pread_full(src->data_fd, buf, len, off);
}

static void chunk_zeros(void *arg, uint32_t from, uint32_t to)
{
	chunk_zero_range(arg, from, to);
}

/* A mapped chunk: place each run of data clusters there as a mapping of the file. */
struct mapped_read {
	const struct imgsrc *src;
	struct chunk *c;
};

static void mapped_zeros(void *arg, uint32_t from, uint32_t to)
{
	const struct mapped_read *m = arg;

	chunk_zero_range(m->c, from, to);
}

static int mapped_place(void *arg, uint32_t at, uint32_t len, uint64_t host)
{
	const struct mapped_read *m = arg;

	return chunk_map_file(m->c, at, len, m->src->data_fd, host);
}

/*
 * Map the chunk's data clusters (src->map_chunks); 0, or -errno with c
 * reset to be read instead: a compressed cluster, clusters or subclusters
 * smaller than a page, or a failed mapping (whose read gives the clearer
 * error).
 */
static int qcow2_map_chunk(struct imgsrc *src, struct chunk *c)
{
	struct mapped_read m = { .src = src, .c = c };
	struct qcow2_out out = { .zeros = mapped_zeros, .place = mapped_place, .arg = &m };
	char err[256];
	int rc = chunk_map_begin(c);

	if (rc == 0)
		rc = qcow2_read(src->priv, &out, c->off, c->len, err, sizeof(err));
	if (rc == 0)
		c->all_zero = out.all_zero;
	else
		chunk_reset(c, c->off, c->len);
	return rc;
}

static int qcow2_read_chunk(struct imgsrc *src, struct chunk *c)
{
	struct qcow2_out out = { .buf = c->buf, .zeros = chunk_zeros, .arg = c };
	char err[256];
	int rc;

	/* Mostly compressed images would give up on nearly every chunk. */
	if (src->map_chunks && src->compressed < src->allocated / 2 && qcow2_map_chunk(src, c) == 0)
		return 0;
	rc = qcow2_read(src->priv, &out, c->off, c->len, err, sizeof(err));
	if (rc < 0)
		return chunk_error(c, rc, "%s: %s", src->path, err);
	c->all_zero = out.all_zero;
	return 0;
}

static void qcow2_src_close(struct imgsrc *src)
{
	if (src->priv)
		qcow2_close(src->priv);
	free(src->priv);
	src->priv = NULL;
}

static const struct imgsrc_ops qcow2_ops = {
	.read_chunk = qcow2_read_chunk,
	.close = qcow2_src_close,
};

int imgsrc_qcow2_init(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	char err[256];
	int rc;

	if (!q)
		return ctx_error(ctx, ENOMEM, "out of memory");
	src->priv = q;
	src->ops = &qcow2_ops;
	rc = qcow2_open(q, fd_pread, src,
			src->data_fd == src->fd ? src->file_size : src->file_size_inner, err,
			sizeof(err));
	if (rc == 0)
		rc = qcow2_check(q, &src->allocated, &src->compressed, err, sizeof(err));
	if (rc < 0)
		return ctx_error(ctx, rc, "%s: qcow2: %s", src->path, err);
	src->format = "qcow2";
	src->compression = "none";	/* of the file; clusters may be compressed too */
	src->size = q->size;
	src->identity_is_payload = false;
	return 0;
}
