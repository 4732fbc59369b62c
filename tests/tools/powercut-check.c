/*
 * powercut-check: a test tool, not part of imgdev: takes a dm-log-writes log
 * of one imgdev run (provision or ensure) and the device's starting state,
 * builds every power-cut state the test asks for and judges each one, in
 * one process (the user-mode Linux guest pays about 40 ms for each process
 * it starts, and the suite checks thousands of states).
 *
 *   powercut-check LOG START WORK [--image NAME:HEX:FILE]... [--seeds K]
 *                  [--discard-zero] [--ensure] [--actual FILE]
 *
 * START is the device's bytes before the run; WORK a scratch file on a
 * tmpfs (as START must be), made the size of START, that holds each state in
 * turn; WORK.base (the state at the last flush) and WORK.log (the data the
 * log's writes carry) are scratch files too, removed at the end. The
 * states, as log-replay (log-replay.c) builds them, which a bad state's name
 * reproduces with:
 *
 *   start            every write lost (--to 0)
 *   point I          right after flush or FUA entry I (--to I+1)
 *   to N seed S      the writes and discards after the last flush or FUA
 *                    before entry N, each lost or not as --drop-seed S
 *                    chooses, for S = 1..K, for each such stretch of two
 *                    or more of them (a seed that loses none or all of them,
 *                    or the same ones as an earlier seed, gives a state
 *                    already checked: counted as tried, not checked again)
 *   end              every entry of the log (--to its length), when writes
 *                    follow the last flush (a killed run's, logged when the
 *                    target was removed)
 *
 * The judgement of each state, from its sector 0 (the name read from bytes
 * 10-41 as they are; the record through libimgdev's imgdev_header_read) and
 * libimgdev's imgdev_verify on WORK:
 *
 *   - a header naming no image (all-zero hash) has a record in state
 *     "writing", and verify finds nothing to check against (-ENODATA);
 *   - a header naming an image has a "complete" record for an image given
 *     with --image, of its size, whose payload (from the header's data
 *     offset) is that image byte for byte, and verify passes;
 *   - no header at all: verify finds nothing to check against.
 *
 * With --ensure (a log of `imgdev ensure`, which names an image without
 * writing it): sector 0 is byte for byte START's or the one the complete
 * replay leaves, never a mix; nothing past sector 0 differs from START; a
 * header may name an image without a record (what ensure promises), but a
 * "complete" record is judged as above (so it never names an image that was
 * not written).
 *
 * --actual FILE: the device's bytes after the run, which must equal the
 * complete replay (the log holds everything the device was told).
 *
 * Prints a line per bad state ("bad STATE: WHY", the first 20), then
 *   counts points=P subsets=S new=N checked=C bad=B final=KIND KIND=COUNT...
 * (points: flush and FUA entries; subsets: seeds tried; new: the distinct
 * states they gave, checked; checked: every state checked, start and end
 * included; final: the kind of the complete replay's state, the device's
 * after the run). Exits 0 when no state is bad, 1 when one is or on error,
 * 2 on bad usage.
 *
 * In the guest each page a process touches for the first time costs some
 * 250 us (a fault the user-mode kernel handles, measured), far more than
 * the kernel's own copies: the states are built from file to file in the
 * kernel (copy_file_range, holes punched for zeros), a stretch's subset with
 * a few calls (contiguous discards at once, the stretch undone in one
 * copy), and what is compared is read through two small buffers. Heap
 * memory is kept (mallopt) so that libimgdev's buffers, allocated at each
 * verify, are not new pages each time.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>

#include <imgdev.h>

#include "log_replay_lib.h"

#define MAX_IMAGES 8
#define MAX_KINDS 16
#define BAD_SHOWN 20
#define SECTOR 512
#define BUF_SIZE (256u << 10)

struct image {
	const char *name;
	uint8_t hash[IMGDEV_HASH_SIZE];
	int fd;
	uint64_t size;
};

struct kind {
	char name[64];
	uint64_t count;
};

struct run {
	struct lwlog log;
	struct imgdev_ctx *ctx;
	const char *work_path;
	char *base_path, *data_path;
	int start_fd, work_fd, base_fd, data_fd;
	uint64_t size;
	uint64_t *data_at; /* where each write's bytes are in WORK.log */
	unsigned char *buf1, *buf2, *zeros; /* BUF_SIZE each */
	struct image images[MAX_IMAGES];
	int nimages;
	unsigned opts;
	bool ensure;
	unsigned char old_sector0[SECTOR], new_sector0[SECTOR];
	struct kind kinds[MAX_KINDS];
	int nkinds;
	char last_kind[64];
	uint64_t points, subsets, fresh, checked, bad;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("powercut-check: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "powercut-check: %s\n", why);
	fprintf(stderr, "usage: powercut-check LOG START WORK [--image NAME:HEX:FILE]... [--seeds K]\n"
			"                      [--discard-zero] [--ensure] [--actual FILE]\n");
	return 2;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

static void pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
	for (size_t done = 0; done < len;) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (r <= 0)
			die("%s: cannot read at byte %" PRIu64 ": %s", what, off + done,
			    r < 0 ? strerror(errno) : "short");
		done += (size_t)r;
	}
}

static void pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *what)
{
	for (size_t done = 0; done < len;) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (r <= 0)
			die("%s: cannot write at byte %" PRIu64 ": %s", what, off + done,
			    r < 0 ? strerror(errno) : "short");
		done += (size_t)r;
	}
}

/* LEN bytes from FROM_OFF of FROM to TO_OFF of TO, in the kernel where it can. */
static void copy_range(struct run *r, int from, uint64_t from_off, int to, uint64_t to_off,
		       uint64_t len)
{
	while (len) {
		loff_t in = (loff_t)from_off, out = (loff_t)to_off;
		ssize_t n = copy_file_range(from, &in, to, &out, len, 0);

		if (n <= 0) {
			size_t chunk = len < BUF_SIZE ? (size_t)len : BUF_SIZE;

			if (n < 0 && errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
			    errno != EOPNOTSUPP)
				die("copy_file_range: %s", strerror(errno));
			pread_full(from, r->buf1, chunk, from_off, "copy");
			pwrite_full(to, r->buf1, chunk, to_off, "copy");
			n = (ssize_t)chunk;
		}
		from_off += (uint64_t)n;
		to_off += (uint64_t)n;
		len -= (uint64_t)n;
	}
}

/* Zeros over LEN bytes at OFF of FD: a hole punched, or zeros written. */
static void zero_range(struct run *r, int fd, uint64_t off, uint64_t len)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return;
	for (uint64_t done = 0; done < len;) {
		size_t chunk = len - done < BUF_SIZE ? (size_t)(len - done) : BUF_SIZE;

		pwrite_full(fd, r->zeros, chunk, off + done, "zero");
		done += chunk;
	}
}

/* The first byte at which LEN bytes at A_OFF of A_FD and B_OFF of B_FD differ, or LEN. */
static uint64_t first_diff(struct run *r, int a_fd, uint64_t a_off, int b_fd, uint64_t b_off,
			   uint64_t len)
{
	for (uint64_t done = 0; done < len;) {
		size_t chunk = len - done < BUF_SIZE ? (size_t)(len - done) : BUF_SIZE;

		pread_full(a_fd, r->buf1, chunk, a_off + done, "compare");
		pread_full(b_fd, r->buf2, chunk, b_off + done, "compare");
		if (memcmp(r->buf1, r->buf2, chunk) != 0) {
			size_t i = 0;

			while (r->buf1[i] == r->buf2[i])
				i++;
			return done + i;
		}
		done += chunk;
	}
	return len;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* NAME:HEX:FILE, HEX 64 lowercase hex digits. */
static int parse_image(const char *arg, struct image *img)
{
	const char *c1 = strchr(arg, ':'), *hex, *file;
	struct stat st;

	if (!c1 || c1 == arg || strlen(c1 + 1) < 66 || c1[65] != ':')
		return -1;
	hex = c1 + 1;
	file = c1 + 66;
	for (int i = 0; i < IMGDEV_HASH_SIZE; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		img->hash[i] = (uint8_t)(hi << 4 | lo);
	}
	img->name = strndup(arg, (size_t)(c1 - arg));
	img->fd = open(file, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0 || fstat(img->fd, &st) < 0)
		die("%s: %s", file, strerror(errno));
	img->size = (uint64_t)st.st_size;
	return 0;
}

static bool is_io(const struct lwlog_entry *e)
{
	return !(e->flags & LWLOG_MARK) && e->nr_sectors > 0;
}

static bool is_zeroing(const struct run *r, const struct lwlog_entry *e)
{
	return (e->flags & LWLOG_DISCARD) && (r->opts & LWLOG_DISCARD_ZERO);
}

static uint64_t off_of(const struct run *r, const struct lwlog_entry *e)
{
	return e->sector * r->log.super.sectorsize;
}

static uint64_t len_of(const struct run *r, const struct lwlog_entry *e)
{
	return e->nr_sectors * r->log.super.sectorsize;
}

/*
 * The entries FROM..END-1 not marked in DROP (NULL: all) onto FD, in order;
 * discards that zero and follow one another on the device go as one.
 */
static void apply_range(struct run *r, int fd, uint64_t from, uint64_t end,
			const unsigned char *drop)
{
	uint64_t zoff = 0, zlen = 0;

	for (uint64_t i = from; i < end; i++) {
		const struct lwlog_entry *e = &r->log.entries[i];

		if (!is_io(e) || (drop && drop[i]))
			continue;
		if (is_zeroing(r, e) && zlen && zoff + zlen == off_of(r, e)) {
			zlen += len_of(r, e);
			continue;
		}
		if (zlen)
			zero_range(r, fd, zoff, zlen);
		zlen = 0;
		if (is_zeroing(r, e)) {
			zoff = off_of(r, e);
			zlen = len_of(r, e);
		} else if (!(e->flags & LWLOG_DISCARD)) {
			copy_range(r, r->data_fd, r->data_at[i], fd, off_of(r, e), len_of(r, e));
		}
	}
	if (zlen)
		zero_range(r, fd, zoff, zlen);
}

/* Entry I's effect on the 512 bytes of sector 0 in S0. */
static void apply_sector0(struct run *r, unsigned char *s0, uint64_t i)
{
	const struct lwlog_entry *e = &r->log.entries[i];

	if (!is_io(e) || e->sector != 0)
		return;
	if (!(e->flags & LWLOG_DISCARD))
		pread_full(r->data_fd, s0, SECTOR, r->data_at[i], "the log's data");
	else if (is_zeroing(r, e))
		memset(s0, 0, SECTOR);
}

/* The writes' bytes from the log into WORK.log, once. */
static void read_log_data(struct run *r)
{
	uint64_t n = r->log.super.nr_entries, at = 0;

	r->data_at = calloc(n ? n : 1, sizeof(*r->data_at));
	if (!r->data_at)
		die("out of memory");
	for (uint64_t i = 0; i < n; i++) {
		const struct lwlog_entry *e = &r->log.entries[i];
		uint64_t len = len_of(r, e);

		if (!is_io(e) || (e->flags & LWLOG_DISCARD))
			continue;
		r->data_at[i] = at;
		for (uint64_t done = 0; done < len;) {
			size_t chunk = len - done < BUF_SIZE ? (size_t)(len - done) : BUF_SIZE;

			pread_full(r->log.fd, r->buf1, chunk, e->data_off + done, "the log");
			pwrite_full(r->data_fd, r->buf1, chunk, at + done, r->data_path);
			done += chunk;
		}
		at += len;
	}
}

static void count_kind(struct run *r, const char *name)
{
	snprintf(r->last_kind, sizeof(r->last_kind), "%s", name);
	for (int k = 0; k < r->nkinds; k++)
		if (strcmp(r->kinds[k].name, name) == 0) {
			r->kinds[k].count++;
			return;
		}
	if (r->nkinds == MAX_KINDS)
		die("too many kinds of state");
	snprintf(r->kinds[r->nkinds].name, sizeof(r->kinds[0].name), "%s", name);
	r->kinds[r->nkinds++].count = 1;
}

static const char *commit_name(int state)
{
	switch (state) {
	case IMGDEV_COMMIT_NONE: return "none";
	case IMGDEV_COMMIT_WRITING: return "writing";
	case IMGDEV_COMMIT_COMPLETE: return "complete";
	case IMGDEV_COMMIT_CORRUPT: return "corrupt";
	case IMGDEV_COMMIT_NEWER: return "newer";
	}
	return "?";
}

static const char *verify_name(int rc)
{
	static char buf[32];

	if (rc == 0)
		return "ok";
	if (rc == -ENODATA)
		return "ENODATA";
	if (rc == -EBADMSG)
		return "EBADMSG";
	snprintf(buf, sizeof(buf), "%s", strerror(-rc));
	return buf;
}

/*
 * Judge the state WORK holds: its kind in KIND, and why it is bad in WHY
 * (empty when it is not).
 */
static void judge(struct run *r, char *kind, size_t kind_len, char *why, size_t why_len)
{
	static const uint8_t zeros[IMGDEV_HASH_SIZE];
	struct imgdev_verify_opts vopts = IMGDEV_VERIFY_OPTS_INIT;
	struct imgdev_verify_result vres;
	struct imgdev_header h;
	unsigned char s0[SECTOR];
	const uint8_t *name = s0 + 10;
	struct image *img = NULL;
	uint64_t d;
	int vrc, rc;

	why[0] = '\0';
	pread_full(r->work_fd, s0, SECTOR, 0, r->work_path);
	if (r->ensure) {
		bool old = memcmp(s0, r->old_sector0, SECTOR) == 0;
		bool new = memcmp(s0, r->new_sector0, SECTOR) == 0;

		snprintf(kind, kind_len, "%s", old ? "old_header" : new ? "new_header" : "mix");
		if (!old && !new) {
			snprintf(why, why_len, "sector 0 is neither the old one nor the new one");
			return;
		}
		d = first_diff(r, r->work_fd, SECTOR, r->start_fd, SECTOR, r->size - SECTOR);
		if (d < r->size - SECTOR) {
			snprintf(why, why_len, "byte %" PRIu64 " past sector 0 changed", d + SECTOR);
			return;
		}
	}
	rc = imgdev_header_read(r->ctx, r->work_path, &h);
	if (rc < 0) {
		snprintf(kind, kind_len, "unreadable");
		snprintf(why, why_len, "header: %s", imgdev_ctx_last_error(r->ctx));
		return;
	}
	vopts.threads = 1;
	vrc = imgdev_verify(r->ctx, r->work_path, &vopts, &vres);
	if (!h.present) {
		if (!r->ensure)
			snprintf(kind, kind_len, "blank");
		if (vrc != -ENODATA)
			snprintf(why, why_len, "no header, verify %s, not ENODATA", verify_name(vrc));
		return;
	}
	if (memcmp(name, zeros, sizeof(zeros)) == 0) {
		if (!r->ensure)
			snprintf(kind, kind_len, "writing");
		if (h.commit_state != IMGDEV_COMMIT_WRITING)
			snprintf(why, why_len, "no image named, record '%s'", commit_name(h.commit_state));
		else if (vrc != -ENODATA)
			snprintf(why, why_len, "record writing, verify %s, not ENODATA", verify_name(vrc));
		return;
	}
	for (int i = 0; i < r->nimages; i++)
		if (memcmp(r->images[i].hash, name, IMGDEV_HASH_SIZE) == 0)
			img = &r->images[i];
	if (!r->ensure)
		snprintf(kind, kind_len, "%s", img ? img->name : "unknown");
	if (r->ensure && h.commit_state == IMGDEV_COMMIT_NONE) {
		/* What ensure promises: a name, no record, nothing to verify. */
		if (vrc != -ENODATA)
			snprintf(why, why_len, "names an image without a record, verify %s, not ENODATA",
				 verify_name(vrc));
		return;
	}
	if (!img) {
		char hex[72];

		imgdev_format_hash(name, hex);
		snprintf(why, why_len, "header names an image that was not written (%s), record '%s'",
			 hex, commit_name(h.commit_state));
		return;
	}
	if (h.commit_state != IMGDEV_COMMIT_COMPLETE) {
		snprintf(why, why_len, "names %s, record '%s'", img->name, commit_name(h.commit_state));
		return;
	}
	if (h.image_size != img->size) {
		snprintf(why, why_len, "names %s, record's image size %" PRIu64 ", not %" PRIu64,
			 img->name, h.image_size, img->size);
		return;
	}
	if (h.data_offset > r->size || r->size - h.data_offset < img->size) {
		snprintf(why, why_len, "names %s at data offset %" PRIu64 ", past the device's end",
			 img->name, h.data_offset);
		return;
	}
	d = first_diff(r, r->work_fd, h.data_offset, img->fd, 0, img->size);
	if (d < img->size) {
		snprintf(why, why_len,
			 "header names %s over a payload that is not %s (payload byte %" PRIu64 " differs)",
			 img->name, img->name, d);
		return;
	}
	if (vrc != 0)
		snprintf(why, why_len, "names %s, verify %s: %s", img->name, verify_name(vrc),
			 imgdev_ctx_last_error(r->ctx));
}

static void check(struct run *r, const char *label)
{
	char kind[64], why[512];

	judge(r, kind, sizeof(kind), why, sizeof(why));
	r->checked++;
	count_kind(r, kind);
	if (!why[0])
		return;
	if (r->bad++ < BAD_SHOWN)
		printf("bad %s: %s\n", label, why);
}

/* FNV-1a of the stretch's drop choices. */
static uint64_t mask_key(const unsigned char *drop, uint64_t from, uint64_t end)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (uint64_t i = from; i < end; i++)
		h = (h ^ drop[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * The seeded subsets of the stretch FROM..END-1 (the entries after the last
 * barrier before END), over the base state (the state before the stretch),
 * which WORK holds on entry and on return.
 */
static void subsets(struct run *r, uint64_t from, uint64_t end, uint64_t ios, uint64_t seeds)
{
	unsigned char *drop = xmalloc(end);
	uint64_t *keys = xmalloc(seeds * sizeof(*keys)), nkeys = 0, lo = UINT64_MAX, hi = 0;
	/* Keeping every write gives the next point's state unless entry END is a write itself. */
	bool keep_all_new = end < r->log.super.nr_entries && is_io(&r->log.entries[end]);
	char label[64];

	/* What the stretch touches, undone in one copy after each subset. */
	for (uint64_t i = from; i < end; i++) {
		const struct lwlog_entry *e = &r->log.entries[i];

		if (!is_io(e))
			continue;
		if (off_of(r, e) < lo)
			lo = off_of(r, e);
		if (off_of(r, e) + len_of(r, e) > hi)
			hi = off_of(r, e) + len_of(r, e);
	}
	for (uint64_t seed = 1; seed <= seeds; seed++) {
		uint64_t dropped = lwlog_plan_drops(&r->log, end, seed, drop), key;
		bool seen = false;

		r->subsets++;
		if (dropped == ios || (dropped == 0 && !keep_all_new))
			continue;
		key = mask_key(drop, from, end);
		for (uint64_t k = 0; k < nkeys && !seen; k++)
			seen = keys[k] == key;
		if (seen)
			continue;
		keys[nkeys++] = key;
		r->fresh++;
		apply_range(r, r->work_fd, from, end, drop);
		snprintf(label, sizeof(label), "to %" PRIu64 " seed %" PRIu64, end, seed);
		check(r, label);
		copy_range(r, r->base_fd, lo, r->work_fd, lo, hi - lo);
	}
	free(keys);
	free(drop);
}

static void check_all(struct run *r, uint64_t seeds)
{
	uint64_t n = r->log.super.nr_entries, from = 0;
	char label[64];

	check(r, "start");
	while (from < n) {
		uint64_t end = from, ios = 0, upto;

		while (end < n && !(r->log.entries[end].flags & (LWLOG_FLUSH | LWLOG_FUA)))
			ios += is_io(&r->log.entries[end++]);
		if (ios >= 2 || (ios == 1 && end < n && is_io(&r->log.entries[end])))
			subsets(r, from, end, ios, seeds);
		/* The stretch and the barrier that ends it, onto the base state and WORK. */
		upto = end < n ? end + 1 : n;
		apply_range(r, r->base_fd, from, upto, NULL);
		apply_range(r, r->work_fd, from, upto, NULL);
		if (end < n) {
			r->points++;
			snprintf(label, sizeof(label), "point %" PRIu64, end);
			check(r, label);
		} else if (ios > 0) {
			check(r, "end");
		}
		from = end + 1;
	}
}

/* A scratch file at PATH; with COPY, START's bytes (else empty). */
static int scratch(struct run *r, const char *path, bool copy)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (copy && ftruncate(fd, (off_t)r->size) < 0))
		die("%s: %s", path, strerror(errno));
	if (copy)
		copy_range(r, r->start_fd, 0, fd, 0, r->size);
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = { { "image", required_argument, NULL, 'i' },
						  { "seeds", required_argument, NULL, 's' },
						  { "discard-zero", no_argument, NULL, 'z' },
						  { "ensure", no_argument, NULL, 'e' },
						  { "actual", required_argument, NULL, 'a' },
						  { "help", no_argument, NULL, 'h' },
						  { NULL, 0, NULL, 0 } };
	struct run r = { 0 };
	const char *actual = NULL, *start_path;
	uint64_t seeds = 16, n;
	struct stat st;
	char *end;
	int c;

	/* Freed memory stays this process's, faulted in: see above. */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (r.nimages == MAX_IMAGES)
				return usage("too many --image");
			if (parse_image(optarg, &r.images[r.nimages++]) < 0)
				return usage("--image wants NAME:HEX:FILE, HEX 64 hex digits");
			break;
		case 's':
			errno = 0;
			seeds = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || seeds > 1000000)
				return usage("--seeds wants a number up to 1000000");
			break;
		case 'z': r.opts |= LWLOG_DISCARD_ZERO; break;
		case 'e': r.ensure = true; break;
		case 'a': actual = optarg; break;
		default: return usage(NULL);
		}
	}
	if (argc - optind != 3)
		return usage("LOG, START and WORK are needed");
	start_path = argv[optind + 1];
	r.work_path = argv[optind + 2];
	r.buf1 = xmalloc(BUF_SIZE);
	r.buf2 = xmalloc(BUF_SIZE);
	r.zeros = calloc(1, BUF_SIZE);
	if (!r.zeros || asprintf(&r.base_path, "%s.base", r.work_path) < 0 ||
	    asprintf(&r.data_path, "%s.log", r.work_path) < 0)
		die("out of memory");

	if (lwlog_open(&r.log, argv[optind]) < 0)
		die("%s: %s", argv[optind], r.log.err);
	r.start_fd = open(start_path, O_RDONLY | O_CLOEXEC);
	if (r.start_fd < 0 || fstat(r.start_fd, &st) < 0)
		die("%s: %s", start_path, strerror(errno));
	r.size = (uint64_t)st.st_size;
	if (r.size < SECTOR)
		die("%s: shorter than a sector", start_path);
	n = r.log.super.nr_entries;
	if (lwlog_check_target(&r.log, n, r.size) < 0)
		die("%s: %s", start_path, r.log.err);
	r.data_fd = scratch(&r, r.data_path, false);
	read_log_data(&r);
	r.work_fd = scratch(&r, r.work_path, true);
	r.base_fd = scratch(&r, r.base_path, true);
	if (imgdev_ctx_new(&r.ctx) < 0)
		die("cannot make a libimgdev context");

	/* Sector 0 before and after the complete replay, for --ensure. */
	pread_full(r.start_fd, r.old_sector0, SECTOR, 0, start_path);
	memcpy(r.new_sector0, r.old_sector0, SECTOR);
	for (uint64_t i = 0; i < n; i++)
		apply_sector0(&r, r.new_sector0, i);

	check_all(&r, seeds);

	/* The base state is now the complete replay's: the device's, if the log has all. */
	if (actual) {
		int afd = open(actual, O_RDONLY | O_CLOEXEC);
		uint64_t d;

		if (afd < 0 || fstat(afd, &st) < 0)
			die("%s: %s", actual, strerror(errno));
		if ((uint64_t)st.st_size != r.size)
			die("%s: %" PRIu64 " bytes, the starting state %" PRIu64, actual,
			    (uint64_t)st.st_size, r.size);
		d = first_diff(&r, afd, 0, r.base_fd, 0, r.size);
		if (d < r.size) {
			r.bad++;
			printf("bad actual: the device after the run differs from the complete replay at byte %" PRIu64
			       "\n",
			       d);
		}
		close(afd);
	}

	printf("counts points=%" PRIu64 " subsets=%" PRIu64 " new=%" PRIu64 " checked=%" PRIu64
	       " bad=%" PRIu64 " final=%s",
	       r.points, r.subsets, r.fresh, r.checked, r.bad, r.last_kind);
	for (int k = 0; k < r.nkinds; k++)
		printf(" %s=%" PRIu64, r.kinds[k].name, r.kinds[k].count);
	printf("\n");
	unlink(r.base_path);
	unlink(r.data_path);
	imgdev_ctx_free(r.ctx);
	lwlog_close(&r.log);
	return r.bad ? 1 : 0;
}
