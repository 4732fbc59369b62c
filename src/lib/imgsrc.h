/*
 * Image sources: where provisioning reads the payload from. A source knows
 * its payload (virtual) size and fills chunks on request, from any worker
 * thread at once; holes and zero clusters come back as all_zero chunks or as
 * zeroed ranges, never read from disk. Raw files, qcow2 files, and gzip,
 * xz or zstd streams holding either, all behind the same two operations.
 */
#ifndef IMGDEV_IMGSRC_H
#define IMGDEV_IMGSRC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pipeline.h"

struct imgdev_ctx;
struct imgsrc;

struct imgsrc_ops {
	/*
	 * Fill c (c->off, c->len within the payload), handing known zeros to
	 * chunk_zero_range() rather than writing them; thread-safe; 0 or
	 * chunk_error().
	 */
	int (*read_chunk)(struct imgsrc *src, struct chunk *c);
	/* NULL, or: done with a chunk read_chunk filled (thread-safe). */
	void (*release_chunk)(struct imgsrc *src, const struct chunk *c);
	void (*close)(struct imgsrc *src);
};

struct imgsrc {
	const struct imgsrc_ops *ops;
	const char *format;		/* "raw", "qcow2" */
	const char *compression;	/* "none", "zlib", "zstd", "gzip", "xz" */
	char *path;
	uint64_t file_size;		/* bytes of the file as given */
	struct timespec opened_mtime;	/* the file's times when opened */
	struct timespec opened_ctime;
	uint64_t size;			/* payload (virtual) bytes */
	/* The image file's SHA-256 equals the payload's: hash it in the copy. */
	bool identity_is_payload;
	/*
	 * The caller allows read_chunk to map the image's pages into chunks
	 * rather than copy them (raw data, qcow2's uncompressed clusters): a
	 * truncation or a read failure of the image while a chunk is in
	 * flight then raises SIGBUS.
	 */
	bool map_chunks;
	/*
	 * Chunks are the only reader of the file (no hash of the file beside
	 * them): release_chunk may drop a chunk's pages from the page cache.
	 * Set at open unless in_memory; the caller clears it when it needs to.
	 */
	bool drop_behind;
	/* The file is on tmpfs or ramfs: its pages are the file, never dropped. */
	bool in_memory;
	/* The file was read through (hashed or copied), so its pages are ours to drop. */
	bool read_through;
	int fd;				/* the file as given */
	int data_fd;			/* what the format reads: fd, or a temporary file */
	uint64_t file_size_inner;	/* bytes of the temporary file, if any */
	uint64_t allocated;		/* qcow2: virtual bytes backed by data */
	uint64_t compressed;		/* qcow2: of those, in compressed clusters */
	void *priv;			/* the format's own state */
};

/* Open an image, choosing the reader by content; 0 or -errno (message in ctx). */
int imgsrc_open(struct imgdev_ctx *ctx, const char *path, struct imgsrc **src);
void imgsrc_close(struct imgsrc *src);

/* The readers, each set up on an open src (fd, path, file_size set). */
int imgsrc_raw_init(struct imgdev_ctx *ctx, struct imgsrc *src);
int imgsrc_qcow2_init(struct imgdev_ctx *ctx, struct imgsrc *src);
/* kind: 0 gzip, 1 xz, 2 zstd. */
int imgsrc_stream_init(struct imgdev_ctx *ctx, struct imgsrc *src, int kind);

/*
 * Whether the image file is still as it was opened (size, modification and
 * change times): a file truncated or rewritten during the copy may have
 * given bytes that are not the image the digest names. 0, or -ESTALE (or
 * -errno) with the message in ctx.
 */
int imgsrc_check_unchanged(struct imgdev_ctx *ctx, const struct imgsrc *src);

/*
 * Done with the image file: if it was read through, drop its pages from the
 * page cache (unless in_memory).
 */
void imgsrc_drop_cache(const struct imgsrc *src);

/* SHA-256 of the image file itself, read sequentially; 0 or -errno. */
int imgsrc_hash_file(struct imgdev_ctx *ctx, const struct imgsrc *src,
		     uint8_t hash[IMGDEV_HASH_SIZE]);

#endif
