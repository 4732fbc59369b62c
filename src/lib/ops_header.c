/*
 * Public operations on the header alone: parse and format image hashes,
 * read what sector 0 holds, and `ensure` (Virtlet's EnsureDevHeaderMatches).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "blockdev.h"
#include "header.h"
#include "internal.h"

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
}

int imgdev_header_read(struct imgdev_ctx *ctx, const char *device,
		       struct imgdev_header *header)
{
	struct bdev bd;
	uint8_t sector[SECTOR_SIZE];
	struct hdr h;
	int rc = bdev_open(ctx, device, O_RDONLY, &bd);

	if (rc < 0)
		return rc;
	rc = bdev_read_sector0(ctx, &bd, sector);
	if (rc == 0) {
		hdr_decode(sector, sizeof(sector), &h);
		header_to_public(&h, header);
	}
	bdev_close(&bd);
	return rc;
}

int imgdev_ensure(struct imgdev_ctx *ctx, const char *device,
		  const uint8_t hash[IMGDEV_HASH_SIZE])
{
	uint8_t sector[SECTOR_SIZE];
	struct bdev bd;
	struct hdr h;
	int rc = bdev_open(ctx, device, O_RDWR | O_SYNC, &bd);

	if (rc < 0)
		return rc;
	rc = bdev_read_sector0(ctx, &bd, sector);
	if (rc < 0)
		goto out;
	hdr_decode(sector, sizeof(sector), &h);
	if (hdr_has_magic(&h) && memcmp(h.image_hash, hash, IMGDEV_HASH_SIZE) == 0) {
		if (h.version != HDR_VERSION)
			rc = ctx_error(ctx, EPROTO,
				       "%s: header has metadata version %u; this build understands version %d",
				       bd.path, h.version, HDR_VERSION);
		else
			rc = IMGDEV_MATCHED;
		goto out;
	}
	hdr_init_v1(&h, hash);
	hdr_encode(&h, sector);
	rc = bdev_write_sector0(ctx, &bd, sector);
	if (rc == 0)
		rc = IMGDEV_WRITTEN;
out:
	bdev_close(&bd);
	return rc;
}
