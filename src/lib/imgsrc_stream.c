/*
 * Images read as streams: gzip, xz and zstd streams holding a raw image, or
 * a qcow2 image, and plain (uncompressed) streams from a source that only
 * reads forward (standard input, a URL), read from the byte source in order
 * (its read and rewind; its pread only for the xz index, its file only to
 * map the zstd frame headers, each skipped when the source has none). A
 * stream only reads forward, so chunks are decompressed one after another,
 * in order (xz with liblzma's threaded decoder); hashing and writing still
 * run in parallel behind. From a file, the payload size is known before
 * anything is written: xz keeps it in its index, zstd usually in its frame
 * headers, and gzip (or a zstd frame without it) takes a counting pass. From
 * a source that cannot start over it is not (size_known false; but an xz
 * index is read by ranges where the source has them): the chunks
 * say where the payload ends, and one that reaches the room on the device
 * with more to come is an error. A qcow2 inside a stream is first
 * decompressed to an unlinked temporary file in $TMPDIR (default /var/tmp),
 * bounded by the free space there, which then is the qcow2's byte source.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "blockdev.h"
#include "bytesrc.h"
#include "imgsrc.h"
#include "internal.h"
#include "qcow2.h"

#define IN_SIZE (1024 * 1024)
#define XZ_INDEX_READ (64 * 1024)	/* the header, then the index at the end */
#define TMP_MARGIN (512ull * 1024 * 1024)

struct stream {
	enum imgsrc_stream_kind kind;
	struct bytesrc *bytes;
	uint64_t file_size;               /* of the compressed bytes */
	uint64_t file_pos;                /* compressed bytes read so far */
	atomic_uint_least64_t *file_read; /* the source's copy of it, for progress */
	uint8_t *in;
	z_stream z;
	bool z_ready;
	lzma_stream lz;
	bool lz_ready;
	ZSTD_DCtx *zd;
	ZSTD_inBuffer zin;
	size_t zlast;       /* what ZSTD_decompressStream said last: 0 at a frame's end */
	uint64_t pos;       /* payload bytes produced so far */
	bool ended;         /* the decoder said the stream ended */
	bool member_ended;  /* gzip: a member ended, another may follow */
	bool payload_ended; /* of unknown size: a chunk said it ended */
	int src_err;        /* how the byte source failed, or 0 */
	/* Decoded at setup from a source that cannot start over: handed out first. */
	uint8_t held[8];
	size_t held_len, held_pos;
	/* Handing chunks out in order to the workers. */
	pthread_mutex_t lock;
	pthread_cond_t turn;
	bool failed;
};

static const char *kind_name(enum imgsrc_stream_kind k)
{
	return k == IMGSRC_STREAM_GZIP   ? "gzip"
	       : k == IMGSRC_STREAM_XZ   ? "xz"
	       : k == IMGSRC_STREAM_ZSTD ? "zstd"
					 : "none";
}

/*
 * (Re)start decoding from the beginning of the file; 0 or -errno. Only a
 * file starts over; another source only before its first byte is read.
 */
static int stream_reset(struct stream *s)
{
	int rc = s->bytes->fd >= 0                      ? bytesrc_rewind(s->bytes)
		 : s->file_pos == 0 && s->held_len == 0 ? 0
							: -ESPIPE;

	if (rc < 0)
		return rc;
	s->file_pos = 0;
	s->pos = 0;
	s->ended = s->member_ended = s->payload_ended = false;
	s->held_len = s->held_pos = 0;
	if (s->kind == IMGSRC_STREAM_PLAIN)
		return 0;
	if (s->kind == IMGSRC_STREAM_GZIP) {
		if (s->z_ready)
			inflateEnd(&s->z);
		memset(&s->z, 0, sizeof(s->z));
		s->z_ready = inflateInit2(&s->z, 15 + 16) == Z_OK;
		return s->z_ready ? 0 : -ENOMEM;
	}
	if (s->kind == IMGSRC_STREAM_XZ) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		lzma_mt mt = { .flags = LZMA_CONCATENATED,
			       .threads = cpus > 0 ? (uint32_t)cpus : 1,
			       .memlimit_threading = 128u << 20,
			       .memlimit_stop = 1u << 30 };

		if (s->lz_ready)
			lzma_end(&s->lz);
		s->lz = (lzma_stream)LZMA_STREAM_INIT;
		s->lz_ready = lzma_stream_decoder_mt(&s->lz, &mt) == LZMA_OK;
		return s->lz_ready ? 0 : -ENOMEM;
	}
	if (!s->zd && !(s->zd = ZSTD_createDCtx()))
		return -ENOMEM;
	ZSTD_DCtx_reset(s->zd, ZSTD_reset_session_only);
	s->zin = (ZSTD_inBuffer){ s->in, 0, 0 };
	s->zlast = 1;
	return 0;
}

/* More compressed input into s->in; returns bytes read (0 at end) or -errno. */
static ssize_t refill(struct stream *s)
{
	ssize_t n = bytesrc_read(s->bytes, s->in, IN_SIZE);

	if (n > 0)
		s->file_pos += (uint64_t)n;
	if (n < 0)
		s->src_err = (int)n;
	atomic_store_explicit(s->file_read, s->file_pos, memory_order_relaxed);
	return n;
}

/* Decode gzip (all members) into out; *got bytes; 0 or -errno. */
static int gzip_decode(struct stream *s, uint8_t *out, size_t len, size_t *got)
{
	s->z.next_out = out;
	s->z.avail_out = (uInt)len;
	while (s->z.avail_out && !s->ended) {
		int rc;

		if (!s->z.avail_in) {
			ssize_t n = refill(s);

			if (n < 0)
				return (int)n;
			if (n == 0 && s->member_ended) {
				s->ended = true; /* the last member ended with the file */
				break;
			}
			if (n == 0)
				return -EPIPE; /* the file ends inside the stream */
			s->z.next_in = s->in;
			s->z.avail_in = (uInt)n;
		}
		if (s->member_ended) {
			if (inflateReset(&s->z) != Z_OK)
				return -EINVAL;
			s->member_ended = false;
		}
		rc = inflate(&s->z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			/* Another member may follow. */
			s->member_ended = true;
			if (!s->z.avail_in && s->file_pos == s->file_size)
				s->ended = true;
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			return -EINVAL;
		}
	}
	*got = len - s->z.avail_out;
	return 0;
}

static int xz_decode(struct stream *s, uint8_t *out, size_t len, size_t *got)
{
	s->lz.next_out = out;
	s->lz.avail_out = len;
	while (s->lz.avail_out && !s->ended) {
		lzma_action action = LZMA_RUN;
		lzma_ret rc;

		if (!s->lz.avail_in) {
			ssize_t n = refill(s);

			if (n < 0)
				return (int)n;
			s->lz.next_in = s->in;
			s->lz.avail_in = (size_t)n;
			if (n == 0)
				action = LZMA_FINISH;
		}
		rc = lzma_code(&s->lz, s->file_pos == s->file_size && !s->lz.avail_in ? LZMA_FINISH
										      : action);
		if (rc == LZMA_STREAM_END)
			s->ended = true;
		else if (rc == LZMA_BUF_ERROR)
			return -EPIPE;
		else if (rc == LZMA_MEMLIMIT_ERROR || rc == LZMA_MEM_ERROR)
			return -ENOMEM;
		else if (rc != LZMA_OK)
			return -EINVAL;
	}
	*got = len - s->lz.avail_out;
	return 0;
}

static int zstd_decode(struct stream *s, uint8_t *out, size_t len, size_t *got)
{
	ZSTD_outBuffer ob = { out, len, 0 };

	while (ob.pos < ob.size && !s->ended) {
		size_t r;

		if (s->zin.pos == s->zin.size) {
			ssize_t n = refill(s);

			if (n < 0)
				return (int)n;
			if (n == 0) {
				if (s->zlast != 0)
					return -EPIPE; /* ends inside a frame */
				s->ended = true;
				break;
			}
			s->zin = (ZSTD_inBuffer){ s->in, (size_t)n, 0 };
		}
		r = ZSTD_decompressStream(s->zd, &ob, &s->zin);
		if (ZSTD_isError(r))
			return ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge
				       ? -ENOMEM
				       : -EINVAL;
		s->zlast = r;
		if (r == 0 && s->zin.pos == s->zin.size && s->file_pos == s->file_size)
			s->ended = true;
	}
	*got = ob.pos;
	return 0;
}

/* A plain stream: the bytes as they come, until len or the end. */
static int plain_decode(struct stream *s, uint8_t *out, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len && !s->ended) {
		ssize_t n = bytesrc_read(s->bytes, out + *got, len - *got);

		if (n < 0) {
			s->src_err = (int)n;
			return (int)n;
		}
		s->ended = n == 0;
		s->file_pos += (uint64_t)n;
		atomic_store_explicit(s->file_read, s->file_pos, memory_order_relaxed);
		*got += (size_t)n;
	}
	return 0;
}

static int decode_more(struct stream *s, uint8_t *out, size_t len, size_t *got)
{
	if (s->kind == IMGSRC_STREAM_GZIP)
		return gzip_decode(s, out, len, got);
	if (s->kind == IMGSRC_STREAM_XZ)
		return xz_decode(s, out, len, got);
	if (s->kind == IMGSRC_STREAM_ZSTD)
		return zstd_decode(s, out, len, got);
	return plain_decode(s, out, len, got);
}

/* The next len payload bytes (fewer only at the end): the held ones first. */
static int stream_decode(struct stream *s, uint8_t *out, size_t len, size_t *got)
{
	size_t held = s->held_len - s->held_pos, more = 0;
	int rc = 0;

	if (held > len)
		held = len;
	memcpy(out, s->held + s->held_pos, held);
	s->held_pos += held;
	if (held < len)
		rc = decode_more(s, out + held, len - held, &more);
	*got = held + more;
	return rc;
}

static const char *decode_error(int rc)
{
	return rc == -EPIPE    ? "the file ends in the middle of the compressed stream"
	       : rc == -E2BIG  ? "the stream holds more than the size it records"
	       : rc == -ENOMEM ? "the stream needs more memory than imgdev allows"
	       : rc == -EINVAL ? "the compressed data is corrupt"
			       : strerror(-rc);
}

/* The uncompressed size from the xz index at the end of the file. */
static int xz_size(struct stream *s, uint64_t *size)
{
	lzma_stream strm = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	uint64_t pos = 0;
	lzma_ret ret;
	/* Its own buffer: the stream's input may be in use (a URL that cannot start over). */
	uint8_t *buf;

	if (!s->bytes->ops->pread)
		return -ENODATA; /* no seeking to the index: count instead */
	if (!(buf = malloc(XZ_INDEX_READ)))
		return -ENOMEM;
	if (lzma_file_info_decoder(&strm, &idx, UINT64_MAX, s->file_size) != LZMA_OK) {
		free(buf);
		return -ENOMEM;
	}
	do {
		if (!strm.avail_in) {
			size_t n = s->file_size - pos < XZ_INDEX_READ ? (size_t)(s->file_size - pos)
								      : XZ_INDEX_READ;

			if (bytesrc_pread(s->bytes, buf, n, pos) < 0) {
				lzma_end(&strm);
				free(buf);
				return -EIO;
			}
			strm.next_in = buf;
			strm.avail_in = n;
			pos += n;
		}
		ret = lzma_code(&strm, LZMA_RUN);
		if (ret == LZMA_SEEK_NEEDED) {
			pos = strm.seek_pos;
			strm.avail_in = 0;
			ret = LZMA_OK;
		}
	} while (ret == LZMA_OK);
	lzma_end(&strm);
	free(buf);
	if (ret != LZMA_STREAM_END)
		return -EINVAL;
	*size = lzma_index_uncompressed_size(idx);
	lzma_index_end(idx, NULL);
	return 0;
}

/* The size recorded in every zstd frame header, when they all have one. */
static int zstd_size(struct stream *s, uint64_t *size)
{
	const uint8_t *map;
	uint64_t total = 0, off = 0;
	int rc = 0;

	if (s->bytes->fd < 0)
		return -ENODATA; /* only a file's frames are looked at in place */
	map = mmap(NULL, s->file_size, PROT_READ, MAP_PRIVATE, s->bytes->fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	while (rc == 0 && off < s->file_size) {
		unsigned long long n = ZSTD_getFrameContentSize(map + off, s->file_size - off);
		size_t frame = ZSTD_findFrameCompressedSize(map + off, s->file_size - off);

		if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR ||
		    ZSTD_isError(frame) || frame == 0 || n > UINT64_MAX / 2 - total)
			rc = -ENODATA; /* count it the slow way, which also finds errors */
		total += n;
		off += frame;
	}
	munmap((void *)map, s->file_size);
	*size = total;
	return rc;
}

/* A pass that decodes everything to count it, then starts over. */
static int counting_pass(struct stream *s, uint8_t *scratch, size_t len, uint64_t *size)
{
	uint64_t total = 0;
	int rc = stream_reset(s);

	while (rc == 0 && !s->ended) {
		size_t got = 0;

		rc = stream_decode(s, scratch, len, &got);
		total += got;
	}
	if (rc == 0)
		rc = stream_reset(s);
	*size = total;
	return rc;
}

static int stream_size(struct stream *s, uint8_t *scratch, size_t len, uint64_t *size)
{
	int rc = s->kind == IMGSRC_STREAM_XZ     ? xz_size(s, size)
		 : s->kind == IMGSRC_STREAM_ZSTD ? zstd_size(s, size)
						 : -ENODATA;

	if (rc == -ENODATA)
		rc = counting_pass(s, scratch, len, size);
	return rc;
}

/* After the last payload byte the stream must end: nothing more may decode. */
static int stream_check_end(struct stream *s)
{
	uint8_t extra[512];
	size_t got = 0;
	int rc = stream_decode(s, extra, sizeof(extra), &got);

	if (rc == 0 && got)
		rc = -E2BIG;
	return rc;
}

/* How a chunk's read failed, in words: the byte source's, or the decoder's. */
static int chunk_failed(struct imgsrc *src, struct stream *s, struct chunk *c, int rc, uint64_t at)
{
	if (rc == -ENOSPC)
		return chunk_error(c, rc,
				   "%s: the device is too small: the image holds more than "
				   "the %llu bytes of room there",
				   src->name, (unsigned long long)src->room);
	if (s->src_err)
		return chunk_error(c, s->src_err, "%s", bytesrc_error(s->bytes, s->src_err));
	return chunk_error(c, rc == -ENOMEM ? rc : -ENOMEDIUM, "%s: %s: %s (payload offset %llu)",
			   src->name, kind_name(s->kind), decode_error(rc), (unsigned long long)at);
}

/*
 * Decode chunk c, whose turn it is. Of a known size, it must be all there,
 * and the stream must end with the last. Of an unknown size, a short one
 * ends the payload, and one that reaches the room must be the last.
 */
static int stream_fill(struct imgsrc *src, struct stream *s, struct chunk *c, size_t *got)
{
	int rc = stream_decode(s, c->buf, c->len, got);

	if (rc < 0)
		return rc;
	if (!src->size_known) {
		if (*got < c->len) {
			c->len = (uint32_t)*got;
			c->end = true;
			s->payload_ended = true;
		} else if (c->off + *got >= src->room) {
			rc = stream_check_end(s);
		}
		return rc == -E2BIG ? -ENOSPC : rc;
	}
	if (*got < c->len)
		return -EPIPE;
	if (c->off + *got == src->size)
		rc = stream_check_end(s);
	return rc;
}

static int stream_read_chunk(struct imgsrc *src, struct chunk *c)
{
	struct stream *s = src->priv;
	size_t got = 0;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	while (!s->failed && !s->payload_ended && s->pos != c->off && c->off != 0)
		pthread_cond_wait(&s->turn, &s->lock);
	if (s->failed) {
		pthread_mutex_unlock(&s->lock);
		return chunk_error(c, ECANCELED, "%s: stopped after an earlier error", src->name);
	}
	if (s->payload_ended) { /* a chunk past the end */
		pthread_mutex_unlock(&s->lock);
		c->len = 0;
		c->end = true;
		return 0;
	}
	if (c->off == 0 && s->pos != 0)
		rc = stream_reset(s);
	if (rc == 0)
		rc = stream_fill(src, s, c, &got);
	if (rc < 0)
		s->failed = true;
	else
		s->pos += got;
	pthread_cond_broadcast(&s->turn);
	pthread_mutex_unlock(&s->lock);
	return rc < 0 ? chunk_failed(src, s, c, rc, c->off + got) : 0;
}

static void stream_free(struct stream *s)
{
	if (!s)
		return;
	if (s->z_ready)
		inflateEnd(&s->z);
	if (s->lz_ready)
		lzma_end(&s->lz);
	ZSTD_freeDCtx(s->zd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->turn);
	free(s->in);
	free(s);
}

static void stream_close(struct imgsrc *src)
{
	stream_free(src->priv);
	src->priv = NULL;
}

static const struct imgsrc_ops stream_ops = {
	.read_chunk = stream_read_chunk,
	.close = stream_close,
};

/*
 * Decode the rest of the stream (from where setup left it) into an unlinked
 * temporary file; its fd or -errno.
 */
static int stream_to_tmpfile(struct imgdev_ctx *ctx, const struct imgsrc *src, struct stream *s,
			     uint8_t *buf, size_t len)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	struct statvfs vfs;
	uint64_t room, off = 0;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600), rc = 0;

	if (fd < 0)
		return ctx_error(ctx, errno, "%s: cannot make a temporary file for the qcow2 %s: %s",
				 dir, src->name, strerror(errno));
	ctx_log(ctx, LOGP_INFO, "%s: a qcow2 image %s: read through a temporary file in %s", src->name,
		s->kind == IMGSRC_STREAM_PLAIN ? "read as a stream" : "inside a stream", dir);
	room = fstatvfs(fd, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : 0;
	room = room > TMP_MARGIN ? room - TMP_MARGIN : 0;
	while (rc == 0 && !s->ended) {
		size_t got = 0;

		rc = stream_decode(s, buf, len, &got);
		if (rc == 0 && off + got > room)
			rc = -EFBIG;
		if (rc == 0 && got && !buf_is_zero(buf, got)) /* keep it sparse */
			rc = bdev_pwrite_full(fd, buf, got, off);
		off += got;
	}
	if (rc == 0 && ftruncate(fd, (off_t)off) < 0)
		rc = -errno;
	if (rc < 0) {
		close(fd);
		if (s->src_err)
			return ctx_error(ctx, s->src_err, "%s", bytesrc_error(s->bytes, s->src_err));
		return ctx_error(ctx, rc == -EFBIG || rc == -ENOMEM ? rc : -ENOMEDIUM,
				 "%s: copying the qcow2 image to %s: %s", src->name, dir,
				 rc == -EFBIG ? "it needs more room than is free there (set TMPDIR)"
					      : decode_error(rc));
	}
	return fd;
}

/* A failure at setup: the byte source's words, or the decoder's. */
static int setup_failed(struct imgdev_ctx *ctx, const struct imgsrc *src, struct stream *s, int rc)
{
	if (s->src_err)
		return ctx_error(ctx, s->src_err, "%s", bytesrc_error(s->bytes, s->src_err));
	return ctx_error(ctx, rc == -ENOMEM ? rc : -ENOMEDIUM, "%s: %s: %s", src->name,
			 kind_name(s->kind), decode_error(rc));
}

/*
 * The first payload bytes decide: a qcow2 goes to a temporary file (1: the
 * caller opens it); a raw payload's size is found, from a file, and the
 * stream starts over; from another source it is not (unless a plain stream
 * of a known length), and the bytes decoded are handed out first.
 */
static int stream_setup(struct imgdev_ctx *ctx, struct imgsrc *src, struct stream *s, uint8_t *scratch)
{
	size_t got = 0;
	int rc = stream_reset(s);

	if (rc == 0)
		rc = stream_decode(s, s->held, 4, &got);
	if (rc < 0)
		return setup_failed(ctx, src, s, rc);
	s->held_len = got;
	if (qcow2_probe(s->held, got)) {
		int fd = stream_to_tmpfile(ctx, src, s, scratch, CHUNK_SIZE);

		if (fd < 0)
			return fd;
		rc = bytesrc_from_fd(ctx, fd, src->name, &src->data);
		return rc < 0 ? rc : 1; /* a qcow2: the caller opens it */
	}
	if (s->bytes->fd < 0) {
		/* An xz index at the end of a URL that takes ranges: two small reads. */
		if (s->kind == IMGSRC_STREAM_XZ && s->bytes->size_known && s->bytes->ops->pread)
			src->size_known = xz_size(s, &src->size) == 0;
		else if (s->kind == IMGSRC_STREAM_PLAIN && s->bytes->size_known)
			src->size_known = true, src->size = s->bytes->size;
		else
			src->size_known = false, src->size = 0;
		return 0;
	}
	rc = stream_size(s, scratch, CHUNK_SIZE, &src->size);
	if (rc < 0)
		return setup_failed(ctx, src, s, rc);
	return stream_reset(s) < 0 ? ctx_error(ctx, ENOMEM, "out of memory") : 0;
}

/* The stream's state on src, of this kind, set up to decode nothing yet; 0 or -ENOMEM in ctx. */
static int stream_new(struct imgdev_ctx *ctx, struct imgsrc *src, enum imgsrc_stream_kind kind)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (!s || !(s->in = malloc(IN_SIZE))) {
		stream_free(s);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->turn, NULL);
	s->kind = kind;
	s->bytes = src->bytes;
	s->file_read = &src->file_read;
	s->file_size = src->bytes->size_known ? src->bytes->size : UINT64_MAX;
	src->priv = s;
	src->ops = &stream_ops;
	src->format = "raw";
	src->compression = kind_name(s->kind);
	src->identity_is_payload = kind == IMGSRC_STREAM_PLAIN;
	src->size_known = true;
	return 0;
}

int imgsrc_stream_init(struct imgdev_ctx *ctx, struct imgsrc *src, enum imgsrc_stream_kind kind)
{
	uint8_t *scratch = malloc(CHUNK_SIZE);
	int rc = scratch ? stream_new(ctx, src, kind) : ctx_error(ctx, ENOMEM, "out of memory");

	if (rc == 0)
		rc = stream_setup(ctx, src, src->priv, scratch);
	free(scratch);
	if (rc == 1) { /* qcow2 inside: from here on it is a qcow2 source */
		stream_close(src);
		src->ops = NULL;
		src->size_known = true;
		rc = imgsrc_qcow2_init(ctx, src);
		src->compression = kind_name(kind);
	}
	return rc;
}

int imgsrc_stream_init_at(struct imgdev_ctx *ctx, struct imgsrc *src, uint64_t start)
{
	int rc = stream_new(ctx, src, IMGSRC_STREAM_PLAIN);
	struct stream *s = src->priv;

	if (rc < 0)
		return rc;
	if (!src->bytes->size_known || start >= src->bytes->size)
		return ctx_error(ctx, EINVAL, "%s: cannot resume at byte %llu of %s", src->name,
				 (unsigned long long)start,
				 src->bytes->size_known ? "a shorter image"
							: "an image of unknown size");
	s->pos = s->file_pos = start;
	atomic_store(&src->file_read, start);
	src->size = src->bytes->size;
	return 0;
}

bool imgsrc_is_ranged_plain_stream(const struct imgsrc *src)
{
	const struct stream *s = src->priv;

	return src->ops == &stream_ops && s->kind == IMGSRC_STREAM_PLAIN && src->size_known &&
	       src->bytes->ops->pread;
}
