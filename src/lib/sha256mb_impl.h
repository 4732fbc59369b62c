/*
 * The vector and SHA-NI implementations behind sha256mb.c, each in a file
 * of its own built for its instruction set. Call them only when
 * sha256mb_supported(). Each takes any count n of messages.
 */
#ifndef IMGDEV_SHA256MB_IMPL_H
#define IMGDEV_SHA256MB_IMPL_H

#include <stddef.h>
#include <stdint.h>

void sha256mb_avx2(const uint8_t *const msgs[], size_t n, size_t len, uint8_t (*digests)[32]);
void sha256mb_avx512(const uint8_t *const msgs[], size_t n, size_t len, uint8_t (*digests)[32]);
void sha256mb_shani2(const uint8_t *const msgs[], size_t n, size_t len, uint8_t (*digests)[32]);
void sha256mb_shani4(const uint8_t *const msgs[], size_t n, size_t len, uint8_t (*digests)[32]);

#endif
