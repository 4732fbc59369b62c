/*
 * `info`: what an image is and whether imgdev would provision it — the
 * format and compression found by content, virtual and allocated sizes, and
 * the refusal reason. Reads only; what each format knows comes from its
 * info operation (imgsrc.h). A container image is resolved to its
 * platform's manifest first, and what is looked at is the disk inside its
 * layers, read down to its first bytes only: what only reading all of them
 * shows (a second disk further down, a layer that is not its digest) is
 * provision's to find.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bytesrc.h"
#include "container.h"
#include "imgsrc.h"
#include "internal.h"
#include "qcow2.h"

/*
 * A container image: resolved to its manifest (into info), the disk inside
 * its layers opened into *bytes. 0 or -errno; a disk that cannot be had
 * (none, two, a layer that is not a tar) makes the image unsupported, with
 * the reason, and *bytes NULL.
 */
static int open_container(struct imgdev_ctx *ctx, const char *image, struct container_image **ci,
			  struct imgdev_image_info *info, struct bytesrc **bytes)
{
	struct tar_disk_info disk;
	int rc = container_resolve(ctx, image, ci);

	if (rc < 0)
		return rc;
	info->container = true;
	snprintf(info->manifest_digest, sizeof(info->manifest_digest), "%s", (*ci)->manifest.digest);
	imgdev_format_hash((*ci)->digest, info->image_hash);
	snprintf(info->platform, sizeof(info->platform), "%s", (*ci)->platform);
	info->layers = (unsigned int)(*ci)->m.n_layers;
	rc = container_open_disk(ctx, *ci, bytes);
	if (rc == -ENOMEDIUM) {
		snprintf(info->reason, sizeof(info->reason), "%s", imgdev_ctx_last_error(ctx));
		return 0;
	}
	if (rc == 0) {
		container_disk_info(*bytes, &disk);
		snprintf(info->disk_path, sizeof(info->disk_path), "%s", disk.path);
	}
	return rc;
}

/*
 * A container image's qcow2 disk that only streams (in a compressed layer):
 * told by its header, not spooled to a temporary file (for a registry, the
 * whole download) as provision does. Whether it was one.
 */
static bool stream_qcow2_peeked(struct bytesrc *bytes, struct imgdev_image_info *info)
{
	uint8_t h[QCOW2_PEEK_SIZE];
	struct qcow2_peek q;

	if (bytes->ops->pread || bytesrc_peek(bytes, h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    !qcow2_peek(h, sizeof(h), &q))
		return false;
	snprintf(info->format, sizeof(info->format), "qcow2");
	snprintf(info->compression, sizeof(info->compression), "none");
	info->qcow2_version = q.version;
	info->cluster_size = q.cluster_size;
	info->virtual_size = q.size;
	info->supported = true;
	return true;
}

int imgdev_image_info(struct imgdev_ctx *ctx, const char *image, struct imgdev_image_info *info)
{
	struct container_image *ci = NULL;
	struct imgsrc *src = NULL;
	struct bytesrc *bytes = NULL;
	int rc;

	memset(info, 0, sizeof(*info));
	rc = container_names(image) ? open_container(ctx, image, &ci, info, &bytes)
				    : bytesrc_open_image(ctx, image, &bytes);
	if (rc == 0 && !bytes)
		goto out; /* a container image without a disk to give: unsupported */
	if (rc < 0)
		goto out;
	info->file_size = bytes->size;
	if (ci && stream_qcow2_peeked(bytes, info)) {
		bytesrc_close(bytes);
		goto out;
	}
	imgsrc_peek(bytes, info);
	rc = imgsrc_open(ctx, bytes, NULL, &src);
	/*
	 * A failure of the server or the network, or a refusal, stays an error
	 * (a file that changed on the server while read: the server's); what
	 * else fails makes the image unsupported, with the reason.
	 */
	if (rc == -ESTALE)
		rc = ctx_error(ctx, EREMOTEIO, "%s", imgdev_ctx_last_error(ctx));
	if (rc == -EREMOTEIO || rc == -EACCES || rc == -ENOMEM || rc == -EILSEQ || rc == -EIO)
		goto out;
	if (rc < 0) {
		info->supported = false;
		snprintf(info->reason, sizeof(info->reason), "%s", imgdev_ctx_last_error(ctx));
		rc = 0;
		goto out;
	}
	info->supported = true;
	imgsrc_info(src, info);
	imgsrc_close(src);
out:
	container_free(ci);
	return rc;
}
