/*
 * Opening an image: the reader is chosen by the file's first bytes, never by
 * its name — qcow2 by its magic, raw otherwise. Also the plain SHA-256 of
 * the file as given, for formats whose payload is not the file itself, and
 * dropping the file's pages from the page cache once it has been read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blockdev.h"
#include "imgsrc.h"
#include "internal.h"
#include "qcow2.h"

#define HASH_READ_SIZE (1024 * 1024)

static int imgsrc_probe(struct imgdev_ctx *ctx, struct imgsrc *src)
{
	uint8_t magic[8] = { 0 };
	size_t n = src->file_size < sizeof(magic) ? (size_t)src->file_size : sizeof(magic);
	int rc = bdev_pread_full(src->fd, magic, n, 0);

	if (rc < 0)
		return ctx_error(ctx, ENOMEDIUM, "%s: cannot read: %s", src->path, strerror(-rc));
	static const uint8_t gz[] = { 0x1f, 0x8b }, xz[] = { 0xfd, '7', 'z', 'X', 'Z', 0 },
			     zst[] = { 0x28, 0xb5, 0x2f, 0xfd };

	if (qcow2_probe(magic, n))
		return imgsrc_qcow2_init(ctx, src);
	if (n >= sizeof(gz) && memcmp(magic, gz, sizeof(gz)) == 0)
		return imgsrc_stream_init(ctx, src, 0);
	if (n >= sizeof(xz) && memcmp(magic, xz, sizeof(xz)) == 0)
		return imgsrc_stream_init(ctx, src, 1);
	if (n >= sizeof(zst) && memcmp(magic, zst, sizeof(zst)) == 0)
		return imgsrc_stream_init(ctx, src, 2);
	return imgsrc_raw_init(ctx, src);
}

int imgsrc_open(struct imgdev_ctx *ctx, const char *path, struct imgsrc **out)
{
	struct imgsrc *src = calloc(1, sizeof(*src));
	struct statfs fs;
	struct stat st;
	int rc = 0;

	if (!src)
		return ctx_error(ctx, ENOMEM, "out of memory");
	src->fd = src->data_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (src->fd < 0) {
		rc = ctx_error(ctx, errno == EACCES || errno == EPERM ? EACCES : ENOMEDIUM, "%s: cannot open the image: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(src->fd, &st) < 0) {
		rc = ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ctx_error(ctx, ENOMEDIUM, "%s: the image must be a regular file", path);
		goto out;
	}
	src->path = strdup(path);
	if (!src->path) {
		rc = ctx_error(ctx, ENOMEM, "out of memory");
		goto out;
	}
	src->file_size = (uint64_t)st.st_size;
	src->in_memory = fstatfs(src->fd, &fs) == 0 &&
			 (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
	src->drop_behind = !src->in_memory;
	src->opened_mtime = st.st_mtim;
	src->opened_ctime = st.st_ctim;
	if (src->file_size == 0) {
		rc = ctx_error(ctx, ENOMEDIUM, "%s: the image is empty", path);
		goto out;
	}
	rc = imgsrc_probe(ctx, src);
	if (rc == 0 && src->size == 0)
		rc = ctx_error(ctx, ENOMEDIUM, "%s: the image's virtual size is 0", path);
out:
	if (rc < 0)
		imgsrc_close(src);
	else
		*out = src;
	return rc;
}

void imgsrc_close(struct imgsrc *src)
{
	if (!src)
		return;
	if (src->ops)
		src->ops->close(src);
	if (src->data_fd >= 0 && src->data_fd != src->fd)
		close(src->data_fd);
	if (src->fd >= 0)
		close(src->fd);
	free(src->path);
	free(src);
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

int imgsrc_check_unchanged(struct imgdev_ctx *ctx, const struct imgsrc *src)
{
	struct stat st;

	if (fstat(src->fd, &st) < 0)
		return ctx_error(ctx, errno, "%s: cannot check the image after the copy: %s", src->path,
				 strerror(errno));
	if ((uint64_t)st.st_size != src->file_size)
		return ctx_error(ctx, ESTALE, "%s: the image file changed size while it was copied "
				 "(%llu bytes, then %llu); nothing was committed; provision again", src->path,
				 (unsigned long long)src->file_size, (unsigned long long)st.st_size);
	if (!same_time(st.st_mtim, src->opened_mtime) || !same_time(st.st_ctim, src->opened_ctime))
		return ctx_error(ctx, ESTALE, "%s: the image file was modified while it was copied; "
				 "nothing was committed; provision again", src->path);
	return 0;
}

void imgsrc_drop_cache(const struct imgsrc *src)
{
	if (src->read_through && !src->in_memory)
		posix_fadvise(src->fd, 0, 0, POSIX_FADV_DONTNEED);
}

int imgsrc_hash_file(struct imgdev_ctx *ctx, const struct imgsrc *src,
		     uint8_t hash[IMGDEV_HASH_SIZE])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *buf = malloc(HASH_READ_SIZE);
	unsigned int dlen = 0;
	int rc = 0;

	if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		rc = ctx_error(ctx, ENOMEM, "out of memory");
	for (uint64_t off = 0; rc == 0 && off < src->file_size; off += HASH_READ_SIZE) {
		size_t n = src->file_size - off < HASH_READ_SIZE ? (size_t)(src->file_size - off)
								  : HASH_READ_SIZE;

		rc = bdev_pread_full(src->fd, buf, n, off);
		if (rc < 0)
			rc = ctx_error(ctx, ENOMEDIUM, "%s: read error at offset %llu: %s", src->path,
				       (unsigned long long)off, strerror(-rc));
		else
			EVP_DigestUpdate(md, buf, n);
	}
	if (rc == 0)
		EVP_DigestFinal_ex(md, hash, &dlen);
	free(buf);
	EVP_MD_CTX_free(md);
	return rc;
}
