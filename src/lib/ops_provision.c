/*
 * provision: put an image on a device and map it, unless the device already
 * holds it (a complete record for this image: nothing is written). The
 * checks before any write are here; the write itself, by the commit
 * protocol, is provision_write.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "blockdev.h"
#include "bytesrc.h"
#include "container.h"
#include "header.h"
#include "identity.h"
#include "imgsrc.h"
#include "internal.h"
#include "layout.h"
#include "ops.h"

/* The layout the caller asked for (AUTO before options version 3). */
static enum imgdev_layout layout_asked(const struct imgdev_provision_opts *opts)
{
	return opts->version >= 3 ? opts->layout : IMGDEV_LAYOUT_AUTO;
}

/*
 * Whether h has a complete record for an image of image_size bytes in a
 * layout the device takes and the provision accepts (want; AUTO: either),
 * on a device that holds it.
 */
static bool complete_record_fits(const struct hdr *h, const struct bdev *bd, uint64_t image_size,
				 enum imgdev_layout want)
{
	return hdr_record_is(h, REC_STATE_COMPLETE) && h->rec.image_size == image_size &&
	       layout_fits_device(bd, h->version) &&
	       (want == IMGDEV_LAYOUT_AUTO || layout_version(want) == h->version) &&
	       layout_room(bd, hdr_data_offset(h)) >= layout_round_up(bd, image_size);
}

/*
 * Whether the device already holds this image: a complete record for an
 * image of this size whose hash is the digest (or, without one, the hash
 * of the image file, computed only when the record makes a match possible).
 */
static int header_matches(struct imgdev_ctx *ctx, const struct bdev *bd, const struct hdr *h,
			  struct imgsrc *src, const struct imgdev_provision_opts *opts,
			  uint8_t hash[IMGDEV_HASH_SIZE])
{
	int rc;

	if (!complete_record_fits(h, bd, src->size, layout_asked(opts)))
		return 0;
	if (opts->has_digest) {
		memcpy(hash, opts->digest, IMGDEV_HASH_SIZE);
	} else {
		rc = identity_compute(ctx, src, hash);
		if (rc < 0)
			return rc;
	}
	return hdr_is_complete(h, hash);
}

static int check_provision_args(struct imgdev_ctx *ctx, const struct imgdev_provision_opts *opts)
{
	if (!opts || opts->version < 1 || opts->version > IMGDEV_PROVISION_OPTS_VERSION)
		return ctx_error(ctx, EINVAL, "provision options of an unknown version");
	if (opts->no_map)
		return 0;
	if (!opts->name)
		return ctx_error(ctx, EINVAL, "a mapping name is needed (or no mapping)");
	return imgdev_check_name(ctx, opts->name);
}

/*
 * Before any write: the target can be mapped afterwards by be (NULL: no
 * mapping), no loop device sits over it, and it has room from data_offset.
 */
static int check_write_target(struct imgdev_ctx *ctx, const struct map_backend *be,
			      const struct bdev *bd, uint64_t data_offset, const struct imgsrc *src,
			      const struct imgdev_provision_opts *opts)
{
	int rc = be ? be->check_target(ctx, bd) : 0;

	if (rc == 0)
		rc = loopmap_check_not_mapped(ctx, bd);
	if (rc == 0 && be)
		rc = be->check_name(ctx, bd, data_offset, opts->name);
	/* Of a size not known yet, it is checked as the payload arrives (src->room). */
	return rc < 0 ? rc : check_room(ctx, bd, src->size_known ? src->size : 1, data_offset);
}

/* One provision's state, from the checks to the mapping. */
struct provision {
	struct imgdev_ctx *ctx;
	const char *device, *image;
	const struct imgdev_provision_opts *opts;
	struct imgdev_provision_result *res;
	const struct map_backend *be; /* resolved once, when mapping */
	struct bdev probe, bd;
	struct hdr h;
	/* The image's hash when known before it is read: the caller's digest, a container's manifest's. */
	bool has_digest;
	uint8_t digest[IMGDEV_HASH_SIZE];
	/* A container image, resolved to its manifest (its layers read only when written). */
	struct container_image *ci;
	struct imgsrc *src;
	/* A source that is not a file (a URL, standard input): hashed as it is read. */
	struct bytesrc *received;
	/* 0, or where an interrupted write of this image is resumed (src opened there). */
	uint64_t resume_at;
	/* The layout a write is in (layout_choose), and where its payload starts. */
	enum imgdev_layout layout;
	uint64_t data_offset;
};

/*
 * How the image may be read. Map it only when its hash is given: the image
 * hash computed from the payload reads each chunk once more after the
 * write, and a mapping, unlike a copy, would show it a concurrent change of
 * the file.
 */
static struct imgsrc_policy read_policy(const struct provision *p)
{
	return (struct imgsrc_policy){
		.map_chunks = p->has_digest && !p->ci && p->opts->version >= 2 && p->opts->mmap_image,
		.hash_given = p->has_digest,
	};
}

/* Whether the image is read as it arrives: standard input, a URL, a container image. */
static bool image_is_stream(const char *image)
{
	return bytesrc_names_stream(image) || container_names(image);
}

/*
 * Open the image and its format. A URL or standard input is wrapped to be
 * hashed as it is read: its identity is what was received. A container
 * image's disk is not: its identity is its manifest's digest, and each
 * layer is checked against its own as it is read.
 */
static int open_image(struct provision *p)
{
	struct imgsrc_policy policy = read_policy(p);
	struct bytesrc *bytes = NULL;
	int rc;

	p->received = NULL;
	p->resume_at = 0;
	rc = p->ci ? container_open_disk(p->ctx, p->ci, &bytes)
		   : bytesrc_open_image(p->ctx, p->image, &bytes);
	if (rc == 0 && bytes->fd < 0 && !p->ci) {
		rc = bytesrc_hash_wrap(p->ctx, bytes, &bytes);
		p->received = rc == 0 ? bytes : NULL;
		policy.map_chunks = false;
	}
	if (rc == 0)
		rc = imgsrc_open(p->ctx, bytes, &policy, &p->src);
	if (rc < 0)
		p->received = NULL;
	/* Received whole already (a qcow2 through a temporary file): check it before any write. */
	if (rc == 0 && p->received && p->src->data != p->src->bytes && p->has_digest) {
		uint8_t got[IMGDEV_HASH_SIZE];

		rc = identity_check_received(p->ctx, p->received, p->src->name, p->digest, got);
	}
	return rc;
}

/*
 * Where an interrupted write of this image can be resumed, or 0: a raw
 * image fetched from a URL with this digest (the "writing" record names
 * it, the header no image yet) left a resume point, a whole number of
 * chunks and less than the image's size, on a device with room for it. Whatever
 * the bytes there are, the digest is checked over all of them at the end.
 */
static uint64_t resume_point(const struct provision *p)
{
	static const uint8_t none[IMGDEV_HASH_SIZE];
	const struct hdr *h = &p->h;
	const struct commit_rec *r = &h->rec;

	if (!p->has_digest || !bytesrc_is_url(p->image) ||
	    !hdr_record_is(h, REC_STATE_WRITING) || h->version != layout_version(p->layout) ||
	    memcmp(h->image_hash, none, IMGDEV_HASH_SIZE) != 0 ||
	    memcmp(r->target_hash, p->digest, IMGDEV_HASH_SIZE) != 0)
		return 0;
	if (r->resume_at == 0 || r->resume_at % CHUNK_SIZE != 0 || r->resume_at >= r->image_size ||
	    layout_room(&p->probe, p->data_offset) < layout_round_up(&p->probe, r->image_size))
		return 0;
	return r->resume_at;
}

/*
 * Open the URL from byte at, where the interrupted write stopped. What
 * makes resuming pointless (the server does not give that range, the
 * file's size changed) opens it from the first byte instead; any other
 * failure (the server's, the network's, a 404) is final, as it would be
 * from the first byte.
 */
static int open_image_resumed(struct provision *p, uint64_t at)
{
	struct imgsrc_policy policy = read_policy(p);
	struct bytesrc *bytes = NULL;
	int rc = bytesrc_open_url_at(p->ctx, p->image, &p->ctx->fetch, at, &bytes);

	if (rc < 0 && rc != -ERANGE)
		return rc;
	if (rc == 0 && bytes->size != p->h.rec.image_size) {
		rc = ctx_error(p->ctx, ESTALE,
			       "%s is %llu bytes now, the interrupted write was of %llu", p->image,
			       (unsigned long long)bytes->size,
			       (unsigned long long)p->h.rec.image_size);
		bytesrc_close(bytes);
	}
	if (rc < 0) {
		ctx_log(p->ctx, LOGP_WARNING, "%s; not resuming: starting from the first byte",
			imgdev_ctx_last_error(p->ctx));
		return open_image(p);
	}
	rc = imgsrc_open_raw_at(p->ctx, bytes, at, &policy, &p->src);
	if (rc < 0)
		return rc;
	p->received = NULL;
	p->resume_at = at;
	ctx_log(p->ctx, LOGP_INFO,
		"%s: resuming an interrupted write at byte %llu of %llu: the bytes before it are "
		"re-read from the device, and the whole is checked against the digest",
		p->image, (unsigned long long)at, (unsigned long long)p->h.rec.image_size);
	return 0;
}

/* A stream's source: resumed where an interrupted write of it stopped, or from the start. */
static int open_stream(struct provision *p)
{
	uint64_t at = resume_point(p);

	return at ? open_image_resumed(p, at) : open_image(p);
}

/*
 * A stream with a digest: whether the header names it with a complete
 * record that fits the device, so that nothing need be fetched.
 */
static bool stream_already_there(const struct provision *p)
{
	const struct hdr *h = &p->h;

	/* Its size is not known before it is fetched: the record's must fit. */
	return p->has_digest &&
	       complete_record_fits(h, &p->probe, h->rec.image_size, layout_asked(p->opts)) &&
	       hdr_is_complete(h, p->digest) == 1;
}

/* A stream the device holds: the result from the record, as it was never opened. */
static void result_from_record(struct provision *p)
{
	memcpy(p->res->image_hash, p->h.rec.target_hash, IMGDEV_HASH_SIZE);
	memcpy(p->res->content_hash, p->h.rec.content_hash, IMGDEV_HASH_SIZE);
	p->res->image_size = p->h.rec.image_size;
}

/*
 * Whether the device holds the image, before anything is written: a
 * stream's only by its digest, before it is fetched (without one, a stream
 * is known only once received: it is written); a file's by header_matches.
 * 1, 0, or -errno.
 */
static int device_holds_image(struct provision *p)
{
	int rc;

	if (image_is_stream(p->image)) {
		if (stream_already_there(p))
			return 1;
		if (!p->has_digest)
			ctx_log(p->ctx, LOGP_INFO,
				"%s: without a digest, an image read as it "
				"arrives is written: what it is is known only once received",
				p->image);
		return open_stream(p);
	}
	p->res->image_size = p->src->size;
	rc = header_matches(p->ctx, &p->probe, &p->h, p->src, p->opts, p->res->image_hash);
	if (rc == 1)
		memcpy(p->res->content_hash, p->h.rec.content_hash, IMGDEV_HASH_SIZE);
	return rc;
}

/*
 * Without a layout asked for, a device whose last write was interrupted (a
 * valid "writing" record) is written again in that write's layout, when
 * the device takes it: a resume point it left stays usable.
 */
static void keep_interrupted_layout(struct provision *p)
{
	const struct hdr *h = &p->h;

	if (layout_asked(p->opts) != IMGDEV_LAYOUT_AUTO || !hdr_record_is(h, REC_STATE_WRITING) ||
	    !layout_fits_device(&p->probe, h->version))
		return;
	p->layout = layout_of_version(h->version);
}

/* Why a write is in its layout when none was asked for ("" when one was). */
static const char *layout_reason(const struct provision *p)
{
	const struct hdr *h = &p->h;

	if (layout_asked(p->opts) != IMGDEV_LAYOUT_AUTO)
		return "";
	if (hdr_record_is(h, REC_STATE_WRITING) && h->version == layout_version(p->layout))
		return ", as the interrupted write before it was";
	if (bdev_logical_block_size(&p->probe) > SECTOR_SIZE)
		return ", the default on a device with logical sectors larger than 512 bytes";
	return "";
}

/* Say which layout a write is in, and why when the device chose it. */
static void log_layout(const struct provision *p)
{
	const struct hdr *h = &p->h;

	if (hdr_record_is(h, REC_STATE_COMPLETE) && layout_version(p->layout) != h->version)
		ctx_log(p->ctx, LOGP_INFO, "%s: holds an image in the %s layout; writing the %s one, %s",
			p->probe.path, imgdev_layout_name(layout_of_version(h->version)),
			imgdev_layout_name(p->layout),
			layout_asked(p->opts) == IMGDEV_LAYOUT_AUTO ? "as its sector size needs" : "as asked");
	ctx_log(p->ctx, LOGP_INFO, "%s: %s layout (header version %u), the payload from byte %llu%s",
		p->probe.path, imgdev_layout_name(p->layout), layout_version(p->layout),
		(unsigned long long)p->data_offset, layout_reason(p));
}

/*
 * A URL whose file changed on the server during the copy starts over from
 * zero, hash and all, so often (and no more often than --retries says);
 * the device stays "writing" meanwhile. Then it is the server's failure.
 */
#define RESTARTS_MAX 2

static int restarts_allowed(const struct imgdev_ctx *ctx)
{
	int retries = ctx->fetch.retries < 0 ? RESTARTS_MAX : ctx->fetch.retries;

	return retries < RESTARTS_MAX ? retries : RESTARTS_MAX;
}

/* Write the image: checks, the exclusive open, the commit protocol. */
static int write_image(struct provision *p)
{
	int rc = check_overwrite_allowed(p->ctx, &p->probe, &p->h, p->opts->force);

	if (rc == 0)
		rc = check_write_target(p->ctx, p->be, &p->probe, p->data_offset, p->src, p->opts);
	if (rc == 0)
		rc = bdev_open(p->ctx, p->device, O_RDWR | O_EXCL, &p->bd);
	if (rc == 0)
		rc = bdev_check_same(p->ctx, &p->probe, &p->bd);
	if (rc == 0)
		log_layout(p);
	for (int restarts = 0; rc == 0;) {
		p->src->room = layout_room(&p->bd, p->data_offset);
		rc = provision_write(p->ctx, &p->bd, p->data_offset, p->src, p->received,
				     p->resume_at, p->has_digest ? p->digest : NULL, p->opts, p->res);
		if (rc == -ERESTART) {
			/* The resumed copy failed on what the device held: once more, all of it. */
			ctx_log(p->ctx, LOGP_WARNING,
				"%s; resuming did not give the image: starting over from the first byte",
				imgdev_ctx_last_error(p->ctx));
		} else if (rc == -ESTALE && (bytesrc_is_url(p->image) || (p->ci && p->ci->reg))) {
			if (restarts++ == restarts_allowed(p->ctx)) {
				char why[IMGDEV_ERRMSG_MAX];

				snprintf(why, sizeof(why), "%s", imgdev_ctx_last_error(p->ctx));
				rc = ctx_error(p->ctx, EREMOTEIO, "%s (started over %d times)", why,
					       restarts - 1);
				break;
			}
			ctx_log(p->ctx, LOGP_WARNING, "%s; starting over from the first byte",
				imgdev_ctx_last_error(p->ctx));
		} else {
			break;
		}
		imgsrc_close(p->src);
		p->src = NULL;
		rc = open_image(p);
	}
	bdev_close(&p->bd); /* release the exclusive open: the mapping claims it */
	return rc;
}

/*
 * What names the image before it is read: the caller's digest, or a
 * container image's manifest, resolved here (its refusals come before the
 * device is opened, as a file's do). 0 or -errno.
 */
static int name_image(struct provision *p)
{
	int rc;

	p->has_digest = p->opts->has_digest;
	memcpy(p->digest, p->opts->digest, IMGDEV_HASH_SIZE);
	if (!container_names(p->image))
		return 0;
	if (p->has_digest)
		return ctx_error(p->ctx, EINVAL,
				 "%s: a container image is named by its manifest's digest "
				 "(REPOSITORY@sha256:...), not by --digest",
				 p->image);
	rc = container_resolve(p->ctx, p->image, &p->ci);
	if (rc == 0) {
		p->has_digest = true;
		memcpy(p->digest, p->ci->digest, IMGDEV_HASH_SIZE);
	}
	return rc;
}

/*
 * A container image written: where its disk was inside the layers, into
 * the result (left NULL without memory: the image is committed already).
 */
static void note_disk_path(struct provision *p)
{
	struct tar_disk_info info;

	container_disk_info(p->src->bytes, &info);
	p->res->disk_path = strdup(info.path);
	if (!p->res->disk_path)
		ctx_log(p->ctx, LOGP_WARNING, "out of memory for the disk's path");
}

int imgdev_provision(struct imgdev_ctx *ctx, const char *device, const char *image,
		     const struct imgdev_provision_opts *opts, struct imgdev_provision_result *res)
{
	struct provision p = { .ctx = ctx,
			       .device = device,
			       .image = image,
			       .opts = opts,
			       .res = res,
			       .probe = BDEV_INIT,
			       .bd = BDEV_INIT };
	double t0 = monotonic_seconds();
	int rc;

	memset(res, 0, sizeof(*res));
	rc = check_provision_args(ctx, opts);
	if (rc == 0 && !opts->no_map)
		p.be = map_backend_now(ctx);
	if (rc == 0)
		rc = name_image(&p);
	if (rc == 0 && !image_is_stream(image))
		rc = open_image(&p); /* a file's refusal comes first, as always */
	if (rc == 0)
		rc = bdev_open(ctx, device, O_RDONLY, &p.probe);
	if (rc == 0)
		rc = bdev_lock(ctx, &p.probe);
	if (rc == 0)
		rc = bdev_read_header(ctx, &p.probe, &p.h);
	if (rc < 0)
		goto out;
	rc = layout_choose(ctx, &p.probe, layout_asked(opts), &p.layout);
	if (rc < 0)
		goto out;
	keep_interrupted_layout(&p);
	p.data_offset = hdr_layout_offset(layout_version(p.layout));
	rc = device_holds_image(&p);
	if (rc == 1 && image_is_stream(image))
		result_from_record(&p);
	if (rc == 1) {
		p.layout = layout_of_version(p.h.version);
		p.data_offset = hdr_data_offset(&p.h);
		ctx_log(ctx, LOGP_INFO, "%s: already holds this image (%s layout); nothing written",
			p.probe.path, imgdev_layout_name(p.layout));
	} else if (rc == 0) {
		rc = write_image(&p);
		if (rc == 0 && p.ci)
			note_disk_path(&p);
	}
	res->layout = p.layout;
	res->data_offset = p.data_offset;
	if (rc >= 0 && p.be)
		rc = p.be->map_ensure(ctx, &p.probe, p.data_offset, opts->name, &res->mapped_path);
out:
	res->seconds = monotonic_seconds() - t0;
	bdev_close(&p.bd);
	bdev_close(&p.probe);
	if (p.src)
		imgsrc_drop_cache(p.src); /* what the chunks left, and all a file hash read */
	imgsrc_close(p.src);
	container_free(p.ci);
	return rc < 0 ? rc : 0;
}

const char *imgdev_zeroing_name(enum imgdev_zeroing zeroing)
{
	switch (zeroing) {
	case IMGDEV_ZEROING_NONE: return "none";
	case IMGDEV_ZEROING_WRITE_ZEROES: return "write-zeroes";
	case IMGDEV_ZEROING_DISCARD: return "discard";
	case IMGDEV_ZEROING_ZEROS: return "zeros";
	}
	return NULL;
}

void imgdev_provision_result_clear(struct imgdev_provision_result *res)
{
	free(res->mapped_path);
	free(res->disk_path);
	memset(res, 0, sizeof(*res));
}
