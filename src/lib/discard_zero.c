/*
 * Zeroing by discard, checked (discard_zero.h). Divided into the device's
 * limits (sysfs), the discard of a range's aligned part, and the read-back,
 * which scans a buffer at a time in pieces ending at 4 KiB boundaries and
 * writes zeros over the runs of pieces that are not zeros.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blockdev.h"
#include "blockdev_io.h"
#include "discard_zero.h"
#include "header.h"
#include "internal.h"

/* A number from the sysfs file rel (under the sysfs directory); 0 or -errno. */
static int sysfs_u64(struct imgdev_ctx *ctx, const char *rel, uint64_t *val)
{
	char *path = path_join(ctx->sysfs_dir, rel), text[32];
	ssize_t n = -1;
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1, rc = -ENOENT;

	if (fd >= 0) {
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
	}
	free(path);
	if (n > 0) {
		char *end;

		text[n] = '\0';
		errno = 0;
		*val = strtoull(text, &end, 10);
		if (errno == 0 && end != text && (*end == '\n' || *end == '\0'))
			rc = 0;
	}
	return rc;
}

/* A queue limit of dev: its own queue/, or a partition's disk's (dev/..). */
static int queue_u64(struct imgdev_ctx *ctx, dev_t dev, const char *name, uint64_t *val)
{
	char rel[96];

	snprintf(rel, sizeof(rel), "dev/block/%u:%u/queue/%s", major(dev), minor(dev), name);
	if (sysfs_u64(ctx, rel, val) == 0)
		return 0;
	snprintf(rel, sizeof(rel), "dev/block/%u:%u/../queue/%s", major(dev), minor(dev), name);
	return sysfs_u64(ctx, rel, val);
}

int discard_limits_read(struct imgdev_ctx *ctx, dev_t dev, struct discard_limits *lim)
{
	char rel[96];
	int rc;

	*lim = (struct discard_limits){ 0 };
	rc = queue_u64(ctx, dev, "discard_max_bytes", &lim->max_bytes);
	if (rc == 0)
		rc = queue_u64(ctx, dev, "discard_granularity", &lim->granularity);
	if (rc == 0)
		rc = queue_u64(ctx, dev, "write_zeroes_max_bytes", &lim->write_zeroes_max);
	snprintf(rel, sizeof(rel), "dev/block/%u:%u/discard_alignment", major(dev), minor(dev));
	if (rc == 0 && sysfs_u64(ctx, rel, &lim->alignment) < 0)
		lim->alignment = 0;
	if (rc < 0)
		*lim = (struct discard_limits){ 0 };
	return rc;
}

bool discard_limits_want_discard(const struct discard_limits *lim)
{
	return lim->max_bytes > 0 && lim->granularity >= SECTOR_SIZE &&
	       lim->granularity % SECTOR_SIZE == 0 && lim->write_zeroes_max == 0;
}

int discard_blkdiscard(int fd, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	return ioctl(fd, BLKDISCARD, range) < 0 ? -errno : 0;
}

void discard_zero_init(struct discard_zero *dz, struct bdev_io *io, const struct discard_limits *lim)
{
	*dz = (struct discard_zero){ .io = io, .lim = *lim, .discard = discard_blkdiscard };
}

void discard_zero_free(struct discard_zero *dz)
{
	free(dz->buf);
	dz->buf = NULL;
}

/* The first offset at or after pos (before it with down) on the discard grid. */
static uint64_t grid_align(const struct discard_limits *lim, uint64_t pos, bool down)
{
	uint64_t g = lim->granularity, r = (pos + g - lim->alignment % g) % g;

	if (r == 0)
		return pos;
	return down ? pos - r : pos + (g - r);
}

/* Discard [a, b), whole blocks; a device that refuses is only checked from then on. */
static int discard_blocks(struct discard_zero *dz, uint64_t a, uint64_t b)
{
	int rc;

	if (dz->discard_refused || b <= a)
		return 0;
	rc = dz->discard(dz->io->bd->fd, a, b - a);
	if (rc == -EOPNOTSUPP || rc == -ENOTTY || rc == -EINVAL) {
		dz->discard_refused = true;
		return 0;
	}
	if (rc == 0)
		dz->discarded += b - a;
	return rc;
}

/* Write zeros over [off, end) without looking (buf cleared and used as the source). */
static int write_zeros(struct discard_zero *dz, uint64_t off, uint64_t end)
{
	memset(dz->buf, 0, end - off < DISCARD_ZERO_BUF ? (size_t)(end - off) : DISCARD_ZERO_BUF);
	for (uint64_t pos = off; pos < end;) {
		size_t n = (size_t)(end - pos < DISCARD_ZERO_BUF ? end - pos : DISCARD_ZERO_BUF);
		int rc = bdev_io_pwrite(dz->io, dz->buf, n, n, pos);

		if (rc < 0)
			return rc;
		dz->rewritten += n;
		pos += n;
	}
	return 0;
}

/* Whether n bytes at p are all zero. */
static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* The piece of buf at device offset pos: up to the next 4 KiB boundary, at most left. */
static size_t piece_len(uint64_t pos, size_t left)
{
	size_t to_boundary = 4096 - (size_t)(pos % 4096);

	return left < to_boundary ? left : to_boundary;
}

/*
 * buf holds the n bytes read at off: write zeros over each run of pieces
 * that are not zeros (from buf itself, cleared, so O_DIRECT can take it).
 */
static int rewrite_nonzero(struct discard_zero *dz, uint64_t off, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t start, len;
		int rc;

		while (i < n && all_zero(dz->buf + i, piece_len(off + i, n - i)))
			i += piece_len(off + i, n - i);
		if (i == n)
			break;
		start = i;
		while (i < n && !all_zero(dz->buf + i, piece_len(off + i, n - i)))
			i += piece_len(off + i, n - i);
		len = i - start;
		memset(dz->buf + start, 0, len);
		rc = bdev_io_pwrite(dz->io, dz->buf + start, len, len, off + start);
		if (rc < 0)
			return rc;
		dz->rewritten += len;
	}
	return 0;
}

/*
 * Read [off, end) back a buffer at a time, each read ending on a multiple
 * of the buffer's size (so pieces are never split); zeros written where it
 * does not read as zeros.
 */
static int check_range(struct discard_zero *dz, uint64_t off, uint64_t end)
{
	for (uint64_t pos = off; pos < end;) {
		uint64_t to_boundary = DISCARD_ZERO_BUF - pos % DISCARD_ZERO_BUF;
		size_t n = (size_t)(end - pos < to_boundary ? end - pos : to_boundary);
		int rc = bdev_io_pread(dz->io, dz->buf, n, pos);

		/* Buffered (no O_DIRECT): keep the zeros read out of the cache. */
		posix_fadvise(dz->io->bd->fd, (off_t)pos, (off_t)n, POSIX_FADV_DONTNEED);
		if (rc == 0)
			rc = rewrite_nonzero(dz, pos, n);
		if (rc < 0)
			return rc;
		dz->checked += n;
		pos += n;
	}
	return 0;
}

/*
 * The range's whole blocks [a, b) are discarded and read back. Its edges
 * share blocks with the image's data: once every data write is done they
 * are read back too; before that they are written, because a block that
 * reads as zeros while unallocated may not after a data write allocates it
 * (a pool that skips zeroing new blocks leaves the rest as it was).
 */
int discard_zero_range(struct discard_zero *dz, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, a = off, b = off;
	int rc;

	if (dz->io->bd->is_block)
		end = off + bdev_io_round_up(dz->io, len);
	if (!dz->buf && posix_memalign((void **)&dz->buf, 4096, DISCARD_ZERO_BUF) != 0) {
		dz->buf = NULL;
		return -ENOMEM;
	}
	if (dz->lim.granularity) {
		a = grid_align(&dz->lim, off, false);
		b = grid_align(&dz->lim, end, true);
	}
	if (b <= a)
		a = b = end;	/* no whole block: all edge */
	rc = discard_blocks(dz, a, b);
	if (rc == 0 && dz->data_done)
		return check_range(dz, off, end);
	if (rc == 0)
		rc = write_zeros(dz, off, a);
	if (rc == 0)
		rc = check_range(dz, a, b);
	if (rc == 0)
		rc = write_zeros(dz, b, end);
	return rc;
}
