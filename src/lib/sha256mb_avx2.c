/*
 * 8-lane SHA-256 for AVX2, built with -mavx2 and called only after
 * sha256mb.c has checked the CPU. Each lane's block is loaded whole and the
 * 8x8 words transposed in registers, so messages need not be evenly spaced.
 */
#include <immintrin.h>
#include <stdint.h>

#include "sha256mb_impl.h"

#define LANES 8
#define LANES_HASH_FN sha256mb_avx2
typedef uint32_t vec __attribute__((vector_size(32)));

/* Transpose 8x8 words in place: row i (lane i's words) becomes word i of every lane. */
static inline void transpose8(__m256i r[8])
{
	__m256i t[8];

	for (int i = 0; i < 8; i += 2) {
		t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
	}
	for (int i = 0; i < 8; i += 4) {	/* r[i + x]: half k holds word 4k + x */
		r[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
		r[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
		r[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
		r[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
	}
	for (int x = 0; x < 4; x++) {
		t[x] = _mm256_permute2x128_si256(r[x], r[4 + x], 0x20);
		t[4 + x] = _mm256_permute2x128_si256(r[x], r[4 + x], 0x31);
	}
	for (int i = 0; i < 8; i++)
		r[i] = t[i];
}

/* 16 big-endian words from each of the 8 addresses, as two 8x8 transposes. */
static inline void load_words(vec w[16], const uint64_t addr[LANES])
{
	const __m256i swap = _mm256_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
					     12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);

	for (int half = 0; half < 2; half++) {
		__m256i r[8];

		for (int i = 0; i < 8; i++)
			r[i] = _mm256_shuffle_epi8(
				_mm256_loadu_si256((const __m256i *)(uintptr_t)(addr[i] + 32 * half)),
				swap);
		transpose8(r);
		for (int i = 0; i < 8; i++)
			w[8 * half + i] = (vec)r[i];
	}
}

#include "sha256mb_lanes.h"
