/*
 * Encoding and decoding of the sector-0 header (see header.h for the layout).
 * Kept free of I/O so it can be unit-tested and fuzzed on plain buffers.
 */
#include <string.h>

#include "header.h"

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

void hdr_encode(const struct hdr *h, uint8_t sector[SECTOR_SIZE])
{
	memset(sector, 0, SECTOR_SIZE);
	put_be64(sector, h->magic);
	put_be16(sector + 8, h->version);
	memcpy(sector + 10, h->image_hash, IMGDEV_HASH_SIZE);
}

void hdr_decode(const uint8_t *buf, size_t len, struct hdr *h)
{
	memset(h, 0, sizeof(*h));
	if (len < HDR_SIZE)
		return;
	h->magic = get_be64(buf);
	h->version = get_be16(buf + 8);
	memcpy(h->image_hash, buf + 10, IMGDEV_HASH_SIZE);
}

bool hdr_has_magic(const struct hdr *h)
{
	return h->magic == HDR_MAGIC;
}

void hdr_init_v1(struct hdr *h, const uint8_t image_hash[IMGDEV_HASH_SIZE])
{
	h->magic = HDR_MAGIC;
	h->version = HDR_VERSION;
	memcpy(h->image_hash, image_hash, IMGDEV_HASH_SIZE);
}

uint64_t hdr_data_offset(const struct hdr *h)
{
	(void)h;	/* every version so far keeps the payload at sector 1 */
	return SECTOR_SIZE;
}
