/*
 * `info`: what an image is and whether imgdev would provision it — the
 * format and compression found by content, virtual and allocated sizes, and
 * the refusal reason. Reads only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev.h"
#include "header.h"
#include "imgsrc.h"
#include "internal.h"
#include "qcow2.h"

/* Bytes of a raw file that are data (SEEK_DATA/SEEK_HOLE), not holes. */
static uint64_t raw_allocated(int fd, uint64_t size)
{
	uint64_t total = 0;
	off_t pos = 0;

	while ((uint64_t)pos < size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)size;
		total += (uint64_t)(hole - data);
		pos = hole;
	}
	return total;
}

/* What the header of a qcow2 file says, even one imgdev refuses. */
static void info_qcow2_header(int fd, uint64_t file_size, struct imgdev_image_info *info)
{
	uint8_t h[32];

	if (file_size < sizeof(h) || bdev_pread_full(fd, h, sizeof(h), 0) < 0 ||
	    !qcow2_probe(h, sizeof(h)))
		return;
	snprintf(info->format, sizeof(info->format), "qcow2");
	info->qcow2_version = get_be32(h + 4);
	if (get_be32(h + 20) >= 9 && get_be32(h + 20) <= 21)
		info->cluster_size = 1ull << get_be32(h + 20);
	info->virtual_size = get_be64(h + 24);
}

static void info_from_source(struct imgsrc *src, struct imgdev_image_info *info)
{
	snprintf(info->format, sizeof(info->format), "%s", src->format);
	snprintf(info->compression, sizeof(info->compression), "%s", src->compression);
	info->virtual_size = src->size;
	if (strcmp(src->format, "qcow2") == 0) {
		const struct qcow2 *q = src->priv;

		info->qcow2_version = q->version;
		info->cluster_size = q->cluster_size;
		info->extended_l2 = q->extended_l2;
		info->dirty = q->dirty;
		info->allocated = src->allocated;	/* counted when the tables were checked */
		info->allocated_known = true;
		if (src->compressed)
			snprintf(info->cluster_compression, sizeof(info->cluster_compression), "%s",
				 q->compression_type == 1 ? "zstd" : "zlib");
	} else if (strcmp(src->compression, "none") == 0) {
		info->allocated = raw_allocated(src->fd, src->file_size);
		info->allocated_known = true;
	}
}

int imgdev_image_info(struct imgdev_ctx *ctx, const char *image, struct imgdev_image_info *info)
{
	struct imgsrc *src = NULL;
	struct stat st;
	int fd, rc;

	memset(info, 0, sizeof(*info));
	fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ctx_error(ctx, errno == EACCES || errno == EPERM ? EACCES : ENOMEDIUM, "%s: cannot open the image: %s", image, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ctx_error(ctx, ENOMEDIUM, "%s: the image must be a regular file", image);
	}
	info->file_size = (uint64_t)st.st_size;
	snprintf(info->format, sizeof(info->format), "raw");
	snprintf(info->compression, sizeof(info->compression), "none");
	info_qcow2_header(fd, info->file_size, info);
	close(fd);
	rc = imgsrc_open(ctx, image, &src);
	if (rc < 0) {
		info->supported = false;
		snprintf(info->reason, sizeof(info->reason), "%s", imgdev_ctx_last_error(ctx));
		return 0;
	}
	info->supported = true;
	info_from_source(src, info);
	imgsrc_close(src);
	return 0;
}
