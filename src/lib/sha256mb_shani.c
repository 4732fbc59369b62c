/*
 * SHA-256 with the SHA extensions (SHA-NI), 2 or 4 messages interleaved,
 * built with -msha -msse4.1 and called only after sha256mb.c has checked
 * the CPU. One stream waits on each two-round instruction's latency; the
 * rounds of independent messages fill that wait. A message left over from
 * the groups is hashed alone, with the same instructions.
 */
#include <immintrin.h>
#include <stdint.h>

#include "sha256mb_common.h"
#include "sha256mb_impl.h"

#define MAX_WAYS 4

/*
 * One message's state as the SHA instructions hold it: words A, B, E, F in
 * one register and C, D, G, H in the other (highest lane first).
 */
struct stream {
	__m128i abef, cdgh;
};

/* Four big-endian words at p, the first in the lowest lane. */
static inline __m128i load_be(const uint8_t *p)
{
	const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);

	return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), swap);
}

/*
 * Words 4i..4i+3 of the schedule into m[i & 3], from the 16 before them
 * (m holds the last 16, four to a register).
 */
static inline __m128i schedule(const __m128i m[4], int i)
{
	__m128i w = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);

	w = _mm_add_epi32(w, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
	return _mm_sha256msg2_epu32(w, m[(i + 3) & 3]);
}

/* Four rounds of s with wk (words plus constants): two per instruction. */
static inline void rounds4(struct stream *s, __m128i wk)
{
	__m128i abef = _mm_sha256rnds2_epu32(s->cdgh, s->abef, wk);

	s->cdgh = s->abef;	/* C, D, G, H after two rounds: A, B, E, F before */
	s->abef = _mm_sha256rnds2_epu32(s->cdgh, abef, _mm_shuffle_epi32(wk, 0x0e));
	s->cdgh = abef;
}

/*
 * Compress nblocks 64-byte blocks of each of ways streams, at p[w]; the
 * loops are unrolled so that each step of every stream comes before the
 * next step of any, and ways is a constant in each caller.
 */
static inline __attribute__((always_inline)) void
compress(int ways, struct stream st[], const uint8_t *p[], size_t nblocks)
{
	for (size_t b = 0; b < nblocks; b++) {
		struct stream save[MAX_WAYS];
		__m128i m[MAX_WAYS][4];

#pragma GCC unroll 4
		for (int w = 0; w < ways; w++) {
			save[w] = st[w];
#pragma GCC unroll 4
			for (int i = 0; i < 4; i++)
				m[w][i] = load_be(p[w] + 16 * i);
			p[w] += 64;
		}
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) {
			__m128i k = _mm_load_si128((const __m128i *)&round_k[4 * i]);

#pragma GCC unroll 4
			for (int w = 0; w < ways; w++) {
				if (i >= 4)
					m[w][i & 3] = schedule(m[w], i);
				rounds4(&st[w], _mm_add_epi32(m[w][i & 3], k));
			}
		}
#pragma GCC unroll 4
		for (int w = 0; w < ways; w++) {
			st[w].abef = _mm_add_epi32(st[w].abef, save[w].abef);
			st[w].cdgh = _mm_add_epi32(st[w].cdgh, save[w].cdgh);
		}
	}
}

/* The digest of a finished stream: H0..H7, each big-endian. */
static void stream_digest(const struct stream *s, uint8_t digest[32])
{
	uint32_t abef[4], cdgh[4], h[8];

	_mm_storeu_si128((__m128i *)abef, s->abef);	/* F, E, B, A */
	_mm_storeu_si128((__m128i *)cdgh, s->cdgh);	/* H, G, D, C */
	h[0] = abef[3], h[1] = abef[2], h[2] = cdgh[3], h[3] = cdgh[2];
	h[4] = abef[1], h[5] = abef[0], h[6] = cdgh[1], h[7] = cdgh[0];
	for (int j = 0; j < 8; j++)
		for (int k = 0; k < 4; k++)
			digest[4 * j + k] = (uint8_t)(h[j] >> (24 - 8 * k));
}

/* Hash ways messages of len bytes together. */
static inline __attribute__((always_inline)) void
hash_group(int ways, const uint8_t *const msgs[], size_t len, uint8_t (*digests)[32])
{
	struct stream st[MAX_WAYS];
	const uint8_t *p[MAX_WAYS];
	uint8_t tail[MAX_WAYS][128];
	size_t ntail = 0;

	for (int w = 0; w < ways; w++) {
		st[w].abef = _mm_set_epi32((int)initial_h[0], (int)initial_h[1],
					   (int)initial_h[4], (int)initial_h[5]);
		st[w].cdgh = _mm_set_epi32((int)initial_h[2], (int)initial_h[3],
					   (int)initial_h[6], (int)initial_h[7]);
		p[w] = msgs[w];
	}
	compress(ways, st, p, len / 64);
	for (int w = 0; w < ways; w++) {
		ntail = sha256_tail(tail[w], msgs[w], len);
		p[w] = tail[w];
	}
	compress(ways, st, p, ntail);
	for (int w = 0; w < ways; w++)
		stream_digest(&st[w], digests[w]);
}

static void hash_1(const uint8_t *const msgs[], size_t len, uint8_t (*digests)[32])
{
	hash_group(1, msgs, len, digests);
}

static void hash_2(const uint8_t *const msgs[], size_t len, uint8_t (*digests)[32])
{
	hash_group(2, msgs, len, digests);
}

static void hash_4(const uint8_t *const msgs[], size_t len, uint8_t (*digests)[32])
{
	hash_group(4, msgs, len, digests);
}

void sha256mb_shani2(const uint8_t *const msgs[], size_t n, size_t len, uint8_t (*digests)[32])
{
	size_t i = 0;

	for (; i + 2 <= n; i += 2)
		hash_2(msgs + i, len, digests + i);
	if (i < n)
		hash_1(msgs + i, len, digests + i);
}

void sha256mb_shani4(const uint8_t *const msgs[], size_t n, size_t len, uint8_t (*digests)[32])
{
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		hash_4(msgs + i, len, digests + i);
	sha256mb_shani2(msgs + i, n - i, len, digests + i);
}
