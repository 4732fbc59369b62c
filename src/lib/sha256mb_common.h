/*
 * What the implementations that compress blocks themselves
 * (sha256mb_lanes.h, sha256mb_shani.c) share of SHA-256 (FIPS 180-4): the
 * round constants K, the initial hash value H(0) and the final padding.
 */
#ifndef IMGDEV_SHA256MB_COMMON_H
#define IMGDEV_SHA256MB_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const uint32_t round_k[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static const uint32_t initial_h[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/*
 * The message's last partial block, the 0x80 byte, zeros and the length in
 * bits (big-endian) make one or two final blocks, laid out in tail; returns
 * how many.
 */
static inline size_t sha256_tail(uint8_t tail[128], const uint8_t *p, size_t len)
{
	size_t rem = len % 64, nblocks = rem < 56 ? 1 : 2;
	uint64_t bits = (uint64_t)len * 8;

	memset(tail, 0, 128);
	memcpy(tail, p + (len - rem), rem);
	tail[rem] = 0x80;
	for (int j = 0; j < 8; j++)
		tail[nblocks * 64 - 1 - j] = (uint8_t)(bits >> (8 * j));
	return nblocks;
}

#endif
