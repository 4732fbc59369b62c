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
	/*
	 * A failure of the server or the network, or a refusal, stays an error
	 * (a file that changed on the server while read: the server's); what
	 * else fails makes the image unsupported, with the reason.
	 */
	if (rc == -ESTALE)
		rc = ctx_error(ctx, EREMOTEIO, "%s", imgdev_ctx_last_error(ctx));
	if (rc == -EREMOTEIO || rc == -EACCES || rc == -ENOMEM)
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
