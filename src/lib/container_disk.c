/*
 * The disk inside a container image's layers (container.h), as a byte
 * source: each layer blob is a source of its own, opened when the disk
 * reader first reads it (a file of the layout, a blob of the registry),
 * counted and hashed as it passes, and checked against its descriptor at
 * its end; over them, tar_disk.c finds the disk and streams it. Errors keep
 * the layer's words; a blob that is not its digest is -EILSEQ.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"
#include "container.h"
#include "internal.h"
#include "registry.h"
#include "sha256.h"
#include "tar_disk.h"

/* One layer blob, checked as it is read. */
struct layer_state {
	struct container_image *ci;
	const struct oci_descriptor *d;
	size_t index;		 /* in the manifest, 0 the lowest */
	struct imgdev_ctx *ctx; /* the opening's and the blob source's: reads may be on any thread */
	struct bytesrc *blob;	 /* NULL until first read */
	struct sha256 *md;
	uint64_t got;
	bool ended;
	int end_rc; /* once ended: the check's result, given to every read after */
};

/* The layer's blob source, opened on its first read. 0 or -errno, the message in bs->msg. */
static int layer_open(struct bytesrc *bs, struct layer_state *l)
{
	char *path = NULL;
	int rc = 0;

	if (l->ci->reg) {
		rc = registry_open_blob(l->ctx, l->ci->reg, l->d, &l->blob);
	} else {
		rc = oci_layout_blob_path(l->ctx, l->ci->layout_dir, l->d->digest, &path);
		if (rc == 0)
			rc = bytesrc_open_file(l->ctx, path, &l->blob);
		free(path);
	}
	if (rc < 0)
		snprintf(bs->msg, sizeof(bs->msg), "layer %zu (%s): %s", l->index + 1, l->d->digest,
			 imgdev_ctx_last_error(l->ctx));
	return rc == -ENOENT ? -ENOMEDIUM : rc;
}

/* At the blob's end: its size and digest the descriptor's? 0, -EIO or -EILSEQ. */
static int layer_check_end(struct bytesrc *bs, struct layer_state *l)
{
	uint8_t h[SHA256_SIZE];
	char hex[2 * SHA256_SIZE + 1];

	if (l->got != l->d->size) {
		snprintf(bs->msg, sizeof(bs->msg), "layer %zu (%s) ends after %llu of its %llu bytes",
			 l->index + 1, l->d->digest, (unsigned long long)l->got,
			 (unsigned long long)l->d->size);
		return -EIO;
	}
	sha256_final(l->md, h);
	for (size_t i = 0; i < SHA256_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	if (strcmp(hex, l->d->digest + 7) == 0)
		return 0;
	snprintf(bs->msg, sizeof(bs->msg), "layer %zu: digest %s expected, the blob hashes to sha256:%s",
		 l->index + 1, l->d->digest, hex);
	return -EILSEQ;
}

static ssize_t layer_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct layer_state *l = bs->priv;
	ssize_t n;
	int rc;

	if (l->ended)
		return l->end_rc;
	if (!l->blob && (rc = layer_open(bs, l)) < 0)
		return rc;
	n = bytesrc_read(l->blob, buf, len);
	if (n < 0) {
		snprintf(bs->msg, sizeof(bs->msg), "layer %zu: %s", l->index + 1,
			 bytesrc_error(l->blob, (int)n));
		return n;
	}
	if (n == 0) {
		l->ended = true;
		l->end_rc = layer_check_end(bs, l);
		return l->end_rc;
	}
	if ((l->got += (uint64_t)n) > l->d->size) {
		snprintf(bs->msg, sizeof(bs->msg), "layer %zu (%s) is longer than its %llu bytes",
			 l->index + 1, l->d->digest, (unsigned long long)l->d->size);
		return -EILSEQ;
	}
	sha256_update(l->md, buf, (size_t)n);
	return n;
}

static void layer_close(struct bytesrc *bs)
{
	struct layer_state *l = bs->priv;

	if (!l)
		return;
	bytesrc_close(l->blob);
	imgdev_ctx_free(l->ctx);
	sha256_free(l->md);
	free(l);
}

static const struct bytesrc_ops layer_ops = {
	.read = layer_read,
	.close = layer_close,
};

/* A source for layer i of ci's manifest, not opened yet. 0 or -ENOMEM. */
static int layer_new(struct imgdev_ctx *ctx, struct container_image *ci, size_t i,
		     struct bytesrc **out)
{
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	struct layer_state *l = calloc(1, sizeof(*l));

	if (bs) {
		bs->ops = &layer_ops;
		bs->priv = l;
		bs->fd = -1;
		bs->name = strdup(ci->m.layers[i].digest);
	}
	if (l) {
		l->ci = ci;
		l->d = &ci->m.layers[i];
		l->index = i;
		l->md = sha256_new();
	}
	if (!bs || !l || !bs->name || !l->md || ctx_new_child(ctx, &l->ctx) < 0) {
		if (bs)
			bytesrc_close(bs);
		else
			free(l);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	bs->size = l->d->size;
	bs->size_known = true;
	*out = bs;
	return 0;
}

/* The disk source: the tar reader over the layers, which it owns. */
struct disk_state {
	struct bytesrc *tar;
	struct bytesrc **layers;
	struct tar_layer *tl;
	size_t n;
	struct tar_disk_info info;
};

/*
 * What an error means to the caller: a layer that is not a tar, one that
 * ends inside the disk, no disk or two, are an image imgdev cannot read
 * (-ENOMEDIUM); the rest (a digest, the registry's) as they are.
 */
static int disk_errno(int rc)
{
	return rc == -EBADMSG || rc == -ENOTUNIQ || rc == -ENOENT || rc == -EIO ? -ENOMEDIUM : rc;
}

/* The tar reader's failure into bs->msg, after the image's name (it keeps the layer's words). */
static ssize_t disk_failed(struct bytesrc *bs, struct disk_state *s, ssize_t rc)
{
	snprintf(bs->msg, sizeof(bs->msg), "%s: %s", bs->name, bytesrc_error(s->tar, (int)rc));
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
	if (n < 0)
		return ctx_error(ctx, -disk_errno((int)n), "%s: %s", bs->name,
				 bytesrc_error(s->tar, (int)n));
	return 0;
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

/* The layer sources, one per layer of ci's manifest, into s. 0 or -ENOMEM. */
static int open_layers(struct imgdev_ctx *ctx, struct container_image *ci, struct disk_state *s)
{
	size_t n = ci->m.n_layers;

	s->layers = calloc(n, sizeof(*s->layers));
	s->tl = calloc(n, sizeof(*s->tl));
	if (!s->layers || !s->tl)
		return ctx_error(ctx, ENOMEM, "out of memory");
	for (; s->n < n; s->n++) {
		int rc = layer_new(ctx, ci, s->n, &s->layers[s->n]);

		if (rc < 0)
			return rc;
		s->tl[s->n].bs = s->layers[s->n];
	}
	return 0;
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
		bytesrc_close(bs);
		return ctx_error(ctx, -disk_errno(rc), "%s: %s", ci->name, imgdev_ctx_last_error(ctx));
	}
	tar_disk_info(s->tar, &s->info);
	bs->size = s->tar->size;
	bs->size_known = s->tar->size_known;
	ctx_log(ctx, LOGP_INFO, "%s: the disk is %s in layer %zu of %zu, %llu bytes", ci->name,
		s->info.path, s->info.layer + 1, s->n, (unsigned long long)bs->size);
	*disk = bs;
	return 0;
}

void container_disk_info(const struct bytesrc *disk, struct tar_disk_info *info)
{
	const struct disk_state *s = disk->priv;

	tar_disk_info(s->tar, info);
}
