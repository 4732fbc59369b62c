/*
 * The on-disk header codec: sector 0 of an image device. Pure functions, no
 * I/O. Layout (big-endian), byte-compatible with Virtlet's pkg/blockdev:
 *   0  u64 magic 0x263dbe52ba576702
 *   8  u16 metadata version: 1, Virtlet's layout (the payload at byte 512);
 *          2, the aligned layout (the payload at byte 1 MiB)
 *  10  u8[32] SHA-256 of the image
 * Bytes 64..511 may hold imgdev's commit record (Virtlet ignores them):
 *  64  u8[8]  "IMGDEVCR"        72 u16 record version (1)   74 u16 state
 *  76  u32 content block size   80 u64 data offset          88 u64 image size
 *  96  u8[32] content hash     128 u8[32] target image hash 160 u64 commit time
 * 168  u64 resume point (state writing: payload bytes durable there, 0 if none)
 * 480  u8[32] SHA-256 of bytes 64..479; everything else zero. docs/FORMAT.md
 * has the whole story.
 */
#ifndef IMGDEV_HEADER_H
#define IMGDEV_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imgdev.h"

#define HDR_MAGIC UINT64_C(0x263dbe52ba576702)
#define HDR_VERSION_VIRTLET 1	/* Virtlet's layout: the payload from byte 512 */
#define HDR_VERSION_ALIGNED 2	/* the payload from byte 1 MiB, aligned for any device */
#define HDR_VERSION_MAX HDR_VERSION_ALIGNED
#define ALIGNED_DATA_OFFSET (UINT64_C(1) << 20)
/* The first logical block an aligned header goes out with, on the stack up to this size. */
#define ALIGNED_HEAD_SIZE 4096
#define HDR_SIZE 42
#define SECTOR_SIZE IMGDEV_SECTOR_SIZE

#define REC_OFFSET 64
#define REC_MAGIC "IMGDEVCR"
#define REC_VERSION 1
#define REC_SUM_OFFSET 480
#define REC_STATE_WRITING 1
#define REC_STATE_COMPLETE 2
#define CONTENT_BLOCK_SIZE 65536

/* How the commit record area decoded. */
enum rec_status {
	REC_ABSENT,		/* no record magic: a Virtlet or `ensure` header */
	REC_VALID,		/* magic, known version, checksum good */
	REC_CORRUPT,		/* magic and known version, bad checksum or fields */
	REC_NEWER,		/* magic, but a version this build does not know */
};

struct commit_rec {
	uint16_t version;
	uint16_t state;
	uint32_t block_size;
	uint64_t data_offset;
	uint64_t image_size;
	uint8_t content_hash[IMGDEV_HASH_SIZE];
	uint8_t target_hash[IMGDEV_HASH_SIZE];
	uint64_t commit_time;
	/*
	 * State writing: the payload's first resume_at bytes are on the device
	 * and durable, a raw image being fetched from a URL whose digest is
	 * target_hash (ops_provision.c resumes there); 0 otherwise.
	 */
	uint64_t resume_at;
};

struct hdr {
	uint64_t magic;
	uint16_t version;
	uint8_t image_hash[IMGDEV_HASH_SIZE];
	enum rec_status rec_status;
	struct commit_rec rec;		/* meaningful when REC_VALID (or to encode) */
};

/*
 * Fill a whole sector: the header, then zeros, then (when rec_status is
 * REC_VALID) the commit record with its checksum.
 */
void hdr_encode(const struct hdr *h, uint8_t sector[SECTOR_SIZE]);
/* Decode a header (len >= HDR_SIZE) and, with a whole sector, the record. */
void hdr_decode(const uint8_t *buf, size_t len, struct hdr *h);
/* Whether the magic is ours. */
bool hdr_has_magic(const struct hdr *h);
/* Whether h is ours, of a known version, with a valid record in state (REC_STATE_*). */
bool hdr_record_is(const struct hdr *h, uint16_t state);
/* A fresh header of this version (HDR_VERSION_*) for an image hash. */
void hdr_init(struct hdr *h, uint16_t version, const uint8_t image_hash[IMGDEV_HASH_SIZE]);
/* A fresh version-1 header (Virtlet's layout) for an image hash. */
void hdr_init_v1(struct hdr *h, const uint8_t image_hash[IMGDEV_HASH_SIZE]);
/*
 * Whether the header (of a known version) names image_hash with a valid
 * record saying complete.
 */
bool hdr_is_complete(const struct hdr *h, const uint8_t image_hash[IMGDEV_HASH_SIZE]);

/*
 * Byte offset of the payload in a layout: 512 for version 1, 1 MiB for
 * version 2; 0 for a version this build does not know.
 */
uint64_t hdr_layout_offset(uint16_t version);
/* The payload's offset for this header (hdr_layout_offset of its version). */
uint64_t hdr_data_offset(const struct hdr *h);
/* Whether this build knows the header's version (1 or 2). */
bool hdr_version_known(const struct hdr *h);

/* Big-endian helpers shared by the codecs. */
uint64_t get_be64(const uint8_t *p);
uint32_t get_be32(const uint8_t *p);
uint16_t get_be16(const uint8_t *p);
void put_be64(uint8_t *p, uint64_t v);
void put_be32(uint8_t *p, uint32_t v);
void put_be16(uint8_t *p, uint16_t v);

#endif
