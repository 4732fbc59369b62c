/*
 * log-replay: a test tool, not part of imgdev: reads a log written by the
 * kernel's dm-log-writes target and lists it, or replays its first N entries
 * onto TARGET (a copy of the device's starting state), optionally losing a
 * seeded random subset of the writes after the last flush or FUA, as a power
 * cut may. The decoding and replay are in log_replay_lib.c.
 *
 *   log-replay LOG [TARGET] --list      one line per entry:
 *                                       INDEX FLAGS SECTOR SECTORS BYTES [MARK]
 *   log-replay LOG [TARGET] --points    the index of every flush and FUA entry
 *   log-replay LOG TARGET --to N [--drop-seed S] [--discard-zero]
 *
 * Everything up to entry N is checked before anything is written. Exits 1
 * with a message on error, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "log_replay_lib.h"

enum verb { VERB_NONE, VERB_LIST, VERB_POINTS, VERB_REPLAY };

struct args {
	enum verb verb;
	const char *log_path;
	const char *target_path;
	uint64_t to;
	int have_seed;
	uint64_t seed;
	unsigned opts;
};

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "log-replay: %s\n", why);
	fprintf(stderr, "usage: log-replay LOG [TARGET] --list\n"
			"       log-replay LOG [TARGET] --points\n"
			"       log-replay LOG TARGET --to N [--drop-seed S] [--discard-zero]\n");
	return 2;
}

/* Parse a whole unsigned decimal (or 0x hex) number. 0, or -1 if it is not one. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || *end ? -1 : 0;
}

static int set_verb(struct args *a, enum verb v)
{
	if (a->verb != VERB_NONE && a->verb != v)
		return -1;
	a->verb = v;
	return 0;
}

/* Fill A from the command line. 0, or the exit status for bad usage. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = { { "list", no_argument, NULL, 'l' },
					      { "points", no_argument, NULL, 'p' },
					      { "to", required_argument, NULL, 't' },
					      { "drop-seed", required_argument, NULL, 's' },
					      { "discard-zero", no_argument, NULL, 'z' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	int c, bad = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': bad |= set_verb(a, VERB_LIST); break;
		case 'p': bad |= set_verb(a, VERB_POINTS); break;
		case 't': bad |= set_verb(a, VERB_REPLAY) | parse_u64(optarg, &a->to); break;
		case 's':
			a->have_seed = 1;
			bad |= parse_u64(optarg, &a->seed);
			break;
		case 'z': a->opts |= LWLOG_DISCARD_ZERO; break;
		case 'h': return usage(NULL);
		default: return usage(NULL);
		}
	}
	if (bad)
		return usage("conflicting verbs or a bad number");
	if (a->verb == VERB_NONE)
		return usage("--list, --points or --to N is needed");
	if (optind >= argc || argc - optind > 2)
		return usage("LOG and TARGET are needed");
	a->log_path = argv[optind];
	a->target_path = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (a->verb == VERB_REPLAY && !a->target_path)
		return usage("--to needs a TARGET");
	if (a->verb != VERB_REPLAY && (a->have_seed || a->opts))
		return usage("--drop-seed and --discard-zero go with --to");
	return 0;
}

/* Open TARGET for writing and get its size. The descriptor, or -1 with a message printed. */
static int open_target(const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "log-replay: %s: cannot open: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0) {
		if (S_ISREG(st.st_mode)) {
			*size = (uint64_t)st.st_size;
			return fd;
		}
		if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, size) == 0)
			return fd;
	}
	fprintf(stderr, "log-replay: %s: not a regular file or block device\n", path);
	close(fd);
	return -1;
}

static int print_drops(const unsigned char *drop, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (drop[i] && printf("dropped %" PRIu64 "\n", i) < 0)
			return -1;
	return 0;
}

/* Check the first N entries against TARGET, then replay them. The exit status. */
static int replay(struct lwlog *log, const struct args *a)
{
	unsigned char *drop = NULL;
	uint64_t size;
	int fd, status = 1;

	/* What the log alone can refuse (N too large) is named after the log. */
	if (lwlog_check_target(log, a->to, UINT64_MAX) < 0) {
		fprintf(stderr, "log-replay: %s: %s\n", a->log_path, log->err);
		return 1;
	}
	fd = open_target(a->target_path, &size);
	if (fd < 0)
		return 1;
	if (lwlog_check_target(log, a->to, size) < 0) {
		fprintf(stderr, "log-replay: %s: %s\n", a->target_path, log->err);
		goto out;
	}
	if (a->have_seed) {
		drop = calloc(a->to ? a->to : 1, 1);
		if (!drop) {
			fprintf(stderr, "log-replay: %s\n", strerror(ENOMEM));
			goto out;
		}
		lwlog_plan_drops(log, a->to, a->seed, drop);
	}
	if (lwlog_replay(log, fd, a->to, drop, a->opts) < 0) {
		fprintf(stderr, "log-replay: %s: %s\n", a->target_path, log->err);
		goto out;
	}
	status = drop && print_drops(drop, a->to) < 0 ? 1 : 0;
out:
	free(drop);
	close(fd);
	return status;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	struct lwlog log;
	int status = parse_args(argc, argv, &a);

	if (status)
		return status;
	if (lwlog_open(&log, a.log_path) < 0) {
		fprintf(stderr, "log-replay: %s: %s\n", a.log_path, log.err);
		lwlog_close(&log);
		return 1;
	}
	if (a.verb == VERB_LIST)
		status = lwlog_print_list(&log, stdout) < 0 ? 1 : 0;
	else if (a.verb == VERB_POINTS)
		status = lwlog_print_points(&log, stdout) < 0 ? 1 : 0;
	else
		status = replay(&log, &a);
	lwlog_close(&log);
	if (fflush(stdout) != 0 && status == 0) {
		fprintf(stderr, "log-replay: cannot write the output: %s\n", strerror(errno));
		status = 1;
	}
	return status;
}
