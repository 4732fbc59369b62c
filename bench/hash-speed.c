/*
 * bench/hash-speed: the content hash's block hashing, one core, per
 * implementation: MB/s of 64 KiB blocks through each multi-buffer SHA-256
 * this CPU runs and through OpenSSL, median of RUNS passes over 64 MiB.
 * Built as build/hash-speed; bench/provision prints its line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sha256mb.h"

#define BLOCK 65536
#define NBLOCKS 1024
#define RUNS 7

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	uint8_t *data = malloc((size_t)NBLOCKS * BLOCK);
	const uint8_t **msgs = malloc(NBLOCKS * sizeof(*msgs));
	uint8_t(*digests)[SHA256MB_DIGEST] = malloc(NBLOCKS * SHA256MB_DIGEST);

	if (!data || !msgs || !digests)
		return 1;
	for (size_t i = 0; i < (size_t)NBLOCKS * BLOCK; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t i = 0; i < NBLOCKS; i++)
		msgs[i] = data + i * BLOCK;
	for (int impl = 0; impl < SHA256MB_NIMPL; impl++) {
		double mbps[RUNS];

		if (!sha256mb_supported((enum sha256mb_impl)impl))
			continue;
		for (int r = 0; r < RUNS; r++) {
			double t0 = now();

			if (sha256mb_hash((enum sha256mb_impl)impl, msgs, NBLOCKS, BLOCK, digests))
				return 1;
			mbps[r] = (double)NBLOCKS * BLOCK / 1e6 / (now() - t0);
		}
		qsort(mbps, RUNS, sizeof(double), cmp_double);
		printf("%-8s %6.0f MB/s per core (median of %d x 64 MiB)\n",
		       sha256mb_name((enum sha256mb_impl)impl), mbps[RUNS / 2], RUNS);
	}
	free(data);
	free(msgs);
	free(digests);
	return 0;
}
