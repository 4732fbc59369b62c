/*
 * The raw image source: the file is the payload. Holes are found with
 * SEEK_DATA/SEEK_HOLE so that sparse images cost nothing to read; pages
 * read are dropped from the cache afterwards so a big image does not push
 * the host's working set out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev.h"
#include "imgsrc.h"
#include "internal.h"

/* Start of the next data at or after pos, or end when none before it. */
static uint64_t next_data(int fd, uint64_t pos, uint64_t end)
{
	off_t d = lseek(fd, (off_t)pos, SEEK_DATA);

	if (d < 0)
		return errno == ENXIO ? end : pos;	/* no SEEK_DATA: all data */
	return (uint64_t)d < end ? (uint64_t)d : end;
}

static uint64_t next_hole(int fd, uint64_t pos, uint64_t end)
{
	off_t h = lseek(fd, (off_t)pos, SEEK_HOLE);

	if (h < 0)
		return end;
	return (uint64_t)h < end ? (uint64_t)h : end;
}

static int raw_read_chunk(struct imgsrc *src, struct chunk *c)
{
	uint64_t pos = c->off, end = c->off + c->len;
	bool any_data = false;

	while (pos < end) {
		uint64_t data = next_data(src->fd, pos, end);
		uint64_t hole = data < end ? next_hole(src->fd, data, end) : end;
		int rc;

		if (data > pos && (any_data || data < end))
			memset(c->buf + (pos - c->off), 0, data - pos);
		if (data == end && !any_data) {
			c->all_zero = true;
			return 0;
		}
		if (data == end)
			break;
		if (hole == data)	/* raced with a writer; read it as data */
			hole = end;
		rc = bdev_pread_full(src->fd, c->buf + (data - c->off), hole - data, data);
		if (rc < 0)
			return chunk_error(c, rc, "%s: read error at offset %llu: %s", src->path,
					   (unsigned long long)data,
					   rc == -EIO ? "unexpected end of file or I/O error" : strerror(-rc));
		any_data = true;
		pos = hole;
	}
	posix_fadvise(src->fd, (off_t)c->off, c->len, POSIX_FADV_DONTNEED);
	return 0;
}

static void raw_close(struct imgsrc *src)
{
	(void)src;
}

static const struct imgsrc_ops raw_ops = {
	.read_chunk = raw_read_chunk,
	.close = raw_close,
};

int imgsrc_open(struct imgdev_ctx *ctx, const char *path, struct imgsrc **out)
{
	struct imgsrc *src = calloc(1, sizeof(*src));
	struct stat st;
	int rc = 0;

	if (!src)
		return ctx_error(ctx, ENOMEM, "out of memory");
	src->fd = -1;
	src->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (src->fd < 0) {
		rc = ctx_error(ctx, errno, "%s: cannot open the image: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(src->fd, &st) < 0) {
		rc = ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ctx_error(ctx, EINVAL, "%s: the image must be a regular file", path);
		goto out;
	}
	src->path = strdup(path);
	if (!src->path) {
		rc = ctx_error(ctx, ENOMEM, "out of memory");
		goto out;
	}
	src->size = (uint64_t)st.st_size;
	if (src->size == 0) {
		rc = ctx_error(ctx, EINVAL, "%s: the image is empty", path);
		goto out;
	}
	src->ops = &raw_ops;
	src->format = "raw";
	src->identity_is_payload = true;
	posix_fadvise(src->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
out:
	if (rc < 0)
		imgsrc_close(src);
	else
		*out = src;
	return rc;
}

void imgsrc_close(struct imgsrc *src)
{
	if (!src)
		return;
	if (src->ops)
		src->ops->close(src);
	if (src->fd >= 0)
		close(src->fd);
	free(src->path);
	free(src);
}
