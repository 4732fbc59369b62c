/*
 * The qcow2 image source: chunks of the virtual disk through the qcow2
 * reader over the byte source's pread, from any worker at once
 * (decompression spreads over the cores). When the policy allows it
 * (map_chunks) and the bytes are a file's, a chunk's uncompressed clusters
 * are mapped from the file rather than read (chunk_map.c). Released
 * chunks' clusters leave the page cache. The identity hash is of the qcow2
 * file, not of the payload.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "bytesrc.h"
#include "imgsrc.h"
#include "internal.h"
#include "qcow2.h"

/* The format's state: the reader, and what its check counted. */
struct qcow2_src {
	struct qcow2 q;
	uint64_t allocated;  /* virtual bytes backed by data */
	uint64_t compressed; /* of those, in compressed clusters */
};

static int data_pread(void *arg, void *buf, size_t len, uint64_t off)
{
	return bytesrc_pread(arg, buf, len, off);
}

static void chunk_zeros(void *arg, uint32_t from, uint32_t to)
{
	chunk_zero_range(arg, from, to);
}

/*
 * A mapped chunk: the walk over its clusters records the runs of data
 * clusters (page-aligned ones only), and they are mapped once the walk
 * found no compressed cluster, so that a chunk that must be read after all
 * has mapped and faulted in nothing.
 */
#define MAX_RUNS (CHUNK_SIZE / 4096)

struct mapped_read {
	uint32_t count;
	struct {
		uint32_t at, len;
		uint64_t host;
	} runs[MAX_RUNS];
	struct chunk *c;
};

static void mapped_zeros(void *arg, uint32_t from, uint32_t to)
{
	struct mapped_read *m = arg;

	chunk_zero_range(m->c, from, to);
}

static int mapped_place(void *arg, uint32_t at, uint32_t len, uint64_t host)
{
	struct mapped_read *m = arg;

	if (m->count == MAX_RUNS || !chunk_map_aligned(at) || !chunk_map_aligned(len) ||
	    !chunk_map_aligned(host))
		return -EINVAL;
	m->runs[m->count].at = at;
	m->runs[m->count].len = len;
	m->runs[m->count++].host = host;
	return 0;
}

/*
 * Map the chunk's data clusters (map_chunks); 0, or -errno with c
 * reset to be read instead: a compressed cluster, clusters or subclusters
 * smaller than a page, or a failed mapping (whose read gives the clearer
 * error).
 */
static int qcow2_map_chunk(struct imgsrc *src, struct chunk *c)
{
	struct qcow2_src *qs = src->priv;
	struct mapped_read m = { .c = c };
	struct qcow2_out out = { .zeros = mapped_zeros, .place = mapped_place, .arg = &m };
	char err[256];
	int rc = qcow2_read(&qs->q, &out, c->off, c->len, err, sizeof(err));

	if (rc == 0 && out.all_zero) {
		c->all_zero = true; /* nothing to map */
		return 0;
	}
	if (rc == 0)
		rc = chunk_map_begin(c);
	for (uint32_t i = 0; rc == 0 && i < m.count; i++)
		rc = chunk_map_file(c, m.runs[i].at, m.runs[i].len, src->data->fd, m.runs[i].host);
	if (rc < 0)
		chunk_reset(c, c->off, c->len);
	return rc;
}

static int qcow2_read_chunk(struct imgsrc *src, struct chunk *c)
{
	struct qcow2_src *qs = src->priv;
	struct qcow2_out out = { .buf = c->buf, .zeros = chunk_zeros, .arg = c };
	char err[256];
	int rc;

	/* Mostly compressed images would give up on nearly every chunk. */
	if (src->policy.map_chunks && src->data->fd >= 0 && qs->compressed < qs->allocated / 2 &&
	    qcow2_map_chunk(src, c) == 0)
		return 0;
	rc = qcow2_read(&qs->q, &out, c->off, c->len, err, sizeof(err));
	/* A source that says why it failed (a server) keeps its errno and its words. */
	if (rc < 0 && src->data->msg[0])
		return chunk_error(c, rc, "%s", src->data->msg);
	if (rc < 0)
		return chunk_error(c, rc == -ENOMEM ? rc : -ENOMEDIUM, "%s: %s", src->name, err);
	c->all_zero = out.all_zero;
	return 0;
}

/*
 * File ranges to drop from the page cache, joined while contiguous, and
 * widened to FOLIO_MAX: the page cache holds a file in folios of up to a
 * PMD (2 MiB on x86-64), and only a folio wholly inside the range is
 * dropped. A chunk's clusters rarely start or end on such a boundary, so
 * exact ranges left a folio at every chunk's edge (27 % of an image in a
 * test). What the wider range takes of a neighbour costs at most a re-read:
 * mapped pages and pages in use are never dropped. Where a PMD is larger
 * (arm64 with 64 KiB pages), edge folios stay until the drop at the end.
 */
#define FOLIO_MAX (2 * 1024 * 1024)

struct page_drop {
	const struct bytesrc *bytes;
	uint64_t start, end;
};

static void drop_pending(struct page_drop *d)
{
	uint64_t start = d->start & ~(uint64_t)(FOLIO_MAX - 1);
	uint64_t end = (d->end + FOLIO_MAX - 1) & ~(uint64_t)(FOLIO_MAX - 1);

	if (d->end > d->start)
		bytesrc_advise(d->bytes, start, end - start, BYTESRC_DONE);
}

static int drop_add(struct page_drop *d, uint64_t host, uint64_t len)
{
	if (host != d->end) {
		drop_pending(d);
		d->start = host;
	}
	d->end = host + len;
	return 0;
}

static int drop_data(void *arg, uint32_t at, uint32_t len, uint64_t host)
{
	(void)at;
	return drop_add(arg, host, len);
}

static int drop_compressed(void *arg, uint64_t host, uint64_t len)
{
	return drop_add(arg, host, len);
}

static void no_zeros(void *arg, uint32_t from, uint32_t to)
{
	(void)arg, (void)from, (void)to;
}

/*
 * Done with the chunk (written, hashed, unmapped): drop the file's pages
 * that held its clusters, found by walking its L2 entries again, so that
 * a large image does not push the node's page cache out (as the raw source
 * does). Not while the file is hashed beside the chunks (drop_behind), nor
 * for the temporary file of a compressed stream, whose dirty pages would
 * be written back.
 */
static void qcow2_release_chunk(struct imgsrc *src, const struct chunk *c)
{
	struct qcow2_src *qs = src->priv;
	struct page_drop d = { .bytes = src->data };
	struct qcow2_out out = {
		.zeros = no_zeros, .place = drop_data, .place_compressed = drop_compressed, .arg = &d
	};
	char err[256];

	/* No file, no page cache: a URL's L2 entries are not fetched again for nothing. */
	if (!src->drop_behind || src->data != src->bytes || src->data->fd < 0)
		return;
	if (qcow2_read(&qs->q, &out, c->off, c->len, err, sizeof(err)) == 0)
		drop_pending(&d);
}

static void qcow2_info(const struct imgsrc *src, struct imgdev_image_info *info)
{
	const struct qcow2_src *qs = src->priv;

	info->qcow2_version = qs->q.version;
	info->cluster_size = qs->q.cluster_size;
	info->extended_l2 = qs->q.extended_l2;
	info->dirty = qs->q.dirty;
	info->allocated = qs->allocated; /* counted when the tables were checked */
	info->allocated_known = true;
	if (qs->compressed)
		snprintf(info->cluster_compression, sizeof(info->cluster_compression), "%s",
			 qs->q.compression_type == 1 ? "zstd" : "zlib");
}

static void qcow2_src_close(struct imgsrc *src)
{
	struct qcow2_src *qs = src->priv;

	if (qs)
		qcow2_close(&qs->q);
	free(qs);
	src->priv = NULL;
}

static const struct imgsrc_ops qcow2_ops = {
	.read_chunk = qcow2_read_chunk,
	.release_chunk = qcow2_release_chunk,
	.info = qcow2_info,
	.close = qcow2_src_close,
};

int imgsrc_qcow2_init(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	struct qcow2_src *qs = calloc(1, sizeof(*qs));
	char err[256];
	int rc;

	if (!qs)
		return ctx_error(ctx, ENOMEM, "out of memory");
	src->priv = qs;
	src->ops = &qcow2_ops;
	rc = qcow2_open(&qs->q, data_pread, src->data, src->data->size, err, sizeof(err));
	if (rc == 0)
		rc = qcow2_check(&qs->q, &qs->allocated, &qs->compressed, err, sizeof(err));
	if (rc < 0 && src->data->msg[0])
		return ctx_error(ctx, rc, "%s", src->data->msg);
	if (rc < 0)
		return ctx_error(ctx, rc == -ENOTSUP || rc == -ENOMEM ? rc : -ENOMEDIUM,
				 "%s: qcow2: %s", src->name, err);
	src->format = "qcow2";
	src->compression = "none"; /* of the file; clusters may be compressed too */
	src->size = qs->q.size;
	src->identity_is_payload = false;
	return 0;
}
