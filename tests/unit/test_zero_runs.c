/*
 * Unit tests of zero_runs.c on a plain file filled with 0xAA bytes: held
 * runs are zeroed exactly (nothing more, nothing less) once flushed, a
 * flush with nothing held does nothing, touching runs are sent as one
 * request, the bound on held runs issues them early, a failed zeroing names
 * its offset, adds from several threads at once, and a zeroing function of
 * the caller's (discard and check) given the merged runs instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include "file_helpers.h"
#include "zero_runs.h"

#define FILE_SIZE (2 * 1024 * 1024)
#define FILL 0xaa

struct fixture {
	char path[64];
	struct bdev bd;
	uint8_t want[FILE_SIZE];	/* what the file must hold after the flush */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	memset(f->want, FILL, FILE_SIZE);
	f->bd.fd =
		tmpfile_of(f->path, sizeof(f->path), "/var/tmp/imgdev-zr.XXXXXX", f->want, FILE_SIZE);
	f->bd.path = f->path;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->bd.fd);
	free(f);
	return 0;
}

/* Hold [off, off+len) and expect it zeroed after the flush. */
static void hold(struct fixture *f, struct zero_runs *z, uint64_t off, uint64_t len)
{
	uint64_t failed_at = 0;

	assert_int_equal(zero_runs_add(z, off, len, &failed_at), 0);
	memset(f->want + off, 0, len);
}

static void assert_file_is_want(struct fixture *f)
{
	assert_fd_holds(f->bd.fd, f->want, FILE_SIZE);
}

static void test_nothing_before_flush_then_exact(void **state)
{
	struct fixture *f = *state;
	struct zero_runs z;
	uint64_t failed_at = 0;

	zero_runs_init(&z, &f->bd, ZERO_RUNS_MAX);
	/* Out of order, one partly inside another, one a single byte. */
	hold(f, &z, 700000, 4096);
	hold(f, &z, 512, 1000);
	hold(f, &z, 65536, 131072);
	hold(f, &z, 100000, 1000);
	hold(f, &z, FILE_SIZE - 1, 1);
	assert_int_equal(z.issued, 0);
	{
		uint8_t b;

		assert_int_equal(pread(f->bd.fd, &b, 1, 700000), 1);
		assert_int_equal(b, FILL);	/* held, not yet zeroed */
	}
	assert_int_equal(zero_runs_flush(&z, &failed_at), 0);
	assert_int_equal(z.issued, 4);	/* 100000 lies inside 65536 + 131072 */
	assert_file_is_want(f);
	assert_int_equal(zero_runs_flush(&z, &failed_at), 0);
	assert_int_equal(z.issued, 4);	/* nothing left to send */
	zero_runs_free(&z);
}

/* A copy without zeros: nothing held, nothing allocated, the flush a no-op. */
static void test_flush_with_nothing_held(void **state)
{
	struct fixture *f = *state;
	struct zero_runs z;
	uint64_t failed_at = 0;

	zero_runs_init(&z, &f->bd, ZERO_RUNS_MAX);
	assert_int_equal(zero_runs_flush(&z, &failed_at), 0);
	assert_int_equal(z.issued, 0);
	assert_file_is_want(f);
	zero_runs_free(&z);
}

static void test_touching_runs_are_one_request(void **state)
{
	struct fixture *f = *state;
	struct zero_runs z;
	uint64_t failed_at = 0;

	zero_runs_init(&z, &f->bd, ZERO_RUNS_MAX);
	/* 64 KiB runs in the order four writers might finish them. */
	for (uint64_t i = 0; i < 16; i++)
		hold(f, &z, 4096 + ((i * 5) % 16) * 65536, 65536);
	hold(f, &z, 4096 + 20 * 65536, 512);
	assert_int_equal(zero_runs_flush(&z, &failed_at), 0);
	assert_int_equal(z.issued, 2);
	assert_file_is_want(f);
	zero_runs_free(&z);
}

static void test_bound_issues_early(void **state)
{
	struct fixture *f = *state;
	struct zero_runs z;
	uint64_t failed_at = 0;

	zero_runs_init(&z, &f->bd, 4);
	for (uint64_t i = 0; i < 40; i++)
		hold(f, &z, i * 20000, 10000);
	assert_true(z.issued > 0);
	assert_true(z.count <= 4 && z.cap <= 4);
	assert_int_equal(zero_runs_flush(&z, &failed_at), 0);
	assert_int_equal(z.issued, 40);
	assert_file_is_want(f);
	zero_runs_free(&z);
}

static void test_failure_names_the_run(void **state)
{
	struct fixture *f = *state;
	struct bdev ro = f->bd;
	struct zero_runs z;
	uint64_t failed_at = 0;

	ro.fd = open(f->path, O_RDONLY);
	assert_true(ro.fd >= 0);
	zero_runs_init(&z, &ro, ZERO_RUNS_MAX);
	assert_int_equal(zero_runs_add(&z, 300000, 5000, &failed_at), 0);
	assert_int_equal(zero_runs_add(&z, 9000, 5000, &failed_at), 0);
	assert_int_equal(zero_runs_flush(&z, &failed_at), -EBADF);
	assert_int_equal(failed_at, 9000);	/* the first in device order */
	zero_runs_free(&z);
	close(ro.fd);
	assert_file_is_want(f);		/* nothing zeroed */
}

/* A zeroing of its own (discard_zero's, in provision): each merged run, in order. */
struct seen_runs {
	struct zero_run runs[8];
	size_t count;
	int fail;
};

static int record_run(void *arg, uint64_t off, uint64_t len)
{
	struct seen_runs *seen = arg;

	assert_true(seen->count < 8);
	seen->runs[seen->count++] = (struct zero_run){ .off = off, .len = len };
	return seen->fail;
}

static void test_a_zeroing_of_its_own(void **state)
{
	struct fixture *f = *state;
	struct seen_runs seen = { .count = 0 };
	struct zero_runs z;
	uint64_t failed_at = 0;

	zero_runs_init(&z, &f->bd, ZERO_RUNS_MAX);
	zero_runs_set_fn(&z, record_run, &seen);
	assert_int_equal(zero_runs_add(&z, 200000, 1000, &failed_at), 0);
	assert_int_equal(zero_runs_add(&z, 512, 65536, &failed_at), 0);
	assert_int_equal(zero_runs_add(&z, 66048, 4096, &failed_at), 0);
	assert_int_equal(zero_runs_flush(&z, &failed_at), 0);
	assert_int_equal(seen.count, 2);
	assert_int_equal(seen.runs[0].off, 512);
	assert_int_equal(seen.runs[0].len, 65536 + 4096);
	assert_int_equal(seen.runs[1].off, 200000);
	assert_int_equal(seen.runs[1].len, 1000);
	assert_file_is_want(f);		/* bdev_zero_range never called */
	seen = (struct seen_runs){ .fail = -EIO };
	assert_int_equal(zero_runs_add(&z, 8192, 512, &failed_at), 0);
	assert_int_equal(zero_runs_flush(&z, &failed_at), -EIO);
	assert_int_equal(failed_at, 8192);
	zero_runs_free(&z);
}

struct adder {
	struct fixture *f;
	struct zero_runs *z;
	unsigned int first;
};

#define THREADS 4
#define RUNS_EACH 200

/* Thread t holds runs t, t + THREADS, ...: 512 bytes every 2 KiB. */
static void *add_many(void *arg)
{
	struct adder *a = arg;
	uint64_t failed_at = 0;

	for (unsigned int i = a->first; i < THREADS * RUNS_EACH; i += THREADS)
		if (zero_runs_add(a->z, 2048 + (uint64_t)i * 2048, 512, &failed_at) < 0)
			return (void *)1;
	return NULL;
}

static void test_adds_from_threads(void **state)
{
	struct fixture *f = *state;
	struct adder a[THREADS];
	pthread_t t[THREADS];
	struct zero_runs z;
	uint64_t failed_at = 0;
	void *ret;

	zero_runs_init(&z, &f->bd, 64);
	for (unsigned int i = 0; i < THREADS; i++) {
		a[i] = (struct adder){ .f = f, .z = &z, .first = i };
		assert_int_equal(pthread_create(&t[i], NULL, add_many, &a[i]), 0);
	}
	for (unsigned int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(zero_runs_flush(&z, &failed_at), 0);
	assert_int_equal(z.issued, THREADS * RUNS_EACH);
	for (uint64_t i = 0; i < THREADS * RUNS_EACH; i++)
		memset(f->want + 2048 + i * 2048, 0, 512);
	assert_file_is_want(f);
	zero_runs_free(&z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nothing_before_flush_then_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_with_nothing_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_touching_runs_are_one_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_issues_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_names_the_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adds_from_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_zeroing_of_its_own, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
