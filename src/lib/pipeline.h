/*
 * The parallel chunk pipeline behind provision and verify. Worker threads
 * take chunks (4 MiB) of a payload, have them filled (read_fn) and hash
 * each 64 KiB block (all-zero blocks take a precomputed digest, unhashed);
 * writer threads hand each filled chunk to write_fn meanwhile. The calling
 * thread folds the block digests in order into the content hash and,
 * optionally, feeds the bytes in order to an identity hash (or a thread of
 * the pipeline's own does). Memory is bounded: a fixed ring of chunk buffers.
 */
#ifndef IMGDEV_PIPELINE_H
#define IMGDEV_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "header.h"
#include "sha256.h"
#include "sha256mb.h"

#define CHUNK_SIZE (4u * 1024 * 1024)
#define CHUNK_BLOCKS (CHUNK_SIZE / CONTENT_BLOCK_SIZE)
#define BUF_ALIGN 4096
#define CHUNK_PAD 4096	/* room to round the last transfer up for O_DIRECT */

struct chunk {
	uint64_t index;
	uint64_t off;		/* within the payload */
	uint32_t len;
	bool all_zero;		/* read_fn: the whole chunk is zeros, buf untouched */
	/*
	 * read_fn, for a payload of unknown size: it ends with this chunk,
	 * whose len read_fn shortened to what there was (0 past the end).
	 */
	bool end;
	uint8_t *buf;		/* CHUNK_SIZE + CHUNK_PAD, BUF_ALIGN-aligned */
	/*
	 * Where the chunk's bytes are: buf, or a read-only mapping of the
	 * image that read_fn set up (chunk_map_begin), unmapped by the
	 * pipeline once the chunk is folded.
	 */
	const uint8_t *data;
	/*
	 * Per block: zeros. read_fn may set it (chunk_zero_range) for a block
	 * it knows to be zeros and leave that block's bytes in buf unwritten;
	 * the pipeline then sets it for every block that reads as zeros.
	 */
	bool zero[CHUNK_BLOCKS];
	uint8_t digest[CHUNK_BLOCKS][IMGDEV_HASH_SIZE];
	/* internal */
	int state;
	bool hashed;		/* every block's digest is in */
	bool fed;               /* its bytes are in the identity hash, or need not be */
	int hash_err;		/* how hashing its blocks failed */
	int err;		/* how filling or writing it failed */
	char msg[512];		/* the error's message, set with chunk_error() */
};

/*
 * Fill c->buf[0..c->len) (or set c->all_zero), or write the chunk out.
 * Runs in a worker or a writer thread: report failure with return
 * chunk_error(c, ...). A write may run while the chunk's blocks are being
 * hashed: it must not change the chunk's bytes (the padding past c->len in
 * buf is its to use).
 */
typedef int (*chunk_fn)(void *arg, struct chunk *c);
/* Progress: bytes of the payload done so far, of total. */
typedef void (*progress_fn)(void *arg, uint64_t done, uint64_t total);

struct pipeline_job {
	/*
	 * Payload bytes; with size_unknown, at most this many: read_fn then
	 * says where the payload ends (chunk->end), and the run's size is
	 * what it was.
	 */
	uint64_t size;
	bool size_unknown;
	unsigned int workers;		/* filling and hashing; 0: from the CPUs (worker_count) */
	chunk_fn read_fn;
	chunk_fn write_fn;		/* NULL to only hash */
	/* NULL, or called once the chunk is folded and its bytes unmapped. */
	void (*release_fn)(void *arg, const struct chunk *c);
	void *arg;
	struct sha256 *identity;	/* NULL, or fed every byte in order */
	/*
	 * With identity: fed by a thread of its own, each chunk once filled,
	 * not by the folding thread, and no worker fewer for it (a stream's
	 * bytes, whose hash is the longest serial stage).
	 */
	bool identity_thread;
	/* Tests: hash with this implementation (sha256mb.h), not ctx_hash_impl's. */
	bool use_impl;
	enum sha256mb_impl impl;
	progress_fn progress;
	void *progress_arg;
};

/*
 * Run the job. On success fills content_hash (SHA-256 over the block
 * digests, in order) and *size (the payload's bytes; NULL allowed) and
 * returns 0; else returns the first chunk error (the message is in ctx):
 * no chunk is claimed after a failure, though the chunks already filled
 * are still written.
 */
int pipeline_run(struct imgdev_ctx *ctx, const struct pipeline_job *job,
		 uint8_t content_hash[IMGDEV_HASH_SIZE], uint64_t *size);

/* Record an error message in the chunk (not the shared context); returns -err. */
int chunk_error(struct chunk *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Feed a filled chunk's bytes to md (zeros for its zero blocks). */
void chunk_digest_update(struct sha256 *md, const struct chunk *c);

/* Set up c to be filled with payload bytes [off, off+len). */
void chunk_reset(struct chunk *c, uint64_t off, uint32_t len);

/*
 * In read_fn: the chunk's bytes [from, to) (offsets within it) are zeros.
 * Whole blocks in the range are flagged zero and their bytes in buf left
 * unwritten; the parts of blocks at the range's ends are zeroed in buf
 * (in a mapped chunk they already read as zeros).
 */
void chunk_zero_range(struct chunk *c, uint32_t from, uint32_t to);

/*
 * Mapping a chunk's bytes instead of reading them (chunk_map.c), for a whole
 * CHUNK_SIZE chunk at a page-aligned offset. chunk_map_begin makes c->data a
 * window that reads as zeros; chunk_map_file places len bytes of fd at
 * file_off over the window's bytes [at, at+len) and faults them in, every
 * value page-aligned. Each returns 0 or -errno; on failure, chunk_unmap()
 * and read into buf instead. The window's bytes are read-only:
 * chunk_zero_range() only flags blocks in it.
 */
bool chunk_map_aligned(uint64_t v);
int chunk_map_begin(struct chunk *c);
int chunk_map_file(struct chunk *c, uint32_t at, uint32_t len, int fd, uint64_t file_off);
/* Undo a chunk's mapping, if any: c->data is c->buf again. */
void chunk_unmap(struct chunk *c);

/* Whether len bytes at p are all zero. */
bool buf_is_zero(const uint8_t *p, size_t len);

#endif
