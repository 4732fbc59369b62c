/*
 * The chunk pipeline (see pipeline.h). Chunk i lives in slot i % nslots;
 * a worker may claim chunk i only once chunk i - nslots has been folded,
 * which bounds memory to nslots buffers whatever the payload size. Workers
 * write their error into the chunk; the folding thread sees errors in
 * order, stops the run and reports the first.
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
#define MAX_SLOTS 8

enum { SLOT_FREE, SLOT_BUSY, SLOT_DONE };

struct pipeline {
	const struct pipeline_job *job;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct chunk *slots;
	unsigned int nslots;
	uint64_t nchunks;
	uint64_t next_claim;
	uint64_t next_fold;
	bool stop;
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

static void *worker(void *arg)
{
	struct pipeline *pl = arg;
	const struct pipeline_job *job = pl->job;
	struct chunk *c;

	while ((c = claim(pl))) {
		int rc = job->read_fn(job->arg, c);

		if (rc == 0)
			rc = chunk_hash(pl, c);
		if (rc == 0 && job->write_fn)
			rc = job->write_fn(job->arg, c);
		pthread_mutex_lock(&pl->lock);
		c->err = rc;
		c->state = SLOT_DONE;
		if (rc < 0)
			pl->stop = true;	/* no new claims; the folder reports it */
		pthread_cond_broadcast(&pl->changed);
		pthread_mutex_unlock(&pl->lock);
	}
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
 * Two workers per CPU: a worker waits out each read and each (synchronous,
 * O_DIRECT) write, and the second one keeps the CPU busy meanwhile (on the
 * benchmark's VM-shaped and random images, 5-13 % faster than one per CPU;
 * three per CPU gained nothing more). But an identity hash computed in
 * order beside the copy is the critical path: on the folding thread (a raw
 * image's), one fewer worker than CPUs, to leave it a CPU; on the caller's
 * own thread (a qcow2 or compressed file's, shorter than the payload when
 * compressed), one per CPU, which measured best between hashing-bound and
 * decompression-bound images.
 */
static unsigned int worker_count(const struct pipeline_job *job)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int n = cpus > 0 ? (unsigned int)cpus : 1;

	if (job->workers)
		n = job->workers;
	else if (job->identity)
		n = n > 1 ? n - 1 : 1;
	else if (!job->hash_beside)
		n = 2 * n < MAX_SLOTS - 2 ? 2 * n : MAX_SLOTS - 2;	/* slots to spare */

	return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static int pipeline_setup(struct pipeline *pl, unsigned int nworkers)
{
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->changed, NULL);
	pl->nslots = 2 * nworkers + 2 > MAX_SLOTS ? MAX_SLOTS : 2 * nworkers + 2;
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

int pipeline_run(struct imgdev_ctx *ctx, const struct pipeline_job *job,
		 uint8_t content_hash[IMGDEV_HASH_SIZE])
{
	struct pipeline pl = { .job = job };
	unsigned int nworkers = worker_count(job), started = 0;
	pthread_t threads[MAX_WORKERS];
	EVP_MD_CTX *content = EVP_MD_CTX_new();
	unsigned int dlen = 0;
	int rc = pipeline_setup(&pl, nworkers);

	if (rc == 0 && (!content || !EVP_DigestInit_ex(content, pl.sha256, NULL)))
		rc = -ENOMEM;
	if (rc < 0) {
		rc = ctx_error(ctx, ENOMEM, "cannot set up the copy: out of memory");
		goto out;
	}
	for (; started < nworkers; started++) {
		rc = -pthread_create(&threads[started], NULL, worker, &pl);
		if (rc < 0) {
			ctx_error(ctx, -rc, "cannot start a worker thread: %s", strerror(-rc));
			break;
		}
	}
	if (rc == 0)
		rc = fold_all(&pl, ctx, content);
	pthread_mutex_lock(&pl.lock);
	pl.stop = true;
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
