/*
 * log_replay_lib.c: a test tool's code, not imgdev's: decoding a dm-log-writes
 * log (layout in log_replay_lib.h) and replaying its entries onto a target,
 * with a seeded choice of which unflushed writes a power cut loses.
 *
 * Divided into: little-endian decoding; opening the log (the super block,
 * then every entry's header, each checked to lie within the log); checks
 * against the target; the drop plan; the replay; printing.
 */
#include "log_replay_lib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (1u << 20)

__attribute__((format(printf, 2, 3))) static int fail(struct lwlog *log, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(log->err, sizeof(log->err), fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void lwlog_decode_super(const unsigned char *buf, struct lwlog_super *sb)
{
	sb->magic = get_le64(buf);
	sb->version = get_le64(buf + 8);
	sb->nr_entries = get_le64(buf + 16);
	sb->sectorsize = get_le32(buf + 24);
}

void lwlog_decode_entry(const unsigned char *buf, struct lwlog_entry *e)
{
	e->sector = get_le64(buf);
	e->nr_sectors = get_le64(buf + 8);
	e->flags = get_le64(buf + 16);
	e->data_len = get_le64(buf + 24);
	e->data_off = 0;
	e->mark = NULL;
}

/* Read LEN bytes at OFF, looping over short reads. Returns the bytes read, -1 on error. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Write LEN bytes at OFF, looping over short writes. 0 on success, -1 on error. */
static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		done += (size_t)w;
	}
	return 0;
}

/* The size in bytes of the regular file or block device open at FD. 0 or -1 (errno). */
static int fd_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -1 : 0;
	errno = EINVAL;
	return -1;
}

static int is_io(const struct lwlog_entry *e)
{
	return !(e->flags & LWLOG_MARK) && e->nr_sectors > 0;
}

static int is_power_of_2(uint32_t v)
{
	return (v & (v - 1)) == 0;
}

static int read_super(struct lwlog *log)
{
	unsigned char buf[LWLOG_SUPER_LEN];
	struct lwlog_super *sb = &log->super;
	ssize_t r = pread_full(log->fd, buf, sizeof(buf), 0);
	uint64_t room;

	if (r < 0)
		return fail(log, "cannot read the super block: %s", strerror(errno));
	if ((size_t)r < sizeof(buf))
		return fail(log, "truncated log: %zd bytes, shorter than a super block", r);
	lwlog_decode_super(buf, sb);
	if (sb->magic != LWLOG_MAGIC)
		return fail(log, "not a dm-log-writes log: bad magic 0x%" PRIx64 " (want 0x%llx)",
			    sb->magic, LWLOG_MAGIC);
	if (sb->version != LWLOG_VERSION)
		return fail(log, "unsupported log version %" PRIu64 " (want %d)", sb->version,
			    LWLOG_VERSION);
	if (sb->sectorsize < 512 || sb->sectorsize > 65536 || !is_power_of_2(sb->sectorsize))
		return fail(log, "bad sector size %" PRIu32 " (want a power of 2, 512 to 65536)",
			    sb->sectorsize);
	/* Each entry takes at least a sector, after the super block's. */
	room = log->size / sb->sectorsize;
	room = room ? room - 1 : 0;
	if (sb->nr_entries > room)
		return fail(log,
			    "truncated log: the super block says %" PRIu64 " entries, its %" PRIu64
			    " bytes hold at most %" PRIu64,
			    sb->nr_entries, log->size, room);
	return 0;
}

/* Check a decoded entry's own fields and take a mark's text from SECT, its header sector. */
static int check_entry(struct lwlog *log, uint64_t i, struct lwlog_entry *e, const unsigned char *sect)
{
	uint32_t ss = log->super.sectorsize;

	if (e->flags & LWLOG_MARK) {
		if (e->data_len > ss - LWLOG_ENTRY_LEN)
			return fail(log,
				    "entry %" PRIu64 ": a mark of %" PRIu64
				    " bytes does not fit its %" PRIu32 "-byte sector",
				    i, e->data_len, ss);
		e->mark = strndup((const char *)sect + LWLOG_ENTRY_LEN, (size_t)e->data_len);
		if (!e->mark)
			return fail(log, "entry %" PRIu64 ": %s", i, strerror(errno));
		return 0;
	}
	if (e->data_len)
		return fail(log,
			    "entry %" PRIu64 ": %" PRIu64 " bytes of inline data (a DAX write)"
			    " are not supported",
			    i, e->data_len);
	if (e->nr_sectors > UINT64_MAX / ss)
		return fail(log, "entry %" PRIu64 ": absurd length of %" PRIu64 " sectors", i,
			    e->nr_sectors);
	return 0;
}

/* Read entry I's header at *POS (SECT holds one sector) and move *POS past its data. */
static int read_entry(struct lwlog *log, uint64_t i, uint64_t *pos, unsigned char *sect)
{
	struct lwlog_entry *e = &log->entries[i];
	uint32_t ss = log->super.sectorsize;
	uint64_t data = 0;
	ssize_t r;

	if (*pos > log->size || log->size - *pos < ss)
		return fail(log,
			    "truncated log: entry %" PRIu64 " of %" PRIu64
			    " would start at byte %" PRIu64 ", the log has %" PRIu64,
			    i, log->super.nr_entries, *pos, log->size);
	r = pread_full(log->fd, sect, ss, *pos);
	if (r < 0)
		return fail(log, "entry %" PRIu64 ": cannot read: %s", i, strerror(errno));
	if ((size_t)r < ss)
		return fail(log, "truncated log: entry %" PRIu64 " at byte %" PRIu64, i, *pos);
	lwlog_decode_entry(sect, e);
	if (check_entry(log, i, e, sect) < 0)
		return -1;
	e->data_off = *pos + ss;
	if (!(e->flags & LWLOG_DISCARD) && !(e->flags & LWLOG_MARK))
		data = e->nr_sectors * ss;
	if (data > log->size - e->data_off)
		return fail(log,
			    "truncated log: entry %" PRIu64 "'s %" PRIu64 " bytes at byte %" PRIu64
			    " end past the log's %" PRIu64,
			    i, data, e->data_off, log->size);
	*pos = e->data_off + data;
	return 0;
}

int lwlog_open(struct lwlog *log, const char *path)
{
	unsigned char *sect = NULL;
	uint64_t pos;
	int rc = -1;

	memset(log, 0, sizeof(*log));
	log->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (log->fd < 0)
		return fail(log, "cannot open: %s", strerror(errno));
	if (fd_size(log->fd, &log->size) < 0)
		return fail(log, "not a regular file or block device: %s", strerror(errno));
	if (read_super(log) < 0)
		return -1;
	log->entries =
		calloc(log->super.nr_entries ? log->super.nr_entries : 1, sizeof(*log->entries));
	sect = malloc(log->super.sectorsize);
	if (!log->entries || !sect) {
		fail(log, "%s", strerror(ENOMEM));
		goto out;
	}
	pos = log->super.sectorsize;
	for (uint64_t i = 0; i < log->super.nr_entries; i++)
		if (read_entry(log, i, &pos, sect) < 0)
			goto out;
	rc = 0;
out:
	free(sect);
	return rc;
}

void lwlog_close(struct lwlog *log)
{
	if (log->entries)
		for (uint64_t i = 0; i < log->super.nr_entries; i++)
			free(log->entries[i].mark);
	free(log->entries);
	log->entries = NULL;
	if (log->fd >= 0)
		close(log->fd);
	log->fd = -1;
}

int64_t lwlog_last_barrier(const struct lwlog *log, uint64_t n)
{
	for (uint64_t i = n; i > 0; i--)
		if (log->entries[i - 1].flags & (LWLOG_FLUSH | LWLOG_FUA))
			return (int64_t)(i - 1);
	return -1;
}

int lwlog_check_target(struct lwlog *log, uint64_t n, uint64_t target_size)
{
	uint64_t ss = log->super.sectorsize;

	if (n > log->super.nr_entries)
		return fail(log, "cannot replay %" PRIu64 " entries: the log has %" PRIu64, n,
			    log->super.nr_entries);
	for (uint64_t i = 0; i < n; i++) {
		const struct lwlog_entry *e = &log->entries[i];
		uint64_t end_sector = e->sector + e->nr_sectors;

		if (!is_io(e))
			continue;
		if (end_sector < e->sector || end_sector > target_size / ss)
			return fail(log,
				    "entry %" PRIu64 ": %s of sectors %" PRIu64 "..%" PRIu64
				    " (%" PRIu64 " bytes each) goes past the target's end"
				    " (%" PRIu64 " bytes)",
				    i, (e->flags & LWLOG_DISCARD) ? "discard" : "write", e->sector,
				    end_sector - 1, ss, target_size);
	}
	return 0;
}

/* splitmix64: small, and the same sequence for a seed on every machine. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t lwlog_plan_drops(const struct lwlog *log, uint64_t n, uint64_t seed, unsigned char *drop)
{
	uint64_t first = (uint64_t)(lwlog_last_barrier(log, n) + 1);
	uint64_t state = seed, dropped = 0;

	for (uint64_t i = 0; i < n; i++) {
		drop[i] = 0;
		if (i < first || !is_io(&log->entries[i]))
			continue;
		drop[i] = (unsigned char)(next_random(&state) >> 63);
		dropped += drop[i];
	}
	return dropped;
}

/* Copy entry I's data from the log to the target open at FD through BUF. */
static int apply_write(struct lwlog *log, uint64_t i, int fd, unsigned char *buf)
{
	const struct lwlog_entry *e = &log->entries[i];
	uint64_t ss = log->super.sectorsize, len = e->nr_sectors * ss;

	for (uint64_t done = 0; done < len;) {
		size_t chunk = len - done < COPY_CHUNK ? (size_t)(len - done) : COPY_CHUNK;
		ssize_t r = pread_full(log->fd, buf, chunk, e->data_off + done);

		if (r < 0 || (size_t)r < chunk)
			return fail(log, "entry %" PRIu64 ": cannot read its data from the log: %s",
				    i, r < 0 ? strerror(errno) : "short read");
		if (pwrite_full(fd, buf, chunk, e->sector * ss + done) < 0)
			return fail(log, "entry %" PRIu64 ": cannot write at byte %" PRIu64 ": %s",
				    i, e->sector * ss + done, strerror(errno));
		done += chunk;
	}
	return 0;
}

/* Write zeros over entry I's discarded range; BUF holds COPY_CHUNK zeros. */
static int apply_discard_zero(struct lwlog *log, uint64_t i, int fd, const unsigned char *buf)
{
	const struct lwlog_entry *e = &log->entries[i];
	uint64_t ss = log->super.sectorsize, len = e->nr_sectors * ss;

	for (uint64_t done = 0; done < len;) {
		size_t chunk = len - done < COPY_CHUNK ? (size_t)(len - done) : COPY_CHUNK;

		if (pwrite_full(fd, buf, chunk, e->sector * ss + done) < 0)
			return fail(log, "entry %" PRIu64 ": cannot zero at byte %" PRIu64 ": %s",
				    i, e->sector * ss + done, strerror(errno));
		done += chunk;
	}
	return 0;
}

int lwlog_replay(struct lwlog *log, int fd, uint64_t n, const unsigned char *drop, unsigned opts)
{
	unsigned char *buf = malloc(COPY_CHUNK), *zeros = calloc(1, COPY_CHUNK);
	int rc = -1;

	if (!buf || !zeros) {
		fail(log, "%s", strerror(ENOMEM));
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		const struct lwlog_entry *e = &log->entries[i];

		if (!is_io(e) || (drop && drop[i]))
			continue;
		if (!(e->flags & LWLOG_DISCARD)) {
			if (apply_write(log, i, fd, buf) < 0)
				goto out;
		} else if (opts & LWLOG_DISCARD_ZERO) {
			if (apply_discard_zero(log, i, fd, zeros) < 0)
				goto out;
		}
	}
	if (fsync(fd) < 0) {
		fail(log, "cannot fsync the target: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(buf);
	free(zeros);
	return rc;
}

void lwlog_format_flags(uint64_t flags, char *buf, size_t len)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} names[] = { { LWLOG_FLUSH, "FLUSH" },
		      { LWLOG_FUA, "FUA" },
		      { LWLOG_DISCARD, "DISCARD" },
		      { LWLOG_MARK, "MARK" },
		      { LWLOG_METADATA, "META" } };
	size_t used = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		if (!(flags & names[k].bit))
			continue;
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
					 used ? "|" : "", names[k].name);
		flags &= ~names[k].bit;
	}
	if (flags)
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s0x%" PRIx64,
					 used ? "|" : "", flags);
	if (!used)
		snprintf(buf, len, "-");
}

/* Print a mark's text with anything unprintable (or a line break) as '?'. */
static int print_mark(const char *text, FILE *out)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		if (fputc(*p >= 0x20 && *p < 0x7f ? *p : '?', out) == EOF)
			return -1;
	return 0;
}

int lwlog_print_list(const struct lwlog *log, FILE *out)
{
	uint64_t ss = log->super.sectorsize;
	char flags[64];

	for (uint64_t i = 0; i < log->super.nr_entries; i++) {
		const struct lwlog_entry *e = &log->entries[i];
		uint64_t bytes = 0;

		/* What the entry carries in the log: a mark's text or a write's data. */
		if (e->mark)
			bytes = e->data_len;
		else if (is_io(e) && !(e->flags & LWLOG_DISCARD))
			bytes = e->nr_sectors * ss;
		lwlog_format_flags(e->flags, flags, sizeof(flags));
		if (fprintf(out, "%" PRIu64 " %s %" PRIu64 " %" PRIu64 " %" PRIu64, i, flags,
			    e->sector, e->nr_sectors, bytes) < 0)
			return -1;
		if (e->mark && (fputc(' ', out) == EOF || print_mark(e->mark, out) < 0))
			return -1;
		if (fputc('\n', out) == EOF)
			return -1;
	}
	return 0;
}

int lwlog_print_points(const struct lwlog *log, FILE *out)
{
	for (uint64_t i = 0; i < log->super.nr_entries; i++)
		if ((log->entries[i].flags & (LWLOG_FLUSH | LWLOG_FUA)) &&
		    fprintf(out, "%" PRIu64 "\n", i) < 0)
			return -1;
	return 0;
}
