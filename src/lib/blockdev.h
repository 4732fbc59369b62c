/*
 * Access to the device that holds an image: open a block device or a regular
 * file, learn its size, and read or write whole sectors with short transfers
 * and EINTR handled.
 */
#ifndef IMGDEV_BLOCKDEV_H
#define IMGDEV_BLOCKDEV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct imgdev_ctx;

struct bdev {
	int fd;
	char *path;		/* the resolved path (symlinks followed) */
	bool is_block;
	dev_t rdev;		/* for block devices */
	uint64_t size;		/* bytes */
};

#define BDEV_INIT { .fd = -1 }

/*
 * Open path (a block device or a regular file, after following symlinks)
 * with flags (O_RDONLY or O_RDWR, plus e.g. O_SYNC; O_CLOEXEC is added;
 * O_EXCL applies to block devices only, and EBUSY then says "in use").
 * Returns 0 or -errno with a message naming the path.
 */
int bdev_open(struct imgdev_ctx *ctx, const char *path, int flags, struct bdev *bd);
/* 0 when a and b are the same device or file (path reopened meanwhile), else -ESTALE. */
int bdev_check_same(struct imgdev_ctx *ctx, const struct bdev *a, const struct bdev *b);
/* Close and free; safe on a BDEV_INIT or already-closed struct. */
void bdev_close(struct bdev *bd);

/* Read exactly len bytes at off; 0, or -EIO on a short file, or -errno. */
int bdev_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* Write exactly len bytes at off; 0 or -errno. */
int bdev_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* The logical block size: BLKSSZGET for block devices, 512 for files. */
unsigned int bdev_logical_block_size(const struct bdev *bd);

/*
 * Make [off, off+len) read as zeros without sending zero buffers: on block
 * devices (len rounded up to a sector) fallocate PUNCH_HOLE, which the
 * kernel turns into write-zeroes with unmapping allowed, else BLKZEROOUT;
 * on files fallocate ZERO_RANGE, else PUNCH_HOLE; plain zero writes as the
 * last resort. 0 or -errno. offloaded (may be NULL) is set when a fallocate
 * did it, so the device zeroes without being sent zeros: a cheap request.
 */
int bdev_zero_range(const struct bdev *bd, uint64_t off, uint64_t len, bool *offloaded);

/* Read / write sector 0, with a message in ctx on failure. */
int bdev_read_sector0(struct imgdev_ctx *ctx, const struct bdev *bd, uint8_t *sector);
int bdev_write_sector0(struct imgdev_ctx *ctx, const struct bdev *bd, const uint8_t *sector);
/* Write the first len bytes of the device (sector 0 and what follows it) and sync them. */
int bdev_write_head(struct imgdev_ctx *ctx, const struct bdev *bd, const uint8_t *head, size_t len);

#endif
