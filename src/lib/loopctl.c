/*
 * Loop devices through their ioctls (see loopctl.h). Attaching claims a
 * free device with LOOP_CTL_GET_FREE and retries when another process takes
 * it first; LOOP_CONFIGURE sets everything at once, and kernels without it
 * get the older two-step setup, undone if its second step fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "loopctl.h"

#define ATTACH_TRIES 16
#define BUSY_RETRY_NS (200 * 1000 * 1000L)

char *loopctl_path(struct imgdev_ctx *ctx, int nr)
{
	char rel[32];

	snprintf(rel, sizeof(rel), "loop%d", nr);
	return path_join(ctx->dev_dir, rel);
}

static int loop_errmsg(struct imgdev_ctx *ctx, int err, const char *what, const char *path)
{
	if (err == EPERM || err == EACCES)
		return ctx_error(ctx, EACCES, "%s: %s: permission denied (loop devices need CAP_SYS_ADMIN; run as root)",
				 path, what);
	return ctx_error(ctx, err, "%s: %s: %s", path, what, strerror(err));
}

static void fill_info(struct loop_info64 *li, uint64_t offset, uint64_t sizelimit,
		      const char *name)
{
	memset(li, 0, sizeof(*li));
	li->lo_offset = offset;
	li->lo_sizelimit = sizelimit;
	snprintf((char *)li->lo_file_name, sizeof(li->lo_file_name), "%s", name);
}

/* The older two-step way's block size, undoing the setup if refused. */
static int loop_set_block_size(int lfd, unsigned int block_size)
{
	int err;

	if (block_size <= 512 || ioctl(lfd, LOOP_SET_BLOCK_SIZE, (unsigned long)block_size) == 0)
		return 0;
	err = errno;
	ioctl(lfd, LOOP_CLR_FD, 0);
	return -err;
}

/* Set up the open loop device lfd; 0, -EBUSY (taken meanwhile) or -errno. */
static int loop_setup(int lfd, int backing_fd, const struct loopctl_place *place,
		      const char *name)
{
	struct loop_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (uint32_t)backing_fd;
	cfg.block_size = place->block_size > 512 ? place->block_size : 0;
	fill_info(&cfg.info, place->offset, place->sizelimit, name);
	if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -errno;
	/* A kernel before 5.8: the two-step way. */
	if (ioctl(lfd, LOOP_SET_FD, backing_fd) < 0)
		return -errno;
	if (ioctl(lfd, LOOP_SET_STATUS64, &cfg.info) < 0) {
		int err = errno;

		ioctl(lfd, LOOP_CLR_FD, 0);
		return -err;
	}
	return loop_set_block_size(lfd, place->block_size);
}

int loopctl_attach(struct imgdev_ctx *ctx, int backing_fd, const struct loopctl_place *place,
		   const char *name, int *nr)
{
	char *ctl_path = path_join(ctx->dev_dir, "loop-control");
	int ctl, rc = -EBUSY;

	if (!ctl_path)
		return ctx_error(ctx, ENOMEM, "out of memory");
	ctl = open(ctl_path, O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		rc = loop_errmsg(ctx, errno, "cannot open", ctl_path);
		free(ctl_path);
		return rc;
	}
	for (int i = 0; i < ATTACH_TRIES && rc == -EBUSY; i++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		char *path;
		int lfd;

		if (n < 0) {
			rc = loop_errmsg(ctx, errno, "no free loop device", ctl_path);
			break;
		}
		path = loopctl_path(ctx, n);
		lfd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
		if (lfd < 0) {
			rc = path ? loop_errmsg(ctx, errno, "cannot open", path)
				  : ctx_error(ctx, ENOMEM, "out of memory");
			free(path);
			break;
		}
		rc = loop_setup(lfd, backing_fd, place, name);
		if (rc < 0 && rc != -EBUSY)
			loop_errmsg(ctx, -rc, "cannot attach", path);
		if (rc == 0)
			*nr = n;
		close(lfd);
		free(path);
	}
	if (rc == -EBUSY)
		rc = ctx_error(ctx, EBUSY, "%s: every free loop device was taken by others; try again",
			       ctl_path);
	close(ctl);
	free(ctl_path);
	return rc;
}

/*
 * After LOOP_CLR_FD: a device that others hold open is not detached but
 * marked to detach on last close. Undo that mark and say -EBUSY, so the
 * caller retries and, in the end, reports it in use (as device-mapper does).
 */
static int still_attached(int fd)
{
	struct loop_info64 li;

	memset(&li, 0, sizeof(li));
	if (ioctl(fd, LOOP_GET_STATUS64, &li) < 0)
		return errno == ENXIO ? 0 : -errno;
	li.lo_flags &= ~(uint32_t)LO_FLAGS_AUTOCLEAR;
	ioctl(fd, LOOP_SET_STATUS64, &li);
	return -EBUSY;
}

int loopctl_detach(struct imgdev_ctx *ctx, int nr, int tries)
{
	const struct timespec pause = { 0, BUSY_RETRY_NS };
	char *path = loopctl_path(ctx, nr);
	int fd, rc = 0;

	if (!path)
		return ctx_error(ctx, ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = loop_errmsg(ctx, errno, "cannot open", path);
		free(path);
		return rc;
	}
	for (int i = 0; i < tries; i++) {
		rc = ioctl(fd, LOOP_CLR_FD, 0) < 0 ? -errno : 0;
		if (rc == 0)
			rc = still_attached(fd);
		if (rc != -EBUSY)
			break;
		nanosleep(&pause, NULL);
	}
	if (rc == -EBUSY)
		rc = ctx_error(ctx, EBUSY, "%s: still in use after %d attempts (opened by a process or held by another device)",
			       path, tries);
	else if (rc < 0)
		loop_errmsg(ctx, -rc, "cannot detach", path);
	close(fd);
	free(path);
	return rc;
}

/* Read a small sysfs file of loop nr (relative to block/loopN/) into buf. */
static int sysfs_read(struct imgdev_ctx *ctx, int nr, const char *file, char *buf, size_t len)
{
	char rel[64], *path;
	ssize_t n = -1;
	int fd;

	snprintf(rel, sizeof(rel), "block/loop%d/%s", nr, file);
	path = path_join(ctx->sysfs_dir, rel);
	fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	free(path);
	if (n < 0)
		return -ENXIO;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int loopctl_info(struct imgdev_ctx *ctx, int nr, struct loopctl_info *info)
{
	struct loop_info64 li;
	char *path = loopctl_path(ctx, nr), size[32];
	struct stat st;
	int fd, rc = 0;

	memset(info, 0, sizeof(*info));
	memset(&li, 0, sizeof(li));	/* (valgrind does not know this ioctl fills it) */
	if (!path)
		return ctx_error(ctx, ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || ioctl(fd, LOOP_GET_STATUS64, &li) < 0)
		rc = ctx_error(ctx, errno, "%s: %s", path,
			       errno == ENXIO ? "not attached" : strerror(errno));
	if (fd >= 0)
		close(fd);
	free(path);
	if (rc < 0)
		return rc;
	info->nr = nr;
	info->dev = st.st_rdev;
	snprintf(info->name, sizeof(info->name), "%s", (const char *)li.lo_file_name);
	info->offset = li.lo_offset;
	info->sizelimit = li.lo_sizelimit;
	info->backing_dev = (dev_t)li.lo_device;
	info->backing_ino = li.lo_inode;
	if (sysfs_read(ctx, nr, "loop/backing_file", info->backing_file,
		       sizeof(info->backing_file)) < 0)
		return ctx_error(ctx, ENXIO, "loop%d: not attached", nr);
	if (sysfs_read(ctx, nr, "size", size, sizeof(size)) == 0)
		info->sectors = strtoull(size, NULL, 10);
	return 0;
}

int loopctl_attached(struct imgdev_ctx *ctx, int **nrs)
{
	char *block = path_join(ctx->sysfs_dir, "block"), probe[64];
	DIR *dir = block ? opendir(block) : NULL;
	struct dirent *e;
	int *out = NULL, count = 0, rc = 0;

	if (!dir) {
		rc = ctx_error(ctx, errno ? errno : ENOMEM, "%s: %s", block ? block : "sysfs",
			       strerror(errno ? errno : ENOMEM));
		free(block);
		return rc;
	}
	while ((e = readdir(dir))) {
		int nr, *grown;

		if (sscanf(e->d_name, "loop%d", &nr) != 1 ||
		    sysfs_read(ctx, nr, "loop/backing_file", probe, sizeof(probe)) < 0)
			continue;
		grown = realloc(out, sizeof(*out) * (size_t)(count + 1));
		if (!grown) {
			rc = ctx_error(ctx, ENOMEM, "out of memory");
			break;
		}
		out = grown;
		out[count++] = nr;
	}
	closedir(dir);
	free(block);
	if (rc < 0) {
		free(out);
		return rc;
	}
	*nrs = out;
	return count;
}
