/*
 * Payload I/O with O_DIRECT and its fallback (blockdev_io.h): the direct
 * descriptor is the device reopened by path and checked to be the same
 * device, and any EINVAL from it (an alignment the device refuses) turns
 * it off for the rest of the transfer.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev.h"
#include "blockdev_io.h"

/* An O_DIRECT fd on the same device as bd (reopened by path, so checked), or -1. */
static int open_direct(const struct bdev *bd, int flags)
{
	struct stat st;
	int fd;

	if (!bd->is_block)
		return -1;
	fd = open(bd->path, flags | O_DIRECT | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != bd->rdev)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

void bdev_io_open(struct bdev_io *io, const struct bdev *bd, int flags)
{
	io->bd = bd;
	io->block = bdev_logical_block_size(bd);
	io->direct_fd = open_direct(bd, flags);
	atomic_init(&io->direct_failed, false);
	atomic_init(&io->direct_written, 0);
	atomic_init(&io->buffered_written, 0);
}

void bdev_io_close(struct bdev_io *io)
{
	if (io->direct_fd >= 0)
		close(io->direct_fd);
	io->direct_fd = -1;
}

static bool direct_usable(struct bdev_io *io)
{
	return io->direct_fd >= 0 && !atomic_load(&io->direct_failed);
}

bool bdev_io_all_direct(struct bdev_io *io)
{
	return atomic_load(&io->direct_written) > 0 && atomic_load(&io->buffered_written) == 0;
}

int bdev_io_pread(struct bdev_io *io, uint8_t *buf, size_t len, uint64_t off)
{
	size_t padded = (size_t)bdev_io_round_up(io, len);
	int rc = -EINVAL;

	if (direct_usable(io) && off % io->block == 0) {
		rc = bdev_pread_full(io->direct_fd, buf, padded, off);
		if (rc == -EINVAL)
			atomic_store(&io->direct_failed, true);
	}
	if (rc == -EINVAL)
		rc = bdev_pread_full(io->bd->fd, buf, len, off);
	return rc;
}

int bdev_io_pwrite(struct bdev_io *io, const uint8_t *buf, size_t len, size_t room, uint64_t off)
{
	int rc;

	if (direct_usable(io) && room % io->block == 0 && off % io->block == 0) {
		rc = bdev_pwrite_full(io->direct_fd, buf, room, off);
		if (rc == 0)
			atomic_fetch_add(&io->direct_written, len);
		if (rc != -EINVAL)
			return rc;
		atomic_store(&io->direct_failed, true);
	}
	rc = bdev_pwrite_full(io->bd->fd, buf, len, off);
	if (rc == 0)
		atomic_fetch_add(&io->buffered_written, len);
	/*
	 * Buffered: push it out now and drop it, so the cache does not flood.
	 * The write error surfaces here, and only here: once reported on this
	 * fd, a later fdatasync would no longer see it.
	 */
	if (rc == 0 && sync_file_range(io->bd->fd, (off_t)off, (off_t)len,
				       SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					       SYNC_FILE_RANGE_WAIT_AFTER) < 0)
		rc = -errno;
	if (rc == 0)
		posix_fadvise(io->bd->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return rc;
}

int bdev_io_sync(struct bdev_io *io)
{
	if (fdatasync(io->bd->fd) < 0 || (io->direct_fd >= 0 && fdatasync(io->direct_fd) < 0))
		return -errno;
	return 0;
}
