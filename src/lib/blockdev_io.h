/*
 * Payload transfers to and from a device, shared by provision and verify:
 * through a second, O_DIRECT descriptor when the device takes it (a block
 * device, transfers in whole logical blocks), falling back to the buffered one
 * for good at the first EINVAL. Buffered writes are pushed out and dropped
 * at once, so that a copy does not flood the page cache.
 */
#ifndef IMGDEV_BLOCKDEV_IO_H
#define IMGDEV_BLOCKDEV_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bdev;

struct bdev_io {
	const struct bdev *bd;
	int direct_fd;			/* -1 when O_DIRECT is not usable */
	unsigned int block;		/* the device's logical block size (512 for a file) */
	atomic_bool direct_failed;	/* it gave EINVAL once: buffered from then on */
	atomic_uint_least64_t direct_written;	/* bytes written through O_DIRECT */
	atomic_uint_least64_t buffered_written;	/* bytes written through the page cache */
};

/* Set up io over the open bd; flags O_RDONLY or O_RDWR. Cannot fail. */
void bdev_io_open(struct bdev_io *io, const struct bdev *bd, int flags);
/* Close the O_DIRECT descriptor, if any (bd stays open). */
void bdev_io_close(struct bdev_io *io);

/*
 * Read len bytes at device offset off into buf, which is BUF_ALIGN-aligned
 * with room for len rounded up to io->block. 0, -EIO at the end of the
 * device, or -errno. Thread-safe.
 */
int bdev_io_pread(struct bdev_io *io, uint8_t *buf, size_t len, uint64_t off);

/*
 * Write len bytes of buf at device offset off. room is len rounded up to
 * io->block when buf holds zeros up to there (O_DIRECT then writes them
 * too), else len: only whole blocks go out through O_DIRECT. buf
 * is page-aligned. 0 or -errno (a buffered write's error surfaces here, and
 * only here). Thread-safe.
 */
int bdev_io_pwrite(struct bdev_io *io, const uint8_t *buf, size_t len, size_t room, uint64_t off);

/* n rounded up to io->block. */
static inline uint64_t bdev_io_round_up(const struct bdev_io *io, uint64_t n)
{
	return (n + io->block - 1) / io->block * io->block;
}

/* Whether every byte written so far (at least one) went out through O_DIRECT. */
bool bdev_io_all_direct(struct bdev_io *io);

/* Flush what was written, through both descriptors; 0 or -errno. */
int bdev_io_sync(struct bdev_io *io);

#endif
