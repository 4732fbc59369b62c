/*
 * The raw image source: the file is the payload. Its data runs are mapped
 * once, with SEEK_DATA/SEEK_HOLE (asking per chunk would rescan the file on
 * tmpfs: quadratic), so that holes cost nothing to read and the workers only
 * pread. The map is built by the first read, not at open: a provision that
 * finds the device already matching opens the image but never reads it, and
 * walking a big sparse file cost it several times its run time. Pages read
 * are dropped from the cache afterwards so a big image does not push the
 * host's working set out.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdev.h"
#include "imgsrc.h"
#include "internal.h"

/* Holes shorter than this are read as data: fewer, longer reads. */
#define MIN_HOLE (64 * 1024)
/* Past this many runs, the rest of the file is taken as one run of data. */
#define MAX_RUNS (1u << 20)

struct run {
	uint64_t start, end;	/* [start, end) holds data */
};

struct raw_map {
	pthread_mutex_t lock;	/* guards built and err, and runs until built */
	bool built;
	int err;		/* 0, or -ENOMEM if building failed */
	struct run *runs;
	size_t count;
};

static int map_push(struct raw_map *m, size_t *cap, uint64_t start, uint64_t end)
{
	if (m->count && start - m->runs[m->count - 1].end < MIN_HOLE) {
		m->runs[m->count - 1].end = end;	/* swallow a short hole */
		return 0;
	}
	if (m->count == *cap) {
		size_t grown_cap = *cap ? *cap * 2 : 64;
		struct run *grown = realloc(m->runs, grown_cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		m->runs = grown;
		*cap = grown_cap;
	}
	m->runs[m->count++] = (struct run){ start, end };
	return 0;
}

/* Map the data runs of fd (size bytes); 0 or -ENOMEM. */
static int map_build(int fd, uint64_t size, struct raw_map *m)
{
	uint64_t pos = 0;
	size_t cap = 0;
	int rc = 0;

	while (pos < size && rc == 0) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;				/* only a hole is left */
		if (data < 0 || m->count >= MAX_RUNS) {
			rc = map_push(m, &cap, pos, size);	/* no SEEK_DATA, or too many runs */
			break;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size || hole <= data)
			hole = (off_t)size;
		rc = map_push(m, &cap, (uint64_t)data, (uint64_t)hole);
		pos = (uint64_t)hole;
	}
	return rc;
}

/* Index of the first run ending after off. */
static size_t map_find(const struct raw_map *m, uint64_t off)
{
	size_t lo = 0, hi = m->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->runs[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Build the map on the first call, from whichever worker gets here first;
 * the others wait for it. A failure sticks: every later read reports it.
 * 0 or -ENOMEM.
 */
static int map_ready(struct imgsrc *src, struct raw_map *m)
{
	int rc;

	pthread_mutex_lock(&m->lock);
	if (!m->built) {
		m->err = map_build(src->fd, src->file_size, m);
		m->built = true;
	}
	rc = m->err;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int raw_read_chunk(struct imgsrc *src, struct chunk *c)
{
	struct raw_map *m = src->priv;
	uint64_t pos = c->off, end = c->off + c->len;
	int rc = map_ready(src, m);
	size_t i;

	if (rc < 0)
		return chunk_error(c, rc, "%s: out of memory mapping its data runs", src->path);
	i = map_find(m, c->off);
	if (i == m->count || m->runs[i].start >= end) {
		c->all_zero = true;
		return 0;
	}
	for (; i < m->count && m->runs[i].start < end; i++) {
		uint64_t from = m->runs[i].start > pos ? m->runs[i].start : pos;
		uint64_t to = m->runs[i].end < end ? m->runs[i].end : end;

		chunk_zero_range(c, (uint32_t)(pos - c->off), (uint32_t)(from - c->off));
		rc = bdev_pread_full(src->fd, c->buf + (from - c->off), to - from, from);
		if (rc < 0)
			return chunk_error(c, rc, "%s: read error at offset %llu: %s", src->path,
					   (unsigned long long)from,
					   rc == -EIO ? "unexpected end of file or I/O error" : strerror(-rc));
		pos = to;
	}
	chunk_zero_range(c, (uint32_t)(pos - c->off), (uint32_t)(end - c->off));
	posix_fadvise(src->fd, (off_t)c->off, c->len, POSIX_FADV_DONTNEED);
	return 0;
}

static void raw_close(struct imgsrc *src)
{
	struct raw_map *m = src->priv;

	if (m) {
		pthread_mutex_destroy(&m->lock);
		free(m->runs);
	}
	free(m);
	src->priv = NULL;
}

static const struct imgsrc_ops raw_ops = {
	.read_chunk = raw_read_chunk,
	.close = raw_close,
};

int imgsrc_raw_init(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	struct raw_map *m = calloc(1, sizeof(*m));

	if (!m)
		return ctx_error(ctx, ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	src->priv = m;
	src->ops = &raw_ops;
	src->format = "raw";
	src->compression = "none";
	src->size = src->file_size;
	src->identity_is_payload = true;
	posix_fadvise(src->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}
