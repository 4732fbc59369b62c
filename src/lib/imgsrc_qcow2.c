/*
 * The qcow2 image source: chunks of the virtual disk through the qcow2
 * reader, from any worker at once (decompression spreads over the cores).
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

static int qcow2_read_chunk(struct imgsrc *src, struct chunk *c)
{
	struct qcow2_out out = { .buf = c->buf, .zeros = chunk_zeros, .arg = c };
	char err[256];
	int rc = qcow2_read(src->priv, &out, c->off, c->len, err, sizeof(err));

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
