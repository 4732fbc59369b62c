/*
 * verify: read a device's payload back and check it against the content
 * hash in its commit record, with the chunk pipeline and no writes. What
 * the header must say first is checked here too, each refusal with why.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "blockdev.h"
#include "blockdev_io.h"
#include "header.h"
#include "internal.h"
#include "ops.h"
#include "pipeline.h"

/* The device side of verify: read the payload back. */
struct payload_reader {
	struct bdev_io io;
	uint64_t data_offset;
};

static int payload_read_chunk(void *arg, struct chunk *c)
{
	struct payload_reader *r = arg;
	uint64_t off = r->data_offset + c->off;
	int rc = bdev_io_pread(&r->io, c->buf, c->len, off);

	if (rc < 0)
		return chunk_error(c, rc, "%s: read error at payload offset %llu (device offset %llu): %s",
				   r->io.bd->path, (unsigned long long)c->off, (unsigned long long)off,
				   rc == -EIO ? "I/O error or unexpected end of device" : strerror(-rc));
	return 0;
}

/* What verify needs from the header: a complete record; else -ENODATA and why. */
static int verify_check_header(struct imgdev_ctx *ctx, const struct bdev *bd, const struct hdr *h)
{
	if (!hdr_has_magic(h))
		return ctx_error(ctx, ENODATA, "%s: no image header in sector 0", bd->path);
	if (!hdr_version_known(h) || h->rec_status == REC_NEWER)
		return ctx_error(ctx, EPROTO, "%s: header version %u (record version %u) is newer than this build understands",
				 bd->path, h->version, h->rec.version);
	if (h->rec_status == REC_ABSENT)
		return ctx_error(ctx, ENODATA, "%s: no commit record (the header was written by Virtlet or `ensure`), so there is nothing to verify against",
				 bd->path);
	if (h->rec_status == REC_CORRUPT)
		return ctx_error(ctx, EBADMSG, "%s: the commit record is damaged (a bad checksum, or fields that do not fit its header)", bd->path);
	if (h->rec.state != REC_STATE_COMPLETE)
		return ctx_error(ctx, ENODATA, "%s: the last write did not complete (state \"writing\"); provision again",
				 bd->path);
	if (bd->size < h->rec.data_offset || bd->size - h->rec.data_offset < h->rec.image_size)
		return ctx_error(ctx, EBADMSG, "%s: the record claims %llu bytes of payload, more than the device holds",
				 bd->path, (unsigned long long)h->rec.image_size);
	return 0;
}

/* Hash the payload h describes and compare it with the record; 0 or -errno. */
static int verify_payload(struct imgdev_ctx *ctx, const struct bdev *bd, const struct hdr *h,
			  const struct imgdev_verify_opts *opts, struct imgdev_verify_result *res)
{
	struct payload_reader reader = { .data_offset = h->rec.data_offset };
	struct pipeline_job job = { .size = h->rec.image_size, .workers = opts->threads,
				    .read_fn = payload_read_chunk, .arg = &reader,
				    .progress = opts->progress, .progress_arg = opts->progress_data };
	char want[72], got[72];
	int rc;

	bdev_io_open(&reader.io, bd, O_RDONLY);
	rc = pipeline_run(ctx, &job, res->content_hash, NULL);
	if (rc == 0 && memcmp(res->content_hash, h->rec.content_hash, IMGDEV_HASH_SIZE) != 0) {
		imgdev_format_hash(h->rec.content_hash, want);
		imgdev_format_hash(res->content_hash, got);
		rc = ctx_error(ctx, EBADMSG,
			       "%s: the payload does not match its commit record: content hash %s, recorded %s",
			       bd->path, got, want);
	}
	bdev_io_close(&reader.io);
	return rc;
}

int imgdev_verify(struct imgdev_ctx *ctx, const char *device,
		  const struct imgdev_verify_opts *opts, struct imgdev_verify_result *res)
{
	static const struct imgdev_verify_opts defaults = IMGDEV_VERIFY_OPTS_INIT;
	double t0 = monotonic_seconds();
	struct bdev bd;
	struct hdr h;
	int rc;

	memset(res, 0, sizeof(*res));
	if (!opts)
		opts = &defaults;
	if (opts->version < 1 || opts->version > IMGDEV_VERIFY_OPTS_VERSION)
		return ctx_error(ctx, EINVAL, "verify options of an unknown version");
	rc = bdev_open(ctx, device, O_RDONLY, &bd);
	if (rc < 0)
		return rc;
	rc = bdev_read_header(ctx, &bd, &h);
	if (rc == 0)
		rc = verify_check_header(ctx, &bd, &h);
	if (rc < 0)
		goto out;
	memcpy(res->image_hash, h.image_hash, IMGDEV_HASH_SIZE);
	res->image_size = h.rec.image_size;
	rc = verify_payload(ctx, &bd, &h, opts, res);
out:
	res->seconds = monotonic_seconds() - t0;
	bdev_close(&bd);
	return rc;
}
