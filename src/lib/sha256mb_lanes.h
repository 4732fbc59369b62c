/*
 * The SHA-256 compression (FIPS 180-4) written once over a vector of LANES
 * 32-bit words, one message per lane, and included by each ISA's file
 * (sha256mb_avx2.c, sha256mb_avx512.c). The includer defines LANES, the
 * vector type `vec`, load_words() (16 big-endian words of each lane's next
 * 64-byte block) and LANES_HASH_FN (the name of the hash function made).
 */
#include <string.h>

#include "sha256mb_common.h"

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BIG_SIGMA0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BIG_SIGMA1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SMALL_SIGMA0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SMALL_SIGMA1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CHOOSE(e, f, g) (((e) & (f)) ^ (~(e) & (g)))
#define MAJORITY(a, b, c) (((a) & (b)) ^ ((a) & (c)) ^ ((b) & (c)))

/* Run the 64 rounds over one block's words w and add into the state s. */
static inline void lanes_rounds(vec s[8], vec w[16])
{
	vec a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];

#pragma GCC unroll 64
	for (int t = 0; t < 64; t++) {
		if (t >= 16)
			w[t & 15] += SMALL_SIGMA1(w[(t - 2) & 15]) + w[(t - 7) & 15] +
				     SMALL_SIGMA0(w[(t - 15) & 15]);
		vec t1 = h + BIG_SIGMA1(e) + CHOOSE(e, f, g) + round_k[t] + w[t & 15];
		vec t2 = BIG_SIGMA0(a) + MAJORITY(a, b, c);

		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	s[0] += a, s[1] += b, s[2] += c, s[3] += d;
	s[4] += e, s[5] += f, s[6] += g, s[7] += h;
}

/* Compress nblocks 64-byte blocks of each lane, starting at addr[lane]. */
static void lanes_compress(vec s[8], uint64_t addr[LANES], size_t nblocks)
{
	for (size_t blk = 0; blk < nblocks; blk++) {
		vec w[16];

		load_words(w, addr);
		for (int i = 0; i < LANES; i++) {
			/* Each lane is its own stream: fetch ahead of it. */
			__builtin_prefetch((const void *)(uintptr_t)(addr[i] + 512), 0, 3);
			addr[i] += 64;
		}
		lanes_rounds(s, w);
	}
}

/* Each lane's final block or two (sha256_tail), laid out per lane in tail. */
static size_t lanes_tail(uint8_t tail[LANES][128], const uint8_t *const p[LANES], size_t len)
{
	size_t nblocks = 0;

	for (int i = 0; i < LANES; i++)
		nblocks = sha256_tail(tail[i], p[i], len);
	return nblocks;
}

/* Hash up to LANES messages (m of them; spare lanes repeat the first). */
static void lanes_hash_group(const uint8_t *const msgs[], size_t m, size_t len,
			     uint8_t (*digests)[32])
{
	const uint8_t *p[LANES];
	uint8_t tail[LANES][128] __attribute__((aligned(64)));
	uint64_t addr[LANES];
	uint32_t out[8][LANES] __attribute__((aligned(64)));
	vec s[8];

	for (int i = 0; i < LANES; i++) {
		p[i] = msgs[(size_t)i < m ? i : 0];
		addr[i] = (uintptr_t)p[i];
	}
	for (int j = 0; j < 8; j++)
		s[j] = (vec){ 0 } + initial_h[j];
	lanes_compress(s, addr, len / 64);
	size_t ntail = lanes_tail(tail, p, len);
	for (int i = 0; i < LANES; i++)
		addr[i] = (uintptr_t)tail[i];
	lanes_compress(s, addr, ntail);
	memcpy(out, s, sizeof(out));
	for (size_t i = 0; i < m; i++)
		for (int j = 0; j < 8; j++)
			for (int k = 0; k < 4; k++)
				digests[i][4 * j + k] = (uint8_t)(out[j][i] >> (24 - 8 * k));
}

void LANES_HASH_FN(const uint8_t *const msgs[], size_t n, size_t len, uint8_t (*digests)[32])
{
	for (size_t g = 0; g < n; g += LANES)
		lanes_hash_group(msgs + g, n - g < LANES ? n - g : LANES, len, digests + g);
}
