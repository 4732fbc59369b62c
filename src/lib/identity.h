/*
 * The image's identity hash, the one sector 0 names, whichever way it is
 * had: given by the caller (a digest), computed from the payload as the
 * pipeline copies it (formats whose file is the payload: raw), or from the
 * image file by a thread beside the copy (qcow2, compressed streams). Also
 * computed in a pass of its own, to learn whether a device already holds
 * the image.
 */
#ifndef IMGDEV_IDENTITY_H
#define IMGDEV_IDENTITY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "imgdev.h"
#include "sha256.h"

struct imgsrc;

enum identity_way {
	IDENTITY_GIVEN,		/* the caller's digest */
	IDENTITY_PAYLOAD,	/* the payload's bytes, in order (md, fed by the pipeline) */
	IDENTITY_FILE,		/* the image file's, by a thread of its own */
};

struct identity {
	enum identity_way way;
	uint8_t hash[IMGDEV_HASH_SIZE];	/* given, or once identity_finish succeeded */
	struct sha256 *md;		/* IDENTITY_PAYLOAD: the pipeline's job.identity */
	/* IDENTITY_FILE: the hashing thread. */
	struct imgsrc *src;
	pthread_t thread;
	bool started;
	struct imgdev_ctx *thread_ctx;	/* its own, for its error message */
	int thread_rc;
};

/*
 * Choose the way for src: the digest when not NULL, else by the format.
 * 0 or -ENOMEM (message in ctx); free with identity_free() in both cases.
 */
int identity_init(struct imgdev_ctx *ctx, struct identity *id, struct imgsrc *src,
		  const uint8_t *digest);
/* IDENTITY_FILE: start hashing the file beside the copy; else nothing. 0 or -errno. */
int identity_start(struct imgdev_ctx *ctx, struct identity *id);
/*
 * After the copy (also a failed one: the thread is joined): the hash in
 * id->hash. 0, or the hashing thread's error (its message copied into ctx).
 */
int identity_finish(struct imgdev_ctx *ctx, struct identity *id);
void identity_free(struct identity *id);

/* The identity hash of src in a pass of its own (no copy); 0 or -errno. */
int identity_compute(struct imgdev_ctx *ctx, struct imgsrc *src, uint8_t hash[IMGDEV_HASH_SIZE]);

#endif
