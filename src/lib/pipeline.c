/*
 * The chunk pipeline (see pipeline.h). Chunk i lives in slot i % nslots;
 * a worker may claim chunk i only once chunk i - nslots has been folded,
 * which bounds memory to nslots buffers whatever the payload size. Workers
 * fill, classify and hash chunks; writers (when the job writes) take each
 * chunk once it is filled, lowest first, and wait out the synchronous
 * writes, so a worker's CPU never idles behind the device. A chunk is done
 * when written and hashed. Workers and writers record an error in the
 * chunk; the folding thread sees errors in order, stops the run and
 * reports the first. An identity hash is fed in order by the folding
 * thread, or by a thread of its own (job->identity_thread) as soon as each
 * chunk is filled; a chunk is then done only once fed too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "pipeline.h"
#include "sha256mb.h"

#define MAX_WORKERS 8
#define WRITERS 4		/* writes in flight */
#define MAX_SLOTS 16
#define MAX_THREADS (MAX_WORKERS + WRITERS + 1) /* and the identity's */

/*
 * A slot's chunk: free; being filled; filled, to be written; being written;
 * written (or not to be); done, once it is also hashed (chunk->hashed), or
 * failed.
 */
enum { SLOT_FREE, SLOT_BUSY, SLOT_FILLED, SLOT_WRITING, SLOT_WRITTEN, SLOT_DONE };

struct pipeline {
	const struct pipeline_job *job;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct chunk *slots;
	unsigned int nslots;
	uint64_t nchunks;	/* lowered when a chunk says the payload ends there */
	uint64_t size;		/* the payload's bytes, likewise */
	uint64_t next_claim;
	uint64_t next_fold;
	bool stop;		/* no more claims: the run failed or is over */
	bool folded;		/* the folder is done: writers leave */
	bool feeder;            /* a thread of its own feeds the identity */
	enum sha256mb_impl impl;	/* of the block digests */
	uint8_t zero_digest[IMGDEV_HASH_SIZE];	/* of one whole zero block */
};

static const uint8_t zeros[CONTENT_BLOCK_SIZE];
static const uint8_t *const zeros_start = zeros;

int chunk_error(struct chunk *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	return err > 0 ? -err : err;
}

bool buf_is_zero(const uint8_t *p, size_t len)
{
	if (len < 16)
		return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
	/* The first 16 bytes are zero, and every byte equals the one 16 before it. */
	for (size_t i = 0; i < 16; i++)
		if (p[i])
			return false;
	return memcmp(p, p + 16, len - 16) == 0;
}

/* Where block b of the chunk ends: the next block, or the chunk's end. */
static uint32_t block_end(const struct chunk *c, uint32_t b)
{
	uint32_t end = (b + 1) * CONTENT_BLOCK_SIZE;

	return end < c->len ? end : c->len;
}

/*
 * Classify every block of a filled chunk: a block that reads as zeros is
 * flagged (the writer then zeroes it on the device) and takes the
 * precomputed digest, unhashed; the payload's short last block, if any, is
 * hashed on its own. The whole data blocks are left for chunk_hash.
 * 0, or a chunk error when OpenSSL cannot set up.
 */
static int chunk_classify(struct pipeline *pl, struct chunk *c)
{
	int rc = 0;

	for (uint32_t b = 0, off = 0; off < c->len && rc == 0; b++, off += CONTENT_BLOCK_SIZE) {
		uint32_t blen = block_end(c, b) - off;
		const uint8_t *p = c->data + off;

		c->zero[b] = c->all_zero || c->zero[b] || buf_is_zero(p, blen);
		if (blen < CONTENT_BLOCK_SIZE)
			rc = sha256mb_hash(pl->impl, c->zero[b] ? &zeros_start : &p, 1, blen,
					   &c->digest[b]);
		else if (c->zero[b])
			memcpy(c->digest[b], pl->zero_digest, IMGDEV_HASH_SIZE);
	}
	return rc < 0 ? chunk_error(c, rc, "cannot hash the payload: out of memory") : 0;
}

/*
 * A worker's data blocks waiting for a full group of lanes: fewer than a
 * group, from the chunks it filled last, hashed together with the next
 * chunk's. Hashing each chunk's blocks alone left a group part-empty in
 * every chunk with holes: 13-16 % of the lanes on the benchmark's
 * VM-shaped image. The chunks are written meanwhile, and each is done
 * once its blocks are hashed too. The worker hashes what it carries as it
 * is when the folder reaches the oldest of those chunks, so that the fold
 * (progress, the release of the image's pages) does not lag (on vm-qcow2
 * within the noise: -1 % and +2 % in two A/Bs of 15 runs), and when no
 * slot is free.
 */
struct carry {
	uint32_t nblocks, nchunks;
	const uint8_t *data[SHA256MB_MAX_LANES];
	uint8_t *dest[SHA256MB_MAX_LANES];	/* where each digest goes */
	struct chunk *chunks[SHA256MB_MAX_LANES];
};

/* Under the lock: the chunk is done once written (or not to be), hashed and fed. */
static void settle_locked(struct pipeline *pl, struct chunk *c)
{
	if (c->state == SLOT_WRITTEN && c->hashed && c->fed)
		c->state = SLOT_DONE;
	pthread_cond_broadcast(&pl->changed);
}

/* All of these chunks' blocks are hashed (rc: 0, or how it failed). */
static void mark_hashed(struct pipeline *pl, struct chunk *const *chunks, uint32_t n, int rc)
{
	pthread_mutex_lock(&pl->lock);
	for (uint32_t i = 0; i < n; i++) {
		chunks[i]->hashed = true;
		chunks[i]->hash_err = rc;
		if (rc < 0)
			pl->stop = true;
		settle_locked(pl, chunks[i]);
	}
	pthread_mutex_unlock(&pl->lock);
}

/* Hash n 64 KiB blocks and put each digest at its dest; 0 or -ENOMEM. */
static int hash_blocks(struct pipeline *pl, const uint8_t *const *data, uint8_t *const *dest,
		       size_t n)
{
	uint8_t digests[SHA256MB_MAX_LANES + CHUNK_BLOCKS][IMGDEV_HASH_SIZE];
	int rc = sha256mb_hash(pl->impl, data, n, CONTENT_BLOCK_SIZE, digests);

	for (size_t i = 0; i < n && rc == 0; i++)
		memcpy(dest[i], digests[i], IMGDEV_HASH_SIZE);
	return rc;
}

/* Hash the carried blocks as they are: their chunks are complete. */
static void carry_flush(struct pipeline *pl, struct carry *k)
{
	int rc = hash_blocks(pl, k->data, k->dest, k->nblocks);

	mark_hashed(pl, k->chunks, k->nchunks, rc);
	k->nblocks = k->nchunks = 0;
}

/*
 * Hash a classified chunk's data blocks, after the carried ones, in whole
 * groups of lanes (sha256mb). If there is a group at least, the carried
 * chunks are then complete, and this chunk's last blocks short of a group
 * become the carry; else this chunk's blocks join the carry.
 */
static void chunk_hash(struct pipeline *pl, struct chunk *c, struct carry *k)
{
	const uint8_t *data[SHA256MB_MAX_LANES + CHUNK_BLOCKS];
	uint8_t *dest[SHA256MB_MAX_LANES + CHUNK_BLOCKS];
	uint32_t carried = k->nblocks, n = carried, lanes = sha256mb_lanes(pl->impl), now;
	int rc = 0;

	memcpy(data, k->data, n * sizeof(data[0]));
	memcpy(dest, k->dest, n * sizeof(dest[0]));
	for (uint32_t b = 0; b * CONTENT_BLOCK_SIZE < c->len; b++)
		if (!c->zero[b] && block_end(c, b) - b * CONTENT_BLOCK_SIZE == CONTENT_BLOCK_SIZE)
			dest[n] = c->digest[b], data[n++] = c->data + b * CONTENT_BLOCK_SIZE;
	now = n - n % lanes;
	if (now > 0) {
		rc = hash_blocks(pl, data, dest, now);
		mark_hashed(pl, k->chunks, k->nchunks, rc);
		k->nblocks = k->nchunks = 0;
	}
	if (n == now || n == carried || rc < 0) {	/* nothing of c waits */
		mark_hashed(pl, &c, 1, rc);
		return;
	}
	/* What is left: fewer than a group, after the carried blocks (if any). */
	memcpy(k->data + k->nblocks, data + now + k->nblocks, (n - now - k->nblocks) * sizeof(data[0]));
	memcpy(k->dest + k->nblocks, dest + now + k->nblocks, (n - now - k->nblocks) * sizeof(dest[0]));
	k->nblocks = n - now;
	k->chunks[k->nchunks++] = c;
}

/*
 * Claim the next chunk, or NULL when there is none or the run stopped. A
 * worker that carries blocks (k) never waits for a slot, and gets NULL
 * when it would have to, or when the folder is at its oldest carried chunk.
 */
static struct chunk *claim(struct pipeline *pl, const struct carry *k)
{
	bool wait = k->nchunks == 0;
	struct chunk *c = NULL;

	pthread_mutex_lock(&pl->lock);
	while (wait && !pl->stop && pl->next_claim < pl->nchunks &&
	       pl->next_claim >= pl->next_fold + pl->nslots)
		pthread_cond_wait(&pl->changed, &pl->lock);
	if (!pl->stop && pl->next_claim < pl->nchunks &&
	    pl->next_claim < pl->next_fold + pl->nslots &&
	    (wait || pl->next_fold < k->chunks[0]->index)) {
		uint64_t i = pl->next_claim++;
		uint64_t left = pl->size - i * CHUNK_SIZE;

		c = &pl->slots[i % pl->nslots];
		chunk_reset(c, i * CHUNK_SIZE, left < CHUNK_SIZE ? (uint32_t)left : CHUNK_SIZE);
		c->index = i;
		c->state = SLOT_BUSY;
		c->hashed = false;
		c->fed = !pl->feeder;
		c->hash_err = 0;
	}
	pthread_mutex_unlock(&pl->lock);
	return c;
}

/*
 * Under the lock: filling or writing the chunk ended with rc. On success it
 * moves on to state; a failure is done at once (reported whether hashed or
 * not), and the run stops: no new claims; the folder reports it.
 */
static void step_locked(struct pipeline *pl, struct chunk *c, int rc, int state)
{
	c->err = rc;
	c->state = rc < 0 ? SLOT_DONE : state;
	if (rc < 0)
		pl->stop = true;
	settle_locked(pl, c);
}

/*
 * Under the lock: a chunk that says the payload ends with it ends the run
 * there; one past that end (claimed before it was known) is done, unused.
 * Whether the chunk still belongs to the payload.
 */
static bool payload_end_locked(struct pipeline *pl, struct chunk *c)
{
	if (c->end && c->index < pl->nchunks) {
		pl->nchunks = c->len ? c->index + 1 : c->index;
		pl->size = c->off + c->len;
	}
	return c->index < pl->nchunks;
}

/*
 * The chunk is filled (0), to be written, or it failed. One past the
 * payload's end, or empty, is done at once. Whether it is to be hashed.
 */
static bool filled(struct pipeline *pl, struct chunk *c, int rc)
{
	bool used;

	pthread_mutex_lock(&pl->lock);
	used = rc < 0 || payload_end_locked(pl, c);
	if (used && (rc < 0 || c->len))
		step_locked(pl, c, rc, pl->job->write_fn ? SLOT_FILLED : SLOT_WRITTEN);
	else
		c->state = SLOT_FREE, c->hashed = true;
	pthread_cond_broadcast(&pl->changed);
	pthread_mutex_unlock(&pl->lock);
	return rc == 0 && used && c->len;
}

/*
 * Claim, fill, classify and hash chunks; the writers write them meanwhile.
 * When claim() says so, and at the end, the worker hashes its carried
 * blocks as they are: the folder is, or may be, waiting for their chunks.
 */
static void *worker(void *arg)
{
	struct pipeline *pl = arg;
	struct carry k = { 0 };

	for (;;) {
		struct chunk *c = claim(pl, &k);
		int rc;

		if (!c) {
			if (k.nchunks == 0)
				break;
			carry_flush(pl, &k);
			continue;
		}
		rc = pl->job->read_fn(pl->job->arg, c);
		if (rc == 0)
			rc = chunk_classify(pl, c);
		if (filled(pl, c, rc))
			chunk_hash(pl, c, &k);
	}
	return NULL;
}

/* Under the lock: the filled chunk nearest the fold, or NULL. */
static struct chunk *next_filled_locked(struct pipeline *pl)
{
	struct chunk *best = NULL;

	for (unsigned int i = 0; i < pl->nslots; i++) {
		struct chunk *c = &pl->slots[i];

		if (c->state == SLOT_FILLED && (!best || c->index < best->index))
			best = c;
	}
	return best;
}

/*
 * Write filled chunks until the folder is done. After a failure they go on:
 * the folder still waits for every chunk before the failed one.
 */
static void *writer(void *arg)
{
	struct pipeline *pl = arg;
	const struct pipeline_job *job = pl->job;

	pthread_mutex_lock(&pl->lock);
	while (!pl->folded) {
		struct chunk *c = next_filled_locked(pl);
		int rc;

		if (!c) {
			pthread_cond_wait(&pl->changed, &pl->lock);
			continue;
		}
		c->state = SLOT_WRITING;
		pthread_mutex_unlock(&pl->lock);
		rc = job->write_fn(job->arg, c);
		pthread_mutex_lock(&pl->lock);
		step_locked(pl, c, rc, SLOT_WRITTEN);
	}
	pthread_mutex_unlock(&pl->lock);
	return NULL;
}

void chunk_digest_update(struct sha256 *id, const struct chunk *c)
{
	for (uint32_t b = 0, off = 0; off < c->len; b++, off += CONTENT_BLOCK_SIZE) {
		uint32_t blen = block_end(c, b) - off;

		sha256_update(id, c->all_zero || c->zero[b] ? zeros : c->data + off, blen);
	}
}

void chunk_reset(struct chunk *c, uint64_t off, uint32_t len)
{
	c->off = off;
	c->len = len;
	chunk_unmap(c);
	c->all_zero = false;
	c->end = false;
	memset(c->zero, 0, sizeof(c->zero));
	c->err = 0;
	c->msg[0] = '\0';
}

void chunk_zero_range(struct chunk *c, uint32_t from, uint32_t to)
{
	uint32_t b, whole_from, whole_to;

	if (to > c->len)
		to = c->len;
	if (from >= to)
		return;
	b = (from + CONTENT_BLOCK_SIZE - 1) / CONTENT_BLOCK_SIZE;
	whole_from = b * CONTENT_BLOCK_SIZE;
	whole_to = whole_from;

	for (; whole_to < to && block_end(c, b) <= to; b++) {
		c->zero[b] = true;
		whole_to = block_end(c, b);
	}
	if (c->data != c->buf)
		return;		/* a mapped chunk's holes read as zeros */
	if (whole_to == whole_from) {
		memset(c->buf + from, 0, to - from);
		return;
	}
	memset(c->buf + from, 0, whole_from - from);
	memset(c->buf + whole_to, 0, to - whole_to);
}

/*
 * Under the lock: chunk i once it is filled (its bytes and zero flags
 * final), or NULL when there is none, it failed, or the folder is done.
 */
static struct chunk *next_to_feed_locked(struct pipeline *pl, uint64_t i)
{
	struct chunk *c = &pl->slots[i % pl->nslots];

	while (!pl->folded && i < pl->nchunks && !(c->index == i && c->state >= SLOT_FILLED))
		pthread_cond_wait(&pl->changed, &pl->lock);
	return pl->folded || i >= pl->nchunks || c->err < 0 ? NULL : c;
}

/*
 * The identity's own thread: every chunk's bytes in order, each while it
 * is written and its blocks are hashed (all of them only read it). Its
 * slot is not freed before (settle_locked).
 */
static void *feeder(void *arg)
{
	struct pipeline *pl = arg;
	struct chunk *c;

	pthread_mutex_lock(&pl->lock);
	for (uint64_t i = 0; (c = next_to_feed_locked(pl, i)); i++) {
		pthread_mutex_unlock(&pl->lock);
		chunk_digest_update(pl->job->identity, c);
		pthread_mutex_lock(&pl->lock);
		c->fed = true;
		settle_locked(pl, c);
	}
	pthread_mutex_unlock(&pl->lock);
	return NULL;
}

/* Fold chunks in order until all are done or one failed; 0 or its error. */
static int fold_all(struct pipeline *pl, struct imgdev_ctx *ctx, struct sha256 *content)
{
	const struct pipeline_job *job = pl->job;

	for (uint64_t i = 0;; i++) {
		struct chunk *c = &pl->slots[i % pl->nslots];
		uint64_t done;
		int err, hash_err;

		pthread_mutex_lock(&pl->lock);
		while (i < pl->nchunks && !(c->state == SLOT_DONE && c->index == i))
			pthread_cond_wait(&pl->changed, &pl->lock);
		if (i >= pl->nchunks) {
			pthread_mutex_unlock(&pl->lock);
			return 0;
		}
		err = c->err;
		hash_err = c->hash_err;
		pthread_mutex_unlock(&pl->lock);
		if (err < 0)
			return ctx_error(ctx, err, "%s", c->msg);
		if (hash_err < 0)
			return ctx_error(ctx, hash_err, "cannot hash the payload: out of memory");
		sha256_update(content, c->digest,
				 (size_t)((c->len + CONTENT_BLOCK_SIZE - 1) / CONTENT_BLOCK_SIZE) *
					 IMGDEV_HASH_SIZE);
		if (job->identity && !pl->feeder)
			chunk_digest_update(job->identity, c);
		chunk_unmap(c);
		if (job->release_fn)
			job->release_fn(job->arg, c);
		done = c->off + c->len;	/* the slot is a worker's again once freed */
		pthread_mutex_lock(&pl->lock);
		c->state = SLOT_FREE;
		pl->next_fold = i + 1;
		pthread_cond_broadcast(&pl->changed);
		pthread_mutex_unlock(&pl->lock);
		if (job->progress)
			job->progress(job->progress_arg, done, job->size_unknown ? 0 : job->size);
	}
}

/*
 * Workers fill and hash: CPU work, so one per CPU, since the writers wait
 * out the writes (more workers only take CPU from the device's own kernel
 * worker, a loop device's, on the critical path: measured slower). Without
 * writes (verify), the workers' reads wait on the device: two per CPU.
 * An identity hash computed in order on the folding thread (a raw image's,
 * without a digest) is the critical path: one fewer worker than CPUs, to
 * leave it a CPU; not when it has a thread of its own (a stream's, whose
 * bytes the workers take in turn). (A qcow2 or compressed file's hash, on a thread of the
 * caller's, is shorter than the payload when compressed: one per CPU
 * measured best there, between hashing-bound and decompression-bound.)
 */
static unsigned int worker_count(const struct pipeline_job *job)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int n = cpus > 0 ? (unsigned int)cpus : 1;

	if (job->workers)
		n = job->workers;
	else if (job->identity && !job->identity_thread)
		n = n > 1 ? n - 1 : 1;
	else if (!job->write_fn)
		n = 2 * n;
	return n > MAX_WORKERS ? MAX_WORKERS : n;
}

/*
 * Two slots per thread: each thread holds one, and the writes finish out of
 * order while the fold frees slots in order; with fewer (one slot per
 * thread and two to spare), vm-qcow2 took 3-5 % longer.
 */
static int pipeline_setup(struct pipeline *pl, struct imgdev_ctx *ctx, unsigned int nthreads)
{
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->changed, NULL);
	pl->nslots = 2 * nthreads > MAX_SLOTS ? MAX_SLOTS : 2 * nthreads;
	pl->size = pl->job->size;
	pl->nchunks = (pl->size + CHUNK_SIZE - 1) / CHUNK_SIZE;
	pl->slots = calloc(pl->nslots, sizeof(*pl->slots));
	if (!pl->slots)
		return -ENOMEM;
	for (unsigned int i = 0; i < pl->nslots; i++)
		if (posix_memalign((void **)&pl->slots[i].buf, BUF_ALIGN, CHUNK_SIZE + CHUNK_PAD))
			return -ENOMEM;
	pl->feeder = pl->job->identity && pl->job->identity_thread;
	pl->impl = pl->job->use_impl ? pl->job->impl : ctx_hash_impl(ctx);
	return sha256mb_hash(pl->impl, &zeros_start, 1, CONTENT_BLOCK_SIZE, &pl->zero_digest);
}

static void pipeline_teardown(struct pipeline *pl)
{
	for (unsigned int i = 0; pl->slots && i < pl->nslots; i++) {
		chunk_unmap(&pl->slots[i]);	/* a chunk not folded after an error */
		free(pl->slots[i].buf);
	}
	free(pl->slots);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->changed);
}

/* Start n more threads running fn, counted in *started; 0 or the error (in ctx). */
static int start_threads(struct imgdev_ctx *ctx, struct pipeline *pl, pthread_t *threads,
			 unsigned int *started, unsigned int n, void *(*fn)(void *))
{
	for (unsigned int i = 0; i < n; i++) {
		int err = pthread_create(&threads[*started], NULL, fn, pl);

		if (err)
			return ctx_error(ctx, err, "cannot start a thread: %s", strerror(err));
		++*started;
	}
	return 0;
}

int pipeline_run(struct imgdev_ctx *ctx, const struct pipeline_job *job,
		 uint8_t content_hash[IMGDEV_HASH_SIZE], uint64_t *size)
{
	struct pipeline pl = { .job = job };
	unsigned int nworkers = worker_count(job), nwriters = job->write_fn ? WRITERS : 0;
	unsigned int started = 0;
	pthread_t threads[MAX_THREADS];
	struct sha256 *content = sha256_new();
	int rc = pipeline_setup(&pl, ctx, nworkers + nwriters);

	if (rc == 0 && !content)
		rc = -ENOMEM;
	if (rc < 0) {
		rc = ctx_error(ctx, ENOMEM, "cannot set up the copy: out of memory");
		goto out;
	}
	rc = start_threads(ctx, &pl, threads, &started, nwriters, writer);
	if (rc == 0)
		rc = start_threads(ctx, &pl, threads, &started, nworkers, worker);
	if (rc == 0 && pl.feeder)
		rc = start_threads(ctx, &pl, threads, &started, 1, feeder);
	if (rc == 0)
		rc = fold_all(&pl, ctx, content);
	pthread_mutex_lock(&pl.lock);
	pl.stop = true;
	pl.folded = true;
	pthread_cond_broadcast(&pl.changed);
	pthread_mutex_unlock(&pl.lock);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (rc == 0)
		sha256_final(content, content_hash);
	if (rc == 0 && size)
		*size = pl.size;
out:
	sha256_free(content);
	pipeline_teardown(&pl);
	return rc;
}
