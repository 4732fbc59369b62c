/*
 * The identity hash (identity.h): one object for the three ways, so that
 * the commit protocol only asks for the hash when it commits. Also the
 * identity in a pass of its own: the payload read chunk by chunk, or the
 * file hashed as it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"
#include "identity.h"
#include "imgsrc.h"
#include "internal.h"
#include "pipeline.h"

/*
 * A stream's payload (md, fed by a thread of the pipeline's), checked
 * against digest when not NULL; 0 or -ENOMEM (in ctx).
 */
static int init_stream_payload(struct imgdev_ctx *ctx, struct identity *id, const uint8_t *digest)
{
	id->way = IDENTITY_PAYLOAD;
	id->md_thread = true;
	id->verify = digest != NULL;
	if (digest)
		memcpy(id->hash, digest, IMGDEV_HASH_SIZE);
	if (!(id->md = sha256_new()))
		return ctx_error(ctx, ENOMEM, "out of memory");
	return 0;
}

int identity_init(struct imgdev_ctx *ctx, struct identity *id, struct imgsrc *src,
		  const uint8_t *digest, struct bytesrc *received)
{
	memset(id, 0, sizeof(*id));
	id->src = src;
	if (received && src->identity_is_payload) {
		/* A plain stream: every byte received is the payload's, in order. */
		bytesrc_hash_stop(received);
		return init_stream_payload(ctx, id, digest);
	}
	if (received) {
		id->way = IDENTITY_RECEIVED;
		id->received = received;
		id->verify = digest != NULL;
		if (digest)
			memcpy(id->hash, digest, IMGDEV_HASH_SIZE);
		return 0;
	}
	if (digest) {
		id->way = IDENTITY_GIVEN;
		memcpy(id->hash, digest, IMGDEV_HASH_SIZE);
		return 0;
	}
	id->way = src->identity_is_payload ? IDENTITY_PAYLOAD : IDENTITY_FILE;
	if (id->way == IDENTITY_PAYLOAD && !(id->md = sha256_new()))
		return ctx_error(ctx, ENOMEM, "out of memory");
	return 0;
}

int identity_init_resumed(struct imgdev_ctx *ctx, struct identity *id, struct imgsrc *src,
			  const uint8_t digest[IMGDEV_HASH_SIZE])
{
	memset(id, 0, sizeof(*id));
	id->src = src;
	return init_stream_payload(ctx, id, digest);
}

bool identity_known_up_front(const struct identity *id)
{
	return id->way == IDENTITY_GIVEN || id->verify;
}

/*
 * 0 if got, the hash of size bytes (the first reread of them re-read from
 * the device, the rest received), is the digest; else -EILSEQ, with both in ctx.
 */
static int check_digest(struct imgdev_ctx *ctx, const char *name, const uint8_t *digest,
			const uint8_t *got, uint64_t size, uint64_t reread)
{
	char want_hex[72], got_hex[72], whence[96] = "";

	if (memcmp(got, digest, IMGDEV_HASH_SIZE) == 0)
		return 0;
	imgdev_format_hash(digest, want_hex);
	imgdev_format_hash(got, got_hex);
	if (reread)
		snprintf(whence, sizeof(whence), " after %llu bytes re-read from the device",
			 (unsigned long long)reread);
	return ctx_error(ctx, EILSEQ,
			 "%s: the image does not match its digest: expected %s, "
			 "received %llu bytes%s with %s; nothing was committed",
			 name, want_hex, (unsigned long long)(size - reread), whence, got_hex);
}

int identity_check_received(struct imgdev_ctx *ctx, struct bytesrc *received, const char *name,
			    const uint8_t *digest, uint8_t hash[IMGDEV_HASH_SIZE])
{
	uint64_t size;
	int rc = bytesrc_hash_finish(ctx, received, hash, &size);

	if (rc < 0 || !digest)
		return rc;
	return check_digest(ctx, name, digest, hash, size, 0);
}

int identity_finish_received(struct imgdev_ctx *ctx, struct identity *id)
{
	uint8_t got[IMGDEV_HASH_SIZE];
	int rc;

	if (id->way != IDENTITY_RECEIVED)
		return 0;
	rc = identity_check_received(ctx, id->received, id->src->name, id->verify ? id->hash : NULL,
				     got);
	if (rc == 0)
		memcpy(id->hash, got, IMGDEV_HASH_SIZE);
	return rc;
}

static void *file_hash_thread(void *arg)
{
	struct identity *id = arg;

	id->thread_rc = imgsrc_hash_file(id->thread_ctx, id->src, id->hash);
	return NULL;
}

int identity_start(struct imgdev_ctx *ctx, struct identity *id)
{
	int rc;

	if (id->way != IDENTITY_FILE)
		return 0;
	if (imgdev_ctx_new(&id->thread_ctx) < 0)
		return ctx_error(ctx, ENOMEM, "out of memory");
	rc = pthread_create(&id->thread, NULL, file_hash_thread, id);
	if (rc)
		return ctx_error(ctx, rc, "cannot start the hashing thread: %s", strerror(rc));
	id->started = true;
	return 0;
}

int identity_finish(struct imgdev_ctx *ctx, struct identity *id)
{
	int rc = 0;

	if (id->started) {
		pthread_join(id->thread, NULL);
		id->started = false;
		if (id->thread_rc < 0)
			rc = ctx_error(ctx, id->thread_rc, "%s", imgdev_ctx_last_error(id->thread_ctx));
	}
	if (id->way == IDENTITY_PAYLOAD && !id->verify)
		sha256_final(id->md, id->hash);
	return rc;
}

int identity_finish_checked(struct imgdev_ctx *ctx, struct identity *id, uint64_t size,
			    uint64_t reread)
{
	uint8_t got[IMGDEV_HASH_SIZE];

	if (id->way != IDENTITY_PAYLOAD || !id->verify)
		return 0;
	sha256_final(id->md, got);
	return check_digest(ctx, id->src->name, id->hash, got, size, reread);
}

void identity_free(struct identity *id)
{
	if (id->started)
		pthread_join(id->thread, NULL);
	imgdev_ctx_free(id->thread_ctx);
	sha256_free(id->md);
	memset(id, 0, sizeof(*id));
}

/* SHA-256 of the whole payload, in one sequential pass (no writes). */
static int payload_sha256(struct imgdev_ctx *ctx, struct imgsrc *src, uint8_t hash[IMGDEV_HASH_SIZE])
{
	struct sha256 *md = sha256_new();
	struct chunk *c = calloc(1, sizeof(*c));
	int rc = 0;

	if (!md || !c || posix_memalign((void **)&c->buf, BUF_ALIGN, CHUNK_SIZE + CHUNK_PAD)) {
		rc = ctx_error(ctx, ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t off = 0; off < src->size && rc == 0; off += CHUNK_SIZE) {
		chunk_reset(c, off,
			    src->size - off < CHUNK_SIZE ? (uint32_t)(src->size - off) : CHUNK_SIZE);
		rc = imgsrc_read_chunk(src, c);
		if (rc < 0)
			rc = ctx_error(ctx, rc, "%s", c->msg);
		else
			chunk_digest_update(md, c);
		imgsrc_release_chunk(src, c);
	}
	if (rc == 0)
		sha256_final(md, hash);
out:
	if (c) {
		chunk_unmap(c);
		free(c->buf);
	}
	free(c);
	sha256_free(md);
	return rc;
}

int identity_compute(struct imgdev_ctx *ctx, struct imgsrc *src, uint8_t hash[IMGDEV_HASH_SIZE])
{
	if (src->identity_is_payload)
		return payload_sha256(ctx, src, hash);
	return imgsrc_hash_file(ctx, src, hash);
}
