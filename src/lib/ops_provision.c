/*
 * provision and verify: put an image on a device crash-safely and check it
 * later. The commit protocol is: (1) sector 0 says "writing" with an all-zero
 * image hash, synced; (2) the payload, flushed; (3) sector 0 with the image
 * hash and a "complete" record holding the content hash, synced.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockdev.h"
#include "header.h"
#include "imgsrc.h"
#include "internal.h"
#include "ops.h"
#include "pipeline.h"
#include "zero_runs.h"

/* The device side of a copy: where chunks go and how. */
struct sink {
	struct bdev *bd;
	int direct_fd;			/* -1 when O_DIRECT is not usable */
	atomic_bool direct_failed;
	uint64_t data_offset;
	struct imgsrc *src;
	atomic_uint_least64_t written;
	atomic_uint_least64_t zeroed;
	atomic_int zeroing;		/* how zero runs go out: enum zeroing */
	struct zero_runs held;		/* zero runs held back to the end */
};

enum zeroing {
	ZEROING_UNKNOWN,		/* no zero run yet */
	ZEROING_INLINE,			/* the device is sent zeros: in the stream */
	ZEROING_HELD,			/* the device zeroes by offload: at the end */
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Write len bytes of chunk c from start; O_DIRECT when aligned and working,
 * else buffered. Only the payload's short last chunk is not a whole number
 * of sectors, and it is always in c->buf, never mapped.
 */
static int sink_write_data(struct sink *s, struct chunk *c, uint32_t start, size_t len,
			   uint64_t off)
{
	size_t padded = (len + SECTOR_SIZE - 1) & ~(size_t)(SECTOR_SIZE - 1);
	const uint8_t *buf = c->data + start;
	int rc;

	if (s->direct_fd >= 0 && !atomic_load(&s->direct_failed) &&
	    (padded == len || c->data == c->buf)) {
		memset(c->buf + start + len, 0, padded - len);	/* the chunk has CHUNK_PAD spare */
		rc = bdev_pwrite_full(s->direct_fd, buf, padded, off);
		if (rc != -EINVAL)
			return rc;
		atomic_store(&s->direct_failed, true);
	}
	rc = bdev_pwrite_full(s->bd->fd, buf, len, off);
	/*
	 * Buffered: push it out now and drop it, so the cache does not flood.
	 * The write error surfaces here, and only here: once reported on this
	 * fd, a later fdatasync would no longer see it.
	 */
	if (rc == 0 && sync_file_range(s->bd->fd, (off_t)off, (off_t)len,
				       SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					       SYNC_FILE_RANGE_WAIT_AFTER) < 0)
		rc = -errno;
	if (rc == 0)
		posix_fadvise(s->bd->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return rc;
}

/* Into msg, the message for a failed write or zeroing at device offset at. */
static const char *write_error(char *msg, size_t size, const struct sink *s, uint64_t at, int rc)
{
	snprintf(msg, size, "%s: write error at payload offset %llu (device offset %llu): %s",
		 s->bd->path, (unsigned long long)(at - s->data_offset), (unsigned long long)at,
		 strerror(-rc));
	return msg;
}

/*
 * Zero a run of the device. The first zeroing shows whether the device
 * zeroes by offload (a cheap request, which issued between the data writes
 * would wait behind them: those runs are held to the end, zero_runs.c) or
 * is sent zeros (bandwidth, better spread over the copy: zeroed here).
 */
static int sink_zero(struct sink *s, uint64_t off, uint64_t len, uint64_t *failed_at)
{
	int unknown = ZEROING_UNKNOWN, rc;
	bool offloaded;

	*failed_at = off;
	if (atomic_load(&s->zeroing) == ZEROING_HELD)
		return zero_runs_add(&s->held, off, len, failed_at);
	rc = bdev_zero_range(s->bd, off, len, &offloaded);
	if (rc == 0)
		atomic_compare_exchange_strong(&s->zeroing, &unknown,
					       offloaded ? ZEROING_HELD : ZEROING_INLINE);
	return rc;
}

/* Write a chunk as runs of data blocks and runs of zero blocks. */
static int sink_write_chunk(void *arg, struct chunk *c)
{
	struct sink *s = arg;
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
					   s->src->path, (unsigned long long)(c->off + start));
		if (rc < 0)
			return chunk_error(c, rc, "%s", write_error(msg, sizeof(msg), s, at, rc));
		b = e;
	}
	return 0;
}

static int source_read_chunk(void *arg, struct chunk *c)
{
	struct sink *s = arg;

	return s->src->ops->read_chunk(s->src, c);
}

static void source_release_chunk(void *arg, const struct chunk *c)
{
	struct sink *s = arg;

	if (s->src->ops->release_chunk)
		s->src->ops->release_chunk(s->src, c);
}

/* Sector 0 for this write: v1 header plus record in the given state. */
static int write_commit(struct imgdev_ctx *ctx, struct bdev *bd, const uint8_t *image_hash,
			const struct commit_rec *rec)
{
	static const uint8_t none[IMGDEV_HASH_SIZE];
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;

	hdr_init_v1(&h, image_hash ? image_hash : none);
	h.rec_status = REC_VALID;
	h.rec = *rec;
	h.rec.commit_time = (uint64_t)time(NULL);
	hdr_encode(&h, sector);
	return bdev_write_sector0(ctx, bd, sector);
}

/* An O_DIRECT fd on the same device as bd (reopened by path, so checked), or -1. */
static int open_direct(const struct bdev *bd, int flags)
{
	struct stat st;
	int fd;

	if (!bd->is_block || bdev_logical_block_size(bd) != SECTOR_SIZE)
		return -1;
	fd = open(bd->path, flags | O_DIRECT | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != bd->rdev)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Hashing the image file beside the copy, for formats whose payload differs. */
struct file_hasher {
	pthread_t thread;
	bool started;
	struct imgsrc *src;
	struct imgdev_ctx *ctx;		/* its own, for its error message */
	uint8_t hash[IMGDEV_HASH_SIZE];
	int rc;
};

static void *file_hasher_run(void *arg)
{
	struct file_hasher *fh = arg;

	fh->rc = imgsrc_hash_file(fh->ctx, fh->src, fh->hash);
	return NULL;
}

static int file_hasher_start(struct imgdev_ctx *ctx, struct file_hasher *fh, struct imgsrc *src)
{
	int rc;

	fh->src = src;
	if (imgdev_ctx_new(&fh->ctx) < 0)
		return ctx_error(ctx, ENOMEM, "out of memory");
	rc = pthread_create(&fh->thread, NULL, file_hasher_run, fh);
	if (rc)
		return ctx_error(ctx, rc, "cannot start the hashing thread: %s", strerror(rc));
	fh->started = true;
	return 0;
}

/* Wait for the hasher; 0 with fh->hash, or its error (copied into ctx). */
static int file_hasher_finish(struct imgdev_ctx *ctx, struct file_hasher *fh)
{
	int rc = 0;

	if (fh->started) {
		pthread_join(fh->thread, NULL);
		rc = fh->rc < 0 ? ctx_error(ctx, fh->rc, "%s", imgdev_ctx_last_error(fh->ctx)) : 0;
	}
	imgdev_ctx_free(fh->ctx);
	fh->ctx = NULL;
	fh->started = false;
	return rc;
}

/* The whole write: commit "writing", copy, flush, commit "complete". */
static int provision_write(struct imgdev_ctx *ctx, struct bdev *bd, struct imgsrc *src,
			   const struct imgdev_provision_opts *opts,
			   struct imgdev_provision_result *res)
{
	struct sink sink = { .bd = bd, .data_offset = SECTOR_SIZE, .src = src };
	struct commit_rec rec = { .version = REC_VERSION, .state = REC_STATE_WRITING,
				  .block_size = CONTENT_BLOCK_SIZE, .data_offset = SECTOR_SIZE,
				  .image_size = src->size };
	struct pipeline_job job = { .size = src->size, .workers = opts->threads,
				    .read_fn = source_read_chunk, .write_fn = sink_write_chunk,
				    .release_fn = source_release_chunk, .arg = &sink, .progress = opts->progress,
				    .progress_arg = opts->progress_data };
	struct file_hasher fh = { 0 };
	/* The image hash: given, or the payload's (in order, by the pipeline), or the file's. */
	bool hash_file = !opts->has_digest && !src->identity_is_payload;
	unsigned int dlen = 0;
	uint64_t failed_at = 0;
	char msg[IMGDEV_ERRMSG_MAX];
	int rc = 0, hrc;

	/*
	 * Map the image only when its hash is given: the image hash computed
	 * from the payload reads each chunk once more after the write, and a
	 * mapping, unlike a copy, would show it a concurrent change of the file.
	 */
	src->map_chunks = opts->has_digest && opts->version >= 2 && opts->mmap_image;
	src->drop_behind = src->drop_behind && !hash_file;
	src->read_through = true;
	if (opts->has_digest)
		memcpy(rec.target_hash, opts->digest, IMGDEV_HASH_SIZE);
	else if (src->identity_is_payload && (!(job.identity = EVP_MD_CTX_new()) ||
					      !EVP_DigestInit_ex(job.identity, EVP_sha256(), NULL)))
		return ctx_error(ctx, ENOMEM, "out of memory");
	sink.direct_fd = open_direct(bd, O_RDWR);
	zero_runs_init(&sink.held, bd, ZERO_RUNS_MAX);
	rc = write_commit(ctx, bd, NULL, &rec);
	if (rc == 0 && hash_file)
		rc = file_hasher_start(ctx, &fh, src);
	if (rc == 0)
		rc = pipeline_run(ctx, &job, rec.content_hash);
	if (rc == 0 && (rc = zero_runs_flush(&sink.held, &failed_at)) < 0)
		ctx_error(ctx, rc, "%s", write_error(msg, sizeof(msg), &sink, failed_at, rc));
	hrc = file_hasher_finish(ctx, &fh);
	if (rc == 0)
		rc = hrc;
	if (rc == 0)
		rc = imgsrc_check_unchanged(ctx, src);
	if (rc == 0 && hash_file)
		memcpy(rec.target_hash, fh.hash, IMGDEV_HASH_SIZE);
	if (rc == 0 && (fdatasync(bd->fd) < 0 || (sink.direct_fd >= 0 && fdatasync(sink.direct_fd) < 0)))
		rc = ctx_error(ctx, errno, "%s: flushing the payload failed: %s", bd->path,
			       strerror(errno));
	if (rc == 0) {
		if (job.identity)
			EVP_DigestFinal_ex(job.identity, rec.target_hash, &dlen);
		rec.state = REC_STATE_COMPLETE;
		rc = write_commit(ctx, bd, rec.target_hash, &rec);
	}
	if (rc == 0) {
		res->written = true;
		memcpy(res->image_hash, rec.target_hash, IMGDEV_HASH_SIZE);
		memcpy(res->content_hash, rec.content_hash, IMGDEV_HASH_SIZE);
		res->bytes_written = atomic_load(&sink.written);
		res->bytes_zeroed = atomic_load(&sink.zeroed);
	}
	if (sink.direct_fd >= 0)
		close(sink.direct_fd);
	zero_runs_free(&sink.held);
	EVP_MD_CTX_free(job.identity);
	return rc;
}

/* SHA-256 of the whole payload, in one sequential pass (no writes). */
static int payload_sha256(struct imgdev_ctx *ctx, struct imgsrc *src,
			  uint8_t hash[IMGDEV_HASH_SIZE])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct chunk *c = calloc(1, sizeof(*c));
	unsigned int dlen = 0;
	int rc = 0;

	if (!md || !c || posix_memalign((void **)&c->buf, BUF_ALIGN, CHUNK_SIZE + CHUNK_PAD) ||
	    !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		rc = ctx_error(ctx, ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t off = 0; off < src->size && rc == 0; off += CHUNK_SIZE) {
		chunk_reset(c, off, src->size - off < CHUNK_SIZE ? (uint32_t)(src->size - off) : CHUNK_SIZE);
		rc = src->ops->read_chunk(src, c);
		if (rc < 0)
			rc = ctx_error(ctx, rc, "%s", c->msg);
		else
			chunk_digest_update(md, c);
		if (src->ops->release_chunk)
			src->ops->release_chunk(src, c);
	}
	if (rc == 0)
		EVP_DigestFinal_ex(md, hash, &dlen);
out:
	if (c) {
		chunk_unmap(c);
		free(c->buf);
	}
	free(c);
	EVP_MD_CTX_free(md);
	return rc;
}

/* The image's identity hash in a pass of its own (no writes). */
static int identity_pass(struct imgdev_ctx *ctx, struct imgsrc *src,
			 uint8_t hash[IMGDEV_HASH_SIZE])
{
	src->read_through = true;
	if (src->identity_is_payload)
		return payload_sha256(ctx, src, hash);
	return imgsrc_hash_file(ctx, src, hash);
}

/*
 * Whether the device already holds this image: a complete record for an
 * image of this size whose hash is the digest (or, without one, the hash
 * of the image file, computed only when the record makes a match possible).
 */
static int header_matches(struct imgdev_ctx *ctx, const struct bdev *bd, const struct hdr *h,
			  struct imgsrc *src, const struct imgdev_provision_opts *opts,
			  uint8_t hash[IMGDEV_HASH_SIZE])
{
	int rc;

	/* The mapping starts at sector 1: a record for another layout is no match. */
	if (!hdr_has_magic(h) || h->rec_status != REC_VALID ||
	    h->rec.state != REC_STATE_COMPLETE || h->rec.image_size != src->size ||
	    h->rec.data_offset != SECTOR_SIZE || bd->size < SECTOR_SIZE ||
	    bd->size - SECTOR_SIZE < src->size)
		return 0;
	if (opts->has_digest) {
		memcpy(hash, opts->digest, IMGDEV_HASH_SIZE);
	} else {
		rc = identity_pass(ctx, src, hash);
		if (rc < 0)
			return rc;
	}
	return hdr_is_complete(h, hash);
}

static int check_provision_args(struct imgdev_ctx *ctx, const struct imgdev_provision_opts *opts)
{
	if (!opts || opts->version < 1 || opts->version > IMGDEV_PROVISION_OPTS_VERSION)
		return ctx_error(ctx, EINVAL, "provision options of an unknown version");
	if (opts->no_map)
		return 0;
	if (!opts->name)
		return ctx_error(ctx, EINVAL, "a mapping name is needed (or no mapping)");
	return imgdev_check_name(ctx, opts->name);
}

/* Before any write: the target can be mapped afterwards, and has room. */
static int check_write_target(struct imgdev_ctx *ctx, const struct bdev *bd,
			      const struct imgsrc *src, const struct imgdev_provision_opts *opts)
{
	int rc = opts->no_map ? 0 : map_check_target(ctx, bd);

	if (rc == 0)
		rc = loop_check_not_mapped(ctx, bd);
	if (rc == 0 && !opts->no_map)
		rc = map_check_name(ctx, bd, opts->name);
	return rc < 0 ? rc : check_room(ctx, bd, src->size);
}

int imgdev_provision(struct imgdev_ctx *ctx, const char *device, const char *image,
		     const struct imgdev_provision_opts *opts,
		     struct imgdev_provision_result *res)
{
	double t0 = now_seconds();
	struct bdev probe = BDEV_INIT, bd = BDEV_INIT;
	struct imgsrc *src = NULL;
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = check_provision_args(ctx, opts);
	if (rc == 0)
		rc = imgsrc_open(ctx, image, &src);
	if (rc == 0)
		rc = bdev_open(ctx, device, O_RDONLY, &probe);
	if (rc == 0)
		rc = bdev_lock(ctx, &probe);
	if (rc == 0)
		rc = bdev_read_sector0(ctx, &probe, sector);
	if (rc < 0)
		goto out;
	hdr_decode(sector, sizeof(sector), &h);
	res->image_size = src->size;
	rc = header_matches(ctx, &probe, &h, src, opts, res->image_hash);
	if (rc < 0)
		goto out;
	if (rc == 1) {
		memcpy(res->content_hash, h.rec.content_hash, IMGDEV_HASH_SIZE);
		ctx_log(ctx, LOGP_INFO, "%s: already holds this image; nothing written", probe.path);
	} else {
		rc = check_overwrite_allowed(ctx, &probe, &h, opts->force);
		if (rc == 0)
			rc = check_write_target(ctx, &probe, src, opts);
		if (rc == 0)
			rc = bdev_open(ctx, device, O_RDWR | O_EXCL, &bd);
		if (rc == 0)
			rc = bdev_check_same(ctx, &probe, &bd);
		if (rc == 0)
			rc = provision_write(ctx, &bd, src, opts, res);
		bdev_close(&bd);	/* release the exclusive open: the mapping claims it */
		if (rc < 0)
			goto out;
	}
	if (!opts->no_map)
		rc = map_ensure(ctx, &probe, opts->name, &res->mapped_path);
out:
	res->seconds = now_seconds() - t0;
	bdev_close(&bd);
	bdev_close(&probe);
	if (src)
		imgsrc_drop_cache(src);	/* what the chunks left, and all a file hash read */
	imgsrc_close(src);
	return rc < 0 ? rc : 0;
}

void imgdev_provision_result_clear(struct imgdev_provision_result *res)
{
	free(res->mapped_path);
	memset(res, 0, sizeof(*res));
}

/* The device side of verify: read the payload back. */
struct payload_reader {
	const struct bdev *bd;
	int direct_fd;
	atomic_bool direct_failed;
	uint64_t data_offset;
};

static int payload_read_chunk(void *arg, struct chunk *c)
{
	struct payload_reader *r = arg;
	uint64_t off = r->data_offset + c->off;
	size_t padded = (c->len + SECTOR_SIZE - 1) & ~(size_t)(SECTOR_SIZE - 1);
	int rc = -EINVAL;

	if (r->direct_fd >= 0 && !atomic_load(&r->direct_failed)) {
		rc = bdev_pread_full(r->direct_fd, c->buf, padded, off);
		if (rc == -EINVAL)
			atomic_store(&r->direct_failed, true);
	}
	if (rc == -EINVAL)
		rc = bdev_pread_full(r->bd->fd, c->buf, c->len, off);
	if (rc < 0)
		return chunk_error(c, rc, "%s: read error at payload offset %llu (device offset %llu): %s",
				   r->bd->path, (unsigned long long)c->off, (unsigned long long)off,
				   rc == -EIO ? "I/O error or unexpected end of device" : strerror(-rc));
	return 0;
}

/* What verify needs from the header: a complete record; else -ENODATA and why. */
static int verify_check_header(struct imgdev_ctx *ctx, const struct bdev *bd, const struct hdr *h)
{
	if (!hdr_has_magic(h))
		return ctx_error(ctx, ENODATA, "%s: no image header in sector 0", bd->path);
	if (h->version != HDR_VERSION || h->rec_status == REC_NEWER)
		return ctx_error(ctx, EPROTO, "%s: header version %u (record version %u) is newer than this build understands",
				 bd->path, h->version, h->rec.version);
	if (h->rec_status == REC_ABSENT)
		return ctx_error(ctx, ENODATA, "%s: no commit record (the header was written by Virtlet or `ensure`), so there is nothing to verify against",
				 bd->path);
	if (h->rec_status == REC_CORRUPT)
		return ctx_error(ctx, EBADMSG, "%s: the commit record is damaged (bad checksum)", bd->path);
	if (h->rec.state != REC_STATE_COMPLETE)
		return ctx_error(ctx, ENODATA, "%s: the last write did not complete (state \"writing\"); provision again",
				 bd->path);
	if (bd->size < h->rec.data_offset || bd->size - h->rec.data_offset < h->rec.image_size)
		return ctx_error(ctx, EBADMSG, "%s: the record claims %llu bytes of payload, more than the device holds",
				 bd->path, (unsigned long long)h->rec.image_size);
	return 0;
}

int imgdev_verify(struct imgdev_ctx *ctx, const char *device, unsigned int threads,
		  imgdev_progress_fn progress, void *progress_data,
		  struct imgdev_verify_result *res)
{
	double t0 = now_seconds();
	struct payload_reader reader = { .direct_fd = -1 };
	struct pipeline_job job = { .workers = threads, .read_fn = payload_read_chunk,
				    .arg = &reader, .progress = progress,
				    .progress_arg = progress_data };
	uint8_t sector[SECTOR_SIZE];
	char want[72], got[72];
	struct bdev bd;
	struct hdr h;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = bdev_open(ctx, device, O_RDONLY, &bd);
	if (rc < 0)
		return rc;
	rc = bdev_read_sector0(ctx, &bd, sector);
	if (rc == 0) {
		hdr_decode(sector, sizeof(sector), &h);
		rc = verify_check_header(ctx, &bd, &h);
	}
	if (rc < 0)
		goto out;
	memcpy(res->image_hash, h.image_hash, IMGDEV_HASH_SIZE);
	res->image_size = job.size = h.rec.image_size;
	reader.bd = &bd;
	reader.data_offset = h.rec.data_offset;
	reader.direct_fd = open_direct(&bd, O_RDONLY);
	rc = pipeline_run(ctx, &job, res->content_hash);
	if (rc == 0 && memcmp(res->content_hash, h.rec.content_hash, IMGDEV_HASH_SIZE) != 0) {
		imgdev_format_hash(h.rec.content_hash, want);
		imgdev_format_hash(res->content_hash, got);
		rc = ctx_error(ctx, EBADMSG,
			       "%s: the payload does not match its commit record: content hash %s, recorded %s",
			       bd.path, got, want);
	}
out:
	if (reader.direct_fd >= 0)
		close(reader.direct_fd);
	res->seconds = now_seconds() - t0;
	bdev_close(&bd);
	return rc;
}
