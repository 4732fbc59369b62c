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

int imgsrc_raw_init(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	(void)ctx;
	src->ops = &raw_ops;
	src->format = "raw";
	src->compression = "none";
	src->size = src->file_size;
	src->identity_is_payload = true;
	posix_fadvise(src->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}
