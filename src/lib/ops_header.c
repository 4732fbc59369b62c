/*
 * Public operations on the header alone: parse and format image hashes,
 * read what sector 0 holds, and `ensure` (Virtlet's EnsureDevHeaderMatches).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

#include "blockdev.h"
#include "header.h"
#include "internal.h"
#include "layout.h"
#include "ops.h"
#include "signatures.h"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int imgdev_parse_hash(struct imgdev_ctx *ctx, const char *text,
		      uint8_t hash[IMGDEV_HASH_SIZE])
{
	const char *colon = strchr(text, ':');
	const char *hex = text;
	size_t len;

	if (colon) {
		if ((size_t)(colon - text) != 6 || strncmp(text, "sha256", 6) != 0)
			return ctx_error(ctx, EINVAL,
					 "%s: unknown hash algorithm \"%.*s\" (only sha256 is supported)",
					 text, (int)(colon - text), text);
		hex = colon + 1;
	}
	len = strlen(hex);
	if (len != 2 * IMGDEV_HASH_SIZE)
		return ctx_error(ctx, EINVAL,
				 "%s: a sha256 hash is 64 hex digits, this has %zu characters",
				 text, len);
	for (size_t i = 0; i < len; i++)
		if (hex_value(hex[i]) < 0)
			return ctx_error(ctx, EINVAL, "%s: character %zu is not a hex digit",
					 text, (size_t)(hex - text) + i + 1);
	for (size_t i = 0; i < IMGDEV_HASH_SIZE; i++)
		hash[i] = (uint8_t)(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
	return 0;
}

void imgdev_format_hash(const uint8_t hash[IMGDEV_HASH_SIZE], char out[72])
{
	memcpy(out, "sha256:", 7);
	for (size_t i = 0; i < IMGDEV_HASH_SIZE; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", hash[i]);
}

static void header_to_public(const struct hdr *h, struct imgdev_header *out)
{
	memset(out, 0, sizeof(*out));
	out->present = hdr_has_magic(h);
	if (!out->present)
		return;
	out->version = h->version;
	memcpy(out->image_hash, h->image_hash, IMGDEV_HASH_SIZE);
	out->data_offset = hdr_data_offset(h);
	out->layout = layout_of_version(h->version);
	out->commit_version = h->rec.version;
	switch (h->rec_status) {
	case REC_ABSENT: out->commit_state = IMGDEV_COMMIT_NONE; return;
	case REC_CORRUPT: out->commit_state = IMGDEV_COMMIT_CORRUPT; return;
	case REC_NEWER: out->commit_state = IMGDEV_COMMIT_NEWER; return;
	case REC_VALID: break;
	}
	out->commit_state = h->rec.state == REC_STATE_COMPLETE ? IMGDEV_COMMIT_COMPLETE :
								  IMGDEV_COMMIT_WRITING;
	out->image_size = h->rec.image_size;
	memcpy(out->content_hash, h->rec.content_hash, IMGDEV_HASH_SIZE);
	memcpy(out->target_hash, h->rec.target_hash, IMGDEV_HASH_SIZE);
	out->commit_time = h->rec.commit_time;
	out->resume_at = h->rec.state == REC_STATE_WRITING ? h->rec.resume_at : 0;
}

int bdev_read_header(struct imgdev_ctx *ctx, const struct bdev *bd, struct hdr *h)
{
	uint8_t sector[SECTOR_SIZE];
	int rc = bdev_read_sector0(ctx, bd, sector);

	if (rc == 0)
		hdr_decode(sector, sizeof(sector), h);
	return rc;
}

int imgdev_header_read(struct imgdev_ctx *ctx, const char *device,
		       struct imgdev_header *header)
{
	struct bdev bd;
	struct hdr h;
	int rc = bdev_open(ctx, device, O_RDONLY, &bd);

	if (rc < 0)
		return rc;
	rc = bdev_read_header(ctx, &bd, &h);
	if (rc == 0)
		header_to_public(&h, header);
	bdev_close(&bd);
	return rc;
}

/* 0 when a header with our magic may be replaced, else -EPROTO and why. */
static int check_not_newer(struct imgdev_ctx *ctx, const char *path, const struct hdr *h)
{
	if (!hdr_version_known(h))
		return ctx_error(ctx, EPROTO,
				 "%s: header has metadata version %u, newer than this build understands (%d); refusing to overwrite it",
				 path, h->version, HDR_VERSION_MAX);
	if (h->rec_status == REC_NEWER)
		return ctx_error(ctx, EPROTO,
				 "%s: commit record has version %u, newer than this build understands (%d); refusing to overwrite it",
				 path, h->rec.version, REC_VERSION);
	return 0;
}

int bdev_lock(struct imgdev_ctx *ctx, const struct bdev *bd)
{
	while (flock(bd->fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return ctx_error(ctx, errno, "%s: cannot lock: %s", bd->path, strerror(errno));
	return 0;
}

int check_overwrite_allowed(struct imgdev_ctx *ctx, const struct bdev *bd, const struct hdr *h,
			    bool force)
{
	if (hdr_has_magic(h))
		return check_not_newer(ctx, bd->path, h);
	return force ? 0 : sig_refuse_foreign(ctx, bd);
}

/* Decide under the lock: IMGDEV_MATCHED, IMGDEV_WRITTEN (to do), or -errno. */
static int ensure_decide(struct imgdev_ctx *ctx, const struct bdev *probe,
			 const uint8_t hash[IMGDEV_HASH_SIZE], unsigned int flags)
{
	struct hdr h;
	int rc = bdev_read_header(ctx, probe, &h);

	if (rc < 0)
		return rc;
	if (hdr_has_magic(&h) && memcmp(h.image_hash, hash, IMGDEV_HASH_SIZE) == 0) {
		/*
		 * As Virtlet's EnsureDevHeaderMatches: a match of another
		 * version is an error. Its caller maps from sector 1, which
		 * is not where an aligned (version 2) payload starts.
		 */
		if (h.version == HDR_VERSION_ALIGNED)
			return ctx_error(ctx, EPROTO,
					 "%s: header names this image in the aligned layout (metadata version 2); ensure matches only Virtlet's layout (version 1), whose payload starts at byte 512",
					 probe->path);
		if (h.version != HDR_VERSION_VIRTLET)
			return ctx_error(ctx, EPROTO,
					 "%s: header has metadata version %u; ensure matches only version %d",
					 probe->path, h.version, HDR_VERSION_VIRTLET);
		return IMGDEV_MATCHED;
	}
	rc = check_overwrite_allowed(ctx, probe, &h, flags & IMGDEV_FORCE);
	if (rc == 0)
		rc = loopmap_check_not_mapped(ctx, probe);
	return rc < 0 ? rc : IMGDEV_WRITTEN;
}

int imgdev_ensure(struct imgdev_ctx *ctx, const char *device,
		  const uint8_t hash[IMGDEV_HASH_SIZE], unsigned int flags)
{
	struct bdev probe = BDEV_INIT, bd = BDEV_INIT;
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;
	int rc = bdev_open(ctx, device, O_RDONLY, &probe);

	if (rc == 0)
		rc = bdev_lock(ctx, &probe);
	if (rc == 0)
		rc = ensure_decide(ctx, &probe, hash, flags);
	if (rc != IMGDEV_WRITTEN)
		goto out;
	rc = bdev_open(ctx, device, O_RDWR | O_SYNC | O_EXCL, &bd);
	if (rc == 0)
		rc = bdev_check_same(ctx, &probe, &bd);
	if (rc < 0)
		goto out;
	hdr_init_v1(&h, hash);
	hdr_encode(&h, sector);
	rc = bdev_write_sector0(ctx, &bd, sector);
	if (rc == 0)
		rc = IMGDEV_WRITTEN;
out:
	bdev_close(&bd);
	bdev_close(&probe);
	return rc;
}
