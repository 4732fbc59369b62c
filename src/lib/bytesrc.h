/*
 * Byte sources: where an image's bytes come from, under the formats (raw,
 * qcow2, gzip/xz/zstd streams), which never know which kind they read. A
 * file today (bytesrc_file.c); an HTTP(S) body streamed, a qcow2 read by
 * HTTP Range requests, a registry blob or standard input next. A source
 * offers what it can:
 *   pread   exactly len bytes at any offset, from any thread at once; NULL
 *           for a pure stream (qcow2, the xz index and the file's own hash
 *           need it; a stream of a qcow2 goes through a temporary file)
 *   read    the next bytes in order, up to len, from one thread at a time
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
#include <sys/types.h>

struct imgdev_ctx;
struct bytesrc;

enum bytesrc_advice {
	BYTESRC_SEQUENTIAL,	/* the bytes will be read in order */
	BYTESRC_DONE,		/* done with [off, off+len) (len 0: to the end): drop it */
};

struct bytesrc_ops {
	/* 0, -EIO when the source ends before off+len, or -errno. */
	int (*pread)(struct bytesrc *bs, void *buf, size_t len, uint64_t off);
	/* Bytes read (0 at the end), or -errno. */
	ssize_t (*read)(struct bytesrc *bs, void *buf, size_t len);
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
};

/*
 * A regular file at path, opened read-only. 0 or -errno with the message
 * in ctx (-ENOMEDIUM for anything but a regular file, -EACCES when it may
 * not be read).
 */
int bytesrc_open_file(struct imgdev_ctx *ctx, const char *path, struct bytesrc **bs);
/* A source over fd, a regular file it then owns (closes, also on failure). */
int bytesrc_from_fd(struct imgdev_ctx *ctx, int fd, const char *name, struct bytesrc **bs);
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
