/*
 * The disk of a containerDisk, streamed out of its layers (tar_disk.h).
 * Layers are read top first with libarchive, one at a time, each to its
 * last byte. Their entries are only listed: whiteouts, opaque directories
 * and the paths upper layers already hold hide what lies below them, and
 * the first regular file under disk/ left visible is the disk, whose data
 * read then hands out as libarchive decodes it. After its last byte the
 * rest is listed for a second disk before EOF is given.
 *
 * Divided as: paths and what hides them; a layer's archive (open, its
 * read callback, its end); the walk over entries; the byte source.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "bytesrc.h"
#include "internal.h"
#include "tar_disk.h"

#define PEEK_MAX 4096
#define LAYER_BUF (256 * 1024)
#define PATH_LEN 4096

enum phase {
	PH_DATA,   /* the disk's data is being read */
	PH_TAIL,   /* its data ended: the rest of the layers is to be listed */
	PH_DONE,   /* all listed: EOF */
	PH_FAILED, /* rc, the message in msg */
};

/* What an upper layer's entry hides below it: the path itself, what is under it, or both. */
struct hide {
	char *path;
	bool self, below;
};

struct tar_disk {
	struct bytesrc **layers; /* the caller's, lowest first */
	tar_layer_skip_fn **skips; /* each one's skip, or NULL */
	size_t n;
	size_t left;        /* layers not yet opened (those below cur) */
	size_t cur;         /* the layer being read */
	struct archive *a;  /* its reader, or NULL between layers */
	bool layer_any;     /* a header was read from it */
	uint8_t *buf;       /* its bytes as handed to libarchive */
	int io_rc;          /* a layer source's failure (its message in msg), or 0 */
	char *want;         /* the normalised disk_path, or NULL */
	struct hide *hides; /* those of the layers above cur, then cur's own */
	size_t n_hides, n_active, cap_hides;
	char entry[PATH_LEN]; /* the entry at hand, normalised when it can be */
	struct tar_disk_info info;
	uint64_t streamed;      /* of the disk's data, from libarchive */
	bool data_eof;          /* libarchive gave the data's end */
	bool started;           /* read went past what peek held */
	bool skip_data;         /* tar_disk_skip_data: the disk's data is read elsewhere */
	uint8_t held[PEEK_MAX]; /* read ahead by peek, not yet by read */
	size_t held_len, held_pos;
	enum phase phase;
	int rc;
	char *msg; /* the source's msg */
	size_t msg_size;
};

bool tar_disk_norm_path(const char *in, char *out, size_t size)
{
	size_t len = 0;

	while (*in) {
		size_t c = strcspn(in, "/");

		if (c == 2 && in[0] == '.' && in[1] == '.')
			return false;
		if (c > 0 && !(c == 1 && in[0] == '.')) {
			if (len + (len > 0) + c + 1 > size)
				return false;
			if (len > 0)
				out[len++] = '/';
			memcpy(out + len, in, c);
			len += c;
		}
		in += c;
		in += *in == '/';
	}
	out[len] = '\0';
	return true;
}

/* Whether p lies under directory d ("" is the root). */
static bool is_below(const char *p, const char *d)
{
	size_t len = strlen(d);

	if (len == 0)
		return p[0] != '\0';
	return strncmp(p, d, len) == 0 && p[len] == '/';
}

/* Whether p is, or is a directory above, a path that could be the disk. */
static bool covers(const struct tar_disk *t, const char *p)
{
	size_t len = strlen(p);

	if (len == 0)
		return true;
	if (t->want)
		return strcmp(p, t->want) == 0 ||
		       (strncmp(t->want, p, len) == 0 && t->want[len] == '/');
	if (strcmp(p, "disk") == 0)
		return true;
	return strncmp(p, "disk/", 5) == 0 && p[5] && !strchr(p + 5, '/');
}

/* Whether an upper layer hides p. */
static bool hidden(const struct tar_disk *t, const char *p)
{
	for (size_t i = 0; i < t->n_active; i++) {
		const struct hide *h = &t->hides[i];

		if ((h->self && strcmp(p, h->path) == 0) || (h->below && is_below(p, h->path)))
			return true;
	}
	return false;
}

/* Records what p hides from the layers below, if it can matter. Returns 0 or -ENOMEM. */
static int add_hide(struct tar_disk *t, const char *p, bool self, bool below)
{
	struct hide *h;

	if (!covers(t, p))
		return 0;
	if (t->n_hides == t->cap_hides) {
		size_t cap = t->cap_hides ? 2 * t->cap_hides : 16;

		h = realloc(t->hides, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		t->hides = h;
		t->cap_hides = cap;
	}
	h = &t->hides[t->n_hides];
	h->path = strdup(p);
	if (!h->path)
		return -ENOMEM;
	h->self = self;
	h->below = below;
	t->n_hides++;
	return 0;
}

/* Records a whiteout p (its last component base): ".wh.NAME" or ".wh..wh..opq". Returns 0 or -ENOMEM. */
static int add_whiteout(struct tar_disk *t, const char *p, const char *base)
{
	char target[PATH_LEN];
	int dir_len = base > p ? (int)(base - p - 1) : 0;

	if (strcmp(base, ".wh..wh..opq") == 0) {
		snprintf(target, sizeof(target), "%.*s", dir_len, p);
		return add_hide(t, target, false, true);
	}
	if (!base[4])
		return 0;
	snprintf(target, sizeof(target), "%.*s%s%s", dir_len, p, dir_len ? "/" : "", base + 4);
	return add_hide(t, target, true, true);
}

static int fail(struct tar_disk *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the failure (a layer source's own when there was one). Returns its -errno. */
static int fail(struct tar_disk *t, int err, const char *fmt, ...)
{
	va_list ap;

	if (t->io_rc) {
		t->rc = t->io_rc;
	} else {
		va_start(ap, fmt);
		vsnprintf(t->msg, t->msg_size, fmt, ap);
		va_end(ap);
		t->rc = -err;
	}
	t->phase = PH_FAILED;
	return t->rc;
}

/* Layer cur's source failed with rc: kept (its words in msg) and told to libarchive; -1. */
static int layer_failed(struct archive *a, struct tar_disk *t, int rc)
{
	t->io_rc = rc;
	snprintf(t->msg, t->msg_size, "%s", bytesrc_error(t->layers[t->cur], rc));
	archive_set_error(a, EIO, "%s", t->msg);
	return -1;
}

/* libarchive's read callback: the layer's next bytes. Returns how many, 0 at its end, -1 on failure. */
static la_ssize_t layer_read_cb(struct archive *a, void *data, const void **buf)
{
	struct tar_disk *t = data;
	ssize_t n = bytesrc_read(t->layers[t->cur], t->buf, LAYER_BUF);

	if (n < 0)
		return layer_failed(a, t, (int)n);
	*buf = t->buf;
	return n;
}

/*
 * libarchive's skip callback: past request bytes of layer cur without
 * reading them, where its source can (a plain tar: libarchive calls it for
 * the raw bytes only). Returns how many, 0 when it cannot (libarchive then
 * reads them), -1 on failure.
 */
static la_int64_t layer_skip_cb(struct archive *a, void *data, la_int64_t request)
{
	struct tar_disk *t = data;
	struct bytesrc *bs = t->layers[t->cur];
	int64_t n;

	if (!t->skips[t->cur] || request <= 0)
		return 0;
	n = t->skips[t->cur](bs, request);
	return n < 0 ? layer_failed(a, t, (int)n) : n;
}

/* Starts reading layer cur as a tar, plain, gzip or zstd. Returns 0 or -errno. */
static int layer_open(struct tar_disk *t)
{
	t->a = archive_read_new();
	t->layer_any = false;
	if (!t->a)
		return fail(t, ENOMEM, "out of memory");
	if (archive_read_support_filter_none(t->a) != ARCHIVE_OK ||
	    archive_read_support_filter_gzip(t->a) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(t->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(t->a) != ARCHIVE_OK)
		return fail(t, ENOTSUP, "libarchive cannot read tar, gzip or zstd itself: %s",
			    archive_error_string(t->a));
	if (archive_read_open2(t->a, t, NULL, layer_read_cb, layer_skip_cb, NULL) != ARCHIVE_OK)
		return fail(t, EBADMSG, "layer %zu is not a tar archive: %s", t->cur + 1,
			    archive_error_string(t->a));
	return 0;
}

/* Ends layer cur: frees its reader and reads its bytes to the last. Returns 0 or -errno. */
static int layer_finish(struct tar_disk *t)
{
	struct bytesrc *bs = t->layers[t->cur];
	ssize_t n;

	archive_read_free(t->a);
	t->a = NULL;
	do
		n = bytesrc_read(bs, t->buf, LAYER_BUF);
	while (n > 0);
	if (n < 0) {
		t->io_rc = (int)n;
		snprintf(t->msg, t->msg_size, "%s", bytesrc_error(bs, (int)n));
		return fail(t, EIO, "%s", t->msg);
	}
	return 0;
}

/* The next header of layer cur. Returns 1 with *e, 0 at the layer's end, or -errno. */
static int next_header(struct tar_disk *t, struct archive_entry **e)
{
	int rc = archive_read_next_header(t->a, e);

	/* libarchive may take a failed read past the end-of-archive blocks for the end. */
	if (rc == ARCHIVE_EOF && t->io_rc)
		return fail(t, EIO, "layer %zu: read failed", t->cur + 1);
	if (rc == ARCHIVE_EOF)
		return 0;
	if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
		if (!t->layer_any)
			return fail(t, EBADMSG, "layer %zu is not a tar archive: %s", t->cur + 1,
				    archive_error_string(t->a));
		return fail(t, EBADMSG, "layer %zu: bad tar header after %s: %s", t->cur + 1,
			    t->entry, archive_error_string(t->a));
	}
	t->layer_any = true;
	return 1;
}

/* Whether the entry at path p (normalised) is a candidate for the disk. */
static bool is_candidate(const struct tar_disk *t, const char *p, struct archive_entry *e)
{
	if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
		return false;
	if (t->want ? strcmp(p, t->want) != 0
		    : strncmp(p, "disk/", 5) != 0 || !p[5] || strchr(p + 5, '/'))
		return false;
	return !hidden(t, p);
}

/* Lists entry e: records what it hides. Returns 1 when it is a candidate, 0 if not, or -errno. */
static int look_at(struct tar_disk *t, struct archive_entry *e)
{
	const char *raw = archive_entry_pathname(e);
	const char *base;
	int rc;

	if (!raw || !tar_disk_norm_path(raw, t->entry, sizeof(t->entry))) {
		snprintf(t->entry, sizeof(t->entry), "%s", raw ? raw : "(unnamed)");
		return 0;
	}
	base = strrchr(t->entry, '/');
	base = base ? base + 1 : t->entry;
	if (strncmp(base, ".wh.", 4) == 0) {
		if (add_whiteout(t, t->entry, base) < 0)
			return fail(t, ENOMEM, "out of memory");
		return 0;
	}
	rc = add_hide(t, t->entry, true, archive_entry_filetype(e) != AE_IFDIR);
	if (rc < 0)
		return fail(t, ENOMEM, "out of memory");
	return is_candidate(t, t->entry, e);
}

/*
 * Lists entries on from where the walk stands, layer after layer down,
 * skipping their data. Returns 1 at a candidate (its data not read, *e
 * its entry, t->entry its path), 0 when every layer was read to its end,
 * or -errno.
 */
static int walk(struct tar_disk *t, struct archive_entry **e)
{
	int rc;

	for (;;) {
		if (!t->a) {
			if (t->left == 0)
				return 0;
			t->cur = --t->left;
			t->n_active = t->n_hides;
			rc = layer_open(t);
			if (rc < 0)
				return rc;
		}
		rc = next_header(t, e);
		if (rc == 0)
			rc = layer_finish(t);
		else if (rc > 0)
			rc = look_at(t, *e);
		if (rc != 0)
			return rc;
		if (t->a && archive_read_data_skip(t->a) != ARCHIVE_OK)
			return fail(t, ENODATA, "layer %zu ends inside %s (%s)", t->cur + 1, t->entry,
				    archive_error_string(t->a));
	}
}

/* Takes entry e as the disk: the source's size and name, the info. Returns 0 or -ENOMEM. */
static int take_disk(struct bytesrc *bs, struct tar_disk *t, struct archive_entry *e)
{
	struct tar_disk_info *info = &t->info;

	snprintf(info->path, sizeof(info->path), "%s", t->entry);
	info->layer = t->cur;
	info->size = archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0;
	info->layer_uncompressed = archive_filter_count(t->a) == 1 &&
				   archive_filter_code(t->a, 0) == ARCHIVE_FILTER_NONE;
	info->data_offset = info->layer_uncompressed ? (uint64_t)archive_filter_bytes(t->a, 0) : 0;
	bs->size = info->size;
	bs->size_known = archive_entry_size_is_set(e);
	free(bs->name);
	if (asprintf(&bs->name, "%s (layer %zu)", t->entry, t->cur + 1) < 0) {
		bs->name = NULL;
		return fail(t, ENOMEM, "out of memory");
	}
	t->phase = PH_DATA;
	return 0;
}

/* The disk's data has ended: whether all its declared bytes came. Returns 0 or -ENODATA. */
static int data_end(struct tar_disk *t, struct bytesrc *bs)
{
	t->phase = PH_TAIL;
	if (bs->size_known && t->streamed != bs->size)
		return fail(t, ENODATA, "layer %zu ends inside %s (%llu of %llu bytes)",
			    t->info.layer + 1, t->info.path, (unsigned long long)t->streamed,
			    (unsigned long long)bs->size);
	return 0;
}

/* Up to len of the disk's data from libarchive. Returns how many (0 at its end), or -errno. */
static ssize_t data_read(struct tar_disk *t, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len && !t->data_eof) {
		la_ssize_t n = archive_read_data(t->a, buf + got, len - got);

		if (n < 0)
			return fail(t, ENODATA, "layer %zu ends inside %s (%s)", t->info.layer + 1,
				    t->info.path, archive_error_string(t->a));
		t->data_eof = n == 0;
		got += (size_t)n;
		t->streamed += (uint64_t)n;
	}
	return (ssize_t)got;
}

/* After the disk's data: the rest listed, for a second disk. Returns 0 (EOF) or -errno. */
static int tail(struct tar_disk *t)
{
	struct archive_entry *e;
	int rc = walk(t, &e);

	if (rc < 0)
		return rc;
	if (rc > 0) {
		if (strcmp(t->entry, t->info.path) == 0 && t->cur == t->info.layer)
			return fail(t, ENOTUNIQ, "two disks: %s twice in layer %zu", t->entry,
				    t->cur + 1);
		return fail(t, ENOTUNIQ,
			    "two disks: %s (layer %zu) and %s (layer %zu); choose one with --disk-path",
			    t->info.path, t->info.layer + 1, t->entry, t->cur + 1);
	}
	t->phase = PH_DONE;
	return 0;
}

static ssize_t td_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct tar_disk *t = bs->priv;
	ssize_t n;
	int rc;

	if (t->held_pos < t->held_len)
		return (ssize_t)bytesrc_take_held(t->held, t->held_len, &t->held_pos, buf, len);
	if (t->phase == PH_DATA && t->skip_data) {
		if (archive_read_data_skip(t->a) != ARCHIVE_OK)
			return fail(t, ENODATA, "layer %zu ends inside %s (%s)", t->info.layer + 1,
				    t->info.path, archive_error_string(t->a));
		t->phase = PH_TAIL;
	}
	if (t->phase == PH_DATA) {
		t->started = true;
		n = data_read(t, buf, len);
		if (n != 0)
			return n;
		rc = data_end(t, bs);
		if (rc < 0)
			return rc;
	}
	if (t->phase == PH_TAIL)
		return tail(t);
	return t->phase == PH_DONE ? 0 : t->rc;
}

static ssize_t td_peek(struct bytesrc *bs, void *buf, size_t len)
{
	struct tar_disk *t = bs->priv;
	ssize_t n;

	if (t->started) {
		snprintf(bs->msg, sizeof(bs->msg), "%s: peek after read", bs->name);
		return -ESPIPE;
	}
	if (len > PEEK_MAX)
		len = PEEK_MAX;
	if (t->phase == PH_DATA && t->held_len < len) {
		n = data_read(t, t->held + t->held_len, len - t->held_len);
		if (n < 0)
			return n;
		t->held_len += (size_t)n;
	}
	if (t->phase == PH_FAILED)
		return t->rc;
	len = t->held_len < len ? t->held_len : len;
	memcpy(buf, t->held, len);
	return (ssize_t)len;
}

static void td_close(struct bytesrc *bs)
{
	struct tar_disk *t = bs->priv;

	if (!t)
		return;
	if (t->a)
		archive_read_free(t->a);
	for (size_t i = 0; i < t->n_hides; i++)
		free(t->hides[i].path);
	free(t->hides);
	free(t->layers);
	free(t->skips);
	free(t->want);
	free(t->buf);
	free(t);
}

static const struct bytesrc_ops tar_disk_ops = {
	.read = td_read,
	.peek = td_peek,
	.close = td_close,
};

/* The source, before any layer is read. Returns 0 or -errno with the message in ctx. */
static int td_new(struct imgdev_ctx *ctx, const struct tar_layer *layers, size_t n,
		  const struct tar_disk_opts *o, struct bytesrc **out)
{
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	struct tar_disk *t = calloc(1, sizeof(*t));
	char want[PATH_LEN];

	if (!bs || !t) {
		free(bs);
		free(t);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	bs->ops = &tar_disk_ops;
	bs->priv = t;
	bs->fd = -1;
	t->msg = bs->msg;
	t->msg_size = sizeof(bs->msg);
	if (!(bs->name = strdup("container disk")) || !(t->buf = malloc(LAYER_BUF)) ||
	    !(t->layers = calloc(n ? n : 1, sizeof(*t->layers))) ||
	    !(t->skips = calloc(n ? n : 1, sizeof(*t->skips))))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		t->layers[i] = layers[i].bs;
		t->skips[i] = layers[i].skip;
	}
	t->n = t->left = n;
	*out = bs;
	if (!o || !o->disk_path)
		return 0;
	if (!tar_disk_norm_path(o->disk_path, want, sizeof(want)) || !want[0]) {
		bytesrc_close(bs);
		return ctx_error(ctx, EINVAL, "%s: not a path a disk can have", o->disk_path);
	}
	if ((t->want = strdup(want)))
		return 0;
nomem:
	bytesrc_close(bs);
	return ctx_error(ctx, ENOMEM, "out of memory");
}

int tar_disk_open(struct imgdev_ctx *ctx, const struct tar_layer *layers, size_t n,
		  const struct tar_disk_opts *o, struct bytesrc **disk)
{
	struct bytesrc *bs;
	struct tar_disk *t;
	struct archive_entry *e;
	int rc = td_new(ctx, layers, n, o, &bs);

	if (rc < 0)
		return rc;
	t = bs->priv;
	rc = walk(t, &e);
	if (rc > 0)
		rc = take_disk(bs, t, e);
	else if (rc == 0 && t->want)
		rc = fail(t, ENOENT, "no disk: no regular file %s in %zu layer%s", t->want, n,
			  n == 1 ? "" : "s");
	else if (rc == 0)
		rc = fail(t, ENOENT, "no disk: no regular file under disk/ in %zu layer%s", n,
			  n == 1 ? "" : "s");
	if (rc < 0) {
		ctx_error(ctx, -rc, "%s", bs->msg);
		bytesrc_close(bs);
		return rc;
	}
	*disk = bs;
	return 0;
}

void tar_disk_skip_data(struct bytesrc *disk)
{
	struct tar_disk *t = disk->priv;

	t->skip_data = true;
}

void tar_disk_info(const struct bytesrc *disk, struct tar_disk_info *info)
{
	const struct tar_disk *t = disk->priv;

	*info = t->info;
}
