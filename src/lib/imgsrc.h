/*
 * Image sources: where provisioning reads the payload from. A source knows
 * its payload (virtual) size and fills chunks on request, from any worker
 * thread at once; holes and zero clusters come back as all_zero chunks or as
 * zeroed ranges, never read from disk. Raw files today; qcow2 and
 * compressed streams slot in behind the same two operations.
 */
#ifndef IMGDEV_IMGSRC_H
#define IMGDEV_IMGSRC_H

#include <stdbool.h>
#include <stdint.h>

#include "pipeline.h"

struct imgdev_ctx;
struct imgsrc;

struct imgsrc_ops {
	/* Fill c (c->off, c->len within the payload); thread-safe; 0 or chunk_error(). */
	int (*read_chunk)(struct imgsrc *src, struct chunk *c);
	void (*close)(struct imgsrc *src);
};

struct imgsrc {
	const struct imgsrc_ops *ops;
	const char *format;		/* "raw" */
	char *path;
	uint64_t size;			/* payload bytes */
	/* The image file's SHA-256 equals the payload's: hash it in the copy. */
	bool identity_is_payload;
	int fd;
};

/* Open an image, choosing the reader by content; 0 or -errno (message in ctx). */
int imgsrc_open(struct imgdev_ctx *ctx, const char *path, struct imgsrc **src);
void imgsrc_close(struct imgsrc *src);

#endif
