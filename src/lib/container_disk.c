/*
 * The disk inside a container image's layers (container.h), as a byte
 * source: each layer blob is a source of its own (container_layer.c,
 * checked against its descriptor at its end); over them, tar_disk.c finds
 * the disk and streams it. A disk in an uncompressed layer whose blob can
 * be read at offsets (a file of the layout, a registry that honours
 * ranges) is also offered at offsets, the blob's from the entry's data on:
 * a qcow2 is then read there, not through a temporary file, and the tar
 * reader passes over the data it no longer streams. Errors keep the
 * layer's words; a blob that is not its digest is -EILSEQ.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"
#include "container.h"
#include "container_layer.h"
#include "internal.h"
#include "tar_disk.h"

/* The disk source: the tar reader over the layers, which it owns. */
struct disk_state {
	struct bytesrc *tar;
	struct bytesrc **layers;
	struct tar_layer *tl;
	size_t n;
	struct tar_disk_info info;
	/* The disk's layer's blob when the disk can be read at offsets there, else NULL. */
	struct bytesrc *ranged;
	bool skipping; /* told to stop streaming: the tar reader passes over the data */
};

/*
 * What an error means to the caller: a layer that is not a tar, one that
 * ends inside an entry, no disk or two, are an image imgdev cannot read
 * (-ENOMEDIUM); the rest (a digest, a read error, the registry's) as they
 * are.
 */
static int disk_errno(int rc)
{
	return rc == -EBADMSG || rc == -ENOTUNIQ || rc == -ENOENT || rc == -ENODATA ? -ENOMEDIUM
										      : rc;
}

/*
 * The tar reader failed on what it read (a corrupt gzip stream, a tar cut
 * short): whether a layer it was reading is not its digest, which is then
 * the error told (-EILSEQ, its words in msg); else rc.
 */
static int blame_digest(struct disk_state *s, int rc, char *msg, size_t cap)
{
	if (rc != -EBADMSG && rc != -ENODATA)
		return rc;
	for (size_t i = 0; i < s->n; i++) {
		if (container_layer_drain(s->layers[i]) == -EILSEQ) {
			snprintf(msg, cap, "%s", s->layers[i]->msg);
			return -EILSEQ;
		}
	}
	return rc;
}

/* The tar reader's failure into bs->msg, after the image's name (it keeps the layer's words). */
static ssize_t disk_failed(struct bytesrc *bs, struct disk_state *s, ssize_t rc)
{
	char why[sizeof(bs->msg)];

	snprintf(why, sizeof(why), "%s", bytesrc_error(s->tar, (int)rc));
	rc = blame_digest(s, (int)rc, why, sizeof(why));
	snprintf(bs->msg, sizeof(bs->msg), "%.100s: %.400s", bs->name, why);
	return disk_errno((int)rc);
}

static ssize_t disk_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct disk_state *s = bs->priv;
	ssize_t n = bytesrc_read(s->tar, buf, len);

	return n < 0 ? disk_failed(bs, s, n) : n;
}

static ssize_t disk_peek(struct bytesrc *bs, void *buf, size_t len)
{
	struct disk_state *s = bs->priv;
	ssize_t n = bytesrc_peek(s->tar, buf, len);

	return n < 0 ? disk_failed(bs, s, n) : n;
}

/*
 * Before the commit: the layers read to their ends (what the format left
 * unread of the disk, then the rest), so each was checked; a disk longer
 * than its tar entry cannot be (the entry's size bounds it).
 */
static int disk_check(struct imgdev_ctx *ctx, const struct bytesrc *bs)
{
	struct disk_state *s = bs->priv;
	uint8_t buf[16384];
	ssize_t n;

	do
		n = bytesrc_read(s->tar, buf, sizeof(buf));
	while (n > 0);
	if (n < 0) {
		char why[sizeof(bs->msg)];

		snprintf(why, sizeof(why), "%s", bytesrc_error(s->tar, (int)n));
		n = blame_digest(s, (int)n, why, sizeof(why));
		return ctx_error(ctx, -disk_errno((int)n), "%s: %s", bs->name, why);
	}
	return 0;
}

/* The disk's bytes [off, off + len) from its layer's blob. 0 or -errno, the message in bs->msg. */
static int disk_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
{
	struct disk_state *s = bs->priv;
	int rc;

	if (off > bs->size || len > bs->size - off) {
		snprintf(bs->msg, sizeof(bs->msg), "%.200s: a read past the end of %.200s", bs->name,
			 s->info.path);
		return -EIO;
	}
	rc = bytesrc_pread(s->ranged, buf, len, s->info.data_offset + off);
	if (rc < 0)
		snprintf(bs->msg, sizeof(bs->msg), "%s: layer %zu: %s", bs->name, s->info.layer + 1,
			 bytesrc_error(s->ranged, rc));
	return rc < 0 ? disk_errno(rc) : 0;
}

/* Read will not be called again: the tar reader stops streaming the disk's data. */
static void disk_advise(const struct bytesrc *bs, uint64_t off, uint64_t len,
			enum bytesrc_advice advice)
{
	struct disk_state *s = bs->priv;

	(void)off;
	(void)len;
	if (advice != BYTESRC_NO_STREAM || s->skipping)
		return;
	s->skipping = true;
	container_layer_allow_ranges(s->layers[s->info.layer]);
	tar_disk_skip_data(s->tar);
}

static void disk_close(struct bytesrc *bs)
{
	struct disk_state *s = bs->priv;

	if (!s)
		return;
	bytesrc_close(s->tar);
	for (size_t i = 0; s->layers && i < s->n; i++)
		bytesrc_close(s->layers[i]);
	free(s->layers);
	free(s->tl);
	free(s);
}

static const struct bytesrc_ops disk_ops = {
	.read = disk_read,
	.peek = disk_peek,
	.check_unchanged = disk_check,
	.close = disk_close,
};

/* A disk in an uncompressed layer whose blob has pread: at offsets too. */
static const struct bytesrc_ops disk_ranged_ops = {
	.pread = disk_pread,
	.read = disk_read,
	.peek = disk_peek,
	.check_unchanged = disk_check,
	.advise = disk_advise,
	.close = disk_close,
};

/* The layer sources, one per layer of ci's manifest, into s. 0 or -ENOMEM. */
static int open_layers(struct imgdev_ctx *ctx, struct container_image *ci, struct disk_state *s)
{
	size_t n = ci->m.n_layers;

	s->layers = calloc(n, sizeof(*s->layers));
	s->tl = calloc(n, sizeof(*s->tl));
	if (!s->layers || !s->tl)
		return ctx_error(ctx, ENOMEM, "out of memory");
	for (; s->n < n; s->n++) {
		int rc = container_layer_new(ctx, ci, s->n, &s->layers[s->n]);

		if (rc < 0)
			return rc;
		s->tl[s->n].bs = s->layers[s->n];
		s->tl[s->n].skip = container_layer_skip;
	}
	return 0;
}

/*
 * A disk of a known size in an uncompressed layer whose blob has pread is
 * offered at offsets too (a qcow2 is read there: said in the log).
 */
static void offer_ranges(struct imgdev_ctx *ctx, struct bytesrc *bs, struct disk_state *s)
{
	static const uint8_t qcow2_magic[4] = { 'Q', 'F', 'I', 0xfb };
	struct bytesrc *blob = container_layer_blob(s->layers[s->info.layer]);
	uint8_t magic[4];

	if (!s->info.layer_uncompressed || !bs->size_known || !blob || !blob->ops->pread)
		return;
	s->ranged = blob;
	bs->ops = &disk_ranged_ops;
	if (bytesrc_peek(s->tar, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
	    memcmp(magic, qcow2_magic, sizeof(magic)) == 0)
		ctx_log(ctx, LOGP_INFO,
			"%s: a qcow2 in an uncompressed layer: read at offsets in its blob, from "
			"byte %llu",
			bs->name, (unsigned long long)s->info.data_offset);
}

int container_open_disk(struct imgdev_ctx *ctx, struct container_image *ci, struct bytesrc **disk)
{
	struct tar_disk_opts o = { .disk_path = ctx->container.disk_path };
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	struct disk_state *s = calloc(1, sizeof(*s));
	int rc;

	*disk = NULL;
	if (!bs || !s || !(bs->name = strdup(ci->name))) {
		free(s);
		bytesrc_close(bs);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	bs->ops = &disk_ops;
	bs->priv = s;
	bs->fd = -1;
	rc = open_layers(ctx, ci, s);
	if (rc == 0)
		rc = tar_disk_open(ctx, s->tl, s->n, &o, &s->tar);
	if (rc < 0) {
		char why[IMGDEV_ERRMSG_MAX];

		snprintf(why, sizeof(why), "%s", imgdev_ctx_last_error(ctx));
		rc = blame_digest(s, rc, why, sizeof(why));
		bytesrc_close(bs);
		return ctx_error(ctx, -disk_errno(rc), "%s: %s", ci->name, why);
	}
	tar_disk_info(s->tar, &s->info);
	bs->size = s->tar->size;
	bs->size_known = s->tar->size_known;
	ctx_log(ctx, LOGP_INFO, "%s: the disk is %s in layer %zu of %zu, %llu bytes", ci->name,
		s->info.path, s->info.layer + 1, s->n, (unsigned long long)bs->size);
	offer_ranges(ctx, bs, s);
	*disk = bs;
	return 0;
}

void container_disk_info(const struct bytesrc *disk, struct tar_disk_info *info)
{
	const struct disk_state *s = disk->priv;

	tar_disk_info(s->tar, info);
}
