/*
 * log_replay_lib.h: a test tool's code, not imgdev's: reading a log that the
 * kernel's dm-log-writes target wrote and replaying it onto a copy of the
 * device, for power-cut tests. tests/tools/log-replay.c is its command line.
 *
 * The log (drivers/md/dm-log-writes.c, little-endian): a super block at byte
 * 0, then entries, the first at byte SECTORSIZE. An entry is one sector of
 * SECTORSIZE bytes holding its 32-byte header (a mark's text right after the
 * header), followed by NR_SECTORS sectors of the data written, none for a
 * discard. SECTOR and NR_SECTORS count sectors of SECTORSIZE bytes, the
 * logical block size of the device the target sat on.
 */
#ifndef LOG_REPLAY_LIB_H
#define LOG_REPLAY_LIB_H

#include <stdint.h>
#include <stdio.h>

#define LWLOG_MAGIC 0x6a736677736872ULL
#define LWLOG_VERSION 1
#define LWLOG_SUPER_LEN 28 /* magic, version, nr_entries (le64), sectorsize (le32) */
#define LWLOG_ENTRY_LEN 32 /* sector, nr_sectors, flags, data_len (le64 each) */

/* Entry flags, as the kernel's LOG_*_FLAG. */
#define LWLOG_FLUSH (1u << 0)
#define LWLOG_FUA (1u << 1)
#define LWLOG_DISCARD (1u << 2)
#define LWLOG_MARK (1u << 3)
#define LWLOG_METADATA (1u << 4)

/* Replay options. */
#define LWLOG_DISCARD_ZERO (1u << 0) /* write zeros over a discarded range */

struct lwlog_super {
	uint64_t magic;
	uint64_t version;
	uint64_t nr_entries;
	uint32_t sectorsize;
};

struct lwlog_entry {
	uint64_t sector;     /* first sector written, in the log's sectors */
	uint64_t nr_sectors; /* sectors written or discarded */
	uint64_t flags;      /* LWLOG_* */
	uint64_t data_len;   /* the entry's own data: a mark's text length */
	uint64_t data_off;   /* byte offset in the log of the data written */
	char *mark;          /* a mark's text, NUL-terminated; NULL for others */
};

struct lwlog {
	int fd;
	uint64_t size; /* the log's length in bytes */
	struct lwlog_super super;
	struct lwlog_entry *entries; /* super.nr_entries of them */
	char err[256];               /* the last failure, for the caller to print */
};

/* Decode a super block from its first LWLOG_SUPER_LEN bytes. */
void lwlog_decode_super(const unsigned char *buf, struct lwlog_super *sb);

/* Decode an entry's header from its first LWLOG_ENTRY_LEN bytes. */
void lwlog_decode_entry(const unsigned char *buf, struct lwlog_entry *e);

/*
 * Open the log at PATH, check its super block and read every entry's header,
 * checking that each lies within the log. Returns 0 on success, -1 on error
 * with log->err set (log must still be given to lwlog_close).
 */
int lwlog_open(struct lwlog *log, const char *path);

/* Close the log and free its entries; safe on a log that failed to open. */
void lwlog_close(struct lwlog *log);

/* The index of the last flush or FUA entry among the first N, or -1 if none. */
int64_t lwlog_last_barrier(const struct lwlog *log, uint64_t n);

/*
 * Check that the first N entries can be replayed onto a target of
 * TARGET_SIZE bytes: N is at most the number of entries and every write and
 * discard among them ends within the target. Returns 0 if so, -1 with
 * log->err set if not.
 */
int lwlog_check_target(struct lwlog *log, uint64_t n, uint64_t target_size);

/*
 * Choose which of the first N entries a power cut loses: each write or
 * discard after the last flush or FUA among them, with probability 1/2 from a
 * PRNG seeded with SEED (the same seed, the same choice). Sets drop[i] to 1
 * for a dropped entry, 0 for the others (drop has N elements). Returns how
 * many were dropped.
 */
uint64_t lwlog_plan_drops(const struct lwlog *log, uint64_t n, uint64_t seed, unsigned char *drop);

/*
 * Replay the first N entries onto the target open at FD, in order, skipping
 * those DROP marks (DROP may be NULL), then fsync it. Discards leave the old
 * bytes unless OPTS has LWLOG_DISCARD_ZERO. Call lwlog_check_target first.
 * Returns 0 on success, -1 with log->err set on error.
 */
int lwlog_replay(struct lwlog *log, int fd, uint64_t n, const unsigned char *drop, unsigned opts);

/* Write FLAGS as names joined by '|' ("-" for none) into BUF. */
void lwlog_format_flags(uint64_t flags, char *buf, size_t len);

/*
 * Print one line per entry: "INDEX FLAGS SECTOR SECTORS BYTES", BYTES the
 * data the entry carries (a write's, or a mark's text), and for a mark its
 * text last. Returns 0, or -1 if writing to OUT failed.
 */
int lwlog_print_list(const struct lwlog *log, FILE *out);

/* Print the index of every flush and FUA entry, one a line. 0, or -1 on error. */
int lwlog_print_points(const struct lwlog *log, FILE *out);

#endif
