/*
 * An OCI image layout on local disk ("oci:DIR[:TAG]"): the directory
 * checked by its oci-layout file, the tag looked up in index.json (its
 * entries' org.opencontainers.image.ref.name), and blobs found under
 * blobs/sha256/ by digest, small ones read whole and checked against it.
 * Paths are made only from the directory given and validated digests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "oci.h"

#define INDEX_MAX (4u << 20) /* index.json, oci-layout: a few KiB in practice */

/* The whole of fd into *bytes (NUL-terminated), at most max. 0, -EFBIG or -errno. */
static int read_whole(struct imgdev_ctx *ctx, int fd, const char *path, size_t max, char **bytes,
		      size_t *len)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;

	*bytes = NULL;
	if (fstat(fd, &st) < 0)
		return ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ctx_error(ctx, ENOMEDIUM, "%s: not a regular file", path);
	if ((uint64_t)st.st_size > max)
		return ctx_error(ctx, EFBIG, "%s: %lld bytes, more than the %zu allowed", path,
				 (long long)st.st_size, max);
	*bytes = malloc((size_t)st.st_size + 1);
	if (!*bytes)
		return ctx_error(ctx, ENOMEM, "%s: out of memory", path);
	while (got < (size_t)st.st_size && (n = read(fd, *bytes + got, (size_t)st.st_size - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(*bytes);
			*bytes = NULL;
			return ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
		}
		got += (size_t)n;
	}
	(*bytes)[got] = '\0';
	*len = got;
	return 0;
}

/* The file dir/name read whole (see read_whole). 0 or -errno with the message in ctx. */
static int read_file(struct imgdev_ctx *ctx, const char *dir, const char *name, size_t max,
		     char **bytes, size_t *len)
{
	char path[4096];
	int fd, rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return ctx_error(ctx, ENAMETOOLONG, "%s: path too long", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ctx_error(ctx, errno, "%s: %s", path, strerror(errno));
	rc = read_whole(ctx, fd, path, max, bytes, len);
	close(fd);
	return rc;
}

/* spec split into *dir (malloc'd) and tag (into buf, "" for none). 0 or -errno. */
static int split_spec(struct imgdev_ctx *ctx, const char *spec, char **dir, char *tag, size_t cap)
{
	const char *colon = strrchr(spec, ':');
	size_t dlen = strlen(spec);

	tag[0] = '\0';
	if (colon && !strchr(colon + 1, '/')) {
		if (strlen(colon + 1) >= cap)
			return ctx_error(ctx, EINVAL, "%s: the tag is too long", spec);
		strcpy(tag, colon + 1);
		dlen = (size_t)(colon - spec);
	}
	if (dlen == 0)
		return ctx_error(ctx, EINVAL, "oci:%s: no directory", spec);
	*dir = strndup(spec, dlen);
	return *dir ? 0 : ctx_error(ctx, ENOMEM, "out of memory");
}

/* The layout's tags, "a, b, c", into buf. */
static void list_tags(const struct oci_descriptor *e, size_t n, char *buf, size_t cap)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < cap; i++)
		if (e[i].ref_name[0])
			used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "",
						 e[i].ref_name);
	if (!buf[0])
		snprintf(buf, cap, "none");
}

/* The entry of index.json tag names (without a tag: the only one) into *top. */
static int pick_entry(struct imgdev_ctx *ctx, const char *dir, const struct oci_descriptor *e,
		      size_t n, const char *tag, struct oci_descriptor *top)
{
	char tags[1024];

	for (size_t i = 0; i < n; i++) {
		if (tag[0] ? strcmp(e[i].ref_name, tag) == 0 : n == 1) {
			*top = e[i];
			return 0;
		}
	}
	list_tags(e, n, tags, sizeof(tags));
	if (!tag[0])
		return ctx_error(ctx, ENOENT, "%s: %zu images in the layout: name one by its tag (%s)",
				 dir, n, tags);
	return ctx_error(ctx, ENOENT, "%s: no image tagged \"%s\" (tags: %s)", dir, tag, tags);
}

int oci_layout_resolve(struct imgdev_ctx *ctx, const char *spec, char **dir, struct oci_descriptor *top)
{
	struct oci_descriptor *e = NULL;
	char tag[256], *bytes = NULL;
	size_t len, n = 0;
	int rc = split_spec(ctx, spec, dir, tag, sizeof(tag));

	if (rc < 0)
		return rc;
	rc = read_file(ctx, *dir, "oci-layout", INDEX_MAX, &bytes, &len);
	if (rc == -ENOENT)
		rc = ctx_error(ctx, ENOMEDIUM, "%s: not an OCI image layout (no oci-layout file)",
			       *dir);
	if (rc == 0)
		rc = oci_check_layout_file(ctx, bytes, len);
	free(bytes);
	bytes = NULL;
	if (rc == 0)
		rc = read_file(ctx, *dir, "index.json", INDEX_MAX, &bytes, &len);
	if (rc == 0)
		rc = oci_parse_index(ctx, bytes, len, &e, &n);
	if (rc == 0)
		rc = pick_entry(ctx, *dir, e, n, tag, top);
	free(bytes);
	free(e);
	if (rc < 0) {
		free(*dir);
		*dir = NULL;
	}
	return rc;
}

int oci_layout_blob_path(struct imgdev_ctx *ctx, const char *dir, const char *digest, char **path)
{
	if (!oci_digest_valid(digest))
		return ctx_error(ctx, EINVAL, "\"%.80s\" is not a sha256 digest", digest);
	if (asprintf(path, "%s/blobs/sha256/%s", dir, digest + 7) < 0) {
		*path = NULL;
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	return 0;
}

int oci_layout_read_blob(struct imgdev_ctx *ctx, const char *dir, const struct oci_descriptor *d,
			 size_t max, char **bytes, size_t *len)
{
	char name[16 + OCI_DIGEST_MAX];
	int rc;

	*bytes = NULL;
	if (!oci_digest_valid(d->digest))
		return ctx_error(ctx, EINVAL, "\"%.80s\" is not a sha256 digest", d->digest);
	if (d->size > max)
		return ctx_error(ctx, EFBIG, "%s: %llu bytes, more than the %zu allowed", d->digest,
				 (unsigned long long)d->size, max);
	snprintf(name, sizeof(name), "blobs/sha256/%s", d->digest + 7);
	rc = read_file(ctx, dir, name, max, bytes, len);
	if (rc == 0 && *len != d->size)
		rc = ctx_error(ctx, EILSEQ, "%s/%s: %zu bytes, the descriptor says %llu", dir,
			       name, *len, (unsigned long long)d->size);
	if (rc == 0)
		rc = oci_check_digest(ctx, *bytes, *len, d->digest, d->digest);
	if (rc < 0) {
		free(*bytes);
		*bytes = NULL;
	}
	return rc;
}
