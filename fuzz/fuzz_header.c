/*
 * libFuzzer target for the sector-0 codec: any bytes decode without a crash;
 * a decoded valid record re-encodes to a sector that decodes to the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * With a 513th byte whose low bit is set, give the record a correct
 * checksum first, so the fuzzer also explores the fields of records that
 * pass it (it cannot find SHA-256 collisions by itself).
 */
static void fix_checksum(uint8_t *sector)
{
	unsigned int len = 0;

	EVP_Digest(sector + REC_OFFSET, REC_SUM_OFFSET - REC_OFFSET, sector + REC_SUM_OFFSET, &len,
		   EVP_sha256(), NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sector[SECTOR_SIZE], input[SECTOR_SIZE];
	struct hdr h, again;

	if (size > SECTOR_SIZE && (data[SECTOR_SIZE] & 1)) {
		memcpy(input, data, SECTOR_SIZE);
		fix_checksum(input);
		data = input;
		size = SECTOR_SIZE;
	}
	hdr_decode(data, size, &h);
	if (h.rec_status != REC_VALID)
		return 0;
	hdr_encode(&h, sector);
	hdr_decode(sector, sizeof(sector), &again);
	if (again.rec_status != REC_VALID || memcmp(&again.rec, &h.rec, sizeof(h.rec)) != 0 ||
	    memcmp(again.image_hash, h.image_hash, sizeof(h.image_hash)) != 0)
		abort();
	(void)hdr_is_complete(&h, h.image_hash);
	(void)hdr_data_offset(&h);
	return 0;
}
