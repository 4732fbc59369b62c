/*
 * qcow2 reading (see qcow2.h). Layout facts from the qcow2 specification:
 * a big-endian header (v2: 72 bytes, v3: header_length), extensions up to the
 * end of the first cluster, an L1 table of 8-byte entries pointing at L2
 * tables (bits 9-55), and L2 entries that are standard (bit 0 zero, bits 9-55
 * host offset), compressed (bit 62; offset and sector count split at bit
 * 62 - (cluster_bits - 8)), or, with extended L2, followed by a 64-bit
 * subcluster bitmap (32 allocated bits, then 32 zero bits).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include "header.h"
#include "qcow2.h"

#define INCOMPAT_DIRTY (1ull << 0)
#define INCOMPAT_CORRUPT (1ull << 1)
#define INCOMPAT_DATA_FILE (1ull << 2)
#define INCOMPAT_COMPRESSION (1ull << 3)
#define INCOMPAT_EXTL2 (1ull << 4)
#define INCOMPAT_KNOWN (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | \
			INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)
#define EXT_END 0
#define EXT_FEATURE_NAMES 0x6803f857u
#define EXT_DATA_FILE 0x44415441u
#define EXT_CRYPTO 0x0537be77u
#define OFFSET_MASK 0x00fffffffffffe00ull
#define L2_COMPRESSED (1ull << 62)
#define L2_ZERO 1ull
#define MAX_VIRTUAL_SIZE (1ull << 56)
#define SUBCLUSTERS 32

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

bool qcow2_probe(const uint8_t *buf, size_t len)
{
	return len >= 4 && get_be32(buf) == QCOW2_MAGIC;
}

bool qcow2_peek(const uint8_t *buf, size_t len, struct qcow2_peek *p)
{
	uint32_t bits;

	if (len < QCOW2_PEEK_SIZE || !qcow2_probe(buf, len))
		return false;
	bits = get_be32(buf + 20);
	p->version = get_be32(buf + 4);
	p->cluster_size = bits >= 9 && bits <= 21 ? 1ull << bits : 0;
	p->size = get_be64(buf + 24);
	return true;
}

/* Whether [off, off+len) lies inside the file. */
static bool in_file(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	return off <= q->file_size && len <= q->file_size - off;
}

/* The name of an incompatible feature bit, from the image's own table. */
static const char *feature_name(const struct qcow2 *q, int bit)
{
	for (int i = 0; i < q->nfeature_names; i++)
		if (q->feature_names[i].type == 0 && q->feature_names[i].bit == bit)
			return q->feature_names[i].name;
	return NULL;
}

static void read_feature_names(struct qcow2 *q, const uint8_t *p, uint32_t len)
{
	for (uint32_t o = 0; o + 48 <= len && q->nfeature_names < QCOW2_MAX_FEATURE_NAMES; o += 48) {
		struct qcow2_feature_name *f = &q->feature_names[q->nfeature_names++];

		f->type = p[o];
		f->bit = p[o + 1];
		memcpy(f->name, p + o + 2, 46);
		f->name[46] = '\0';
	}
}

/* Walk the header extensions in hdr[start..end); 0 or -errno. */
static int read_extensions(struct qcow2 *q, const uint8_t *hdr, uint64_t start, uint64_t end,
			   char *err, size_t errlen)
{
	for (uint64_t o = start; o + 8 <= end;) {
		uint32_t type = get_be32(hdr + o), len = get_be32(hdr + o + 4);

		if (type == EXT_END)
			return 0;
		if (len > end - o - 8)
			return fail(err, errlen, -EINVAL,
				    "header extension 0x%08x at byte %llu runs past the first cluster",
				    type, (unsigned long long)o);
		if (type == EXT_FEATURE_NAMES)
			read_feature_names(q, hdr + o + 8, len);
		if (type == EXT_DATA_FILE)
			return fail(err, errlen, -ENOTSUP,
				    "the image keeps its data in an external data file; not supported");
		if (type == EXT_CRYPTO)
			return fail(err, errlen, -ENOTSUP, "the image is encrypted; not supported");
		o += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	return 0;
}

/* Refusals by design, in the order a user would want to hear them. */
static int check_features(struct qcow2 *q, char *err, size_t errlen)
{
	uint64_t unknown = q->incompat & ~INCOMPAT_KNOWN;

	if (unknown) {
		int bit = __builtin_ctzll(unknown);
		const char *name = feature_name(q, bit);

		return fail(err, errlen, -ENOTSUP,
			    "the image uses incompatible feature bit %d%s%s%s, which imgdev does not know",
			    bit, name ? " (\"" : "", name ? name : "", name ? "\")" : "");
	}
	if (q->incompat & INCOMPAT_CORRUPT)
		return fail(err, errlen, -ENOTSUP,
			    "the image is marked corrupt; repair it with qemu-img check -r all first");
	if (q->incompat & INCOMPAT_DATA_FILE)
		return fail(err, errlen, -ENOTSUP,
			    "the image keeps its data in an external data file; not supported");
	if (q->compression_type > 1)
		return fail(err, errlen, -ENOTSUP, "unknown compression type %u",
			    q->compression_type);
	if ((q->compression_type != 0) != !!(q->incompat & INCOMPAT_COMPRESSION))
		return fail(err, errlen, -EINVAL,
			    "compression type %u and the compression-type feature bit disagree",
			    q->compression_type);
	return 0;
}

/* The fixed header fields; 0 or -errno. */
static int parse_fixed(struct qcow2 *q, const uint8_t *h, size_t have, uint32_t *hlen,
		       char *err, size_t errlen)
{
	q->version = get_be32(h + 4);
	if (q->version == 1)
		return fail(err, errlen, -ENOTSUP, "qcow version 1 is not supported; convert the image to qcow2");
	if (q->version != 2 && q->version != 3)
		return fail(err, errlen, -ENOTSUP, "unknown qcow2 version %u", q->version);
	if (get_be64(h + 8) != 0)
		return fail(err, errlen, -ENOTSUP,
			    "the image has a backing file; flatten it first (qemu-img convert -O qcow2)");
	q->cluster_bits = get_be32(h + 20);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		return fail(err, errlen, -EINVAL, "cluster_bits %u is outside 9..21", q->cluster_bits);
	q->cluster_size = 1ull << q->cluster_bits;
	q->size = get_be64(h + 24);
	if (q->size > MAX_VIRTUAL_SIZE)
		return fail(err, errlen, -EINVAL, "virtual size %llu is absurd",
			    (unsigned long long)q->size);
	if (get_be32(h + 32) != 0)
		return fail(err, errlen, -ENOTSUP, "the image is encrypted; not supported");
	q->l1_size = get_be32(h + 36);
	q->l1_offset = get_be64(h + 40);
	*hlen = 72;
	if (q->version == 3) {
		if (have < 104)
			return fail(err, errlen, -EINVAL, "the file ends inside the header");
		q->incompat = get_be64(h + 72);
		q->compat = get_be64(h + 80);
		q->autoclear = get_be64(h + 88);
		*hlen = get_be32(h + 100);
		if (*hlen < 104 || *hlen > q->cluster_size || *hlen > have)
			return fail(err, errlen, -EINVAL, "header_length %u is invalid", *hlen);
		if (*hlen > 104)
			q->compression_type = h[104];
	}
	q->dirty = q->incompat & INCOMPAT_DIRTY;
	q->extended_l2 = q->incompat & INCOMPAT_EXTL2;
	return 0;
}

static int load_l1(struct qcow2 *q, char *err, size_t errlen)
{
	uint64_t per_l1 = q->l2_entries * q->cluster_size;	/* <= 2^21 * 2^18 */
	uint64_t need = (q->size + per_l1 - 1) / per_l1;
	uint64_t bytes = (uint64_t)q->l1_size * 8;
	uint8_t *raw;
	int rc;

	if (q->l1_size < need)
		return fail(err, errlen, -EINVAL, "the L1 table has %u entries, the virtual size needs %llu",
			    q->l1_size, (unsigned long long)need);
	if (bytes > QCOW2_MAX_L1_BYTES)
		return fail(err, errlen, -EINVAL, "the L1 table would take %llu bytes; refusing more than %u",
			    (unsigned long long)bytes, QCOW2_MAX_L1_BYTES);
	if (q->l1_size && (q->l1_offset % q->cluster_size || !in_file(q, q->l1_offset, bytes)))
		return fail(err, errlen, -EINVAL, "the L1 table at %llu is misaligned or beyond the end of the file",
			    (unsigned long long)q->l1_offset);
	q->l1_size = (uint32_t)need;	/* entries past the virtual size are never used */
	q->l1 = calloc(need ? need : 1, sizeof(*q->l1));
	raw = malloc(need ? need * 8 : 1);
	if (!q->l1 || !raw) {
		free(raw);
		return fail(err, errlen, -ENOMEM, "out of memory for the L1 table");
	}
	rc = need ? q->pread(q->arg, raw, need * 8, q->l1_offset) : 0;
	for (uint64_t i = 0; rc == 0 && i < need; i++)
		q->l1[i] = get_be64(raw + 8 * i);
	free(raw);
	return rc < 0 ? fail(err, errlen, rc, "cannot read the L1 table: %s", strerror(-rc)) : 0;
}

int qcow2_open(struct qcow2 *q, qcow2_pread_fn pread, void *arg, uint64_t file_size,
	       char *err, size_t errlen)
{
	uint8_t small[112], *h = NULL;
	size_t have;
	uint32_t hlen = 72;
	int rc;

	memset(q, 0, sizeof(*q));
	q->pread = pread;
	q->arg = arg;
	q->file_size = file_size;
	if (file_size < 72)
		return fail(err, errlen, -EINVAL, "the file is too short for a qcow2 header");
	have = file_size < sizeof(small) ? (size_t)file_size : sizeof(small);
	rc = pread(arg, small, have, 0);
	if (rc < 0)
		return fail(err, errlen, rc, "cannot read the header: %s", strerror(-rc));
	if (!qcow2_probe(small, have))
		return fail(err, errlen, -EINVAL, "not a qcow2 image");
	rc = parse_fixed(q, small, have, &hlen, err, errlen);
	if (rc < 0)
		return rc;
	/* Extensions live in the rest of the first cluster. */
	have = file_size < q->cluster_size ? (size_t)file_size : (size_t)q->cluster_size;
	h = malloc(have);
	if (!h)
		return fail(err, errlen, -ENOMEM, "out of memory");
	rc = pread(arg, h, have, 0);
	if (rc < 0)
		rc = fail(err, errlen, rc, "cannot read the header: %s", strerror(-rc));
	if (rc == 0)
		rc = read_extensions(q, h, hlen, have, err, errlen);
	free(h);
	if (rc == 0)
		rc = check_features(q, err, errlen);
	if (rc < 0)
		return rc;
	if (q->extended_l2 && q->cluster_bits < 14)
		return fail(err, errlen, -EINVAL, "extended L2 entries with clusters under 16 KiB");
	q->l2_entry_size = q->extended_l2 ? 16 : 8;
	q->l2_entries = q->cluster_size / q->l2_entry_size;
	return load_l1(q, err, errlen);
}

void qcow2_close(struct qcow2 *q)
{
	free(q->l1);
	q->l1 = NULL;
}

/* Per-thread decompression state, reused across clusters. */
struct scratch {
	struct libdeflate_decompressor *deflate;
	z_stream z;
	bool z_ready;
	ZSTD_DCtx *zstd;
	uint8_t *cbuf;		/* compressed bytes of one cluster */
	uint8_t *dbuf;		/* one decompressed cluster */
	size_t cbuf_size, dbuf_size;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct scratch *s = p;

	libdeflate_free_decompressor(s->deflate);
	if (s->z_ready)
		inflateEnd(&s->z);
	ZSTD_freeDCtx(s->zstd);
	free(s->cbuf);
	free(s->dbuf);
	free(s);
}

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

static struct scratch *scratch_get(size_t csize, size_t dsize)
{
	struct scratch *s;

	pthread_once(&scratch_once, scratch_key_init);
	s = pthread_getspecific(scratch_key);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || pthread_setspecific(scratch_key, s) != 0) {
			free(s);
			return NULL;
		}
	}
	if (s->cbuf_size < csize) {
		free(s->cbuf);
		s->cbuf = malloc(csize);
		s->cbuf_size = s->cbuf ? csize : 0;
	}
	if (s->dbuf_size < dsize) {
		free(s->dbuf);
		s->dbuf = malloc(dsize);
		s->dbuf_size = s->dbuf ? dsize : 0;
	}
	return s->cbuf && s->dbuf ? s : NULL;
}

/*
 * Raw deflate (no zlib header) into exactly outlen bytes. libdeflate takes
 * the common case, a stream that ends having filled the cluster, about 1.5x
 * faster than zlib. Anything else goes to zlib with a 4 KiB window, which
 * decides as QEMU does: the cluster is good once the output is full, even if
 * the stream does not end there. (libdeflate is laxer than QEMU on streams
 * QEMU never writes: it takes back-references up to 32 KiB, which a 4 KiB
 * window refuses.)
 */
static int inflate_cluster(struct scratch *s, const uint8_t *in, size_t inlen, uint8_t *out,
			   size_t outlen)
{
	int rc;

	if (!s->deflate)
		s->deflate = libdeflate_alloc_decompressor();
	if (s->deflate &&
	    libdeflate_deflate_decompress(s->deflate, in, inlen, out, outlen, NULL) == LIBDEFLATE_SUCCESS)
		return 0;
	if (!s->z_ready) {
		memset(&s->z, 0, sizeof(s->z));
		if (inflateInit2(&s->z, -12) != Z_OK)
			return -ENOMEM;
		s->z_ready = true;
	} else if (inflateReset(&s->z) != Z_OK) {
		return -EINVAL;
	}
	s->z.next_in = (Bytef *)in;
	s->z.avail_in = (uInt)inlen;
	s->z.next_out = out;
	s->z.avail_out = (uInt)outlen;
	rc = inflate(&s->z, Z_FINISH);
	if ((rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK) && s->z.avail_out == 0)
		return 0;
	return -EINVAL;
}

static int zstd_cluster(struct scratch *s, const uint8_t *in, size_t inlen, uint8_t *out,
			size_t outlen)
{
	ZSTD_inBuffer ib = { in, inlen, 0 };
	ZSTD_outBuffer ob = { out, outlen, 0 };

	if (!s->zstd) {
		s->zstd = ZSTD_createDCtx();
		if (!s->zstd)
			return -ENOMEM;
		/* A cluster is at most 2 MiB: no frame needs a bigger window. */
		ZSTD_DCtx_setParameter(s->zstd, ZSTD_d_windowLogMax, 22);
	}
	ZSTD_DCtx_reset(s->zstd, ZSTD_reset_session_only);
	while (ob.pos < ob.size) {
		size_t before_in = ib.pos, before_out = ob.pos;
		size_t r = ZSTD_decompressStream(s->zstd, &ob, &ib);

		if (ZSTD_isError(r))
			return -EINVAL;
		if (ib.pos == before_in && ob.pos == before_out)
			break;	/* no progress: the input ran out */
	}
	return ob.pos == ob.size ? 0 : -EINVAL;
}

/* Filling a caller's buffer with runs of data and zeros, in virtual order. */
struct fill {
	const struct qcow2 *q;
	struct qcow2_out *out;
	uint8_t *buf;
	uint64_t off, end;	/* virtual range of buf */
	uint64_t filled_to;	/* [off, filled_to) is written */
	bool any_data;
	uint64_t run_virt, run_host, run_len;	/* pending contiguous data */
	char *err;
	size_t errlen;
};

/* Virtual bytes [from, to) are zeros: tell the output, or write them. */
static void put_zeros(struct fill *f, uint64_t from, uint64_t to)
{
	if (f->out->zeros)
		f->out->zeros(f->out->arg, (uint32_t)(from - f->off), (uint32_t)(to - f->off));
	else
		memset(f->buf + (from - f->off), 0, to - from);
}

/*
 * Zeros from where the output is filled up to v: once data has been seen
 * (else they stay implicit, and the range may end all zero); filled_to only
 * moves past zeros when they are put, so none are lost or put twice.
 */
static void fill_zeros_to(struct fill *f, uint64_t v)
{
	if (f->any_data && v > f->filled_to) {
		put_zeros(f, f->filled_to, v);
		f->filled_to = v;
	}
}

/* About to place data at v: zeros before it, now that they are needed. */
static void fill_data_at(struct fill *f, uint64_t v)
{
	f->any_data = true;
	fill_zeros_to(f, v);
}

static int flush_run(struct fill *f)
{
	int rc;

	if (!f->run_len)
		return 0;
	fill_data_at(f, f->run_virt);
	if (f->out->place)
		rc = f->out->place(f->out->arg, (uint32_t)(f->run_virt - f->off), (uint32_t)f->run_len,
				   f->run_host);
	else
		rc = f->q->pread(f->q->arg, f->buf + (f->run_virt - f->off), f->run_len, f->run_host);
	if (rc < 0)
		return fail(f->err, f->errlen, rc, "cannot read clusters at %llu: %s",
			    (unsigned long long)f->run_host, strerror(-rc));
	f->filled_to = f->run_virt + f->run_len;
	f->run_len = 0;
	return 0;
}

static int add_data(struct fill *f, uint64_t v, uint64_t host, uint64_t n)
{
	int rc;

	if (!in_file(f->q, host, n))
		return fail(f->err, f->errlen, -EINVAL,
			    "cluster data at %llu (for virtual offset %llu) lies beyond the end of the file",
			    (unsigned long long)host, (unsigned long long)v);
	if (f->run_len && f->run_virt + f->run_len == v && f->run_host + f->run_len == host) {
		f->run_len += n;
		return 0;
	}
	rc = flush_run(f);
	if (rc < 0)
		return rc;
	f->run_virt = v;
	f->run_host = host;
	f->run_len = n;
	return 0;
}

/* Report where a compressed cluster lies (out->place_compressed), not read it. */
static int locate_compressed(struct fill *f, uint64_t v, uint64_t coff, uint64_t csize, uint64_t n)
{
	int rc = flush_run(f);

	if (rc < 0)
		return rc;
	fill_data_at(f, v);
	rc = f->out->place_compressed(f->out->arg, coff, csize);
	if (rc < 0)
		return fail(f->err, f->errlen, rc, "compressed cluster at %llu: %s",
			    (unsigned long long)coff, strerror(-rc));
	f->filled_to = v + n;
	return 0;
}

static int add_compressed(struct fill *f, uint64_t v, uint64_t entry, uint64_t n)
{
	const struct qcow2 *q = f->q;
	unsigned int x = 62 - (q->cluster_bits - 8);
	uint64_t coff = entry & ((1ull << x) - 1);
	uint64_t nsec = ((entry >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
	uint64_t csize = nsec * 512 - (coff & 511);
	struct scratch *s;
	uint8_t *out;
	int rc;

	if (f->out->place && !f->out->place_compressed)
		return fail(f->err, f->errlen, -EXDEV, "a compressed cluster at virtual %llu",
			    (unsigned long long)v);
	if (coff >= q->file_size)
		return fail(f->err, f->errlen, -EINVAL,
			    "compressed cluster at %llu (virtual %llu) lies beyond the end of the file",
			    (unsigned long long)coff, (unsigned long long)v);
	if (csize > q->file_size - coff)
		csize = q->file_size - coff;	/* the last one may end with the file */
	if (f->out->place)
		return locate_compressed(f, v, coff, csize, n);
	s = scratch_get(csize, q->cluster_size);
	if (!s)
		return fail(f->err, f->errlen, -ENOMEM, "out of memory");
	rc = flush_run(f);
	if (rc == 0)
		rc = q->pread(q->arg, s->cbuf, csize, coff);
	if (rc < 0)
		return fail(f->err, f->errlen, rc, "cannot read a compressed cluster at %llu: %s",
			    (unsigned long long)coff, strerror(-rc));
	fill_data_at(f, v);
	/* A whole cluster decompresses in place; the image's short last one, aside. */
	out = n == q->cluster_size ? f->buf + (v - f->off) : s->dbuf;
	rc = q->compression_type == 1 ? zstd_cluster(s, s->cbuf, csize, out, q->cluster_size)
				      : inflate_cluster(s, s->cbuf, csize, out, q->cluster_size);
	if (rc < 0)
		return fail(f->err, f->errlen, rc, "the compressed cluster at %llu (virtual %llu) does not decompress (%s)",
			    (unsigned long long)coff, (unsigned long long)v,
			    q->compression_type == 1 ? "zstd" : "deflate");
	if (out == s->dbuf)
		memcpy(f->buf + (v - f->off), s->dbuf, n);
	f->filled_to = v + n;
	return 0;
}

/* One standard cluster's bytes [v, v+n), with extended-L2 subclusters. */
static int add_standard(struct fill *f, uint64_t v, uint64_t entry, uint64_t bitmap, uint64_t n)
{
	const struct qcow2 *q = f->q;
	uint64_t host = entry & OFFSET_MASK, sc = q->cluster_size / SUBCLUSTERS;
	int rc = 0;

	if (host % q->cluster_size)
		return fail(f->err, f->errlen, -EINVAL, "cluster offset %llu is not cluster-aligned",
			    (unsigned long long)host);
	if (!q->extended_l2)
		return (entry & L2_ZERO) || !host ? 0 : add_data(f, v, host, n);
	for (uint64_t s = 0; s < SUBCLUSTERS && s * sc < n && rc == 0; s++) {
		bool alloc = bitmap >> s & 1, zero = bitmap >> (32 + s) & 1;
		uint64_t len = n - s * sc < sc ? n - s * sc : sc;

		if (alloc && zero)
			return fail(f->err, f->errlen, -EINVAL,
				    "subcluster %llu of virtual offset %llu is both allocated and zero",
				    (unsigned long long)s, (unsigned long long)v);
		if (alloc && !host)
			return fail(f->err, f->errlen, -EINVAL,
				    "an allocated subcluster at virtual offset %llu has no cluster",
				    (unsigned long long)v);
		if (alloc)
			rc = add_data(f, v + s * sc, host + s * sc, len);
	}
	return rc;
}

/* Clusters [ci, ci+count) all in one L2 table; adds their bytes to f. */
static int add_l2_span(struct fill *f, uint64_t ci, uint64_t count)
{
	const struct qcow2 *q = f->q;
	uint64_t l1i = ci / q->l2_entries, first = ci % q->l2_entries;
	uint64_t l2off = q->l1[l1i] & OFFSET_MASK;
	uint8_t *entries;
	int rc = 0;

	if (!l2off)
		return 0;	/* a whole L2 table unallocated: zeros */
	if (l2off % q->cluster_size || !in_file(q, l2off, q->l2_entries * q->l2_entry_size))
		return fail(f->err, f->errlen, -EINVAL,
			    "L2 table at %llu is misaligned or beyond the end of the file",
			    (unsigned long long)l2off);
	entries = malloc(count * q->l2_entry_size);
	if (!entries)
		return fail(f->err, f->errlen, -ENOMEM, "out of memory");
	rc = q->pread(q->arg, entries, count * q->l2_entry_size, l2off + first * q->l2_entry_size);
	if (rc < 0)
		rc = fail(f->err, f->errlen, rc, "cannot read the L2 table at %llu: %s",
			  (unsigned long long)l2off, strerror(-rc));
	for (uint64_t i = 0; i < count && rc == 0; i++) {
		const uint8_t *p = entries + i * q->l2_entry_size;
		uint64_t e = get_be64(p), v = (ci + i) * q->cluster_size;
		uint64_t n = f->end - v < q->cluster_size ? f->end - v : q->cluster_size;

		if (e & L2_COMPRESSED)
			rc = add_compressed(f, v, e, n);
		else
			rc = add_standard(f, v, e, q->extended_l2 ? get_be64(p + 8) : 0, n);
	}
	free(entries);
	return rc;
}

int qcow2_read(const struct qcow2 *q, struct qcow2_out *out, uint64_t off, uint32_t len,
	       char *err, size_t errlen)
{
	struct fill f = { .q = q, .out = out, .buf = out->buf, .off = off, .end = off + len,
			  .filled_to = off, .err = err, .errlen = errlen };
	uint64_t ci = off / q->cluster_size;
	uint64_t last = (f.end + q->cluster_size - 1) / q->cluster_size;
	int rc = 0;

	if (off % q->cluster_size || off > q->size || len > q->size - off)
		return fail(err, errlen, -EINVAL, "read of %u bytes at %llu is outside the image",
			    len, (unsigned long long)off);
	if (out->place && !out->zeros)
		return fail(err, errlen, -EINVAL, "placed runs need a zeros callback");
	while (ci < last && rc == 0) {
		uint64_t in_table = q->l2_entries - ci % q->l2_entries;
		uint64_t count = last - ci < in_table ? last - ci : in_table;

		rc = add_l2_span(&f, ci, count);
		ci += count;
	}
	if (rc == 0)
		rc = flush_run(&f);
	if (rc < 0)
		return rc;
	out->all_zero = !f.any_data;
	fill_zeros_to(&f, f.end);
	return 0;
}

/* Check one L2 entry the way qcow2_read would use it, and count its bytes. */
static int check_entry(const struct qcow2 *q, uint64_t v, const uint8_t *p, uint64_t *alloc,
		       uint64_t *comp, char *err, size_t errlen)
{
	uint64_t e = get_be64(p), host = e & OFFSET_MASK, sc = q->cluster_size / SUBCLUSTERS;
	uint64_t n = q->size - v < q->cluster_size ? q->size - v : q->cluster_size;

	if (e & L2_COMPRESSED) {
		uint64_t coff = e & ((1ull << (62 - (q->cluster_bits - 8))) - 1);

		if (coff >= q->file_size)
			return fail(err, errlen, -EINVAL,
				    "compressed cluster at %llu (virtual %llu) lies beyond the end of the file",
				    (unsigned long long)coff, (unsigned long long)v);
		*alloc += n;
		*comp += n;
		return 0;
	}
	if (host % q->cluster_size)
		return fail(err, errlen, -EINVAL, "cluster offset %llu (virtual %llu) is not cluster-aligned",
			    (unsigned long long)host, (unsigned long long)v);
	if (!q->extended_l2) {
		if ((e & L2_ZERO) || !host)
			return 0;
		if (!in_file(q, host, n))
			return fail(err, errlen, -EINVAL,
				    "cluster data at %llu (for virtual offset %llu) lies beyond the end of the file",
				    (unsigned long long)host, (unsigned long long)v);
		*alloc += n;
		return 0;
	}
	for (uint64_t s = 0, bitmap = get_be64(p + 8); s < SUBCLUSTERS && s * sc < n; s++) {
		bool is_alloc = bitmap >> s & 1, is_zero = bitmap >> (32 + s) & 1;
		uint64_t len = n - s * sc < sc ? n - s * sc : sc;

		if (is_alloc && (is_zero || !host || !in_file(q, host + s * sc, len)))
			return fail(err, errlen, -EINVAL,
				    "subcluster %llu of virtual offset %llu is %s",
				    (unsigned long long)s, (unsigned long long)v,
				    is_zero ? "both allocated and zero" :
				    !host ? "allocated without a cluster" : "beyond the end of the file");
		if (is_alloc)
			*alloc += len;
	}
	return 0;
}

int qcow2_check(const struct qcow2 *q, uint64_t *allocated, uint64_t *compressed, char *err,
		size_t errlen)
{
	uint64_t clusters = (q->size + q->cluster_size - 1) / q->cluster_size, alloc = 0, comp = 0;
	uint8_t *entries = malloc(q->l2_entries * q->l2_entry_size);
	int rc = entries ? 0 : fail(err, errlen, -ENOMEM, "out of memory");

	for (uint64_t l1i = 0; rc == 0 && l1i < q->l1_size; l1i++) {
		uint64_t l2off = q->l1[l1i] & OFFSET_MASK, first = l1i * q->l2_entries;
		uint64_t count = clusters - first < q->l2_entries ? clusters - first : q->l2_entries;

		if (!l2off)
			continue;
		if (l2off % q->cluster_size || !in_file(q, l2off, q->l2_entries * q->l2_entry_size)) {
			rc = fail(err, errlen, -EINVAL, "L2 table at %llu is misaligned or beyond the end of the file",
				  (unsigned long long)l2off);
			break;
		}
		rc = q->pread(q->arg, entries, count * q->l2_entry_size, l2off);
		if (rc < 0)
			rc = fail(err, errlen, rc, "cannot read the L2 table at %llu: %s",
				  (unsigned long long)l2off, strerror(-rc));
		for (uint64_t i = 0; rc == 0 && i < count; i++)
			rc = check_entry(q, (first + i) * q->cluster_size, entries + i * q->l2_entry_size,
					 &alloc, &comp, err, errlen);
	}
	free(entries);
	*allocated = alloc;
	*compressed = comp;
	return rc;
}
