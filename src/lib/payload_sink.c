/*
 * Writing chunks to the device (payload_sink.h): a chunk is split into runs
 * of data and runs of zero blocks; data goes through blockdev_io, zeros
 * through bdev_zero_range now or, on a device that zeroes by offload, held
 * in zero_runs to the end of the copy; on a device that discards but cannot
 * write zeroes, held and then discarded and checked (discard_zero.c).
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

static int sink_discard_zero(void *arg, uint64_t off, uint64_t len)
{
	struct payload_sink *s = arg;

	return discard_zero_range(&s->dz, off, len);
}

void payload_sink_open(struct imgdev_ctx *ctx, struct payload_sink *s, const struct bdev *bd,
		       uint64_t data_offset, const char *image)
{
	struct discard_limits lim = { 0 };

	bdev_io_open(&s->io, bd, O_RDWR);
	s->data_offset = data_offset;
	s->image = image;
	atomic_init(&s->written, 0);
	atomic_init(&s->zeroed, 0);
	atomic_init(&s->zeroing, ZEROING_UNKNOWN);
	zero_runs_init(&s->held, bd, ZERO_RUNS_MAX);
	s->limits_known = bd->is_block && discard_limits_read(ctx, bd->rdev, &lim) == 0;
	s->by_discard = s->limits_known && discard_limits_want_discard(&lim);
	discard_zero_init(&s->dz, &s->io, &lim);
	if (s->by_discard) {
		/* Discards are cheap requests too: held, merged, at the end. */
		atomic_store(&s->zeroing, ZEROING_HELD);
		zero_runs_set_fn(&s->held, sink_discard_zero, s);
	}
}

void payload_sink_close(struct payload_sink *s)
{
	bdev_io_close(&s->io);
	zero_runs_free(&s->held);
	discard_zero_free(&s->dz);
}

/*
 * Write len bytes of chunk c from start. Only the payload's short last
 * chunk is not a whole number of logical blocks, and it is always in
 * c->buf, never mapped: its padding (the chunk has CHUNK_PAD spare, the
 * largest logical block) is zeroed so that O_DIRECT can write whole blocks.
 */
static int sink_write_data(struct payload_sink *s, struct chunk *c, uint32_t start, size_t len,
			   uint64_t off)
{
	size_t room = (size_t)bdev_io_round_up(&s->io, len);

	if (room != len && c->data == c->buf && room - len <= CHUNK_PAD)
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

int payload_sink_zero_gap(struct imgdev_ctx *ctx, struct payload_sink *s, uint64_t off,
			  uint64_t len)
{
	uint64_t failed_at;
	int rc = sink_zero(s, off, len, &failed_at);

	if (rc < 0)
		return ctx_error(ctx, -rc, "%s: zeroing bytes %llu to %llu, before the payload, failed: %s",
				 s->io.bd->path, (unsigned long long)off,
				 (unsigned long long)(off + len), strerror(-rc));
	return 0;
}

int payload_sink_flush_zeros(struct imgdev_ctx *ctx, struct payload_sink *s, bool last)
{
	char msg[IMGDEV_ERRMSG_MAX];
	uint64_t failed_at = 0;
	int rc;

	if (last)
		s->dz.data_done = true;	/* no data write can follow: edges may be read back */
	rc = zero_runs_flush(&s->held, &failed_at);

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

enum imgdev_zeroing payload_sink_zeroing(const struct payload_sink *s)
{
	if (atomic_load(&s->zeroed) == 0)
		return IMGDEV_ZEROING_NONE;
	if (s->by_discard)
		return IMGDEV_ZEROING_DISCARD;
	switch (atomic_load(&s->zeroing)) {
	case ZEROING_HELD: return IMGDEV_ZEROING_WRITE_ZEROES;
	case ZEROING_INLINE: return IMGDEV_ZEROING_ZEROS;
	default: return IMGDEV_ZEROING_NONE;
	}
}

#define MIB(n) ((double)(n) / (1024.0 * 1024.0))

void payload_sink_log_zeroing(struct imgdev_ctx *ctx, const struct payload_sink *s)
{
	const char *dev = s->io.bd->path;
	double mib = MIB(atomic_load(&s->zeroed));
	const struct discard_zero *dz = &s->dz;

	switch (payload_sink_zeroing(s)) {
	case IMGDEV_ZEROING_DISCARD:
		ctx_log(ctx, LOGP_INFO,
			"%s: zero ranges (%.1f MiB): discard, then read back (the device discards in "
			"%llu-byte blocks and cannot write zeroes): %.1f MiB discarded%s, %.1f MiB read "
			"back, %.1f MiB written as zeros", dev, mib,
			(unsigned long long)dz->lim.granularity, MIB(dz->discarded),
			dz->discard_refused ? " (then the device refused discards)" : "",
			MIB(dz->checked), MIB(dz->rewritten));
		break;
	case IMGDEV_ZEROING_WRITE_ZEROES:
		ctx_log(ctx, LOGP_INFO, "%s: zero ranges (%.1f MiB): write-zeroes (%s)", dev, mib,
			s->io.bd->is_block ? "the device zeroes them, unmapping allowed"
					   : "fallocate: the file system zeroes them");
		break;
	case IMGDEV_ZEROING_ZEROS:
		ctx_log(ctx, LOGP_INFO, "%s: zero ranges (%.1f MiB): zeros written (%s)", dev, mib,
			!s->io.bd->is_block ? "the file system cannot fallocate them" :
			!s->limits_known    ? "the device cannot write zeroes; sysfs gave no discard limits" :
					      "the device can neither write zeroes nor discard");
		break;
	case IMGDEV_ZEROING_NONE:
		ctx_log(ctx, LOGP_INFO, "%s: zero ranges: none", dev);
		break;
	}
}
