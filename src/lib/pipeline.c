/*
 * The chunk pipeline (see pipeline.h). Chunk i lives in slot i % nslots;
 * a worker may claim chunk i only once chunk i - nslots has been folded,
 * which bounds memory to nslots buffers whatever the payload size. Workers
 * fill and hash chunks; writers (when the job writes) take hashed chunks,
 * lowest first, and wait out the synchronous writes, so a worker's CPU
 * never idles behind the device. Both record an error in the chunk; the
 * folding thread sees errors in order, stops the run and reports the first.
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

/* A slot's chunk: free, being filled and hashed, waiting for or in its write, done. */
enum { SLOT_FREE, SLOT_BUSY, SLOT_HASHED, SLOT_WRITING, SLOT_DONE };

struct pipeline {
	const struct pipeline_job *job;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct chunk *slots;
	unsigned int nslots;
	uint64_t nchunks;
	uint64_t next_claim;
	uint64_t next_fold;
	bool stop;		/* no more claims: the run failed or is over */
	bool folded;		/* the folder is done: writers leave */
	EVP_MD *sha256;		/* of the content hash */
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
 * Classify every block of a filled chunk and hash the data blocks together,
 * many at a time (sha256mb); a whole zero block takes the precomputed
 * digest. The payload's short last block, if any, is hashed on its own.
 * 0, or a chunk error when OpenSSL cannot set up.
 */
static int chunk_hash(struct pipeline *pl, struct chunk *c)
{
	const uint8_t *data[CHUNK_BLOCKS];
	uint32_t data_block[CHUNK_BLOCKS], ndata = 0;
	uint8_t digests[CHUNK_BLOCKS][IMGDEV_HASH_SIZE];
	int rc = 0;

	for (uint32_t b = 0, off = 0; off < c->len; b++, off += CONTENT_BLOCK_SIZE) {
		uint32_t blen = block_end(c, b) - off;
		const uint8_t *p = c->data + off;

		c->zero[b] = c->all_zero || c->zero[b] || buf_is_zero(p, blen);
		if (blen < CONTENT_BLOCK_SIZE)
			rc = sha256mb_hash(pl->impl, c->zero[b] ? &zeros_start : &p, 1, blen,
					   &c->digest[b]);
		else if (c->zero[b])
			memcpy(c->digest[b], pl->zero_digest, IMGDEV_HASH_SIZE);
		else
			data_block[ndata] = b, data[ndata++] = p;
	}
	if (rc == 0)
		rc = sha256mb_hash(pl->impl, data, ndata, CONTENT_BLOCK_SIZE, digests);
	for (uint32_t i = 0; i < ndata; i++)
		memcpy(c->digest[data_block[i]], digests[i], IMGDEV_HASH_SIZE);
	return rc < 0 ? chunk_error(c, rc, "cannot hash the payload: out of memory") : 0;
}

/* Claim the next chunk, or NULL when there is none or the run stopped. */
static struct chunk *claim(struct pipeline *pl)
{
	struct chunk *c = NULL;

	pthread_mutex_lock(&pl->lock);
	while (!pl->stop && pl->next_claim < pl->nchunks &&
	       pl->next_claim >= pl->next_fold + pl->nslots)
		pthread_cond_wait(&pl->changed, &pl->lock);
	if (!pl->stop && pl->next_claim < pl->nchunks) {
		uint64_t i = pl->next_claim++;
		uint64_t left = pl->job->size - i * CHUNK_SIZE;

		c = &pl->slots[i % pl->nslots];
		chunk_reset(c, i * CHUNK_SIZE, left < CHUNK_SIZE ? (uint32_t)left : CHUNK_SIZE);
		c->index = i;
		c->state = SLOT_BUSY;
	}
	pthread_mutex_unlock(&pl->lock);
	return c;
}

/* Under the lock: record the chunk's outcome and move it on to state. */
static void finish_locked(struct pipeline *pl, struct chunk *c, int rc, int state)
{
	c->err = rc;
	c->state = rc < 0 ? SLOT_DONE : state;
	if (rc < 0)
		pl->stop = true;	/* no new claims; the folder reports it */
	pthread_cond_broadcast(&pl->changed);
}

static void *worker(void *arg)
{
	struct pipeline *pl = arg;
	const struct pipeline_job *job = pl->job;
	struct chunk *c;

	while ((c = claim(pl))) {
		int rc = job->read_fn(job->arg, c);

		if (rc == 0)
			rc = chunk_hash(pl, c);
		pthread_mutex_lock(&pl->lock);
		finish_locked(pl, c, rc, job->write_fn ? SLOT_HASHED : SLOT_DONE);
		pthread_mutex_unlock(&pl->lock);
	}
	return NULL;
}

/* Under the lock: the hashed chunk nearest the fold, or NULL. */
static struct chunk *next_hashed_locked(struct pipeline *pl)
{
	struct chunk *best = NULL;

	for (unsigned int i = 0; i < pl->nslots; i++) {
		struct chunk *c = &pl->slots[i];

		if (c->state == SLOT_HASHED && (!best || c->index < best->index))
			best = c;
	}
	return best;
}

/*
 * Write hashed chunks until the folder is done. After a failure they go on:
 * the folder still waits for every chunk before the failed one.
 */
static void *writer(void *arg)
{
	struct pipeline *pl = arg;
	const struct pipeline_job *job = pl->job;

	pthread_mutex_lock(&pl->lock);
	for (;;) {
		struct chunk *c = next_hashed_locked(pl);
		int rc;

		if (pl->folded)
			break;
		if (!c) {
			pthread_cond_wait(&pl->changed, &pl->lock);
			continue;
		}
		c->state = SLOT_WRITING;
		pthread_mutex_unlock(&pl->lock);
		rc = job->write_fn(job->arg, c);
		pthread_mutex_lock(&pl->lock);
		finish_locked(pl, c, rc, SLOT_DONE);
	}
	pthread_mutex_unlock(&pl->lock);
	return NULL;
}

void chunk_digest_update(EVP_MD_CTX *id, const struct chunk *c)
{
	for (uint32_t b = 0, off = 0; off < c->len; b++, off += CONTENT_BLOCK_SIZE) {
		uint32_t blen = block_end(c, b) - off;

		EVP_DigestUpdate(id, c->all_zero || c->zero[b] ? zeros : c->data + off, blen);
	}
}

void chunk_reset(struct chunk *c, uint64_t off, uint32_t len)
{
	c->off = off;
	c->len = len;
	chunk_unmap(c);
	c->all_zero = false;
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

/* Fold chunks in order until all are done or one failed; 0 or its error. */
static int fold_all(struct pipeline *pl, struct imgdev_ctx *ctx, EVP_MD_CTX *content)
{
	const struct pipeline_job *job = pl->job;

	for (uint64_t i = 0; i < pl->nchunks; i++) {
		struct chunk *c = &pl->slots[i % pl->nslots];
		uint64_t done;
		int err;

		pthread_mutex_lock(&pl->lock);
		while (!(c->state == SLOT_DONE && c->index == i))
			pthread_cond_wait(&pl->changed, &pl->lock);
		err = c->err;
		pthread_mutex_unlock(&pl->lock);
		if (err < 0)
			return ctx_error(ctx, err, "%s", c->msg);
		EVP_DigestUpdate(content, c->digest,
				 (size_t)((c->len + CONTENT_BLOCK_SIZE - 1) / CONTENT_BLOCK_SIZE) *
					 IMGDEV_HASH_SIZE);
		if (job->identity)
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
			job->progress(job->progress_arg, done, job->size);
	}
	return 0;
}

/*
 * Workers fill and hash: CPU work, so one per CPU, since the writers wait
 * out the writes (more workers only take CPU from the device's own kernel
 * worker, a loop device's, on the critical path: measured slower). Without
 * writes (verify), the workers' reads wait on the device: two per CPU.
 * An identity hash computed in order beside the copy is the critical path:
 * on the folding thread (a raw image's), one fewer worker than CPUs, to
 * leave it a CPU; on the caller's own thread (a qcow2 or compressed
 * file's, shorter than the payload when compressed), one per CPU, which
 * measured best between hashing-bound and decompression-bound images.
 */
static unsigned int worker_count(const struct pipeline_job *job)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int n = cpus > 0 ? (unsigned int)cpus : 1;

	if (job->workers)
		n = job->workers;
	else if (job->identity)
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
static int pipeline_setup(struct pipeline *pl, unsigned int nthreads)
{
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->changed, NULL);
	pl->nslots = 2 * nthreads > MAX_SLOTS ? MAX_SLOTS : 2 * nthreads;
	pl->nchunks = (pl->job->size + CHUNK_SIZE - 1) / CHUNK_SIZE;
	pl->slots = calloc(pl->nslots, sizeof(*pl->slots));
	pl->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!pl->slots || !pl->sha256)
		return -ENOMEM;
	for (unsigned int i = 0; i < pl->nslots; i++)
		if (posix_memalign((void **)&pl->slots[i].buf, BUF_ALIGN, CHUNK_SIZE + CHUNK_PAD))
			return -ENOMEM;
	pl->impl = sha256mb_best();
	return sha256mb_hash(pl->impl, &zeros_start, 1, CONTENT_BLOCK_SIZE, &pl->zero_digest);
}

static void pipeline_teardown(struct pipeline *pl)
{
	for (unsigned int i = 0; pl->slots && i < pl->nslots; i++) {
		chunk_unmap(&pl->slots[i]);	/* a chunk not folded after an error */
		free(pl->slots[i].buf);
	}
	free(pl->slots);
	EVP_MD_free(pl->sha256);
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
			return ctx_error(ctx, err, "cannot start a worker thread: %s", strerror(err));
		++*started;
	}
	return 0;
}

int pipeline_run(struct imgdev_ctx *ctx, const struct pipeline_job *job,
		 uint8_t content_hash[IMGDEV_HASH_SIZE])
{
	struct pipeline pl = { .job = job };
	unsigned int nworkers = worker_count(job), nwriters = job->write_fn ? WRITERS : 0;
	unsigned int started = 0;
	pthread_t threads[MAX_WORKERS + WRITERS];
	EVP_MD_CTX *content = EVP_MD_CTX_new();
	unsigned int dlen = 0;
	int rc = pipeline_setup(&pl, nworkers + nwriters);

	if (rc == 0 && (!content || !EVP_DigestInit_ex(content, pl.sha256, NULL)))
		rc = -ENOMEM;
	if (rc < 0) {
		rc = ctx_error(ctx, ENOMEM, "cannot set up the copy: out of memory");
		goto out;
	}
	rc = start_threads(ctx, &pl, threads, &started, nwriters, writer);
	if (rc == 0)
		rc = start_threads(ctx, &pl, threads, &started, nworkers, worker);
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
		EVP_DigestFinal_ex(content, content_hash, &dlen);
out:
	EVP_MD_CTX_free(content);
	pipeline_teardown(&pl);
	return rc;
}
