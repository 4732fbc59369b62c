/*
 * Zeroing by discard, checked: for a device that can discard but not write
 * zeroes (a dm-thin volume, many thin LUNs), a zero range is given back to
 * the device instead of written: its granularity-aligned part discarded,
 * then the whole range read back and zeros written only where it does not
 * read as zeros. A discard is advisory, so it is never trusted to zero.
 */
#ifndef IMGDEV_DISCARD_ZERO_H
#define IMGDEV_DISCARD_ZERO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct bdev_io;
struct imgdev_ctx;

/* A device's queue limits for discard and write-zeroes, in bytes (sysfs). */
struct discard_limits {
	uint64_t max_bytes;		/* queue/discard_max_bytes; 0: no discard */
	uint64_t granularity;		/* queue/discard_granularity */
	uint64_t alignment;		/* discard_alignment: offset of the first aligned block */
	uint64_t write_zeroes_max;	/* queue/write_zeroes_max_bytes; 0: no write-zeroes */
};

/*
 * Read the limits of block device dev under ctx's sysfs directory
 * (a partition's queue is its disk's). 0, or -errno when sysfs does not
 * say (no message: the caller zeroes as it would without them).
 */
int discard_limits_read(struct imgdev_ctx *ctx, dev_t dev, struct discard_limits *lim);

/* Whether zero ranges go by discard: it discards, in blocks, and cannot write zeroes. */
bool discard_limits_want_discard(const struct discard_limits *lim);

/* The discard of [off, off+len) on fd (BLKDISCARD); tests put their own. 0 or -errno. */
typedef int (*discard_fn)(int fd, uint64_t off, uint64_t len);
int discard_blkdiscard(int fd, uint64_t off, uint64_t len);

/* What the read-back reads at once: the memory it takes. */
#define DISCARD_ZERO_BUF (1024 * 1024)

struct discard_zero {
	struct bdev_io *io;
	struct discard_limits lim;
	discard_fn discard;
	uint8_t *buf;			/* DISCARD_ZERO_BUF, page-aligned, on first use */
	bool discard_refused;		/* the device refused a discard: checks only */
	bool data_done;			/* every data write of the copy is done (edges: below) */
	uint64_t discarded;		/* bytes discarded */
	uint64_t checked;		/* bytes read back */
	uint64_t rewritten;		/* bytes written as zeros after the read-back */
};

/* Set up dz over io (its device open read-write) with the device's limits. */
void discard_zero_init(struct discard_zero *dz, struct bdev_io *io, const struct discard_limits *lim);
void discard_zero_free(struct discard_zero *dz);

/*
 * Make [off, off+len) of the device read as zeros (len rounded up to a
 * sector on a block device): discard its whole blocks, read them back,
 * write zeros where they are not zeros. The edges (parts of blocks the
 * range shares with data) are read back the same way once data_done is
 * set, and written as zeros before. One caller at a time (zero_runs holds
 * its lock). 0 or -errno (-ENOMEM for the buffer).
 */
int discard_zero_range(struct discard_zero *dz, uint64_t off, uint64_t len);

#endif
