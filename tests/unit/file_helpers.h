/*
 * Files the unit tests make and check: a temporary file standing for a
 * device, compared with what it must hold; small files put into a fake tree.
 * Static inline, so that a test takes only what it calls.
 */
#ifndef IMGDEV_TEST_FILE_HELPERS_H
#define IMGDEV_TEST_FILE_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blockdev.h"

/*
 * A new file from the template tmpl (its name ending in XXXXXX) holding size
 * bytes; unlinked at once, so that a test that aborts leaves no file behind.
 * path (path_size bytes) is left naming it as /proc/self/fd/N. Returns its
 * descriptor, open for reading and writing.
 */
static inline int tmpfile_of(char *path, size_t path_size, const char *tmpl, const void *bytes,
			     size_t size)
{
	int fd;

	assert_true((size_t)snprintf(path, path_size, "%s", tmpl) < path_size);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(unlink(path), 0);
	assert_true((size_t)snprintf(path, path_size, "/proc/self/fd/%d", fd) < path_size);
	assert_int_equal(bdev_pwrite_full(fd, bytes, size, 0), 0);
	return fd;
}

/* The file open at fd holds exactly the size bytes of want, from its start. */
static inline void assert_fd_holds(int fd, const void *want, size_t size)
{
	uint8_t *got = malloc(size);

	assert_non_null(got);
	assert_int_equal(pread(fd, got, size, 0), size);
	assert_memory_equal(got, want, size);
	free(got);
}

/* Write len bytes of data to the file dir/rel, replacing what it held. */
static inline void put_file(const char *dir, const char *rel, const void *data, size_t len)
{
	char path[512];
	FILE *fp;

	assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rel) < sizeof(path));
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* put_file of a string, without its NUL. */
static inline void put_text(const char *dir, const char *rel, const char *text)
{
	put_file(dir, rel, text, strlen(text));
}

#endif
