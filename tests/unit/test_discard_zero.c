/*
 * Unit tests of discard_zero.c. The limits: read from a fake sysfs tree (a
 * disk, and a partition whose queue is its disk's), and which devices get
 * discard. The read-back, on a plain file of 0xAA bytes standing for the
 * device, with discards the test plays: one that keeps the data (a device
 * free to ignore it), one that zeroes what it is given (a thin volume), one
 * that keeps every other block, one refused, one failing. Each time the range
 * must read as zeros and nothing else change, and the counts say what went.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "blockdev.h"
#include "blockdev_io.h"
#include "discard_zero.h"
#include "file_helpers.h"
#include "imgdev.h"

#define FILE_SIZE (4 * 1024 * 1024)
#define FILL 0xaa
#define G 65536

struct fixture {
	char path[64];
	struct bdev bd;
	struct bdev_io io;
	struct discard_zero dz;
	uint8_t want[FILE_SIZE];
};

/* What the played discards saw, and how they behave. */
static struct {
	int calls;
	uint64_t off, len;	/* the last one */
	int fail;		/* -errno to return */
	bool zero_it;		/* punch the range out of the file */
	bool every_other;	/* ... only every other block of it */
} played;

static int play_discard(int fd, uint64_t off, uint64_t len)
{
	played.calls++;
	played.off = off;
	played.len = len;
	if (played.fail)
		return played.fail;
	for (uint64_t b = off; played.zero_it && b < off + len; b += G) {
		if (played.every_other && (b / G) % 2)
			continue;
		assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)b,
					   (off_t)(off + len - b < G ? off + len - b : G)), 0);
	}
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct discard_limits lim = { .max_bytes = 1ull << 34, .granularity = G };

	assert_non_null(f);
	memset(f->want, FILL, FILE_SIZE);
	f->bd = (struct bdev)BDEV_INIT;
	f->bd.fd =
		tmpfile_of(f->path, sizeof(f->path), "/var/tmp/imgdev-dz.XXXXXX", f->want, FILE_SIZE);
	f->bd.path = f->path;
	f->bd.size = FILE_SIZE;
	bdev_io_open(&f->io, &f->bd, O_RDWR);
	discard_zero_init(&f->dz, &f->io, &lim);
	f->dz.discard = play_discard;
	f->dz.data_done = true;		/* as at the end of a copy; see test_edges_* */
	memset(&played, 0, sizeof(played));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	discard_zero_free(&f->dz);
	bdev_io_close(&f->io);
	close(f->bd.fd);
	free(f);
	return 0;
}

/* Zero [off, off+len) through the discard and the check; expect it zeros after. */
static void zero(struct fixture *f, uint64_t off, uint64_t len)
{
	assert_int_equal(discard_zero_range(&f->dz, off, len), 0);
	memset(f->want + off, 0, len);
}

static void assert_file_is_want(struct fixture *f)
{
	assert_fd_holds(f->bd.fd, f->want, FILE_SIZE);
}

/* A device that keeps the data: the whole blocks discarded, every byte rewritten. */
static void test_discard_kept_everything(void **state)
{
	struct fixture *f = *state;

	zero(f, 512, 300000);
	assert_int_equal(played.calls, 1);
	assert_int_equal(played.off, G);			/* whole blocks only */
	assert_int_equal(played.len, 4 * G - G);
	assert_int_equal(f->dz.discarded, 3 * G);
	assert_int_equal(f->dz.checked, 300000);
	assert_int_equal(f->dz.rewritten, 300000);
	assert_file_is_want(f);
}

/* A thin volume: what it was given reads as zeros; only the edges are written. */
static void test_discard_zeroed_blocks(void **state)
{
	struct fixture *f = *state;

	played.zero_it = true;
	zero(f, 512, 300000);
	assert_int_equal(f->dz.discarded, 3 * G);
	assert_int_equal(f->dz.rewritten, (G - 512) + (512 + 300000 - 4 * G));
	assert_file_is_want(f);
}

/* Every other block kept: those are rewritten with the edges, the rest not. */
static void test_discard_kept_some_blocks(void **state)
{
	struct fixture *f = *state;

	played.zero_it = played.every_other = true;
	zero(f, 0, 8 * G + 4096);
	assert_int_equal(f->dz.discarded, 8 * G);
	assert_int_equal(f->dz.rewritten, 4 * G + 4096);
	assert_file_is_want(f);
}

/* A range inside one block: nothing to discard, all of it checked and written. */
static void test_no_whole_block(void **state)
{
	struct fixture *f = *state;

	zero(f, 4096, G - 4096);
	zero(f, 3 * G + 100, 1000);
	assert_int_equal(played.calls, 0);
	assert_int_equal(f->dz.rewritten, G - 4096 + 1000);
	assert_file_is_want(f);
}

/* Zeros already there: read back, nothing written; then one byte: its 4 KiB piece. */
static void test_only_what_is_not_zero(void **state)
{
	struct fixture *f = *state;
	static const uint8_t one = 1;

	played.zero_it = true;
	zero(f, 0, 2 * G);
	assert_int_equal(f->dz.rewritten, 0);
	assert_int_equal(bdev_pwrite_full(f->bd.fd, &one, 1, G + 5000), 0);
	f->dz.checked = 0;
	played.zero_it = false;
	zero(f, 512, 2 * G - 512);
	assert_int_equal(f->dz.checked, 2 * G - 512);
	assert_int_equal(f->dz.rewritten, 4096);		/* [G + 4096, G + 8192) */
	assert_file_is_want(f);
}

/*
 * Before every data write is done (a checkpoint), the edges are written
 * without looking, zeros or not: their blocks may yet be allocated by a
 * data write that leaves the rest stale. Whole blocks are still read back.
 * Once the data is done, the same range is only read.
 */
static void test_edges_written_before_data_done(void **state)
{
	struct fixture *f = *state;
	static const uint8_t zeros[4 * G];

	assert_int_equal(bdev_pwrite_full(f->bd.fd, zeros, sizeof(zeros), 0), 0);
	memset(f->want, 0, sizeof(zeros));
	played.zero_it = true;
	f->dz.data_done = false;
	zero(f, 512, 3 * G);
	assert_int_equal(f->dz.discarded, 2 * G);		/* [G, 3 G) */
	assert_int_equal(f->dz.checked, 2 * G);
	assert_int_equal(f->dz.rewritten, (G - 512) + 512);	/* both edges, though zeros */
	f->dz.data_done = true;
	zero(f, 512, 3 * G);
	assert_int_equal(f->dz.checked, 2 * G + 3 * G);
	assert_int_equal(f->dz.rewritten, G);			/* nothing more */
	assert_file_is_want(f);
}

/* Before the data is done, a device that kept the data: edges written, the rest fixed. */
static void test_edges_before_data_done_kept_everything(void **state)
{
	struct fixture *f = *state;

	f->dz.data_done = false;
	zero(f, 512, 300000);
	assert_int_equal(f->dz.checked, 3 * G);
	assert_int_equal(f->dz.rewritten, 300000);
	zero(f, 5 * G + 10, 1000);			/* inside one block: all edge */
	assert_int_equal(f->dz.checked, 3 * G);
	assert_int_equal(f->dz.rewritten, 301000);
	assert_file_is_want(f);
}

/* More than a buffer, bytes set here and there: exact, piece by piece. */
static void test_longer_than_the_buffer(void **state)
{
	struct fixture *f = *state;
	static const uint8_t one = 1;
	uint64_t at[] = { 700, DISCARD_ZERO_BUF - 1, DISCARD_ZERO_BUF, 3 * DISCARD_ZERO_BUF + 12345 };

	played.zero_it = true;
	zero(f, 512, FILE_SIZE - 512 - 777);
	f->dz.rewritten = 0;
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
		assert_int_equal(bdev_pwrite_full(f->bd.fd, &one, 1, at[i]), 0);
	played.zero_it = false;
	zero(f, 512, FILE_SIZE - 512 - 777);
	/* Pieces [512, 4096), [1 MiB - 4 KiB, 1 MiB), [1 MiB, +4 KiB), and one more. */
	assert_int_equal(f->dz.rewritten, 3584 + 3 * 4096);
	assert_file_is_want(f);
}

/* The grid starts at the device's discard alignment (a partition's offset). */
static void test_alignment(void **state)
{
	struct fixture *f = *state;

	f->dz.lim.alignment = 4096;
	zero(f, 0, 3 * G);
	assert_int_equal(played.off, 4096);
	assert_int_equal(played.len, 2 * G);		/* to 2 G + 4096, the last on the grid */
	assert_file_is_want(f);
}

/* Refused once (EOPNOTSUPP): never asked again, the ranges written as zeros. */
static void test_discard_refused(void **state)
{
	struct fixture *f = *state;

	played.fail = -EOPNOTSUPP;
	zero(f, 0, 4 * G);
	zero(f, 8 * G, 4 * G);
	assert_int_equal(played.calls, 1);
	assert_true(f->dz.discard_refused);
	assert_int_equal(f->dz.discarded, 0);
	assert_int_equal(f->dz.rewritten, 8 * G);
	assert_file_is_want(f);
}

/* Any other failure of the discard is the zeroing's error. */
static void test_discard_fails(void **state)
{
	struct fixture *f = *state;

	played.fail = -EIO;
	assert_int_equal(discard_zero_range(&f->dz, 0, 4 * G), -EIO);
	assert_false(f->dz.discard_refused);
}

/* A read past the end of the device fails; nothing is taken for zeros. */
static void test_read_past_the_end(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(discard_zero_range(&f->dz, FILE_SIZE - 4096, 8192), -EIO);
}

/* A fake sysfs tree: a disk 7:99 and its partition 7:98 (dev/block links). */
struct tree {
	char dir[64];
};

static void make_tree(struct tree *t, const char *max, const char *gran, const char *wz)
{
	static const char *const dirs[] = { "dev", "dev/block", "devices", "devices/disk",
					    "devices/disk/queue", "devices/disk/part1" };
	char path[256];

	strcpy(t->dir, "/var/tmp/imgdev-dzsys.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", t->dir, dirs[i]);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	put_text(t->dir, "devices/disk/queue/discard_max_bytes", max);
	put_text(t->dir, "devices/disk/queue/discard_granularity", gran);
	put_text(t->dir, "devices/disk/queue/write_zeroes_max_bytes", wz);
	put_text(t->dir, "devices/disk/discard_alignment", "0\n");
	put_text(t->dir, "devices/disk/part1/discard_alignment", "4096\n");
	snprintf(path, sizeof(path), "%s/dev/block/7:99", t->dir);
	assert_int_equal(symlink("../../devices/disk", path), 0);
	snprintf(path, sizeof(path), "%s/dev/block/7:98", t->dir);
	assert_int_equal(symlink("../../devices/disk/part1", path), 0);
}

static void remove_tree(struct tree *t)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
}

/* Read dev's limits with the context's sysfs at the tree; the call's return. */
static int read_limits(struct tree *t, unsigned int minor, struct discard_limits *lim)
{
	struct imgdev_ctx *ctx;
	int rc;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(imgdev_ctx_set_sysfs_dir(ctx, t->dir), 0);
	rc = discard_limits_read(ctx, makedev(7, minor), lim);
	imgdev_ctx_free(ctx);
	return rc;
}

/* A thin volume's limits: discard, no write-zeroes; a partition has its disk's. */
static void test_limits_of_a_thin_volume(void **state)
{
	struct discard_limits lim;
	struct tree t;

	(void)state;
	make_tree(&t, "17179869184\n", "65536\n", "0\n");
	assert_int_equal(read_limits(&t, 99, &lim), 0);
	assert_int_equal(lim.max_bytes, 17179869184ull);
	assert_int_equal(lim.granularity, 65536);
	assert_int_equal(lim.write_zeroes_max, 0);
	assert_int_equal(lim.alignment, 0);
	assert_true(discard_limits_want_discard(&lim));
	assert_int_equal(read_limits(&t, 98, &lim), 0);
	assert_int_equal(lim.granularity, 65536);
	assert_int_equal(lim.alignment, 4096);
	assert_int_equal(read_limits(&t, 97, &lim), -ENOENT);	/* no such device */
	remove_tree(&t);
}

/* Write-zeroes, no discard, or no granularity: not by discard; garbage: not read. */
static void test_limits_that_do_not_discard(void **state)
{
	struct discard_limits lim;
	struct tree t;

	(void)state;
	make_tree(&t, "4294966784\n", "4096\n", "33553920\n");
	assert_int_equal(read_limits(&t, 99, &lim), 0);
	assert_false(discard_limits_want_discard(&lim));
	remove_tree(&t);
	make_tree(&t, "0\n", "0\n", "0\n");
	assert_int_equal(read_limits(&t, 99, &lim), 0);
	assert_false(discard_limits_want_discard(&lim));
	remove_tree(&t);
	make_tree(&t, "17179869184\n", "0\n", "0\n");
	assert_int_equal(read_limits(&t, 99, &lim), 0);
	assert_false(discard_limits_want_discard(&lim));
	remove_tree(&t);
	make_tree(&t, "lots\n", "65536\n", "0\n");
	assert_true(read_limits(&t, 99, &lim) < 0);
	assert_false(discard_limits_want_discard(&lim));
	remove_tree(&t);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(imgdev_zeroing_name(IMGDEV_ZEROING_NONE), "none");
	assert_string_equal(imgdev_zeroing_name(IMGDEV_ZEROING_WRITE_ZEROES), "write-zeroes");
	assert_string_equal(imgdev_zeroing_name(IMGDEV_ZEROING_DISCARD), "discard");
	assert_string_equal(imgdev_zeroing_name(IMGDEV_ZEROING_ZEROS), "zeros");
	assert_null(imgdev_zeroing_name((enum imgdev_zeroing)42));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_discard_kept_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_zeroed_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_kept_some_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_whole_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_only_what_is_not_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edges_written_before_data_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edges_before_data_done_kept_everything, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_longer_than_the_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alignment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_past_the_end, setup, teardown),
		cmocka_unit_test(test_limits_of_a_thin_volume),
		cmocka_unit_test(test_limits_that_do_not_discard),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
