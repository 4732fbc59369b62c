/*
 * The byte source over a regular file (bytesrc.h): pread and read are
 * positioned reads of its descriptor (read keeps its own position, so the
 * two never disturb each other), the change check compares the size and
 * times with those at open, and the hints are posix_fadvise.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "blockdev.h"
#include "bytesrc.h"
#include "internal.h"

struct file_state {
	struct timespec opened_mtime;	/* the file's times when opened */
	struct timespec opened_ctime;
	uint64_t read_pos;		/* of read */
};

static int file_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
{
	return bdev_pread_full(bs->fd, buf, len, off);
}

static ssize_t file_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct file_state *f = bs->priv;
	size_t n = bs->size - f->read_pos < len ? (size_t)(bs->size - f->read_pos) : len;
	int rc = n ? bdev_pread_full(bs->fd, buf, n, f->read_pos) : 0;

	if (rc < 0)
		return rc;
	f->read_pos += n;
	return (ssize_t)n;
}

static int file_rewind(struct bytesrc *bs)
{
	struct file_state *f = bs->priv;

	f->read_pos = 0;
	return 0;
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static int file_check_unchanged(struct imgdev_ctx *ctx, const struct bytesrc *bs)
{
	const struct file_state *f = bs->priv;
	struct stat st;

	if (fstat(bs->fd, &st) < 0)
		return ctx_error(ctx, errno, "%s: cannot check the image after the copy: %s", bs->name,
				 strerror(errno));
	if ((uint64_t)st.st_size != bs->size)
		return ctx_error(ctx, ESTALE, "%s: the image file changed size while it was copied "
				 "(%llu bytes, then %llu); nothing was committed; provision again", bs->name,
				 (unsigned long long)bs->size, (unsigned long long)st.st_size);
	if (!same_time(st.st_mtim, f->opened_mtime) || !same_time(st.st_ctim, f->opened_ctime))
		return ctx_error(ctx, ESTALE, "%s: the image file was modified while it was copied; "
				 "nothing was committed; provision again", bs->name);
	return 0;
}

static void file_advise(const struct bytesrc *bs, uint64_t off, uint64_t len,
			enum bytesrc_advice advice)
{
	posix_fadvise(bs->fd, (off_t)off, (off_t)len,
		      advice == BYTESRC_SEQUENTIAL ? POSIX_FADV_SEQUENTIAL : POSIX_FADV_DONTNEED);
}

static void file_close(struct bytesrc *bs)
{
	if (bs->fd >= 0)
		close(bs->fd);
	free(bs->priv);
}

static const struct bytesrc_ops file_ops = {
	.pread = file_pread,
	.read = file_read,
	.rewind = file_rewind,
	.check_unchanged = file_check_unchanged,
	.advise = file_advise,
	.close = file_close,
};

/* Fill bs from the open fd (owned by bs from here on); 0 or -errno. */
static int file_setup(struct imgdev_ctx *ctx, struct bytesrc *bs, int fd, const char *name)
{
	struct file_state *f = calloc(1, sizeof(*f));
	struct statfs fs;
	struct stat st;

	bs->ops = &file_ops;
	bs->fd = fd;
	bs->priv = f;
	bs->name = strdup(name);
	if (!f || !bs->name)
		return ctx_error(ctx, ENOMEM, "out of memory");
	if (fstat(fd, &st) < 0)
		return ctx_error(ctx, errno, "%s: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ctx_error(ctx, ENOMEDIUM, "%s: the image must be a regular file", name);
	bs->size = (uint64_t)st.st_size;
	bs->size_known = true;
	bs->in_memory = fstatfs(fd, &fs) == 0 &&
			(fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
	f->opened_mtime = st.st_mtim;
	f->opened_ctime = st.st_ctim;
	return 0;
}

int bytesrc_from_fd(struct imgdev_ctx *ctx, int fd, const char *name, struct bytesrc **out)
{
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	int rc;

	if (!bs) {
		close(fd);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	rc = file_setup(ctx, bs, fd, name);
	if (rc < 0)
		bytesrc_close(bs);
	else
		*out = bs;
	return rc;
}

int bytesrc_open_file(struct imgdev_ctx *ctx, const char *path, struct bytesrc **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return ctx_error(ctx, errno == EACCES || errno == EPERM ? EACCES : ENOMEDIUM,
				 "%s: cannot open the image: %s", path, strerror(errno));
	return bytesrc_from_fd(ctx, fd, path, out);
}
