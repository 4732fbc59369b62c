/*
 * The device side of provisioning: where the pipeline's chunks go. Each
 * chunk goes out as runs of data blocks (blockdev_io.h) and runs of zero
 * blocks, the zeros either sent in the stream or held to the end
 * (zero_runs.h), as the device zeroes best. Counts what it wrote.
 */
#ifndef IMGDEV_PAYLOAD_SINK_H
#define IMGDEV_PAYLOAD_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blockdev_io.h"
#include "discard_zero.h"
#include "imgdev.h"
#include "zero_runs.h"

struct bdev;
struct chunk;
struct imgdev_ctx;

struct payload_sink {
	struct bdev_io io;
	uint64_t data_offset;		/* of the payload on the device */
	const char *image;		/* the image's name, for messages */
	atomic_uint_least64_t written;	/* payload bytes sent as data */
	atomic_uint_least64_t zeroed;	/* payload bytes zeroed without data */
	atomic_int zeroing;		/* how zero runs go out (payload_sink.c) */
	struct zero_runs held;		/* zero runs held back to the end */
	bool limits_known;		/* sysfs gave the device's discard limits */
	bool by_discard;		/* zero runs go through dz */
	struct discard_zero dz;
};

/*
 * Set up s to write a payload at data_offset of the open bd (O_RDWR); a
 * block device that discards but cannot write zeroes has its zero runs
 * discarded and checked (discard_zero.h), held to the end.
 */
void payload_sink_open(struct imgdev_ctx *ctx, struct payload_sink *s, const struct bdev *bd,
		       uint64_t data_offset, const char *image);
void payload_sink_close(struct payload_sink *s);

/* Write chunk c (thread-safe); 0 or chunk_error(). */
int payload_sink_write(struct payload_sink *s, struct chunk *c);

/*
 * Zero the held runs: at a checkpoint, or with last after the last chunk
 * (every data write done); then payload_sink_sync flushes everything to
 * the device. 0 or -errno with the message in ctx.
 */
/*
 * Zero len bytes at device offset off that are not payload (the aligned
 * layout's gap before it), as the payload's zero runs are zeroed; not
 * counted as payload zeroed. 0 or -errno with the message in ctx.
 */
int payload_sink_zero_gap(struct imgdev_ctx *ctx, struct payload_sink *s, uint64_t off,
			  uint64_t len);
int payload_sink_flush_zeros(struct imgdev_ctx *ctx, struct payload_sink *s, bool last);
int payload_sink_sync(struct imgdev_ctx *ctx, struct payload_sink *s);

/* How the zero runs were zeroed; after the copy (NONE: there were none). */
enum imgdev_zeroing payload_sink_zeroing(const struct payload_sink *s);
/* Say so in the log, at info level, with what a discard and its check did. */
void payload_sink_log_zeroing(struct imgdev_ctx *ctx, const struct payload_sink *s);

#endif
