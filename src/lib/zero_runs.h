/*
 * Zero runs held back to the end of a copy, then issued sorted and merged.
 * For devices that zero by offload (write-zeroes, a punched hole): such a
 * request issued between the data writes waits behind them at the device
 * and holds its writer back (docs/PERFORMANCE.md, P8). At most max runs
 * are held; beyond that they are merged, and if still many, issued at once.
 */
#ifndef IMGDEV_ZERO_RUNS_H
#define IMGDEV_ZERO_RUNS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct bdev;

/* The default bound on held runs: 1 MiB of them. */
#define ZERO_RUNS_MAX 65536

struct zero_run {
	uint64_t off, len;
};

/* How a held run is zeroed, when not by bdev_zero_range: 0 or -errno. */
typedef int (*zero_runs_fn)(void *arg, uint64_t off, uint64_t len);

struct zero_runs {
	pthread_mutex_t lock;
	const struct bdev *bd;
	zero_runs_fn zero;	/* NULL: bdev_zero_range on bd */
	void *zero_arg;
	struct zero_run *runs;
	size_t count, cap, max;
	uint64_t issued;	/* zeroing requests sent, for tests */
};

void zero_runs_init(struct zero_runs *z, const struct bdev *bd, size_t max);
void zero_runs_free(struct zero_runs *z);
/* Zero the runs with fn(arg, ...) instead; called under the lock, one run at a time. */
void zero_runs_set_fn(struct zero_runs *z, zero_runs_fn fn, void *arg);

/*
 * Hold [off, off+len) of bd to be zeroed (thread-safe). 0, or -errno when
 * memory ran out or a zeroing it had to issue now failed (*failed_at: the
 * device offset of the run that failed).
 */
int zero_runs_add(struct zero_runs *z, uint64_t off, uint64_t len, uint64_t *failed_at);

/* Zero every held run, in device order, merged. 0 or -errno as above. */
int zero_runs_flush(struct zero_runs *z, uint64_t *failed_at);

#endif
