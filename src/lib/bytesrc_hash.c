/*
 * The hashing byte source (bytesrc.h): a source over another that computes
 * the SHA-256 of the file as given while the format reads it, so that an
 * image from a URL or standard input is checked against its digest without
 * a second fetch where it can be helped.
 *
 * The hash runs over a prefix [0, hashed_to). Bytes read in order extend it
 * as they pass. Bytes read at offsets (a qcow2 over HTTP ranges, from
 * several threads, roughly in order) extend it when they reach it; those
 * that come early are copied and held (HOLD_MAX in all) until the prefix
 * reaches them. When the held pieces fill that budget, the prefix is stuck
 * at a range the format never reads (a qcow2's refcount blocks) or one a
 * slow thread is still fetching: the thread that found no room reads that
 * gap itself (FILL_SIZE at most), which finish would have to read anyway,
 * rather than drop ever more pieces to be read again at the end. A piece
 * that still finds no room is dropped, and finish reads it again.
 *
 * One running hash takes its bytes in order, so one thread hashes at a
 * time: the one whose bytes continue the prefix, and it goes on with the
 * held pieces that continue it in turn. It hashes with the lock let go, so
 * the others only copy their pieces in meanwhile and return. The lock
 * guards the list and the counters; copies, reads and hashing happen
 * outside it.
 *
 * A caller that hashes the bytes itself, in order (a plain stream's are
 * the payload, which the copy hashes on a thread of its own), stops the
 * hash (bytesrc_hash_stop): read then only passes them on, which keeps
 * the hashing out of the turn the readers of a stream take.
 *
 * Divided as: the held pieces and the prefix (hash_on, hold, fill_gap,
 * feed), the ops, then wrap and finish.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"
#include "internal.h"
#include "sha256.h"

#define HOLD_MAX ((size_t)64 << 20)   /* bytes held early, in all */
#define FILL_SIZE ((size_t)4 << 20)   /* one read of a gap, at most */
#define FINISH_SIZE ((size_t)4 << 20) /* one read of finish */

/* Bytes [off, off+len) that came before the prefix reached them. */
struct piece {
	struct piece *next;
	uint64_t off;
	size_t len;
	uint8_t bytes[];
};

/* How feed may treat bytes that do not continue the prefix. */
enum {
	FEED_HOLD = 1 << 0, /* keep a copy of early bytes when there is room */
	FEED_FILL = 1 << 1, /* when there is none, read the gap before the held pieces */
};

struct hash_state {
	struct bytesrc *inner;
	pthread_mutex_t lock; /* guards everything down to filled */
	struct sha256 *sha;   /* used by the hasher only, outside the lock */
	uint64_t hashed_to;   /* [0, hashed_to) is hashed, or being hashed by the hasher */
	bool hashing;         /* a thread hashes (the hasher) */
	bool filling;         /* a thread reads a gap */
	bool done;            /* finished: digest and size are the result */
	struct piece *held;   /* by offset */
	struct piece *held_tail;
	size_t held_bytes; /* the held pieces' lengths, and those being copied in */
	uint64_t filled;   /* bytes read by fill_gap */
	/* Used by read, rewind and finish (one thread) only. */
	uint64_t read_pos; /* where read is in the file */
	bool no_stream;    /* told read will not be called again */
	bool stopped;      /* bytesrc_hash_stop: read hashes nothing */
	uint8_t digest[SHA256_SIZE];
	uint64_t size;
};

static void copy_msg(struct bytesrc *bs, const struct hash_state *h)
{
	memcpy(bs->msg, h->inner->msg, sizeof(bs->msg));
	bs->msg[sizeof(bs->msg) - 1] = '\0';
}

/* The first held piece that continues the prefix, off the list; those below it freed. */
static struct piece *take_next(struct hash_state *h)
{
	struct piece *pc;

	while ((pc = h->held) && pc->off <= h->hashed_to) {
		h->held = pc->next;
		if (!h->held)
			h->held_tail = NULL;
		if (pc->off + pc->len > h->hashed_to)
			return pc;
		h->held_bytes -= pc->len;
		free(pc);
	}
	return NULL;
}

/*
 * Hash n bytes at p, which continue the prefix (owned by pc, or the
 * caller's when pc is NULL), then each held piece that continues it in
 * turn. Called with the lock held and no hasher; returns with it held.
 */
static void hash_on(struct hash_state *h, const uint8_t *p, size_t n, struct piece *pc)
{
	h->hashing = true;
	for (;;) {
		size_t freed = pc ? pc->len : 0;

		h->hashed_to += n;
		pthread_mutex_unlock(&h->lock);
		sha256_update(h->sha, p, n);
		free(pc);
		pthread_mutex_lock(&h->lock);
		h->held_bytes -= freed;
		pc = take_next(h);
		if (!pc)
			break;
		p = pc->bytes + (h->hashed_to - pc->off);
		n = (size_t)(pc->off + pc->len - h->hashed_to);
	}
	h->hashing = false;
}

static void insert_piece(struct hash_state *h, struct piece *pc)
{
	struct piece **at = &h->held;

	/* The offsets mostly grow: append without a walk. */
	if (h->held_tail && h->held_tail->off <= pc->off)
		at = &h->held_tail->next;
	while (*at && (*at)->off <= pc->off)
		at = &(*at)->next;
	pc->next = *at;
	*at = pc;
	if (!pc->next)
		h->held_tail = pc;
}

/*
 * Keep a copy of [off, off+len) (early, or the hasher is busy), room for
 * it taken. Called with the lock held; returns with it held.
 */
static void hold(struct hash_state *h, const uint8_t *buf, size_t len, uint64_t off)
{
	struct piece *pc;

	h->held_bytes += len;
	pthread_mutex_unlock(&h->lock);
	pc = malloc(sizeof(*pc) + len);
	if (pc) {
		pc->off = off;
		pc->len = len;
		memcpy(pc->bytes, buf, len);
	}
	pthread_mutex_lock(&h->lock);
	if (!pc) {
		h->held_bytes -= len; /* dropped: read again at the end */
		return;
	}
	insert_piece(h, pc);
	/* The prefix may have reached it meanwhile, and its hasher gone. */
	if (!h->hashing && (pc = take_next(h)))
		hash_on(h, pc->bytes + (h->hashed_to - pc->off),
			(size_t)(pc->off + pc->len - h->hashed_to), pc);
}

static void feed(struct hash_state *h, const uint8_t *buf, size_t len, uint64_t off, unsigned int how);

/*
 * Read the gap between the prefix and the first held piece (FILL_SIZE at
 * most) and hash it, when the held pieces take all the room. Called with
 * the lock held; returns with it held: true when it read the gap.
 */
static bool fill_gap(struct hash_state *h)
{
	uint64_t from = h->hashed_to;
	uint8_t *buf;
	size_t len;
	int rc;

	if (h->filling || h->hashing || !h->held || h->held->off <= from)
		return false;
	len = h->held->off - from < FILL_SIZE ? (size_t)(h->held->off - from) : FILL_SIZE;
	h->filling = true;
	pthread_mutex_unlock(&h->lock);
	buf = malloc(len);
	rc = buf ? h->inner->ops->pread(h->inner, buf, len, from) : -ENOMEM;
	pthread_mutex_lock(&h->lock);
	h->filling = false;
	if (rc == 0) {
		h->filled += len;
		feed(h, buf, len, from, FEED_HOLD);
	}
	free(buf);
	return rc == 0;
}

/*
 * Take [off, off+len), just read: hash what it adds to the prefix, or hold
 * it, as how allows. Called with the lock held; returns with it held.
 */
static void feed(struct hash_state *h, const uint8_t *buf, size_t len, uint64_t off, unsigned int how)
{
	for (;;) {
		if (h->done || len == 0 || off + len <= h->hashed_to)
			return;
		if (off < h->hashed_to) {
			buf += h->hashed_to - off;
			len -= (size_t)(h->hashed_to - off);
			off = h->hashed_to;
		}
		if (off == h->hashed_to && !h->hashing) {
			hash_on(h, buf, len, NULL);
			return;
		}
		if (!(how & FEED_HOLD))
			return;
		if (len <= HOLD_MAX - h->held_bytes) {
			hold(h, buf, len, off);
			return;
		}
		if (!(how & FEED_FILL) || !fill_gap(h))
			return; /* dropped: read again at the end */
		how &= ~(unsigned int)FEED_FILL;
	}
}

static int hash_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
{
	struct hash_state *h = bs->priv;
	int rc = h->inner->ops->pread(h->inner, buf, len, off);

	pthread_mutex_lock(&h->lock);
	if (rc < 0)
		copy_msg(bs, h);
	else
		feed(h, buf, len, off, FEED_HOLD | FEED_FILL);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static ssize_t hash_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct hash_state *h = bs->priv;
	ssize_t n = bytesrc_read(h->inner, buf, len);

	if (n >= 0 && h->stopped)
		return n;
	pthread_mutex_lock(&h->lock);
	if (n < 0)
		copy_msg(bs, h);
	else
		feed(h, buf, (size_t)n, h->read_pos, FEED_HOLD);
	pthread_mutex_unlock(&h->lock);
	if (n > 0)
		h->read_pos += (uint64_t)n;
	return n;
}

/* The first bytes, not consumed and not hashed: read or pread will give them again. */
static ssize_t hash_peek(struct bytesrc *bs, void *buf, size_t len)
{
	struct hash_state *h = bs->priv;
	ssize_t n = bytesrc_peek(h->inner, buf, len);

	if (n < 0) {
		pthread_mutex_lock(&h->lock);
		copy_msg(bs, h);
		pthread_mutex_unlock(&h->lock);
	}
	return n;
}

/*
 * The stream starts over, and the hash with it. The held pieces stay: they
 * are the file's bytes all the same. Not while preads run.
 */
static int hash_rewind(struct bytesrc *bs)
{
	struct hash_state *h = bs->priv;
	struct sha256 *fresh;
	int rc;

	if (!h->inner->ops->rewind)
		return -ESPIPE;
	fresh = sha256_new();
	if (!fresh)
		return -ENOMEM;
	rc = bytesrc_rewind(h->inner);
	pthread_mutex_lock(&h->lock);
	if (rc < 0) {
		copy_msg(bs, h);
		sha256_free(fresh);
	} else {
		sha256_free(h->sha);
		h->sha = fresh;
		h->hashed_to = 0;
		h->done = false;
		h->read_pos = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int hash_check_unchanged(struct imgdev_ctx *ctx, const struct bytesrc *bs)
{
	const struct hash_state *h = bs->priv;

	return bytesrc_check_unchanged(ctx, h->inner);
}

static void hash_advise(const struct bytesrc *bs, uint64_t off, uint64_t len, enum bytesrc_advice advice)
{
	struct hash_state *h = bs->priv;

	if (advice == BYTESRC_NO_STREAM)
		h->no_stream = true;
	bytesrc_advise(h->inner, off, len, advice);
}

static void free_held(struct hash_state *h)
{
	struct piece *pc;

	while ((pc = h->held)) {
		h->held = pc->next;
		free(pc);
	}
	h->held_tail = NULL;
	h->held_bytes = 0;
}

static void hash_close(struct bytesrc *bs)
{
	struct hash_state *h = bs->priv;

	bytesrc_close(h->inner);
	free_held(h);
	sha256_free(h->sha);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static const struct bytesrc_ops hash_ops = {
	.pread = hash_pread,
	.read = hash_read,
	.peek = hash_peek,
	.rewind = hash_rewind,
	.check_unchanged = hash_check_unchanged,
	.advise = hash_advise,
	.close = hash_close,
};

/* Over a pure stream: no pread to offer. */
static const struct bytesrc_ops hash_stream_ops = {
	.read = hash_read,
	.peek = hash_peek,
	.rewind = hash_rewind,
	.check_unchanged = hash_check_unchanged,
	.advise = hash_advise,
	.close = hash_close,
};

int bytesrc_hash_wrap(struct imgdev_ctx *ctx, struct bytesrc *inner, struct bytesrc **out)
{
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	struct hash_state *h = calloc(1, sizeof(*h));

	if (bs)
		bs->name = strdup(inner->name ? inner->name : "");
	if (h)
		h->sha = sha256_new();
	if (!bs || !bs->name || !h || !h->sha || pthread_mutex_init(&h->lock, NULL) != 0) {
		if (h)
			sha256_free(h->sha);
		free(h);
		bytesrc_close(bs); /* no ops yet: only the name and itself */
		bytesrc_close(inner);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	h->inner = inner;
	bs->ops = inner->ops->pread ? &hash_ops : &hash_stream_ops;
	bs->size = inner->size;
	bs->size_known = inner->size_known;
	bs->in_memory = false;
	bs->fd = -1; /* no format maps or lists the file behind the hash's back */
	bs->priv = h;
	*out = bs;
	return 0;
}

void bytesrc_hash_stop(struct bytesrc *bs)
{
	struct hash_state *h = bs->priv;

	h->stopped = true;
}

/* Hash [hashed_to, size) by pread, the held pieces where they cover it; 0 or -errno. */
static int finish_by_pread(struct hash_state *h, uint8_t *buf, uint64_t size, uint64_t *got)
{
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	while (rc == 0) {
		struct piece *pc = take_next(h);
		uint64_t from = h->hashed_to, to;

		if (pc) {
			hash_on(h, pc->bytes + (from - pc->off), (size_t)(pc->off + pc->len - from),
				pc);
			continue;
		}
		if (from >= size)
			break;
		to = h->held && h->held->off < size ? h->held->off : size;
		if (to - from > FINISH_SIZE)
			to = from + FINISH_SIZE;
		pthread_mutex_unlock(&h->lock);
		rc = h->inner->ops->pread(h->inner, buf, (size_t)(to - from), from);
		pthread_mutex_lock(&h->lock);
		if (rc == 0) {
			*got += to - from;
			feed(h, buf, (size_t)(to - from), from, 0);
		}
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* Hash the rest of the stream, read to its end; 0 or -errno. */
static int finish_by_read(struct hash_state *h, uint8_t *buf, uint64_t *got)
{
	ssize_t n;

	do {
		n = bytesrc_read(h->inner, buf, FINISH_SIZE);
		if (n > 0) {
			pthread_mutex_lock(&h->lock);
			feed(h, buf, (size_t)n, h->read_pos, 0);
			pthread_mutex_unlock(&h->lock);
			h->read_pos += (uint64_t)n;
			*got += (uint64_t)n;
		}
	} while (n > 0);
	return n < 0 ? (int)n : 0;
}

/* Read what was never hashed, then the digest; 0 or -errno with the message in ctx. */
static int finish(struct imgdev_ctx *ctx, struct bytesrc *bs, struct hash_state *h)
{
	/* Go on with the stream where it is, or read at offsets what is missing. */
	bool by_pread = h->inner->ops->pread && bs->size_known &&
			(h->no_stream || h->read_pos == 0 || h->read_pos != h->hashed_to);
	uint64_t got = 0;
	uint8_t *buf;
	int rc;

	if (!by_pread && h->read_pos != h->hashed_to)
		return ctx_error(ctx, ESPIPE,
				 "%s: bytes %llu to %llu were not hashed and cannot be read again",
				 bs->name, (unsigned long long)h->hashed_to,
				 (unsigned long long)h->read_pos);
	buf = malloc(FINISH_SIZE);
	if (!buf)
		return ctx_error(ctx, ENOMEM, "out of memory");
	rc = by_pread ? finish_by_pread(h, buf, bs->size, &got) : finish_by_read(h, buf, &got);
	free(buf);
	if (rc < 0) {
		copy_msg(bs, h);
		return ctx_error(ctx, rc, "%s: cannot read the image to hash it: %s", bs->name,
				 bytesrc_error(h->inner, rc));
	}
	if (bs->size_known && h->hashed_to != bs->size)
		return ctx_error(ctx, EIO, "%s: the image ended after %llu bytes, not %llu", bs->name,
				 (unsigned long long)h->hashed_to, (unsigned long long)bs->size);
	if (h->filled)
		ctx_log(ctx, LOGP_INFO,
			"%s: read %llu bytes ahead of the format to hash the whole file", bs->name,
			(unsigned long long)h->filled);
	if (got)
		ctx_log(ctx, LOGP_INFO, "%s: read %llu bytes more at the end to hash the whole file",
			bs->name, (unsigned long long)got);
	sha256_final(h->sha, h->digest);
	h->size = h->hashed_to;
	h->done = true;
	free_held(h);
	return 0;
}

int bytesrc_hash_finish(struct imgdev_ctx *ctx, struct bytesrc *bs, uint8_t hash[32], uint64_t *size)
{
	struct hash_state *h = bs->priv;
	int rc;

	if (bs->ops != &hash_ops && bs->ops != &hash_stream_ops)
		return ctx_error(ctx, EINVAL, "%s: not a hashing byte source", bs->name);
	if (h->stopped)
		return ctx_error(ctx, EINVAL, "%s: its hash was stopped", bs->name);
	if (!h->done) {
		rc = finish(ctx, bs, h);
		if (rc < 0)
			return rc;
	}
	memcpy(hash, h->digest, SHA256_SIZE);
	*size = h->size;
	return 0;
}
