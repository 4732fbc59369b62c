/*
 * Encoding and decoding of the sector-0 header (see header.h for the layout).
 * Kept free of I/O so it can be unit-tested and fuzzed on plain buffers.
 */
#include <string.h>

#include "header.h"
#include "sha256.h"

uint64_t get_be64(const uint8_t *p)
{
	return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* SHA-256 of the record's covered bytes, the record's checksum. */
static void rec_checksum(const uint8_t sector[SECTOR_SIZE], uint8_t sum[IMGDEV_HASH_SIZE])
{
	/* Out of memory leaves zeros, which no record's checksum is. */
	if (sha256_digest(sector + REC_OFFSET, REC_SUM_OFFSET - REC_OFFSET, sum) < 0)
		memset(sum, 0, IMGDEV_HASH_SIZE);
}

static void rec_encode(const struct commit_rec *r, uint8_t sector[SECTOR_SIZE])
{
	uint8_t *p = sector + REC_OFFSET;

	memcpy(p, REC_MAGIC, 8);
	put_be16(p + 8, REC_VERSION);
	put_be16(p + 10, r->state);
	put_be32(p + 12, r->block_size);
	put_be64(p + 16, r->data_offset);
	put_be64(p + 24, r->image_size);
	memcpy(p + 32, r->content_hash, IMGDEV_HASH_SIZE);
	memcpy(p + 64, r->target_hash, IMGDEV_HASH_SIZE);
	put_be64(p + 96, r->commit_time);
	put_be64(p + 104, r->resume_at);
	rec_checksum(sector, sector + REC_SUM_OFFSET);
}

/*
 * The layout is the header's version: the record repeats its offset. Under
 * a version this build does not know, any whole number of sectors.
 */
static bool rec_offset_fits(const struct commit_rec *r, uint16_t version)
{
	uint64_t want = hdr_layout_offset(version);

	if (want)
		return r->data_offset == want;
	return r->data_offset >= SECTOR_SIZE && r->data_offset % SECTOR_SIZE == 0;
}

static enum rec_status rec_decode(const uint8_t sector[SECTOR_SIZE], struct commit_rec *r)
{
	const uint8_t *p = sector + REC_OFFSET;
	uint8_t sum[IMGDEV_HASH_SIZE];

	if (memcmp(p, REC_MAGIC, 8) != 0)
		return REC_ABSENT;
	r->version = get_be16(p + 8);
	if (r->version > REC_VERSION)
		return REC_NEWER;
	rec_checksum(sector, sum);
	if (r->version != REC_VERSION || memcmp(sum, sector + REC_SUM_OFFSET, sizeof(sum)) != 0)
		return REC_CORRUPT;
	r->state = get_be16(p + 10);
	r->block_size = get_be32(p + 12);
	r->data_offset = get_be64(p + 16);
	r->image_size = get_be64(p + 24);
	memcpy(r->content_hash, p + 32, IMGDEV_HASH_SIZE);
	memcpy(r->target_hash, p + 64, IMGDEV_HASH_SIZE);
	r->commit_time = get_be64(p + 96);
	r->resume_at = get_be64(p + 104);
	if ((r->state != REC_STATE_WRITING && r->state != REC_STATE_COMPLETE) ||
	    r->block_size != CONTENT_BLOCK_SIZE || !rec_offset_fits(r, get_be16(sector + 8)))
		return REC_CORRUPT;
	return REC_VALID;
}

void hdr_encode(const struct hdr *h, uint8_t sector[SECTOR_SIZE])
{
	memset(sector, 0, SECTOR_SIZE);
	put_be64(sector, h->magic);
	put_be16(sector + 8, h->version);
	memcpy(sector + 10, h->image_hash, IMGDEV_HASH_SIZE);
	if (h->rec_status == REC_VALID)
		rec_encode(&h->rec, sector);
}

void hdr_decode(const uint8_t *buf, size_t len, struct hdr *h)
{
	memset(h, 0, sizeof(*h));
	if (len < HDR_SIZE)
		return;
	h->magic = get_be64(buf);
	h->version = get_be16(buf + 8);
	memcpy(h->image_hash, buf + 10, IMGDEV_HASH_SIZE);
	if (len >= SECTOR_SIZE && hdr_has_magic(h))
		h->rec_status = rec_decode(buf, &h->rec);
	if (h->rec_status != REC_VALID) {
		uint16_t version = h->rec.version;	/* kept to name a newer one */

		memset(&h->rec, 0, sizeof(h->rec));
		h->rec.version = version;
	}
}

bool hdr_is_complete(const struct hdr *h, const uint8_t image_hash[IMGDEV_HASH_SIZE])
{
	return hdr_has_magic(h) && hdr_version_known(h) && h->rec_status == REC_VALID &&
	       h->rec.state == REC_STATE_COMPLETE &&
	       memcmp(h->image_hash, image_hash, IMGDEV_HASH_SIZE) == 0 &&
	       memcmp(h->rec.target_hash, image_hash, IMGDEV_HASH_SIZE) == 0;
}

bool hdr_has_magic(const struct hdr *h)
{
	return h->magic == HDR_MAGIC;
}

bool hdr_record_is(const struct hdr *h, uint16_t state)
{
	return hdr_has_magic(h) && hdr_version_known(h) && h->rec_status == REC_VALID &&
	       h->rec.state == state;
}

void hdr_init(struct hdr *h, uint16_t version, const uint8_t image_hash[IMGDEV_HASH_SIZE])
{
	memset(h, 0, sizeof(*h));
	h->magic = HDR_MAGIC;
	h->version = version;
	memcpy(h->image_hash, image_hash, IMGDEV_HASH_SIZE);
}

void hdr_init_v1(struct hdr *h, const uint8_t image_hash[IMGDEV_HASH_SIZE])
{
	hdr_init(h, HDR_VERSION_VIRTLET, image_hash);
}

uint64_t hdr_layout_offset(uint16_t version)
{
	switch (version) {
	case HDR_VERSION_VIRTLET: return SECTOR_SIZE;
	case HDR_VERSION_ALIGNED: return ALIGNED_DATA_OFFSET;
	}
	return 0;
}

uint64_t hdr_data_offset(const struct hdr *h)
{
	return hdr_layout_offset(h->version);
}

bool hdr_version_known(const struct hdr *h)
{
	return hdr_layout_offset(h->version) != 0;
}
