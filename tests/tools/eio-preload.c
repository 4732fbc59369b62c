/*
 * A fault injector for the tests (not product code): an LD_PRELOAD library
 * whose pread() and pread64() fail with EIO on one file, in one range, so
 * that a test can show what imgdev does when a device cannot be read back.
 * EIO_FILE names the file (as realpath gives it: a device node or a regular
 * file); reads of it that start in [EIO_FROM, EIO_TO) fail (EIO_FROM
 * defaults to 512, so that sector 0 still reads; EIO_TO to no end). Every
 * other read goes to the C library's.
 */
/* Both symbols are defined here, so neither may be renamed to the other. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef ssize_t (*pread_fn)(int, void *, size_t, off64_t);

/* A number from the environment, or fallback. */
static uint64_t env_u64(const char *name, uint64_t fallback)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : fallback;
}

/* Whether a read of fd at off is one to fail. */
static int should_fail(int fd, off64_t off)
{
	const char *want = getenv("EIO_FILE");
	char link[64], path[PATH_MAX], real[PATH_MAX];
	ssize_t n;

	if (!want || off < 0 || (uint64_t)off < env_u64("EIO_FROM", 512) ||
	    (uint64_t)off >= env_u64("EIO_TO", UINT64_MAX))
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	return realpath(want, real) && strcmp(path, real) == 0;
}

static ssize_t faulty(const char *sym, int fd, void *buf, size_t len, off64_t off)
{
	pread_fn real = (pread_fn)(uintptr_t)dlsym(RTLD_NEXT, sym);

	if (should_fail(fd, off)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, len, off);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	return faulty("pread", fd, buf, len, off);
}

ssize_t pread64(int fd, void *buf, size_t len, off64_t off)
{
	return faulty("pread64", fd, buf, len, off);
}
