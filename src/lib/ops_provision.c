/*
 * provision: put an image on a device and map it, unless the device already
 * holds it (a complete record for this image: nothing is written). The
 * checks before any write are here; the write itself, by the commit
 * protocol, is provision_write.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "blockdev.h"
#include "bytesrc.h"
#include "header.h"
#include "identity.h"
#include "imgsrc.h"
#include "internal.h"
#include "ops.h"

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

	/* The mapping starts at sector 1: a record for another layout is no match. */
	if (!hdr_has_magic(h) || h->rec_status != REC_VALID ||
	    h->rec.state != REC_STATE_COMPLETE || h->rec.image_size != src->size ||
	    h->rec.data_offset != SECTOR_SIZE || bd->size < SECTOR_SIZE ||
	    bd->size - SECTOR_SIZE < src->size)
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
 * mapping), no loop device sits over it, and it has room.
 */
static int check_write_target(struct imgdev_ctx *ctx, const struct map_backend *be,
			      const struct bdev *bd, const struct imgsrc *src,
			      const struct imgdev_provision_opts *opts)
{
	int rc = be ? be->check_target(ctx, bd) : 0;

	if (rc == 0)
		rc = loopmap_check_not_mapped(ctx, bd);
	if (rc == 0 && be)
		rc = be->check_name(ctx, bd, opts->name);
	return rc < 0 ? rc : check_room(ctx, bd, src->size);
}

/*
 * How the image may be read. Map it only when its hash is given: the image
 * hash computed from the payload reads each chunk once more after the
 * write, and a mapping, unlike a copy, would show it a concurrent change of
 * the file.
 */
static struct imgsrc_policy read_policy(const struct imgdev_provision_opts *opts)
{
	return (struct imgsrc_policy){
		.map_chunks = opts->has_digest && opts->version >= 2 && opts->mmap_image,
		.hash_given = opts->has_digest,
	};
}

int imgdev_provision(struct imgdev_ctx *ctx, const char *device, const char *image,
		     const struct imgdev_provision_opts *opts,
		     struct imgdev_provision_result *res)
{
	double t0 = monotonic_seconds();
	const struct map_backend *be = NULL;	/* resolved once, when mapping */
	struct bdev probe = BDEV_INIT, bd = BDEV_INIT;
	struct imgsrc *src = NULL;
	struct bytesrc *bytes = NULL;
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = check_provision_args(ctx, opts);
	if (rc == 0 && !opts->no_map)
		be = map_backend_now(ctx);
	if (rc == 0)
		rc = bytesrc_open_file(ctx, image, &bytes);
	if (rc == 0) {
		struct imgsrc_policy policy = read_policy(opts);

		rc = imgsrc_open(ctx, bytes, &policy, &src);
	}
	if (rc == 0)
		rc = bdev_open(ctx, device, O_RDONLY, &probe);
	if (rc == 0)
		rc = bdev_lock(ctx, &probe);
	if (rc == 0)
		rc = bdev_read_sector0(ctx, &probe, sector);
	if (rc < 0)
		goto out;
	hdr_decode(sector, sizeof(sector), &h);
	res->image_size = src->size;
	rc = header_matches(ctx, &probe, &h, src, opts, res->image_hash);
	if (rc < 0)
		goto out;
	if (rc == 1) {
		memcpy(res->content_hash, h.rec.content_hash, IMGDEV_HASH_SIZE);
		ctx_log(ctx, LOGP_INFO, "%s: already holds this image; nothing written", probe.path);
	} else {
		rc = check_overwrite_allowed(ctx, &probe, &h, opts->force);
		if (rc == 0)
			rc = check_write_target(ctx, be, &probe, src, opts);
		if (rc == 0)
			rc = bdev_open(ctx, device, O_RDWR | O_EXCL, &bd);
		if (rc == 0)
			rc = bdev_check_same(ctx, &probe, &bd);
		if (rc == 0)
			rc = provision_write(ctx, &bd, src, opts, res);
		bdev_close(&bd);	/* release the exclusive open: the mapping claims it */
		if (rc < 0)
			goto out;
	}
	if (be)
		rc = be->map_ensure(ctx, &probe, opts->name, &res->mapped_path);
out:
	res->seconds = monotonic_seconds() - t0;
	bdev_close(&bd);
	bdev_close(&probe);
	if (src)
		imgsrc_drop_cache(src);	/* what the chunks left, and all a file hash read */
	imgsrc_close(src);
	return rc < 0 ? rc : 0;
}

void imgdev_provision_result_clear(struct imgdev_provision_result *res)
{
	free(res->mapped_path);
	memset(res, 0, sizeof(*res));
}
