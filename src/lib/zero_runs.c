/*
 * Zero runs held back to the end of a copy (see zero_runs.h): a growing
 * array under a lock, joined with the last run when adjacent; sorted and
 * merged before they are issued.
 */
#include <errno.h>
#include <stdlib.h>

#include "blockdev.h"
#include "zero_runs.h"

void zero_runs_init(struct zero_runs *z, const struct bdev *bd, size_t max)
{
	*z = (struct zero_runs){ .bd = bd, .max = max ? max : 1 };
	pthread_mutex_init(&z->lock, NULL);
}

void zero_runs_set_fn(struct zero_runs *z, zero_runs_fn fn, void *arg)
{
	z->zero = fn;
	z->zero_arg = arg;
}

void zero_runs_free(struct zero_runs *z)
{
	pthread_mutex_destroy(&z->lock);
	free(z->runs);
	z->runs = NULL;
	z->count = z->cap = 0;
}

static int by_offset(const void *a, const void *b)
{
	const struct zero_run *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Sort the runs and join those that touch or overlap. */
static void merge_locked(struct zero_runs *z)
{
	size_t n = 0;

	if (z->count < 2)
		return;		/* also: runs may still be NULL, which qsort must not get */
	qsort(z->runs, z->count, sizeof(z->runs[0]), by_offset);
	for (size_t i = 0; i < z->count; i++) {
		struct zero_run *last = n ? &z->runs[n - 1] : NULL;
		uint64_t end = z->runs[i].off + z->runs[i].len;

		if (last && z->runs[i].off <= last->off + last->len) {
			if (end > last->off + last->len)
				last->len = end - last->off;
		} else {
			z->runs[n++] = z->runs[i];
		}
	}
	z->count = n;
}

/* Zero every held run, merged, in device order; 0, or -errno with *failed_at. */
static int issue_locked(struct zero_runs *z, uint64_t *failed_at)
{
	merge_locked(z);
	for (size_t i = 0; i < z->count; i++) {
		const struct zero_run *r = &z->runs[i];
		int rc = z->zero ? z->zero(z->zero_arg, r->off, r->len)
				 : bdev_zero_range(z->bd, r->off, r->len, NULL);

		z->issued++;
		if (rc < 0) {
			*failed_at = z->runs[i].off;
			return rc;
		}
	}
	z->count = 0;
	return 0;
}

/* Room for one more run: grow up to max; else merge; else issue them all. */
static int make_room_locked(struct zero_runs *z, uint64_t *failed_at)
{
	if (z->cap < z->max) {
		size_t cap = z->cap ? z->cap * 2 : 64;
		struct zero_run *runs;

		cap = cap < z->max ? cap : z->max;
		runs = realloc(z->runs, cap * sizeof(*runs));
		if (runs) {
			z->runs = runs;
			z->cap = cap;
			return 0;
		}
	}
	if (z->cap == 0)
		return -ENOMEM;
	merge_locked(z);
	if (z->count < z->cap && z->count <= z->max / 2)
		return 0;
	return issue_locked(z, failed_at);
}

int zero_runs_add(struct zero_runs *z, uint64_t off, uint64_t len, uint64_t *failed_at)
{
	int rc = 0;

	pthread_mutex_lock(&z->lock);
	if (z->count && z->runs[z->count - 1].off + z->runs[z->count - 1].len == off) {
		z->runs[z->count - 1].len += len;
	} else {
		if (z->count == z->cap)
			rc = make_room_locked(z, failed_at);
		if (rc == 0)
			z->runs[z->count++] = (struct zero_run){ .off = off, .len = len };
	}
	pthread_mutex_unlock(&z->lock);
	return rc;
}

int zero_runs_flush(struct zero_runs *z, uint64_t *failed_at)
{
	int rc;

	pthread_mutex_lock(&z->lock);
	rc = issue_locked(z, failed_at);
	pthread_mutex_unlock(&z->lock);
	return rc;
}
