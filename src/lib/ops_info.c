/*
 * `info`: what an image is and whether imgdev would provision it — the
 * format and compression found by content, virtual and allocated sizes, and
 * the refusal reason. Reads only; what each format knows comes from its
 * info operation (imgsrc.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bytesrc.h"
#include "imgsrc.h"
#include "internal.h"

int imgdev_image_info(struct imgdev_ctx *ctx, const char *image, struct imgdev_image_info *info)
{
	struct imgsrc *src = NULL;
	struct bytesrc *bytes;
	int rc;

	memset(info, 0, sizeof(*info));
	rc = bytesrc_open_image(ctx, image, &bytes);
	if (rc < 0)
		return rc;
	info->file_size = bytes->size;
	imgsrc_peek(bytes, info);
	rc = imgsrc_open(ctx, bytes, NULL, &src);
	/* Only the image's own faults make it unsupported; a server's or the network's stay errors. */
	if (rc < 0 && rc != -ENOMEDIUM && rc != -ENOTSUP)
		return rc;
	if (rc < 0) {
		info->supported = false;
		snprintf(info->reason, sizeof(info->reason), "%s", imgdev_ctx_last_error(ctx));
		return 0;
	}
	info->supported = true;
	imgsrc_info(src, info);
	imgsrc_close(src);
	return 0;
}
