/*
 * A read-only qcow2 reader (versions 2 and 3) over an abstract pread, so the
 * image source, `info` and the fuzzer share it. The file is untrusted: every
 * offset is checked for alignment and for lying inside the file, table sizes
 * are bounded, and sizes are computed without overflow. Refused, with the
 * reason: version 1 or unknown versions, backing files, encryption, external
 * data files, the corrupt bit, unknown incompatible features (named from the
 * feature-name table when it has them).
 */
#ifndef IMGDEV_QCOW2_H
#define IMGDEV_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QCOW2_MAGIC 0x514649fbu	/* "QFI\xfb" */
#define QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)
#define QCOW2_MAX_FEATURE_NAMES 64

/* Reads exactly len bytes at off of the image file; 0 or -errno. */
typedef int (*qcow2_pread_fn)(void *arg, void *buf, size_t len, uint64_t off);

struct qcow2_feature_name {
	uint8_t type;		/* 0 incompatible, 1 compatible, 2 autoclear */
	uint8_t bit;
	char name[47];
};

struct qcow2 {
	qcow2_pread_fn pread;
	void *arg;
	uint64_t file_size;
	uint32_t version;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint64_t size;			/* virtual size */
	uint64_t incompat, compat, autoclear;
	uint8_t compression_type;	/* 0 zlib (deflate), 1 zstd */
	bool extended_l2;
	uint32_t l2_entry_size;		/* 8, or 16 with extended L2 */
	uint64_t l2_entries;		/* entries per L2 table */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t *l1;			/* the active L1 table, host byte order */
	bool dirty;
	int nfeature_names;
	struct qcow2_feature_name feature_names[QCOW2_MAX_FEATURE_NAMES];
};

/* Whether buf (at least 4 bytes) starts with the qcow2 magic. */
bool qcow2_probe(const uint8_t *buf, size_t len);

/* What the start of a header says, unchecked: for `info` on an image refused. */
#define QCOW2_PEEK_SIZE 32
struct qcow2_peek {
	uint32_t version;
	uint64_t cluster_size;		/* 0 when the cluster bits are out of range */
	uint64_t size;			/* virtual size */
};
/* Whether buf (len bytes, QCOW2_PEEK_SIZE needed) is a qcow2 header; p filled if so. */
bool qcow2_peek(const uint8_t *buf, size_t len, struct qcow2_peek *p);

/*
 * Read and check the header, its extensions and the L1 table. Returns 0, or
 * -errno with the reason in err: -ENOTSUP for what imgdev refuses by design
 * (backing file, encryption, ...), -EINVAL for a malformed image, or the
 * pread error. Free with qcow2_close() in both cases.
 */
int qcow2_open(struct qcow2 *q, qcow2_pread_fn pread, void *arg, uint64_t file_size,
	       char *err, size_t errlen);
void qcow2_close(struct qcow2 *q);

/* Where qcow2_read puts the bytes it reads. */
struct qcow2_out {
	uint8_t *buf;
	/* Called for zeros at buf[from, to); NULL: they are written into buf. */
	void (*zeros)(void *arg, uint32_t from, uint32_t to);
	/*
	 * NULL, or called for each run of data at buf[at, at+len) that is the
	 * file's bytes [host, host+len): it puts them there itself (a mapping)
	 * and returns 0, or returns -errno and qcow2_read gives up with it.
	 * place needs zeros, and buf is then never written: a compressed
	 * cluster, which has to be decompressed into buf, fails with -EXDEV.
	 */
	int (*place)(void *arg, uint32_t at, uint32_t len, uint64_t host);
	/*
	 * NULL, or (with place) called with the file's bytes [host, host+len)
	 * that hold each compressed cluster, instead of failing with -EXDEV:
	 * for a caller that only wants to know where the data lies.
	 */
	int (*place_compressed)(void *arg, uint64_t host, uint64_t len);
	void *arg;
	bool all_zero;		/* set: the whole range is zeros, buf untouched */
};

/*
 * Read virtual bytes [off, off+len) into out (off and len within the
 * virtual size). Unallocated and zero clusters come back as zeros. Safe to
 * call from several threads at once. 0, or -errno with the reason in err.
 */
int qcow2_read(const struct qcow2 *q, struct qcow2_out *out, uint64_t off, uint32_t len,
	       char *err, size_t errlen);

/*
 * Walk every L2 table and entry and check them as qcow2_read would use them
 * (table and cluster offsets aligned and inside the file, subcluster bits
 * consistent), so that a malformed image is refused before anything is
 * written. Also counts the virtual bytes backed by data, and of those the
 * bytes in compressed clusters. 0 or -errno with err.
 */
int qcow2_check(const struct qcow2 *q, uint64_t *allocated, uint64_t *compressed, char *err,
		size_t errlen);

#endif
