/*
 * The write of provision, as the three steps of the commit protocol:
 * (1) sector 0 says "writing" with an all-zero image hash, synced; (2) the
 * payload, copied from the image source to the device and flushed; (3)
 * sector 0 with the image hash and a "complete" record holding the content
 * hash, synced. A crash between any two leaves no header that matches.
 * A raw image fetched from a URL with its digest also leaves checkpoints
 * during (2): about every second, the payload so far flushed, then a
 * "writing" record saying how much of it is durable, where a rerun resumes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockdev.h"
#include "bytesrc.h"
#include "header.h"
#include "identity.h"
#include "imgsrc.h"
#include "internal.h"
#include "ops.h"
#include "payload_sink.h"
#include "pipeline.h"

/*
 * Sector 0 for this write: the header of the record's layout plus the
 * record in the given state. In the aligned layout, the rest of the first
 * logical block goes out with it as zeros (one atomic write on a device
 * with 4096-byte sectors), as nothing but the header belongs there.
 */
static int write_commit(struct imgdev_ctx *ctx, const struct bdev *bd, const uint8_t *image_hash,
			const struct commit_rec *rec)
{
	static const uint8_t none[IMGDEV_HASH_SIZE];
	uint8_t small[ALIGNED_HEAD_SIZE] = { 0 };
	uint16_t version = rec->data_offset == SECTOR_SIZE ? HDR_VERSION_VIRTLET : HDR_VERSION_ALIGNED;
	size_t len = version == HDR_VERSION_VIRTLET ? SECTOR_SIZE : bdev_logical_block_size(bd);
	uint8_t *head = len <= sizeof(small) ? small : calloc(1, len);
	struct hdr h;
	int rc;

	if (!head)
		return ctx_error(ctx, ENOMEM, "out of memory");
	hdr_init(&h, version, image_hash ? image_hash : none);
	h.rec_status = REC_VALID;
	h.rec = *rec;
	h.rec.commit_time = (uint64_t)time(NULL);
	hdr_encode(&h, head);
	rc = bdev_write_head(ctx, bd, head, len);
	if (head != small)
		free(head);
	return rc;
}

/* The least time between two checkpoints. */
#define CHECKPOINT_SECONDS 1.0

/*
 * A copy, as the pipeline sees it: chunks read from src (or, before
 * resume_at, from the device), written to sink.
 */
struct copy {
	struct imgdev_ctx *ctx;
	const struct bdev *bd;
	struct imgsrc *src;
	struct payload_sink sink;
	const struct imgdev_provision_opts *opts;
	uint64_t resume_at;
	atomic_bool reread_failed; /* a chunk before resume_at could not be re-read */
	/* Checkpoints, written from the folding thread: the "writing" record. */
	bool checkpoints;
	struct commit_rec *rec;
	double last_checkpoint;
	atomic_bool checkpoint_failed; /* then the copy stops: checkpoint_rc, its message */
	int checkpoint_rc;
	char checkpoint_msg[IMGDEV_ERRMSG_MAX];
};

/*
 * Progress of a stream whose payload size is unknown but whose file size is
 * known (a compressed image at a URL): the file's bytes read, of its size.
 */
static void progress_by_file(void *arg, uint64_t done, uint64_t total)
{
	struct copy *cp = arg;

	(void)done;
	(void)total;
	cp->opts->progress(cp->opts->progress_data,
			   atomic_load_explicit(&cp->src->file_read, memory_order_relaxed),
			   cp->src->bytes->size);
}

/* A chunk an interrupted write left on the device: re-read from there. */
static int reread_chunk(struct copy *cp, struct chunk *c)
{
	uint64_t at = cp->sink.data_offset + c->off;
	int rc = bdev_io_pread(&cp->sink.io, c->buf, c->len, at);

	if (rc < 0) {
		atomic_store(&cp->reread_failed, true);
		return chunk_error(c, rc,
				   "%s: read error at device offset %llu, re-reading what an "
				   "interrupted write left there: %s",
				   cp->bd->path, (unsigned long long)at, strerror(-rc));
	}
	return 0;
}

/* After a failed checkpoint, chunks fail: the copy stops (its message is the checkpoint's). */
static int copy_stopped(struct copy *cp, struct chunk *c)
{
	if (!atomic_load(&cp->checkpoint_failed))
		return 0;
	return chunk_error(c, ECANCELED, "stopped: a checkpoint failed");
}

static int copy_read_chunk(void *arg, struct chunk *c)
{
	struct copy *cp = arg;
	int rc = copy_stopped(cp, c);

	if (rc < 0)
		return rc;
	if (c->off < cp->resume_at)
		return reread_chunk(cp, c);
	return imgsrc_read_chunk(cp->src, c);
}

static int copy_write_chunk(void *arg, struct chunk *c)
{
	struct copy *cp = arg;
	int rc = copy_stopped(cp, c);

	if (rc < 0 || c->off < cp->resume_at)
		return rc; /* before resume_at: on the device already */
	return payload_sink_write(&cp->sink, c);
}

/*
 * After chunk c is folded, every payload byte before its end is written:
 * now and then, make them durable (the zero runs held back too), then say
 * so in the "writing" record. Not after the payload's last chunk, which
 * the commit follows. A failure ends the checkpoints and the copy with it.
 */
static void checkpoint(struct copy *cp, const struct chunk *c)
{
	uint64_t end = c->off + c->len;
	double now = monotonic_seconds();
	int rc;

	if (!cp->checkpoints || cp->checkpoint_rc < 0 || c->end || c->len != CHUNK_SIZE ||
	    end >= cp->rec->image_size || end <= cp->rec->resume_at ||
	    now - cp->last_checkpoint < CHECKPOINT_SECONDS)
		return;
	rc = payload_sink_flush_zeros(cp->ctx, &cp->sink, false);
	if (rc == 0)
		rc = payload_sink_sync(cp->ctx, &cp->sink);
	if (rc == 0) {
		cp->rec->resume_at = end;
		rc = write_commit(cp->ctx, cp->bd, NULL, cp->rec);
	}
	cp->last_checkpoint = monotonic_seconds();
	if (rc == 0)
		return;
	cp->checkpoint_rc = rc;
	snprintf(cp->checkpoint_msg, sizeof(cp->checkpoint_msg), "%s", imgdev_ctx_last_error(cp->ctx));
	atomic_store(&cp->checkpoint_failed, true);
}

static void copy_release_chunk(void *arg, const struct chunk *c)
{
	struct copy *cp = arg;

	if (c->off >= cp->resume_at)
		imgsrc_release_chunk(cp->src, c);
	checkpoint(cp, c);
}

/*
 * With step 2: in the aligned layout, the bytes between the first logical
 * block and the payload zeroed, so that no older signature there (an LVM
 * label in sector 1, a GPT header, an md superblock at 4 KiB) outlives the
 * write and makes the device look like something else.
 */
static int zero_gap(struct imgdev_ctx *ctx, struct payload_sink *s, const struct bdev *bd)
{
	uint64_t from = bdev_logical_block_size(bd);

	if (s->data_offset <= from)
		return 0;
	return payload_sink_zero_gap(ctx, s, from, s->data_offset - from);
}

/* Step 1: "writing", no image hash (the record names a given digest already). */
static int mark_writing(struct imgdev_ctx *ctx, const struct bdev *bd, const struct identity *id,
			struct commit_rec *rec)
{
	if (identity_known_up_front(id))
		memcpy(rec->target_hash, id->hash, IMGDEV_HASH_SIZE);
	return write_commit(ctx, bd, NULL, rec);
}

/*
 * Step 2: the payload, with its content hash into rec and the identity
 * hash finished; then the image must be as it was opened, and the payload
 * flushed. A payload of unknown size is as long as it turns out, at most
 * the room.
 */
static int copy_payload(struct imgdev_ctx *ctx, struct copy *cp, struct identity *id,
			const struct imgdev_provision_opts *opts, struct commit_rec *rec)
{
	struct imgsrc *src = cp->src;
	bool by_file = !src->size_known && src->bytes->size_known && opts->progress;
	struct pipeline_job job = { .size = src->size_known ? src->size : src->room,
				    .size_unknown = !src->size_known,
				    .workers = opts->threads,
				    .read_fn = copy_read_chunk,
				    .write_fn = copy_write_chunk,
				    .release_fn = copy_release_chunk,
				    .arg = cp,
				    .identity = id->md,
				    .identity_thread = id->md_thread,
				    .progress = by_file ? progress_by_file : opts->progress,
				    .progress_arg = by_file ? cp : opts->progress_data };
	int rc = identity_start(ctx, id), hrc;

	if (rc == 0)
		rc = pipeline_run(ctx, &job, rec->content_hash, &rec->image_size);
	if (cp->checkpoint_rc < 0)
		rc = ctx_error(ctx, -cp->checkpoint_rc, "%s", cp->checkpoint_msg);
	if (rc == 0 && !src->size_known) {
		src->size = rec->image_size;
		src->size_known = true;
	}
	if (rc == 0)
		rc = payload_sink_flush_zeros(ctx, &cp->sink, true);
	hrc = identity_finish(ctx, id);
	if (rc == 0)
		rc = hrc;
	if (rc == 0)
		rc = identity_finish_received(ctx, id);
	if (rc == 0)
		rc = imgsrc_check_unchanged(ctx, cp->src);
	if (rc == 0)
		rc = identity_finish_checked(ctx, id, rec->image_size, cp->resume_at);
	if (rc == 0)
		rc = payload_sink_sync(ctx, &cp->sink);
	return rc;
}

/* Step 3: "complete", with the image hash. */
static int commit_complete(struct imgdev_ctx *ctx, const struct bdev *bd, const struct identity *id,
			   struct commit_rec *rec)
{
	memcpy(rec->target_hash, id->hash, IMGDEV_HASH_SIZE);
	rec->state = REC_STATE_COMPLETE;
	rec->resume_at = 0;
	return write_commit(ctx, bd, rec->target_hash, rec);
}

/*
 * Whether the copy leaves checkpoints: a raw image from a URL that takes
 * ranges (so that a rerun can ask for the rest), named by a digest (which
 * the rerun checks the whole against, the bytes on the device included).
 */
static bool copy_checkpoints(const struct imgsrc *src, const uint8_t *digest)
{
	return digest && bytesrc_is_url(src->name) && imgsrc_is_ranged_plain_stream(src);
}

/*
 * After a copy that failed with rc: the bytes of one that did not match its
 * digest are no start to resume from, so the record loses its resume point
 * (the error's message kept); a resumed copy whose bytes did not match, or
 * whose bytes on the device could not be re-read, is to start over from the
 * first byte (-ERESTART, for ops_provision.c). Else rc.
 */
static int copy_failed(struct imgdev_ctx *ctx, const struct bdev *bd, const struct copy *cp,
		       struct commit_rec *rec, int rc)
{
	if (rc == -EILSEQ && rec->resume_at) {
		char msg[IMGDEV_ERRMSG_MAX];

		snprintf(msg, sizeof(msg), "%s", imgdev_ctx_last_error(ctx));
		rec->resume_at = 0;
		write_commit(ctx, bd, NULL, rec);
		ctx_error(ctx, EILSEQ, "%s", msg);
	}
	if (cp->resume_at && (rc == -EILSEQ || atomic_load(&cp->reread_failed)))
		return -ERESTART;
	return rc;
}

int provision_write(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
		    struct imgsrc *src, struct bytesrc *received, uint64_t resume_at,
		    const uint8_t *digest, const struct imgdev_provision_opts *opts, struct imgdev_provision_result *res)
{
	struct commit_rec rec = { .version = REC_VERSION,
				  .state = REC_STATE_WRITING,
				  .block_size = CONTENT_BLOCK_SIZE,
				  .data_offset = data_offset,
				  .image_size = src->size,
				  .resume_at = resume_at };
	struct copy cp = { .ctx = ctx,
			   .bd = bd,
			   .src = src,
			   .opts = opts,
			   .resume_at = resume_at,
			   .checkpoints = copy_checkpoints(src, digest),
			   .rec = &rec,
			   .last_checkpoint = monotonic_seconds() };
	struct identity id;
	int rc = resume_at ? identity_init_resumed(ctx, &id, src, digest)
			   : identity_init(ctx, &id, src, digest, received);

	atomic_init(&cp.reread_failed, false);
	atomic_init(&cp.checkpoint_failed, false);
	payload_sink_open(ctx, &cp.sink, bd, data_offset, src->name);
	if (rc == 0)
		rc = mark_writing(ctx, bd, &id, &rec);
	if (rc == 0)
		rc = zero_gap(ctx, &cp.sink, bd);
	if (rc == 0) {
		rc = copy_payload(ctx, &cp, &id, opts, &rec);
		if (rc < 0)
			rc = copy_failed(ctx, bd, &cp, &rec, rc);
	}
	if (rc == 0)
		rc = commit_complete(ctx, bd, &id, &rec);
	if (rc == 0) {
		res->written = true;
		memcpy(res->image_hash, rec.target_hash, IMGDEV_HASH_SIZE);
		memcpy(res->content_hash, rec.content_hash, IMGDEV_HASH_SIZE);
		res->bytes_written = atomic_load(&cp.sink.written);
		res->bytes_zeroed = atomic_load(&cp.sink.zeroed);
		res->image_size = rec.image_size;
		res->resumed_at = resume_at;
		res->zeroing = payload_sink_zeroing(&cp.sink);
		res->direct_io = bdev_io_all_direct(&cp.sink.io);
		payload_sink_log_zeroing(ctx, &cp.sink);
	}
	payload_sink_close(&cp.sink);
	identity_free(&id);
	return rc;
}
