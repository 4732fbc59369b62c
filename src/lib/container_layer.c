/*
 * One layer blob of a container image as a byte source for the disk reader
 * (container_layer.h): opened on its first read (a file of the layout, a
 * blob of the registry) through the hashing source, read in order, and at
 * its end checked against its descriptor's size and digest. Once ranges are
 * allowed (a qcow2 disk read at offsets in an uncompressed layer), skip
 * passes over bytes without reading them and what follows is read at
 * offsets; the hash then gathers every byte, whoever read it, and reads
 * what no one did at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"
#include "container.h"
#include "container_layer.h"
#include "internal.h"
#include "registry.h"
#include "sha256.h"

struct layer_state {
	struct container_image *ci;
	const struct oci_descriptor *d;
	size_t index;		/* in the manifest, 0 the lowest */
	struct imgdev_ctx *ctx; /* the opening's and the blob's: reads may be on any thread */
	struct bytesrc *blob;	/* the hashing source over the blob; NULL until first read */
	uint64_t got;		/* bytes of the blob passed: read, or skipped */
	bool ranges;		/* container_layer_allow_ranges */
	bool by_pread;		/* skipped once: read at offsets from got on */
	bool ended;
	int end_rc; /* once ended: the check's result, given to every read after */
};

/* The layer's blob, opened through the hashing source. 0 or -errno, the message in bs->msg. */
static int layer_open(struct bytesrc *bs, struct layer_state *l)
{
	struct bytesrc *inner = NULL;
	char *path = NULL;
	int rc = 0;

	if (l->ci->reg) {
		rc = registry_open_blob(l->ctx, l->ci->reg, l->d, &inner);
	} else {
		rc = oci_layout_blob_path(l->ctx, l->ci->layout_dir, l->d->digest, &path);
		if (rc == 0)
			rc = bytesrc_open_file(l->ctx, path, &inner);
		free(path);
	}
	if (rc == 0)
		rc = bytesrc_hash_wrap(l->ctx, inner, &l->blob);
	if (rc < 0)
		snprintf(bs->msg, sizeof(bs->msg), "layer %zu (%s): %s", l->index + 1, l->d->digest,
			 imgdev_ctx_last_error(l->ctx));
	return rc == -ENOENT ? -ENOMEDIUM : rc;
}

/* At the blob's end: all of it hashed, its size and digest the descriptor's? 0 or -errno. */
static int layer_check_end(struct bytesrc *bs, struct layer_state *l)
{
	uint8_t h[SHA256_SIZE];
	char got[OCI_DIGEST_MAX];
	uint64_t size = 0;
	int rc = l->got == l->d->size ? bytesrc_hash_finish(l->ctx, l->blob, h, &size) : 0;

	if (rc < 0) {
		snprintf(bs->msg, sizeof(bs->msg), "layer %zu: %s", l->index + 1,
			 imgdev_ctx_last_error(l->ctx));
		return rc;
	}
	if (l->got != l->d->size || size != l->d->size) {
		snprintf(bs->msg, sizeof(bs->msg), "layer %zu (%s) ends after %llu of its %llu bytes",
			 l->index + 1, l->d->digest, (unsigned long long)l->got,
			 (unsigned long long)l->d->size);
		return -EILSEQ;
	}
	imgdev_format_hash(h, got);
	if (strcmp(got, l->d->digest) == 0)
		return 0;
	snprintf(bs->msg, sizeof(bs->msg), "layer %zu: digest %s expected, the blob hashes to %s",
		 l->index + 1, l->d->digest, got);
	return -EILSEQ;
}

/* The next bytes, in order or (after a skip) at offset got: how many, 0 at the end, or -errno. */
static ssize_t next_bytes(struct layer_state *l, void *buf, size_t len)
{
	uint64_t left = l->d->size - (l->got < l->d->size ? l->got : l->d->size);
	int rc;

	if (!l->by_pread)
		return bytesrc_read(l->blob, buf, len);
	if (len > left)
		len = (size_t)left;
	if (len == 0)
		return 0;
	rc = bytesrc_pread(l->blob, buf, len, l->got);
	return rc < 0 ? rc : (ssize_t)len;
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
	n = next_bytes(l, buf, len);
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
	return n;
}

int container_layer_drain(struct bytesrc *bs)
{
	const struct layer_state *l = bs->priv;
	uint8_t buf[65536];
	ssize_t n;

	if (!l->blob)
		return 0;
	do
		n = layer_read(bs, buf, sizeof(buf));
	while (n > 0);
	return (int)n;
}

int64_t container_layer_skip(struct bytesrc *bs, int64_t n)
{
	struct layer_state *l = bs->priv;
	uint64_t left;

	if (!l->ranges || !l->blob || l->ended || n <= 0)
		return 0;
	left = l->got < l->d->size ? l->d->size - l->got : 0;
	if ((uint64_t)n > left)
		n = (int64_t)left;
	if (!l->by_pread)
		bytesrc_advise(l->blob, 0, 0, BYTESRC_NO_STREAM);
	l->by_pread = true;
	l->got += (uint64_t)n;
	return n;
}

void container_layer_allow_ranges(struct bytesrc *bs)
{
	struct layer_state *l = bs->priv;

	l->ranges = true;
}

struct bytesrc *container_layer_blob(const struct bytesrc *bs)
{
	const struct layer_state *l = bs->priv;

	return l->blob;
}

static void layer_close(struct bytesrc *bs)
{
	struct layer_state *l = bs->priv;

	if (!l)
		return;
	bytesrc_close(l->blob);
	imgdev_ctx_free(l->ctx);
	free(l);
}

static const struct bytesrc_ops layer_ops = {
	.read = layer_read,
	.close = layer_close,
};

int container_layer_new(struct imgdev_ctx *ctx, struct container_image *ci, size_t i,
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
	}
	if (!bs || !l || !bs->name || ctx_new_child(ctx, &l->ctx) < 0) {
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
