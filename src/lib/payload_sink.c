/*
 * Writing chunks to the device (payload_sink.h): a chunk is split into runs
 * of data and runs of zero blocks; data goes through blockdev_io, zeros
 * through bdev_zero_range now or, on a device that zeroes by offload, held
 * in zero_runs to the end of the copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "blockdev.h"
#include "header.h"
#include "internal.h"
#include "payload_sink.h"
#include "pipeline.h"

enum zeroing {
	ZEROING_UNKNOWN,		/* no zero run yet */
	ZEROING_INLINE,			/* the device is sent zeros: in the stream */
	ZEROING_HELD,			/* the device zeroes by offload: at the end */
};

void payload_sink_open(struct payload_sink *s, const struct bdev *bd, uint64_t data_offset,
		       const char *image)
{
	bdev_io_open(&s->io, bd, O_RDWR);
	s->data_offset = data_offset;
	s->image = image;
	atomic_init(&s->written, 0);
	atomic_init(&s->zeroed, 0);
	atomic_init(&s->zeroing, ZEROING_UNKNOWN);
	zero_runs_init(&s->held, bd, ZERO_RUNS_MAX);
}

void payload_sink_close(struct payload_sink *s)
{
	bdev_io_close(&s->io);
	zero_runs_free(&s->held);
}

/*
 * Write len bytes of chunk c from start. Only the payload's short last
 * chunk is not a whole number of sectors, and it is always in c->buf,
 * never mapped: its padding (the chunk has CHUNK_PAD spare) is zeroed so
 * that O_DIRECT can write whole sectors.
 */
static int sink_write_data(struct payload_sink *s, struct chunk *c, uint32_t start, size_t len,
			   uint64_t off)
{
	size_t room = (len + SECTOR_SIZE - 1) & ~(size_t)(SECTOR_SIZE - 1);

	if (room != len && c->data == c->buf)
		memset(c->buf + start + len, 0, room - len);
	else
		room = len;
	return bdev_io_pwrite(&s->io, c->data + start, len, room, off);
}

/* Into msg, the message for a failed write or zeroing at device offset at. */
static const char *write_error(char *msg, size_t size, const struct payload_sink *s, uint64_t at,
			       int rc)
{
	snprintf(msg, size, "%s: write error at payload offset %llu (device offset %llu): %s",
		 s->io.bd->path, (unsigned long long)(at - s->data_offset), (unsigned long long)at,
		 strerror(-rc));
	return msg;
}

/*
 * Zero a run of the device. The first zeroing shows whether the device
 * zeroes by offload (a cheap request, which issued between the data writes
 * would wait behind them: those runs are held to the end, zero_runs.c) or
 * is sent zeros (bandwidth, better spread over the copy: zeroed here).
 */
static int sink_zero(struct payload_sink *s, uint64_t off, uint64_t len, uint64_t *failed_at)
{
	int unknown = ZEROING_UNKNOWN, rc;
	bool offloaded;

	*failed_at = off;
	if (atomic_load(&s->zeroing) == ZEROING_HELD)
		return zero_runs_add(&s->held, off, len, failed_at);
	rc = bdev_zero_range(s->io.bd, off, len, &offloaded);
	if (rc == 0)
		atomic_compare_exchange_strong(&s->zeroing, &unknown,
					       offloaded ? ZEROING_HELD : ZEROING_INLINE);
	return rc;
}

int payload_sink_write(struct payload_sink *s, struct chunk *c)
{
	uint32_t nblocks = (c->len + CONTENT_BLOCK_SIZE - 1) / CONTENT_BLOCK_SIZE;
	char msg[sizeof(c->msg)];

	for (uint32_t b = 0; b < nblocks;) {
		uint32_t e = b + 1, start = b * CONTENT_BLOCK_SIZE, end;
		uint64_t dev_off, at;
		int rc;

		while (e < nblocks && c->zero[e] == c->zero[b])
			e++;
		end = e * CONTENT_BLOCK_SIZE < c->len ? e * CONTENT_BLOCK_SIZE : c->len;
		dev_off = s->data_offset + c->off + start;
		at = dev_off;
		if (c->zero[b]) {
			rc = sink_zero(s, dev_off, end - start, &at);
			atomic_fetch_add(&s->zeroed, end - start);
		} else {
			rc = sink_write_data(s, c, start, end - start, dev_off);
			atomic_fetch_add(&s->written, end - start);
		}
		if (rc == -EFAULT && c->data != c->buf)	/* the mapped image's pages went away */
			return chunk_error(c, ENOMEDIUM, "%s: reading the image failed at offset %llu: the file "
					   "was truncated or its storage failed while it was copied",
					   s->image, (unsigned long long)(c->off + start));
		if (rc < 0)
			return chunk_error(c, rc, "%s", write_error(msg, sizeof(msg), s, at, rc));
		b = e;
	}
	return 0;
}

int payload_sink_flush_zeros(struct imgdev_ctx *ctx, struct payload_sink *s)
{
	char msg[IMGDEV_ERRMSG_MAX];
	uint64_t failed_at = 0;
	int rc = zero_runs_flush(&s->held, &failed_at);

	if (rc < 0)
		ctx_error(ctx, rc, "%s", write_error(msg, sizeof(msg), s, failed_at, rc));
	return rc;
}

int payload_sink_sync(struct imgdev_ctx *ctx, struct payload_sink *s)
{
	int rc = bdev_io_sync(&s->io);

	if (rc < 0)
		return ctx_error(ctx, -rc, "%s: flushing the payload failed: %s", s->io.bd->path,
				 strerror(-rc));
	return 0;
}
