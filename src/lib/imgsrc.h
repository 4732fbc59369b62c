/*
 * Image sources: where provisioning reads the payload from. A source is a
 * format (raw, qcow2, a gzip, xz or zstd stream holding either) over a byte
 * source (bytesrc.h: a file today), which the format reads without knowing
 * its kind. It knows its payload (virtual) size and fills chunks on
 * request, from any worker thread at once; holes and zero clusters come
 * back as all_zero chunks or as zeroed ranges, never read. How the caller
 * lets it read (the read policy) is given when it is opened.
 */
#ifndef IMGDEV_IMGSRC_H
#define IMGDEV_IMGSRC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pipeline.h"

struct bytesrc;
struct imgdev_ctx;
struct imgdev_image_info;
struct imgsrc;

/* The read policy, fixed when the source is opened. */
struct imgsrc_policy {
	/*
	 * read_chunk may map the image's pages into chunks rather than copy
	 * them (raw data, qcow2's uncompressed clusters): a truncation or a
	 * read failure of the image while a chunk is in flight then raises
	 * SIGBUS.
	 */
	bool map_chunks;
	/*
	 * The caller has the image's hash (a digest): the file is never hashed
	 * beside the chunks, so that chunks may drop their pages behind them
	 * even for formats whose file is not the payload.
	 */
	bool hash_given;
};

/* The compressed streams the stream format reads. */
enum imgsrc_stream_kind {
	IMGSRC_STREAM_GZIP,
	IMGSRC_STREAM_XZ,
	IMGSRC_STREAM_ZSTD,
	IMGSRC_STREAM_PLAIN,	/* not compressed: a source that only reads forward */
};

struct imgsrc_ops {
	/*
	 * Fill c (c->off, c->len within the payload), handing known zeros to
	 * chunk_zero_range() rather than writing them; thread-safe; 0 or
	 * chunk_error().
	 */
	int (*read_chunk)(struct imgsrc *src, struct chunk *c);
	/* NULL, or: done with a chunk read_chunk filled (thread-safe). */
	void (*release_chunk)(struct imgsrc *src, const struct chunk *c);
	/* NULL, or: fill what this format knows of the image into info. */
	void (*info)(const struct imgsrc *src, struct imgdev_image_info *info);
	void (*close)(struct imgsrc *src);
};

struct imgsrc {
	const struct imgsrc_ops *ops;
	const char *format;		/* "raw", "qcow2" */
	const char *compression;	/* "none", "gzip", "xz", "zstd" */
	const char *name;		/* the image's, for messages (bytes->name) */
	struct bytesrc *bytes;		/* the image as given */
	struct bytesrc *data;		/* what the format reads: bytes, or a temporary file */
	struct imgsrc_policy policy;
	uint64_t size;			/* payload (virtual) bytes, when size_known */
	/*
	 * False for a stream from a source that cannot start over (standard
	 * input, a URL), compressed or of unknown length: its chunks say where
	 * the payload ends (chunk->end), and size is 0.
	 */
	bool size_known;
	/* The payload bytes the device has room for: more is an error (-ENOSPC). */
	uint64_t room;
	/*
	 * Bytes of the image as given read so far by a stream: the progress of
	 * one whose payload size is unknown but whose file size is known.
	 */
	atomic_uint_least64_t file_read;
	/* The image file's SHA-256 equals the payload's: hash it in the copy. */
	bool identity_is_payload;
	/*
	 * Chunks are the only reader of the file (no hash of the file beside
	 * them, not in memory): release_chunk may drop a chunk's pages from
	 * the page cache. Set at open, from the policy.
	 */
	bool drop_behind;
	/* The file was read through (hashed or copied), so its pages are ours to drop. */
	atomic_bool read_through;
	void *priv;			/* the format's own state */
};

/*
 * Open the image in bytes (which the source then owns, and closes also on
 * failure), choosing the format by content, with the read policy (NULL:
 * none of it); 0 or -errno (message in ctx).
 */
int imgsrc_open(struct imgdev_ctx *ctx, struct bytesrc *bytes, const struct imgsrc_policy *policy,
		struct imgsrc **src);
/*
 * Open bytes (as imgsrc_open does) as a raw image read in order from
 * payload offset start: a copy resumed there, whose first start bytes are
 * elsewhere (on the device). Nothing is probed; bytes must start there
 * (bytesrc_open_url_at) and be of a known size.
 */
int imgsrc_open_raw_at(struct imgdev_ctx *ctx, struct bytesrc *bytes, uint64_t start,
		       const struct imgsrc_policy *policy, struct imgsrc **src);
void imgsrc_close(struct imgsrc *src);

/*
 * Into info, what the first bytes of an image say of its format, even of
 * one the formats refuse (no source is opened).
 */
void imgsrc_peek(struct bytesrc *bytes, struct imgdev_image_info *info);
/* Into info, what the open source knows: format, compression, sizes. */
void imgsrc_info(const struct imgsrc *src, struct imgdev_image_info *info);

/* The formats, each set up on a src with bytes and data set. */
int imgsrc_raw_init(struct imgdev_ctx *ctx, struct imgsrc *src);
int imgsrc_qcow2_init(struct imgdev_ctx *ctx, struct imgsrc *src);
int imgsrc_stream_init(struct imgdev_ctx *ctx, struct imgsrc *src, enum imgsrc_stream_kind kind);
/* A plain stream whose bytes before start are not read (imgsrc_open_raw_at). */
int imgsrc_stream_init_at(struct imgdev_ctx *ctx, struct imgsrc *src, uint64_t start);
/* Whether src is a plain stream (not compressed) of a known size over a source with ranges. */
bool imgsrc_is_ranged_plain_stream(const struct imgsrc *src);

/* Fill chunk c, or be done with it: the format's operations, for callers. */
int imgsrc_read_chunk(struct imgsrc *src, struct chunk *c);
void imgsrc_release_chunk(struct imgsrc *src, const struct chunk *c);

/*
 * Whether the image is still as it was opened (a file: size, modification
 * and change times): a file truncated or rewritten during the copy may have
 * given bytes that are not the image the digest names. 0, or -ESTALE (or
 * -errno) with the message in ctx.
 */
int imgsrc_check_unchanged(struct imgdev_ctx *ctx, const struct imgsrc *src);

/*
 * Done with the image: if it was read through, drop its pages from the
 * page cache (unless in memory).
 */
void imgsrc_drop_cache(const struct imgsrc *src);

/* SHA-256 of the image as given (not the payload), read in order; 0 or -errno. */
int imgsrc_hash_file(struct imgdev_ctx *ctx, struct imgsrc *src, uint8_t hash[IMGDEV_HASH_SIZE]);

#endif
