/*
 * Block-device and file access for the header and payload: open with the
 * checks that keep us off anything that is not a disk or an image file,
 * size through BLKGETSIZE64 or st_size, and full-length positioned I/O.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blockdev.h"
#include "header.h"
#include "internal.h"

static int describe_type_error(struct imgdev_ctx *ctx, const char *path, mode_t mode)
{
	const char *what = S_ISDIR(mode)  ? "a directory" :
			   S_ISCHR(mode)  ? "a character device" :
			   S_ISFIFO(mode) ? "a FIFO" :
			   S_ISSOCK(mode) ? "a socket" : "not a regular file";

	return ctx_error(ctx, EINVAL, "%s: is %s; need a block device or an image file",
			 path, what);
}

static int bdev_learn_size(struct imgdev_ctx *ctx, struct bdev *bd, const struct stat *st)
{
	if (!bd->is_block) {
		bd->size = (uint64_t)st->st_size;
		return 0;
	}
	if (ioctl(bd->fd, BLKGETSIZE64, &bd->size) < 0)
		return ctx_error(ctx, errno, "%s: cannot get the device size: %s",
				 bd->path, strerror(errno));
	return 0;
}

/* The first holder of dev that device-mapper names, into name; 0 or -1. */
static int dm_holder_name(struct imgdev_ctx *ctx, dev_t dev, char *name, size_t len)
{
	char rel[96], *dir_path, *name_path;
	struct dirent *e;
	DIR *dir;
	int rc = -1;

	snprintf(rel, sizeof(rel), "dev/block/%u:%u/holders", major(dev), minor(dev));
	dir_path = path_join(ctx->sysfs_dir, rel);
	dir = dir_path ? opendir(dir_path) : NULL;
	while (dir && rc < 0 && (e = readdir(dir))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "block/%.40s/dm/name", e->d_name);
		name_path = path_join(ctx->sysfs_dir, rel);
		f = name_path ? fopen(name_path, "re") : NULL;
		if (f && fgets(name, (int)len, f)) {
			name[strcspn(name, "\n")] = '\0';
			rc = 0;
		}
		if (f)
			fclose(f);
		free(name_path);
	}
	if (dir)
		closedir(dir);
	free(dir_path);
	return rc;
}

/* Say who holds dev: a device-mapper device, a mount, or someone unknown. */
static void describe_holder(struct imgdev_ctx *ctx, dev_t dev, char *out, size_t len)
{
	char name[130], line[1024], want[32];
	FILE *f;

	if (dm_holder_name(ctx, dev, name, sizeof(name)) == 0) {
		snprintf(out, len, "mapped as device-mapper device %s", name);
		return;
	}
	snprintf(want, sizeof(want), "%u:%u", major(dev), minor(dev));
	f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char majmin[32], mountpoint[512];

		if (sscanf(line, "%*s %*s %31s %*s %511s", majmin, mountpoint) == 2 &&
		    strcmp(majmin, want) == 0) {
			snprintf(out, len, "mounted on %.200s", mountpoint);
			fclose(f);
			return;
		}
	}
	if (f)
		fclose(f);
	snprintf(out, len, "held open exclusively by another program");
}

int bdev_open(struct imgdev_ctx *ctx, const char *path, int flags, struct bdev *bd)
{
	char resolved[PATH_MAX];
	struct stat st;
	int rc;

	*bd = (struct bdev)BDEV_INIT;
	if (!realpath(path, resolved))
		return ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
	if (stat(resolved, &st) < 0)
		return ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return describe_type_error(ctx, path, st.st_mode);
	bd->path = strdup(resolved);
	if (!bd->path)
		return ctx_error(ctx, ENOMEM, "%s: out of memory", path);
	if (!S_ISBLK(st.st_mode))
		flags &= ~O_EXCL;	/* exclusive open means something only for devices */
	bd->fd = open(resolved, flags | O_CLOEXEC);
	if (bd->fd < 0 && errno == EBUSY && (flags & O_EXCL)) {
		char who[256];

		describe_holder(ctx, st.st_rdev, who, sizeof(who));
		rc = ctx_error(ctx, EBUSY, "%s: device is in use (%s); refusing to write to it",
			       path, who);
		goto out;
	}
	if (bd->fd < 0 && (errno == EACCES || errno == EPERM)) {
		rc = ctx_error(ctx, EACCES, "%s: cannot open: permission denied (%s)", path,
			       geteuid() == 0 ? "an immutable or read-only file, or a read-only device" :
						"imgdev needs root to open devices");
		goto out;
	}
	if (bd->fd < 0) {
		rc = ctx_error(ctx, errno, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	/* Check again on the open fd: the path may have changed under us. */
	if (fstat(bd->fd, &st) < 0) {
		rc = ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		rc = describe_type_error(ctx, path, st.st_mode);
		goto out;
	}
	bd->is_block = S_ISBLK(st.st_mode);
	bd->rdev = st.st_rdev;
	if (bd->is_block && (flags & O_ACCMODE) != O_RDONLY) {
		int ro = 0;

		if (ioctl(bd->fd, BLKROGET, &ro) == 0 && ro) {
			rc = ctx_error(ctx, EROFS, "%s: the device is read-only", path);
			goto out;
		}
	}
	rc = bdev_learn_size(ctx, bd, &st);
out:
	if (rc < 0)
		bdev_close(bd);
	return rc;
}

int bdev_check_same(struct imgdev_ctx *ctx, const struct bdev *a, const struct bdev *b)
{
	struct stat sa, sb;

	if (fstat(a->fd, &sa) < 0 || fstat(b->fd, &sb) < 0)
		return ctx_error(ctx, errno, "%s: %s", a->path, strerror(errno));
	if (a->is_block == b->is_block &&
	    (a->is_block ? sa.st_rdev == sb.st_rdev : (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)))
		return 0;
	return ctx_error(ctx, ESTALE, "%s: now names another device than the one checked; nothing written",
			 a->path);
}

void bdev_close(struct bdev *bd)
{
	if (bd->fd >= 0)
		close(bd->fd);
	free(bd->path);
	*bd = (struct bdev)BDEV_INIT;
}

int bdev_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* end of file before len bytes */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int bdev_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

unsigned int bdev_logical_block_size(const struct bdev *bd)
{
	int lbs = 0;

	if (!bd->is_block || ioctl(bd->fd, BLKSSZGET, &lbs) < 0 || lbs < SECTOR_SIZE)
		return SECTOR_SIZE;
	return (unsigned int)lbs;
}

static int write_zeros(int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 * 1024];

	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = bdev_pwrite_full(fd, zeros, n, off);

		if (rc < 0)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

int bdev_zero_range(const struct bdev *bd, uint64_t off, uint64_t len, bool *offloaded)
{
	bool dummy;

	offloaded = offloaded ? offloaded : &dummy;
	*offloaded = true;
	if (bd->is_block) {
		uint64_t lbs = bdev_logical_block_size(bd);
		uint64_t range[2] = { off, (len + lbs - 1) / lbs * lbs };

		/*
		 * On a block device, PUNCH_HOLE is "write zeroes, unmapping allowed,
		 * no fallback": reads return zeros, and thin or file-backed devices
		 * free the space instead of writing it. Else BLKZEROOUT, which
		 * then falls back to sending zero pages.
		 */
		if (fallocate(bd->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)range[0],
			      (off_t)range[1]) == 0)
			return 0;
		*offloaded = false;
		if (ioctl(bd->fd, BLKZEROOUT, range) == 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL)
			return -errno;
		return write_zeros(bd->fd, off, range[1]);
	}
	if (fallocate(bd->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (fallocate(bd->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	*offloaded = false;
	if (errno != EOPNOTSUPP)
		return -errno;
	return write_zeros(bd->fd, off, len);
}

int bdev_read_sector0(struct imgdev_ctx *ctx, const struct bdev *bd, uint8_t *sector)
{
	int rc;

	if (bd->size < SECTOR_SIZE)
		return ctx_error(ctx, ENOSPC,
				 "%s: too small to hold a header: %llu bytes, need at least %d",
				 bd->path, (unsigned long long)bd->size, SECTOR_SIZE);
	rc = bdev_pread_full(bd->fd, sector, SECTOR_SIZE, 0);
	if (rc < 0)
		return ctx_error(ctx, rc, "%s: cannot read sector 0: %s", bd->path,
				 strerror(-rc));
	return 0;
}

int bdev_write_sector0(struct imgdev_ctx *ctx, const struct bdev *bd, const uint8_t *sector)
{
	return bdev_write_head(ctx, bd, sector, SECTOR_SIZE);
}

int bdev_write_head(struct imgdev_ctx *ctx, const struct bdev *bd, const uint8_t *head, size_t len)
{
	int rc = bdev_pwrite_full(bd->fd, head, len, 0);

	if (rc == 0 && fdatasync(bd->fd) < 0)
		rc = -errno;
	if (rc < 0)
		return ctx_error(ctx, rc, "%s: cannot write sector 0: %s", bd->path,
				 strerror(-rc));
	return 0;
}
