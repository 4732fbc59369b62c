/*
 * Byte sources: where an image's bytes come from, under the formats (raw,
 * qcow2, gzip/xz/zstd streams), which never know which kind they read: a
 * file (bytesrc_file.c), standard input or a pipe (bytesrc_pipe.c), an
 * HTTP(S) URL, streamed or read by ranges (bytesrc_http.c), and the hashing
 * source over any of them (bytesrc_hash.c). A source offers what it can:
 *   pread   exactly len bytes at any offset, from any thread at once; NULL
 *           for a pure stream (qcow2, the xz index and the file's own hash
 *           need it; a stream of a qcow2 goes through a temporary file)
 *   read    the next bytes in order, up to len, from one thread at a time
 *   peek    the first bytes, before any read, without consuming them (for
 *           the format's magic); NULL when pread does it
 *   rewind  back to the first byte for read; NULL when it cannot
 *   check_unchanged  whether the bytes are still those opened (a file:
 *           its size, modification and change times), so that a copy of
 *           bytes that changed underneath is never committed
 *   advise  page-cache hints: about to be read in order; done with a range
 *   close
 * The size may be unknown (size_known false) for a stream without a length.
 * A source over a file also gives its descriptor (fd, else -1): what only a
 * file can do, map its pages into chunks or list its holes, is done with it,
 * and otherwise skipped (the bytes are read instead). Calls are per chunk or
 * per run, never per 4 KiB block.
 */
#ifndef IMGDEV_BYTESRC_H
#define IMGDEV_BYTESRC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

struct imgdev_ctx;
struct bytesrc;

enum bytesrc_advice {
	BYTESRC_SEQUENTIAL,	/* the bytes will be read in order */
	BYTESRC_DONE,		/* done with [off, off+len) (len 0: to the end): drop it */
	BYTESRC_NO_STREAM,	/* read will not be called again (only pread): stop streaming */
};

struct bytesrc_ops {
	/* 0, -EIO when the source ends before off+len, or -errno. */
	int (*pread)(struct bytesrc *bs, void *buf, size_t len, uint64_t off);
	/* Bytes read (0 at the end), or -errno. */
	ssize_t (*read)(struct bytesrc *bs, void *buf, size_t len);
	/* Up to len of the first bytes, not consumed: how many (fewer at the end), or -errno. */
	ssize_t (*peek)(struct bytesrc *bs, void *buf, size_t len);
	int (*rewind)(struct bytesrc *bs);
	/* 0, or -ESTALE (or -errno) with the message in ctx. */
	int (*check_unchanged)(struct imgdev_ctx *ctx, const struct bytesrc *bs);
	/* NULL, or a hint; never fails. */
	void (*advise)(const struct bytesrc *bs, uint64_t off, uint64_t len,
		       enum bytesrc_advice advice);
	void (*close)(struct bytesrc *bs);
};

struct bytesrc {
	const struct bytesrc_ops *ops;
	char *name;		/* a path or a URL, for messages */
	uint64_t size;		/* bytes, when size_known */
	bool size_known;
	bool in_memory;		/* held in memory (tmpfs, ramfs): its pages are never dropped */
	int fd;			/* a file's descriptor, or -1 */
	void *priv;		/* the kind's own state */
	/*
	 * Why the last call failed, in words (a server's answer, a changed
	 * file), or "": a source has no context, so its reads leave the
	 * message here, and the format reading it puts it in its own.
	 */
	char msg[512];
};

/*
 * A regular file at path, opened read-only. 0 or -errno with the message
 * in ctx (-ENOMEDIUM for anything but a regular file, -EACCES when it may
 * not be read).
 */
int bytesrc_open_file(struct imgdev_ctx *ctx, const char *path, struct bytesrc **bs);
/* A source over fd, a regular file it then owns (closes, also on failure). */
int bytesrc_from_fd(struct imgdev_ctx *ctx, int fd, const char *name, struct bytesrc **bs);
/*
 * Standard input, or any descriptor that is not a regular file (a pipe):
 * read and peek only, its size unknown. It does not own fd.
 */
int bytesrc_open_pipe(struct imgdev_ctx *ctx, int fd, const char *name, struct bytesrc **bs);
/*
 * An http:// or https:// URL, fetched as fo says (NULL: the defaults). The
 * first GET is sent and its answer awaited before this returns, so a 404,
 * a TLS failure or a refused redirect is an error here, with the server's
 * words in ctx: -ENOMEDIUM (404, 410), -EACCES (401, 403), -EREMOTEIO
 * (anything else, after the retries). Then read streams the body (resumed
 * with Range and If-Range after a break, -ESTALE when the file changed on
 * the server); pread, when the server honours ranges, fetches ranges.
 * Its retries are logged to ctx as warnings, from its own threads too, so
 * ctx (and its log callback) must outlive the source and take calls from
 * any thread.
 */
struct imgdev_fetch_opts;
int bytesrc_open_url(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
		     struct bytesrc **bs);
/*
 * The same, streaming from the file offset start (a copy resumed there):
 * read gives the bytes from start on, peek is refused, and size is still
 * the whole file's. The first GET asks for the range from start; a server
 * that sends the whole file instead has the bytes before start skipped;
 * -ERANGE when it answers with another range or none (416).
 */
int bytesrc_open_url_at(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
			uint64_t start, struct bytesrc **bs);
/*
 * The same, with authorization ("Authorization: SCHEME CREDENTIALS", or
 * NULL) on the requests to the URL's origin: redirects to another origin
 * are followed without it (a registry's blob on a CDN). Internal: the
 * registry client's (registry.c).
 */
int bytesrc_open_url_auth(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
			  const char *authorization, struct bytesrc **bs);
/* Whether name is a URL that bytesrc_open_url takes. */
bool bytesrc_is_url(const char *name);
/* What a URL source received (all bodies, retries included) and how often it retried. */
struct bytesrc_stats {
	uint64_t bytes_received;
	unsigned int retries;
};
void bytesrc_stats(const struct bytesrc *bs, struct bytesrc_stats *st);

/*
 * A source over inner (which it then owns) that hashes the bytes as given:
 * those read in order as they pass, those read at offsets as they extend
 * the hashed prefix (held a while when they come early). bytesrc_hash_finish
 * reads what was never read (to the end), and gives the SHA-256 of the
 * whole and its size; 0 or -errno with the message in ctx.
 */
int bytesrc_hash_wrap(struct imgdev_ctx *ctx, struct bytesrc *inner, struct bytesrc **bs);
int bytesrc_hash_finish(struct imgdev_ctx *ctx, struct bytesrc *bs, uint8_t hash[32],
			uint64_t *size);
/*
 * The caller hashes what read gives from here on itself (a plain stream's
 * bytes, which are the payload): read only passes them on, and finish
 * fails (-EINVAL). Called before the reads it concerns start (no
 * thread reads meanwhile).
 */
void bytesrc_hash_stop(struct bytesrc *bs);

/* The message of the last failure, or strerror(-rc) without one. */
const char *bytesrc_error(const struct bytesrc *bs, int rc);

/*
 * The source an image's name means (bytesrc_open.c): "-" standard input, a
 * URL (with ctx's fetch options), else a file.
 */
int bytesrc_open_image(struct imgdev_ctx *ctx, const char *image, struct bytesrc **bs);
/* Whether the name means a source read as it arrives (standard input, a URL). */
bool bytesrc_names_stream(const char *image);

/*
 * For a stream source's read: hands out up to len of the bytes peek read
 * ahead (held[*pos, held_len)), advancing *pos. Returns how many; 0 when
 * none are left, and the source reads on.
 */
static inline size_t bytesrc_take_held(const uint8_t *held, size_t held_len, size_t *pos,
				       void *buf, size_t len)
{
	size_t k = held_len - *pos < len ? held_len - *pos : len;

	memcpy(buf, held + *pos, k);
	*pos += k;
	return k;
}

/* Close and free; NULL is allowed. */
void bytesrc_close(struct bytesrc *bs);

static inline int bytesrc_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
{
	return bs->ops->pread ? bs->ops->pread(bs, buf, len, off) : -ESPIPE;
}

static inline ssize_t bytesrc_read(struct bytesrc *bs, void *buf, size_t len)
{
	return bs->ops->read(bs, buf, len);
}

/* The first bytes (peek, else pread): how many, or -errno. */
static inline ssize_t bytesrc_peek(struct bytesrc *bs, void *buf, size_t len)
{
	int rc;

	if (bs->ops->peek)
		return bs->ops->peek(bs, buf, len);
	if (bs->size_known && bs->size < len)
		len = (size_t)bs->size;
	rc = bytesrc_pread(bs, buf, len, 0);
	return rc < 0 ? rc : (ssize_t)len;
}

static inline int bytesrc_rewind(struct bytesrc *bs)
{
	return bs->ops->rewind ? bs->ops->rewind(bs) : -ESPIPE;
}

static inline int bytesrc_check_unchanged(struct imgdev_ctx *ctx, const struct bytesrc *bs)
{
	return bs->ops->check_unchanged ? bs->ops->check_unchanged(ctx, bs) : 0;
}

static inline void bytesrc_advise(const struct bytesrc *bs, uint64_t off, uint64_t len,
				  enum bytesrc_advice advice)
{
	if (bs->ops->advise)
		bs->ops->advise(bs, off, len, advice);
}

#endif
