/*
 * Chunks whose bytes are mapped from the image file instead of read into
 * the chunk's buffer: the hashing and the O_DIRECT write then take the page
 * cache's pages where they are, and the copy into the buffer (as much CPU as
 * the hashing on a raw image) is gone. A mapped chunk is a window of
 * CHUNK_SIZE bytes that reads as zeros (private anonymous memory: the
 * shared zero page, nothing allocated), with the file's data ranges placed
 * over it; holes are simply not placed, so they are never faulted in (on
 * tmpfs that would allocate them in the image). Each range is faulted in
 * with MADV_POPULATE_READ, which reports a failed read or a range past the
 * end of the file as an error rather than as SIGBUS; only a truncation or a
 * read failure after that, while the chunk is in flight, raises SIGBUS.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pipeline.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22	/* Linux 5.14 */
#endif

static size_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

bool chunk_map_aligned(uint64_t v)
{
	return v % page_size() == 0;
}

int chunk_map_begin(struct chunk *c)
{
	void *p;

	if (c->len != CHUNK_SIZE || !chunk_map_aligned(c->off))
		return -EINVAL;
	p = mmap(NULL, CHUNK_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	c->data = p;
	return 0;
}

int chunk_map_file(struct chunk *c, uint32_t at, uint32_t len, int fd, uint64_t file_off)
{
	uint8_t *where = (uint8_t *)c->data + at;

	if (c->data == c->buf || (uint64_t)at + len > c->len || !chunk_map_aligned(at) ||
	    !chunk_map_aligned(len) || !chunk_map_aligned(file_off))
		return -EINVAL;
	if (mmap(where, len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, (off_t)file_off) == MAP_FAILED)
		return -errno;
	return madvise(where, len, MADV_POPULATE_READ) < 0 ? -errno : 0;
}

void chunk_unmap(struct chunk *c)
{
	if (c->data && c->data != c->buf)
		munmap((void *)c->data, CHUNK_SIZE);
	c->data = c->buf;
}
