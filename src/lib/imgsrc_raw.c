/*
 * The raw image source: the bytes are the payload. Its data runs are listed
 * once, with SEEK_DATA/SEEK_HOLE (asking per chunk would rescan the file on
 * tmpfs: quadratic), so that holes cost nothing to read and the workers only
 * pread, or, when the policy allows it (map_chunks), map the runs into the
 * chunk (chunk_map.c) with no copy at all. A byte source that is no file
 * (bytesrc.h: fd -1) is one run of data, read, never mapped. The list grows
 * with the reads, not at open: a provision that finds the device already
 * matching opens the image but never reads it, and walking a big sparse file
 * cost it several times its run time; nor all at the first read, which kept
 * every other worker waiting. Pages read are dropped from the cache
 * afterwards so a big image does not push the host's working set out.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bytesrc.h"
#include "imgsrc.h"
#include "internal.h"

/* pread: holes shorter than this are read with the data around them. */
#define MIN_HOLE (64 * 1024)
/*
 * Past this many runs (16 bytes each), the rest of the file is taken as one
 * run of data, read and never mapped (mapping a hole in would allocate it
 * on tmpfs).
 */
#define MAX_RUNS (1u << 20)

struct run {
	uint64_t start, end;	/* [start, end) holds data */
};

/*
 * The data runs, listed in file order as far as the reads so far needed
 * (scanned): each read extends the list to the end of its chunk, so no
 * worker waits for a walk of the whole file. The list has room for
 * MAX_RUNS reserved up front (touched only as used) and never moves, so a
 * reader may use the runs that were there when it last held the lock.
 */
struct raw_map {
	pthread_mutex_t lock;	/* guards everything below */
	int err;		/* 0, or -ENOMEM: sticks, every later read reports it */
	struct run *runs;
	size_t count;
	uint64_t scanned;	/* the runs list all data before this offset */
	uint64_t exact_end;	/* and every hole before this one */
};

/* What a reader may use without the lock: runs[0..count). */
struct run_view {
	const struct run *runs;
	size_t count;
	uint64_t exact_end;
};

/* List the next run of data after m->scanned, if any. */
static void map_step(int fd, uint64_t size, struct raw_map *m)
{
	off_t data = lseek(fd, (off_t)m->scanned, SEEK_DATA), hole;

	if (data < 0 && errno == ENXIO) {
		m->scanned = size;		/* only a hole is left */
		return;
	}
	if (data < 0 || m->count + 1 >= MAX_RUNS) {
		m->exact_end = m->scanned;	/* no SEEK_DATA, or too many runs */
		m->runs[m->count++] = (struct run){ m->scanned, size };
		m->scanned = size;
		return;
	}
	hole = lseek(fd, data, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole > size || hole <= data)
		hole = (off_t)size;
	m->runs[m->count++] = (struct run){ (uint64_t)data, (uint64_t)hole };
	m->scanned = (uint64_t)hole;
}

/* List the runs up to upto at least; fill view; 0 or -ENOMEM. */
static int map_extend(struct imgsrc *src, struct raw_map *m, uint64_t upto,
		      struct run_view *view)
{
	int rc;

	pthread_mutex_lock(&m->lock);
	if (!m->runs && !m->err) {
		void *p = mmap(NULL, MAX_RUNS * sizeof(struct run), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED)
			m->err = -ENOMEM;
		else
			m->runs = p;
	}
	while (!m->err && m->scanned < upto)
		map_step(src->data->fd, src->data->size, m);
	*view = (struct run_view){ m->runs, m->count, m->exact_end };
	rc = m->err;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* Index of the first run ending after off. */
static size_t map_find(const struct run_view *v, uint64_t off)
{
	size_t lo = 0, hi = v->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->runs[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Map chunk c's data runs, from run i on, over a window of zeros; 0, or
 * -errno with c reset to be read instead.
 */
static int raw_map_chunk(struct imgsrc *src, const struct run_view *m, size_t i,
			 struct chunk *c)
{
	uint64_t pos = c->off, end = c->off + c->len;
	int rc = end <= m->exact_end ? chunk_map_begin(c) : -ERANGE;

	for (; rc == 0 && i < m->count && m->runs[i].start < end; i++) {
		uint64_t from = m->runs[i].start > pos ? m->runs[i].start : pos;
		uint64_t to = m->runs[i].end < end ? m->runs[i].end : end;

		chunk_zero_range(c, (uint32_t)(pos - c->off), (uint32_t)(from - c->off));
		rc = chunk_map_file(c, (uint32_t)(from - c->off), (uint32_t)(to - from), src->data->fd,
				    from);
		pos = to;
	}
	if (rc == 0)
		chunk_zero_range(c, (uint32_t)(pos - c->off), (uint32_t)(end - c->off));
	else
		chunk_reset(c, c->off, c->len);
	return rc;
}

/* pread chunk c's data runs, from run i on, and flag or zero the rest. */
static int raw_pread_chunk(struct imgsrc *src, const struct run_view *m, size_t i,
			   struct chunk *c)
{
	uint64_t pos = c->off, end = c->off + c->len;

	for (; i < m->count && m->runs[i].start < end; i++) {
		uint64_t from = m->runs[i].start > pos ? m->runs[i].start : pos;
		uint64_t to = m->runs[i].end < end ? m->runs[i].end : end;
		int rc;

		while (to < end && i + 1 < m->count && m->runs[i + 1].start - to < MIN_HOLE) {
			i++;	/* a short hole: read it along */
			to = m->runs[i].end < end ? m->runs[i].end : end;
		}
		chunk_zero_range(c, (uint32_t)(pos - c->off), (uint32_t)(from - c->off));
		rc = bytesrc_pread(src->data, c->buf + (from - c->off), to - from, from);
		if (rc < 0)
			return chunk_error(c, ENOMEDIUM, "%s: read error at offset %llu: %s", src->name,
					   (unsigned long long)from,
					   rc == -EIO ? "unexpected end of file or I/O error" : strerror(-rc));
		pos = to;
	}
	chunk_zero_range(c, (uint32_t)(pos - c->off), (uint32_t)(end - c->off));
	return 0;
}

static int raw_read_chunk(struct imgsrc *src, struct chunk *c)
{
	uint64_t end = c->off + c->len;
	struct run_view v;
	int rc = map_extend(src, src->priv, end, &v);
	size_t i;

	if (rc < 0)
		return chunk_error(c, rc, "%s: out of memory listing its data runs", src->name);
	i = map_find(&v, c->off);
	if (i == v.count || v.runs[i].start >= end) {
		c->all_zero = true;
		return 0;
	}
	/* A mapping that fails (a short file, a read error) is read: its error is clearer. */
	if (src->policy.map_chunks && raw_map_chunk(src, &v, i, c) == 0)
		return 0;
	return raw_pread_chunk(src, &v, i, c);
}

/* Done with the chunk's bytes: drop them from the page cache. */
static void raw_release_chunk(struct imgsrc *src, const struct chunk *c)
{
	if (src->drop_behind)
		bytesrc_advise(src->data, c->off, c->len, BYTESRC_DONE);
}

/* Bytes of the file that are data (SEEK_DATA/SEEK_HOLE), not holes. */
static uint64_t raw_allocated(int fd, uint64_t size)
{
	uint64_t total = 0;
	off_t pos = 0;

	while ((uint64_t)pos < size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)size;
		total += (uint64_t)(hole - data);
		pos = hole;
	}
	return total;
}

static void raw_info(const struct imgsrc *src, struct imgdev_image_info *info)
{
	if (src->data->fd < 0)
		return;		/* no holes to ask about: unknown */
	info->allocated = raw_allocated(src->data->fd, src->data->size);
	info->allocated_known = true;
}

static void raw_close(struct imgsrc *src)
{
	struct raw_map *m = src->priv;

	if (m) {
		pthread_mutex_destroy(&m->lock);
		if (m->runs)
			munmap(m->runs, MAX_RUNS * sizeof(struct run));
	}
	free(m);
	src->priv = NULL;
}

static const struct imgsrc_ops raw_ops = {
	.read_chunk = raw_read_chunk,
	.release_chunk = raw_release_chunk,
	.info = raw_info,
	.close = raw_close,
};

int imgsrc_raw_init(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	struct raw_map *m = calloc(1, sizeof(*m));

	if (!m)
		return ctx_error(ctx, ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	m->exact_end = src->data->size;
	src->priv = m;
	src->ops = &raw_ops;
	src->format = "raw";
	src->compression = "none";
	src->size = src->data->size;
	src->identity_is_payload = true;
	bytesrc_advise(src->data, 0, 0, BYTESRC_SEQUENTIAL);
	return 0;
}
