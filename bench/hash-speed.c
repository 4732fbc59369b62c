/*
 * bench/hash-speed: the content hash's block hashing, one core, per
 * implementation: MB/s of 64 KiB blocks through each multi-buffer SHA-256
 * this CPU runs (vector lanes, SHA-NI 2- and 4-way) and through OpenSSL,
 * median of RUNS passes over 64 MiB, the implementations in turn in each
 * round; first the CPU it ran on, last what imgdev's own calibration
 * (sha256mb_calibrate) measures and would choose.
 * Built as build/hash-speed; bench/provision prints its lines.
 */
#include <stdbool.h>
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

/* "cpu: <model name> (flags: sha_ni avx2 avx512f)", the ones it has, from /proc/cpuinfo. */
static void print_cpu(void)
{
	static const char *const wanted[] = { "sha_ni", "avx2", "avx512f" };
	char line[8192], model[256] = "unknown", flags[64] = "";
	FILE *f = fopen("/proc/cpuinfo", "r");
	bool have_flags = false;

	while (f && fgets(line, sizeof(line), f) && !have_flags) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		if (strncmp(line, "model name", 10) == 0 && strcmp(model, "unknown") == 0)
			snprintf(model, sizeof(model), "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
		if (strncmp(line, "flags", 5) != 0)
			continue;
		have_flags = true;
		strcat(colon, " ");
		for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
			char word[16];

			snprintf(word, sizeof(word), " %s ", wanted[i]);
			if (strstr(colon, word))
				snprintf(flags + strlen(flags), sizeof(flags) - strlen(flags), "%s%s",
					 flags[0] ? " " : "", wanted[i]);
		}
	}
	if (f)
		fclose(f);
	printf("cpu: %s (flags: %s)\n", model, flags[0] ? flags : "none of sha_ni avx2 avx512f");
}

/* What imgdev measures before it hashes (sha256mb_calibrate), and its pick. */
static int print_calibration(void)
{
	double mbps[SHA256MB_NIMPL], t0 = now();

	if (sha256mb_calibrate(mbps))
		return 1;
	printf("calibration: %s in %.1f ms (MB/s:", sha256mb_name(sha256mb_fastest(mbps)),
	       (now() - t0) * 1e3);
	for (int i = 0; i < SHA256MB_NIMPL; i++)
		if (mbps[i] > 0)
			printf(" %s %.0f", sha256mb_name((enum sha256mb_impl)i), mbps[i]);
	printf(")\n");
	return 0;
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
	double mbps[SHA256MB_NIMPL][RUNS];

	if (!data || !msgs || !digests)
		return 1;
	for (size_t i = 0; i < (size_t)NBLOCKS * BLOCK; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t i = 0; i < NBLOCKS; i++)
		msgs[i] = data + i * BLOCK;
	print_cpu();
	/* Passes in turn, as the calibration takes them: a busy moment slows one pass of each. */
	for (int r = 0; r < RUNS; r++)
		for (int impl = 0; impl < SHA256MB_NIMPL; impl++) {
			double t0 = now();

			if (!sha256mb_supported((enum sha256mb_impl)impl))
				continue;
			if (sha256mb_hash((enum sha256mb_impl)impl, msgs, NBLOCKS, BLOCK, digests))
				return 1;
			mbps[impl][r] = (double)NBLOCKS * BLOCK / 1e6 / (now() - t0);
		}
	for (int impl = 0; impl < SHA256MB_NIMPL; impl++) {
		if (!sha256mb_supported((enum sha256mb_impl)impl))
			continue;
		qsort(mbps[impl], RUNS, sizeof(double), cmp_double);
		printf("%-8s %6.0f MB/s per core (median of %d x 64 MiB, best %.0f)\n",
		       sha256mb_name((enum sha256mb_impl)impl), mbps[impl][RUNS / 2], RUNS,
		       mbps[impl][RUNS - 1]);
	}
	free(data);
	free(msgs);
	free(digests);
	return print_calibration();
}
