/*
 * Which byte source an image's name means: "-" is standard input, an
 * http:// or https:// URL is fetched (with the context's fetch options),
 * anything else is a file. Also what every kind of source shares: closing
 * it, and the words of its last failure.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytesrc.h"
#include "internal.h"

int bytesrc_open_image(struct imgdev_ctx *ctx, const char *image, struct bytesrc **bs)
{
	if (strcmp(image, "-") == 0)
		return bytesrc_open_pipe(ctx, STDIN_FILENO, "standard input", bs);
	if (bytesrc_is_url(image))
		return bytesrc_open_url(ctx, image, &ctx->fetch, bs);
	return bytesrc_open_file(ctx, image, bs);
}

bool bytesrc_names_stream(const char *image)
{
	return strcmp(image, "-") == 0 || bytesrc_is_url(image);
}

void bytesrc_close(struct bytesrc *bs)
{
	if (!bs)
		return;
	if (bs->ops)
		bs->ops->close(bs);
	free(bs->name);
	free(bs);
}

const char *bytesrc_error(const struct bytesrc *bs, int rc)
{
	return bs->msg[0] ? bs->msg : strerror(rc < 0 ? -rc : rc);
}
