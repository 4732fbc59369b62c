/*
 * Unit tests of the log-replay test tool (tests/tools/log_replay_lib.c and
 * log-replay.c): a synthetic log written here in the kernel's dm-log-writes
 * format (its own encoder, not the tool's decoder) with writes, flushes, a
 * FUA write, a discard and marks, read back: the decoded entries, --list and
 * --points, replay to every entry against a model of the device, the seeded
 * drops (only writes after the last flush or FUA), and the refusals (bad
 * magic, truncated logs, an entry past the target's end) writing nothing.
 * The command itself is run where meson says it is (LOG_REPLAY).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log_replay_lib.h"

extern char **environ;

#define TARGET_SECTORS 16
#define TARGET_FILL 0xee

/* An entry as the test writes it; FILL seeds the bytes of a write. */
struct wentry {
	uint64_t sector, nr_sectors, flags;
	const char *mark;
	unsigned char fill;
};

static const struct wentry entries[] = {
	{ 0, 2, 0, NULL, 0x10 },
	{ 4, 1, 0, NULL, 0x20 },
	{ 0, 0, LWLOG_FLUSH, NULL, 0 },
	{ 1, 1, LWLOG_FUA, NULL, 0x30 },
	{ 2, 1, 0, NULL, 0x40 },
	{ 4, 2, LWLOG_DISCARD, NULL, 0 },
	{ 6, 2, LWLOG_METADATA, NULL, 0x50 },
	{ 0, 0, LWLOG_MARK, "after-e", 0 },
	{ 0, 0, LWLOG_FLUSH, NULL, 0 },
	{ 7, 1, 0, NULL, 0x60 },
	{ 15, 1, 0, NULL, 0x70 },
	{ 0, 0, LWLOG_MARK, "dm-log-writes-end", 0 },
};
#define NR_ENTRIES (sizeof(entries) / sizeof(entries[0]))

static const char want_list[] = "0 - 0 2 #2\n"
				"1 - 4 1 #1\n"
				"2 FLUSH 0 0 0\n"
				"3 FUA 1 1 #1\n"
				"4 - 2 1 #1\n"
				"5 DISCARD 4 2 0\n"
				"6 META 6 2 #2\n"
				"7 MARK 0 0 7 after-e\n"
				"8 FLUSH 0 0 0\n"
				"9 - 7 1 #1\n"
				"10 - 15 1 #1\n"
				"11 MARK 0 0 17 dm-log-writes-end\n";

struct fixture {
	char dir[64];
	char log_path[96];
	char target_path[96];
	char out_path[96];
	char err_path[96];
	uint32_t ss;
	unsigned char *log;
	size_t log_len;
};

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Byte J of a write seeded with FILL: differs by sector and position. */
static unsigned char data_byte(unsigned char fill, size_t j, uint32_t ss)
{
	return (unsigned char)(fill + (j / ss) * 7 + (j % 251));
}

static int is_io(const struct wentry *e)
{
	return !(e->flags & LWLOG_MARK) && e->nr_sectors > 0;
}

/* Lay ENTRIES out as dm-log-writes does, with sector size SS, into f->log. */
static void build_log(struct fixture *f, uint32_t ss)
{
	size_t len = ss, pos = ss;

	for (size_t i = 0; i < NR_ENTRIES; i++)
		len += ss + (entries[i].flags & (LWLOG_DISCARD | LWLOG_MARK)
				     ? 0
				     : entries[i].nr_sectors * ss);
	f->log = calloc(1, len);
	assert_non_null(f->log);
	f->log_len = len;
	put_le64(f->log, LWLOG_MAGIC);
	put_le64(f->log + 8, 1);
	put_le64(f->log + 16, NR_ENTRIES);
	f->log[24] = (unsigned char)ss;
	f->log[25] = (unsigned char)(ss >> 8);
	for (size_t i = 0; i < NR_ENTRIES; i++) {
		const struct wentry *e = &entries[i];
		unsigned char *h = f->log + pos;
		size_t mlen = e->mark ? strlen(e->mark) : 0;

		put_le64(h, e->sector);
		put_le64(h + 8, e->nr_sectors);
		put_le64(h + 16, e->flags);
		put_le64(h + 24, mlen);
		memcpy(h + 32, e->mark ? e->mark : "", mlen);
		pos += ss;
		if (e->flags & (LWLOG_DISCARD | LWLOG_MARK))
			continue;
		for (size_t j = 0; j < e->nr_sectors * ss; j++)
			f->log[pos + j] = data_byte(e->fill, j, ss);
		pos += e->nr_sectors * ss;
	}
	assert_int_equal(pos, len);
}

/* Where entry I's header is in a log of sector size SS. */
static size_t header_offset(size_t i, uint32_t ss)
{
	size_t pos = ss;

	for (size_t k = 0; k < i; k++)
		pos += ss + (entries[k].flags & (LWLOG_DISCARD | LWLOG_MARK)
				     ? 0
				     : entries[k].nr_sectors * ss);
	return pos;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void write_target(struct fixture *f)
{
	size_t len = (size_t)TARGET_SECTORS * f->ss;
	unsigned char *buf = malloc(len);

	assert_non_null(buf);
	memset(buf, TARGET_FILL, len);
	write_file(f->target_path, buf, len);
	free(buf);
}

static int setup_ss(void **state, uint32_t ss)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/var/tmp/imgdev-lr.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->log_path, sizeof(f->log_path), "%s/log", f->dir);
	snprintf(f->target_path, sizeof(f->target_path), "%s/target", f->dir);
	snprintf(f->out_path, sizeof(f->out_path), "%s/out", f->dir);
	snprintf(f->err_path, sizeof(f->err_path), "%s/err", f->dir);
	f->ss = ss;
	build_log(f, ss);
	write_file(f->log_path, f->log, f->log_len);
	write_target(f);
	*state = f;
	return 0;
}

static int setup_512(void **state)
{
	return setup_ss(state, 512);
}

static int setup_4096(void **state)
{
	return setup_ss(state, 4096);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->log_path);
	unlink(f->target_path);
	unlink(f->out_path);
	unlink(f->err_path);
	rmdir(f->dir);
	free(f->log);
	free(f);
	return 0;
}

/* What the target holds after the first N entries, those DROP marks lost. */
static unsigned char *model(const struct fixture *f, size_t n, const unsigned char *drop,
			    int discard_zero)
{
	size_t ss = f->ss, len = TARGET_SECTORS * ss;
	unsigned char *dev = malloc(len);

	assert_non_null(dev);
	memset(dev, TARGET_FILL, len);
	for (size_t i = 0; i < n; i++) {
		const struct wentry *e = &entries[i];
		unsigned char *p = dev + e->sector * ss;

		if (!is_io(e) || (drop && drop[i]))
			continue;
		if (!(e->flags & LWLOG_DISCARD))
			for (size_t j = 0; j < e->nr_sectors * ss; j++)
				p[j] = data_byte(e->fill, j, f->ss);
		else if (discard_zero)
			memset(p, 0, e->nr_sectors * ss);
	}
	return dev;
}

static void assert_target_is(const struct fixture *f, const unsigned char *want)
{
	size_t len;
	unsigned char *got = read_file(f->target_path, &len);

	assert_int_equal(len, TARGET_SECTORS * f->ss);
	assert_memory_equal(got, want, len);
	free(got);
}

/* Replay N entries onto a fresh target with the library and check it. */
static void replay_and_check(struct fixture *f, struct lwlog *log, size_t n,
			     const unsigned char *drop, unsigned opts)
{
	unsigned char *want;
	int fd;

	write_target(f);
	fd = open(f->target_path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(lwlog_check_target(log, n, TARGET_SECTORS * f->ss), 0);
	assert_int_equal(lwlog_replay(log, fd, n, drop, opts), 0);
	close(fd);
	want = model(f, n, drop, opts & LWLOG_DISCARD_ZERO);
	assert_target_is(f, want);
	free(want);
}

static void open_log(struct fixture *f, struct lwlog *log)
{
	int rc = lwlog_open(log, f->log_path);

	if (rc < 0)
		print_error("lwlog_open: %s\n", log->err);
	assert_int_equal(rc, 0);
}

static void test_decode(void **state)
{
	struct fixture *f = *state;
	struct lwlog log;
	uint64_t pos = f->ss;

	open_log(f, &log);
	assert_int_equal(log.super.magic, LWLOG_MAGIC);
	assert_int_equal(log.super.version, 1);
	assert_int_equal(log.super.nr_entries, NR_ENTRIES);
	assert_int_equal(log.super.sectorsize, f->ss);
	assert_int_equal(log.size, f->log_len);
	for (size_t i = 0; i < NR_ENTRIES; i++) {
		const struct wentry *w = &entries[i];
		const struct lwlog_entry *e = &log.entries[i];

		assert_int_equal(e->sector, w->sector);
		assert_int_equal(e->nr_sectors, w->nr_sectors);
		assert_int_equal(e->flags, w->flags);
		assert_int_equal(e->data_len, w->mark ? strlen(w->mark) : 0);
		assert_int_equal(e->data_off, pos + f->ss);
		if (w->mark)
			assert_string_equal(e->mark, w->mark);
		else
			assert_null(e->mark);
		pos += f->ss;
		if (!(w->flags & (LWLOG_DISCARD | LWLOG_MARK)))
			pos += w->nr_sectors * f->ss;
	}
	/* Entry 1's data: the super's sector, entry 0's header and 2 data sectors, its header. */
	assert_int_equal(log.entries[1].data_off, 5 * f->ss);
	lwlog_close(&log);
}

/* want_list with each "#<k>" replaced by k sectors' bytes. */
static char *expected_list(uint32_t ss)
{
	char *out = malloc(sizeof(want_list) * 4), *o = out;

	assert_non_null(out);
	for (const char *p = want_list; *p; p++) {
		if (*p != '#') {
			*o++ = *p;
			continue;
		}
		o += sprintf(o, "%u", (unsigned)(p[1] - '0') * ss);
		p++;
	}
	*o = '\0';
	return out;
}

static void test_list_and_points(void **state)
{
	struct fixture *f = *state;
	struct lwlog log;
	char *buf = NULL, *want = expected_list(f->ss);
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	open_log(f, &log);
	assert_int_equal(lwlog_print_list(&log, out), 0);
	fflush(out);
	assert_string_equal(buf, want);
	rewind(out);
	assert_int_equal(lwlog_print_points(&log, out), 0);
	fputc('\0', out);
	fflush(out);
	assert_string_equal(buf, "2\n3\n8\n");
	fclose(out);
	free(buf);
	free(want);
	lwlog_close(&log);
}

static void test_format_flags(void **state)
{
	char buf[64];

	(void)state;
	lwlog_format_flags(0, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	lwlog_format_flags(LWLOG_FLUSH | LWLOG_FUA, buf, sizeof(buf));
	assert_string_equal(buf, "FLUSH|FUA");
	lwlog_format_flags(LWLOG_FUA | LWLOG_METADATA | (1u << 9), buf, sizeof(buf));
	assert_string_equal(buf, "FUA|META|0x200");
	lwlog_format_flags(LWLOG_FLUSH | LWLOG_FUA | LWLOG_DISCARD, buf, 8);
	assert_string_equal(buf, "FLUSH|F");
}

static void test_last_barrier(void **state)
{
	struct fixture *f = *state;
	static const int64_t want[NR_ENTRIES + 1] = { -1, -1, -1, 2, 3, 3, 3, 3, 3, 8, 8, 8, 8 };
	struct lwlog log;

	open_log(f, &log);
	for (size_t n = 0; n <= NR_ENTRIES; n++)
		assert_int_equal(lwlog_last_barrier(&log, n), want[n]);
	lwlog_close(&log);
}

/* Every prefix of the log, discards kept and zeroed, onto a fresh target. */
static void test_replay_each_entry(void **state)
{
	struct fixture *f = *state;
	struct lwlog log;

	open_log(f, &log);
	for (size_t n = 0; n <= NR_ENTRIES; n++) {
		replay_and_check(f, &log, n, NULL, 0);
		replay_and_check(f, &log, n, NULL, LWLOG_DISCARD_ZERO);
	}
	lwlog_close(&log);
}

/* Seeds 0..63 at every N: only writes after the last barrier are dropped, the
 * same seed drops the same, and the 3 droppable entries before the second flush
 * are dropped in each of their 8 combinations by some seed. */
static void test_drop_seed(void **state)
{
	struct fixture *f = *state;
	unsigned char drop[NR_ENTRIES], again[NR_ENTRIES];
	unsigned seen = 0;
	struct lwlog log;

	open_log(f, &log);
	for (size_t n = 0; n <= NR_ENTRIES; n++) {
		int64_t barrier = lwlog_last_barrier(&log, n);

		for (uint64_t seed = 0; seed < 64; seed++) {
			uint64_t count = lwlog_plan_drops(&log, n, seed, drop), sum = 0;

			lwlog_plan_drops(&log, n, seed, again);
			assert_memory_equal(drop, again, n);
			for (size_t i = 0; i < n; i++) {
				if (drop[i])
					assert_true((int64_t)i > barrier && is_io(&entries[i]));
				sum += drop[i];
			}
			assert_int_equal(sum, count);
			if (n == 8)
				seen |= 1u << (drop[4] | drop[5] << 1 | drop[6] << 2);
			if (seed < 8)
				replay_and_check(f, &log, n, drop, LWLOG_DISCARD_ZERO);
		}
	}
	assert_int_equal(seen, 0xff);
	lwlog_close(&log);
}

/* Write a copy of the log changed by EDIT (or cut to LEN) and expect lwlog_open to fail with
 * WANT in its message. */
static void expect_open_fails(struct fixture *f, size_t len, size_t at, const unsigned char *edit,
			      size_t edit_len, const char *want)
{
	unsigned char *copy = malloc(f->log_len);
	struct lwlog log;

	assert_non_null(copy);
	memcpy(copy, f->log, f->log_len);
	if (edit)
		memcpy(copy + at, edit, edit_len);
	write_file(f->log_path, copy, len);
	free(copy);
	assert_int_equal(lwlog_open(&log, f->log_path), -1);
	if (!strstr(log.err, want))
		print_error("error '%s' lacks '%s'\n", log.err, want);
	assert_non_null(strstr(log.err, want));
	lwlog_close(&log);
	write_file(f->log_path, f->log, f->log_len);
}

static void test_bad_logs(void **state)
{
	struct fixture *f = *state;
	unsigned char v[8], mark[16];
	size_t ss = f->ss;

	expect_open_fails(f, f->log_len, 0, (const unsigned char *)"X", 1, "bad magic");
	put_le64(v, 2);
	expect_open_fails(f, f->log_len, 8, v, 8, "unsupported log version 2");
	put_le64(v, 1000);
	expect_open_fails(f, f->log_len, 24, v, 4, "bad sector size 1000");
	put_le64(v, 1u << 20);
	expect_open_fails(f, f->log_len, 16, v, 8, "truncated log");
	expect_open_fails(f, 20, 0, NULL, 0, "shorter than a super block");
	/* Cut anywhere before the end: every cut is found, at open. */
	for (size_t cut = ss; cut < f->log_len; cut += ss / 2)
		expect_open_fails(f, cut, 0, NULL, 0, "truncated log");
	/* Entry 0's header: an inline payload on a write; its flags as a mark too long. */
	put_le64(v, 100);
	expect_open_fails(f, f->log_len, ss + 24, v, 8, "inline data");
	put_le64(mark, LWLOG_MARK);
	put_le64(mark + 8, ss - 31);
	expect_open_fails(f, f->log_len, ss + 16, mark, 16, "does not fit");
	/* Entry 9's header holds an absurd length. */
	put_le64(v, UINT64_MAX / 2);
	expect_open_fails(f, f->log_len, header_offset(9, f->ss) + 8, v, 8, "absurd length");
}

static void test_target_checks(void **state)
{
	struct fixture *f = *state;
	struct lwlog log;

	open_log(f, &log);
	assert_int_equal(lwlog_check_target(&log, NR_ENTRIES, TARGET_SECTORS * f->ss), 0);
	assert_int_equal(lwlog_check_target(&log, NR_ENTRIES + 1, TARGET_SECTORS * f->ss), -1);
	assert_non_null(strstr(log.err, "the log has 12"));
	/* Entry 10 writes the last sector: one byte short, and it is past the end. */
	assert_int_equal(lwlog_check_target(&log, 10, 15 * f->ss), 0);
	assert_int_equal(lwlog_check_target(&log, 11, TARGET_SECTORS * f->ss - 1), -1);
	assert_non_null(strstr(log.err, "entry 10: write of sectors 15..15"));
	assert_non_null(strstr(log.err, "past the target's end"));
	/* The discard (entry 5, sectors 4..5) is checked too. */
	assert_int_equal(lwlog_check_target(&log, 6, 5 * f->ss), -1);
	assert_non_null(strstr(log.err, "entry 5: discard of sectors 4..5"));
	lwlog_close(&log);
}

/* Run the command with ARGS (NULL-terminated); stdout and stderr to files. Its exit status. */
static int run_tool(struct fixture *f, ...)
{
	const char *tool = getenv("LOG_REPLAY");
	char *argv[16];
	posix_spawn_file_actions_t fa;
	va_list ap;
	int argc = 0, status;
	pid_t pid;

	argv[argc++] = (char *)tool;
	va_start(ap, f);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	posix_spawn_file_actions_addopen(&fa, 1, f->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, f->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(posix_spawn(&pid, tool, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void assert_output(const char *path, const char *want)
{
	size_t len;
	char *got = (char *)read_file(path, &len);

	if (!strstr(got, want))
		print_error("%s: '%s' lacks '%s'\n", path, got, want);
	assert_non_null(strstr(got, want));
	free(got);
}

static void assert_target_untouched(struct fixture *f)
{
	unsigned char *want = model(f, 0, NULL, 0);

	assert_target_is(f, want);
	free(want);
}

static void test_command_list(void **state)
{
	struct fixture *f = *state;
	char *list = expected_list(f->ss);

	if (!getenv("LOG_REPLAY"))
		skip();
	assert_int_equal(run_tool(f, f->log_path, f->target_path, "--list", NULL), 0);
	assert_output(f->out_path, list);
	free(list);
	assert_int_equal(run_tool(f, f->log_path, "--points", NULL), 0);
	assert_output(f->out_path, "2\n3\n8\n");
}

/* --to 8 --drop-seed 5: the drops of lwlog_plan_drops, printed and applied. */
static void test_command_drops(void **state)
{
	struct fixture *f = *state;
	unsigned char drop[NR_ENTRIES], *want;
	char drops[256] = "", *d = drops;
	struct lwlog log;

	if (!getenv("LOG_REPLAY"))
		skip();
	open_log(f, &log);
	lwlog_plan_drops(&log, 8, 5, drop);
	lwlog_close(&log);
	for (size_t i = 0; i < 8; i++)
		if (drop[i])
			d += sprintf(d, "dropped %zu\n", i);
	assert_int_equal(run_tool(f, f->log_path, f->target_path, "--to", "8", "--drop-seed", "5",
				  "--discard-zero", NULL),
			 0);
	assert_output(f->out_path, drops);
	want = model(f, 8, drop, 1);
	assert_target_is(f, want);
	free(want);
}

/* Refusals exit 1 with a message and write nothing; bad usage exits 2. */
static void test_command_refusals(void **state)
{
	struct fixture *f = *state;

	if (!getenv("LOG_REPLAY"))
		skip();
	assert_int_equal(run_tool(f, f->log_path, f->target_path, "--to", "13", NULL), 1);
	assert_output(f->err_path, "the log has 12");
	assert_int_equal(truncate(f->target_path, 15 * f->ss), 0);
	assert_int_equal(run_tool(f, f->log_path, f->target_path, "--to", "12", NULL), 1);
	assert_output(f->err_path, "entry 10: write of sectors 15..15");
	write_target(f);
	f->log[3] ^= 1;
	write_file(f->log_path, f->log, f->log_len);
	f->log[3] ^= 1;
	assert_int_equal(run_tool(f, f->log_path, f->target_path, "--to", "12", NULL), 1);
	assert_output(f->err_path, "bad magic");
	assert_target_untouched(f);
	write_file(f->log_path, f->log, f->log_len - 1);
	assert_int_equal(run_tool(f, f->log_path, f->target_path, "--to", "1", NULL), 1);
	assert_output(f->err_path, "truncated log");
	assert_target_untouched(f);

	assert_int_equal(run_tool(f, f->log_path, "--to", "3", NULL), 2);
	assert_int_equal(run_tool(f, f->log_path, f->target_path, NULL), 2);
	assert_int_equal(run_tool(f, f->log_path, f->target_path, "--to", "x", NULL), 2);
	assert_int_equal(run_tool(f, f->log_path, "--list", "--drop-seed", "1", NULL), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_flags),
		cmocka_unit_test_setup_teardown(test_decode, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_decode, setup_4096, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_points, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_points, setup_4096, teardown),
		cmocka_unit_test_setup_teardown(test_last_barrier, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_replay_each_entry, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_replay_each_entry, setup_4096, teardown),
		cmocka_unit_test_setup_teardown(test_drop_seed, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_drop_seed, setup_4096, teardown),
		cmocka_unit_test_setup_teardown(test_bad_logs, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_bad_logs, setup_4096, teardown),
		cmocka_unit_test_setup_teardown(test_target_checks, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_command_list, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_command_list, setup_4096, teardown),
		cmocka_unit_test_setup_teardown(test_command_drops, setup_512, teardown),
		cmocka_unit_test_setup_teardown(test_command_drops, setup_4096, teardown),
		cmocka_unit_test_setup_teardown(test_command_refusals, setup_512, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
