/*
 * nonzero-blocks FILE BLOCK [SHIFT]: how many BLOCK-byte blocks of a device
 * hold a non-zero byte when FILE's bytes lie SHIFT bytes into it, after a
 * header of SHIFT bytes (counted as non-zero): the least a thin pool of
 * BLOCK-byte blocks can hold of it (the kernel tests' measure of
 * allocation). One process, one pass: the guest starts processes slowly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int usage(void)
{
	fprintf(stderr, "usage: nonzero-blocks FILE BLOCK [SHIFT]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	unsigned long long block, shift = 0, count = 0, last = ~0ull, pos;
	FILE *f;
	size_t n;

	if (argc < 3 || argc > 4)
		return usage();
	block = strtoull(argv[2], NULL, 10);
	if (argc == 4)
		shift = strtoull(argv[3], NULL, 10);
	if (block == 0)
		return usage();
	f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	pos = shift;
	if (shift) {	/* the header's blocks */
		count = (shift - 1) / block + 1;
		last = (shift - 1) / block;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		for (size_t i = 0; i < n; i++) {
			if (buf[i] && (pos + i) / block != last) {
				last = (pos + i) / block;
				count++;
			}
		}
		pos += n;
	}
	if (ferror(f)) {
		perror(argv[1]);
		return 1;
	}
	fclose(f);
	printf("%llu\n", count);
	return 0;
}
