/*
 * 16-lane SHA-256 for AVX-512 (F and BW), built with -mavx512f -mavx512bw
 * and called only after sha256mb.c has checked the CPU. Each lane's block
 * is loaded whole and the 16x16 words transposed in registers (gathers
 * measured half as fast), so messages need not be evenly spaced.
 */
#include <immintrin.h>
#include <stdint.h>

#include "sha256mb_impl.h"

#define LANES 16
#define LANES_HASH_FN sha256mb_avx512
typedef uint32_t vec __attribute__((vector_size(64)));

/*
 * 16 big-endian words from each of the 16 addresses: rows are lanes, and
 * four rounds of shuffles turn them into columns (w[t] = word t of every
 * lane): pairs of 32-bit words, pairs of 64-bit words, then 128-bit quarters.
 */
static inline void load_words(vec w[16], const uint64_t addr[LANES])
{
	const __m512i swap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
	__m512i r[16], t[16];

	for (int i = 0; i < 16; i++)
		r[i] = _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(uintptr_t)addr[i]), swap);
	for (int i = 0; i < 16; i += 2) {
		t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
	}
	for (int i = 0; i < 16; i += 4) {	/* r[i + x]: quarter k holds word 4k + x */
		r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
		r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
		r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
		r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
	}
	for (int x = 0; x < 4; x++) {
		__m512i v0 = _mm512_shuffle_i32x4(r[x], r[4 + x], 0x44);
		__m512i v1 = _mm512_shuffle_i32x4(r[x], r[4 + x], 0xee);
		__m512i v2 = _mm512_shuffle_i32x4(r[8 + x], r[12 + x], 0x44);
		__m512i v3 = _mm512_shuffle_i32x4(r[8 + x], r[12 + x], 0xee);

		w[x] = (vec)_mm512_shuffle_i32x4(v0, v2, 0x88);
		w[4 + x] = (vec)_mm512_shuffle_i32x4(v0, v2, 0xdd);
		w[8 + x] = (vec)_mm512_shuffle_i32x4(v1, v3, 0x88);
		w[12 + x] = (vec)_mm512_shuffle_i32x4(v1, v3, 0xdd);
	}
}

#include "sha256mb_lanes.h"
