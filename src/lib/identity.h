/*
 * The image's identity hash, the one sector 0 names, whichever way it is
 * had: given by the caller (a digest), computed from the payload as the
 * pipeline copies it (formats whose file is the payload: raw), from the
 * image file by a thread beside the copy (qcow2, compressed streams), or
 * from the bytes received (a URL, standard input: bytesrc_hash_wrap; of a
 * plain stream, those are the payload, hashed by the copy on a thread of
 * its own), which a digest, when given, must then equal. Also
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

struct bytesrc;
struct imgsrc;

enum identity_way {
	IDENTITY_GIVEN,    /* the caller's digest */
	IDENTITY_PAYLOAD,  /* the payload's bytes, in order (md, fed by the pipeline);
			      checked against a digest when given (a stream's, or resumed) */
	IDENTITY_FILE,     /* the image file's, by a thread of its own */
	IDENTITY_RECEIVED, /* the bytes received, hashed as they came; checked against a digest */
};

struct identity {
	enum identity_way way;
	uint8_t hash[IMGDEV_HASH_SIZE];	/* given, or once identity_finish succeeded */
	struct sha256 *md;		/* IDENTITY_PAYLOAD: the pipeline's job.identity */
	bool md_thread;                 /* md fed by a thread of its own (job.identity_thread) */
	/* IDENTITY_FILE: the hashing thread. */
	struct imgsrc *src;
	pthread_t thread;
	bool started;
	struct imgdev_ctx *thread_ctx;	/* its own, for its error message */
	int thread_rc;
	/* IDENTITY_RECEIVED: the hashing source. */
	struct bytesrc *received;
	/* IDENTITY_RECEIVED, or IDENTITY_PAYLOAD of a stream: hash is the digest to check. */
	bool verify;
};

/*
 * Choose the way for src: the bytes received when received is not NULL
 * (then checked against digest, if any; of a plain stream, the payload's
 * bytes, and received stops hashing); else the digest when not NULL;
 * else by the format. 0 or -ENOMEM (message in ctx); free with
 * identity_free() in both cases.
 */
int identity_init(struct imgdev_ctx *ctx, struct identity *id, struct imgsrc *src,
		  const uint8_t *digest, struct bytesrc *received);
/*
 * A copy resumed from a device that holds the first bytes already: the
 * payload's bytes in order (those re-read from the device, then those
 * received), which must hash to digest, a raw image's (IDENTITY_PAYLOAD,
 * checked). 0 or -ENOMEM (in ctx).
 */
int identity_init_resumed(struct imgdev_ctx *ctx, struct identity *id, struct imgsrc *src,
			  const uint8_t digest[IMGDEV_HASH_SIZE]);
/* Whether id->hash names the image before the copy (a digest given). */
bool identity_known_up_front(const struct identity *id);
/* IDENTITY_FILE: start hashing the file beside the copy; else nothing. 0 or -errno. */
int identity_start(struct imgdev_ctx *ctx, struct identity *id);
/*
 * After the copy (also a failed one: the thread is joined): the hash in
 * id->hash. 0, or the hashing thread's error (its message copied into ctx).
 */
int identity_finish(struct imgdev_ctx *ctx, struct identity *id);
/*
 * IDENTITY_RECEIVED, after a copy that succeeded: the rest of the source
 * read (what the format did not need), the hash of all of it in id->hash.
 * 0, -EILSEQ when it is not the digest given, or -errno; else nothing.
 */
int identity_finish_received(struct imgdev_ctx *ctx, struct identity *id);
/*
 * IDENTITY_PAYLOAD with a digest to check (a stream's, or a resumed copy's),
 * after it succeeded with size payload bytes, the first reread of them
 * re-read from the device (0 for a stream's): 0, or -EILSEQ when they are
 * not the digest's; else nothing.
 */
int identity_finish_checked(struct imgdev_ctx *ctx, struct identity *id, uint64_t size,
			    uint64_t reread);
/*
 * The hash of all the bytes received (bytesrc_hash_finish) into hash; with
 * digest not NULL, -EILSEQ unless it is that. 0 or -errno in ctx.
 */
int identity_check_received(struct imgdev_ctx *ctx, struct bytesrc *received, const char *name,
			    const uint8_t *digest, uint8_t hash[IMGDEV_HASH_SIZE]);
void identity_free(struct identity *id);

/* The identity hash of src in a pass of its own (no copy); 0 or -errno. */
int identity_compute(struct imgdev_ctx *ctx, struct imgsrc *src, uint8_t hash[IMGDEV_HASH_SIZE]);

#endif
