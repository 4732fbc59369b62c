/*
 * The on-disk header codec: sector 0 of an image device. Pure functions, no
 * I/O. Layout (big-endian), byte-compatible with Virtlet's pkg/blockdev:
 *   0  u64 magic 0x263dbe52ba576702
 *   8  u16 metadata version (1)
 *  10  u8[32] SHA-256 of the image
 * Bytes 42..511 are zero when imgdev writes the sector; see docs/FORMAT.md.
 */
#ifndef IMGDEV_HEADER_H
#define IMGDEV_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imgdev.h"

#define HDR_MAGIC UINT64_C(0x263dbe52ba576702)
#define HDR_VERSION 1
#define HDR_SIZE 42
#define SECTOR_SIZE IMGDEV_SECTOR_SIZE

struct hdr {
	uint64_t magic;
	uint16_t version;
	uint8_t image_hash[IMGDEV_HASH_SIZE];
};

/* Fill a whole sector: the header, then zeros. */
void hdr_encode(const struct hdr *h, uint8_t sector[SECTOR_SIZE]);
/* Decode the first HDR_SIZE bytes of buf (len >= HDR_SIZE). */
void hdr_decode(const uint8_t *buf, size_t len, struct hdr *h);
/* Whether the magic is ours. */
bool hdr_has_magic(const struct hdr *h);
/* A fresh version-1 header for an image hash. */
void hdr_init_v1(struct hdr *h, const uint8_t image_hash[IMGDEV_HASH_SIZE]);
/* Byte offset of the payload for this header's layout (512 for version 1). */
uint64_t hdr_data_offset(const struct hdr *h);

/* Big-endian helpers shared by the codecs. */
uint64_t get_be64(const uint8_t *p);
uint32_t get_be32(const uint8_t *p);
uint16_t get_be16(const uint8_t *p);
void put_be64(uint8_t *p, uint64_t v);
void put_be32(uint8_t *p, uint32_t v);
void put_be16(uint8_t *p, uint16_t v);

#endif
