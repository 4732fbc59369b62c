/*
 * The device side of provisioning: where the pipeline's chunks go. Each
 * chunk goes out as runs of data blocks (blockdev_io.h) and runs of zero
 * blocks, the zeros either sent in the stream or held to the end
 * (zero_runs.h), as the device zeroes best. Counts what it wrote.
 */
#ifndef IMGDEV_PAYLOAD_SINK_H
#define IMGDEV_PAYLOAD_SINK_H

#include <stdatomic.h>
#include <stdint.h>

#include "blockdev_io.h"
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
};

/* Set up s to write a payload at data_offset of the open bd (O_RDWR). */
void payload_sink_open(struct payload_sink *s, const struct bdev *bd, uint64_t data_offset,
		       const char *image);
void payload_sink_close(struct payload_sink *s);

/* Write chunk c (thread-safe); 0 or chunk_error(). */
int payload_sink_write(struct payload_sink *s, struct chunk *c);

/*
 * After the last chunk: zero the held runs, then flush everything to the
 * device. 0 or -errno with the message in ctx.
 */
int payload_sink_flush_zeros(struct imgdev_ctx *ctx, struct payload_sink *s);
int payload_sink_sync(struct imgdev_ctx *ctx, struct payload_sink *s);

#endif
