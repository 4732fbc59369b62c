/*
 * Checksum files (checksums.c): the SHA-256 a SHA256SUMS-style text gives
 * for one file name, GNU or BSD form.
 */
#ifndef IMGDEV_CHECKSUMS_H
#define IMGDEV_CHECKSUMS_H

#include <stddef.h>
#include <stdint.h>

#include "imgdev.h"

/*
 * The digest text[0..len) gives for name. 0; -ENOENT when no line names
 * it; -EINVAL when a line for it is malformed or two disagree; why says
 * which, in words.
 */
int checksums_find(const char *text, size_t len, const char *name, uint8_t digest[IMGDEV_HASH_SIZE],
		   char *why, size_t why_len);

#endif
