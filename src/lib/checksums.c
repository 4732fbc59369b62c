/*
 * A digest from a checksum file, as cloud images publish them beside the
 * image (SHA256SUMS): the line for the image's file name, in GNU form
 * ("HEX  NAME", "HEX *NAME") or BSD form ("SHA256 (NAME) = HEX"). The file
 * is fetched like an image (the context's fetch options) and read whole, up
 * to a bound; any line naming the file with a malformed hash, two lines that
 * disagree, or none at all, is an error (-ENOKEY), so a digest is never
 * guessed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"
#include "checksums.h"
#include "internal.h"

#define SUMS_MAX (4u << 20) /* bytes of a checksum file read at most */
#define HEX_LEN (2 * IMGDEV_HASH_SIZE)

/* The hash in hex (exactly HEX_LEN digits) into out; false when it is not one. */
static bool hex_hash(const char *hex, size_t len, uint8_t out[IMGDEV_HASH_SIZE])
{
	if (len != HEX_LEN)
		return false;
	for (size_t i = 0; i < IMGDEV_HASH_SIZE; i++) {
		unsigned int v;

		if (!strchr("0123456789abcdefABCDEF", hex[2 * i]) || !hex[2 * i] ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i + 1]) || !hex[2 * i + 1] ||
		    sscanf(hex + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (uint8_t)v;
	}
	return true;
}

/*
 * One line: the name it is for and its hash text. false when it is not a
 * checksum line of either form (comments, blank lines, other algorithms).
 */
static bool split_line(const char *line, size_t len, const char **name, size_t *name_len,
		       const char **hex, size_t *hex_len)
{
	static const char bsd[] = "SHA256 (";
	const char *sep;

	if (len > sizeof(bsd) - 1 && memcmp(line, bsd, sizeof(bsd) - 1) == 0) {
		/* SHA256 (NAME) = HEX: the last ") = " ends the name. */
		for (sep = line + len - 4; sep >= line + sizeof(bsd) - 1; sep--)
			if (memcmp(sep, ") = ", 4) == 0)
				break;
		if (sep < line + sizeof(bsd) - 1)
			return false;
		*name = line + sizeof(bsd) - 1;
		*name_len = (size_t)(sep - *name);
		*hex = sep + 4;
		*hex_len = len - (size_t)(*hex - line);
		return true;
	}
	/* HEX, a space, then a space (text) or '*' (binary), then NAME. */
	sep = memchr(line, ' ', len);
	if (!sep || (size_t)(sep - line) + 2 > len || (sep[1] != ' ' && sep[1] != '*'))
		return false;
	*hex = line;
	*hex_len = (size_t)(sep - line);
	*name = sep + 2;
	*name_len = len - (size_t)(*name - line);
	return true;
}

int checksums_find(const char *text, size_t len, const char *name, uint8_t digest[IMGDEV_HASH_SIZE],
		   char *why, size_t why_len)
{
	size_t want = strlen(name), lineno = 0;
	bool found = false;

	for (const char *p = text, *end = text + len; p < end; lineno++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *n, *h;
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p), nlen, hlen;
		uint8_t got[IMGDEV_HASH_SIZE];

		if (l && p[l - 1] == '\r')
			l--;
		if (split_line(p, l, &n, &nlen, &h, &hlen) && nlen == want &&
		    memcmp(n, name, want) == 0) {
			if (!hex_hash(h, hlen, got)) {
				snprintf(why, why_len,
					 "line %zu, for %s, holds no SHA-256 (64 hex digits)",
					 lineno + 1, name);
				return -EINVAL;
			}
			if (found && memcmp(got, digest, IMGDEV_HASH_SIZE) != 0) {
				snprintf(why, why_len, "two lines for %s disagree (line %zu)", name,
					 lineno + 1);
				return -EINVAL;
			}
			memcpy(digest, got, IMGDEV_HASH_SIZE);
			found = true;
		}
		p += l + (nl ? (size_t)(nl - p) - l + 1 : 0);
		if (!nl)
			break;
	}
	if (!found) {
		snprintf(why, why_len, "no line for %s", name);
		return -ENOENT;
	}
	return 0;
}

/* The last path component of a URL (before any query), into out; false if it has none. */
static bool url_file_name(const char *url, char *out, size_t out_len)
{
	const char *path = strstr(url, "://"), *end, *slash;
	size_t n;

	path = path ? strchr(path + 3, '/') : NULL;
	if (!path)
		return false;
	end = path + strcspn(path, "?#");
	for (slash = end; slash > path && slash[-1] != '/'; slash--)
		;
	n = (size_t)(end - slash);
	if (n == 0 || n >= out_len)
		return false;
	memcpy(out, slash, n);
	out[n] = '\0';
	return true;
}

/* The whole (bounded) body of the checksum file into *text; 0 or -errno in ctx. */
static int fetch_sums(struct imgdev_ctx *ctx, const char *sums_url, char **text, size_t *len)
{
	struct bytesrc *bs = NULL;
	char *buf = malloc(SUMS_MAX);
	size_t have = 0;
	int rc;

	if (!buf)
		return ctx_error(ctx, ENOMEM, "out of memory");
	rc = bytesrc_open_url(ctx, sums_url, &ctx->fetch, &bs);
	while (rc == 0) {
		ssize_t n = bytesrc_read(bs, buf + have, SUMS_MAX - have);

		if (n == 0)
			break;
		if (n < 0)
			rc = ctx_error(ctx, (int)-n, "%s", bytesrc_error(bs, (int)n));
		else if ((have += (size_t)n) == SUMS_MAX)
			rc = ctx_error(ctx, EFBIG, "%s: a checksum file larger than %u MiB",
				       sums_url, SUMS_MAX >> 20);
	}
	bytesrc_close(bs);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*text = buf;
	*len = have;
	return 0;
}

int imgdev_digest_from_url(struct imgdev_ctx *ctx, const char *sums_url, const char *image_url,
			   uint8_t digest[IMGDEV_HASH_SIZE])
{
	char name[1024], why[256];
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!bytesrc_is_url(sums_url))
		return ctx_error(ctx, EINVAL,
				 "%s: a checksum file must be an http:// or https:// URL", sums_url);
	/* A file's digest is trusted, not checked: one from a checksum file must be checked. */
	if (!bytesrc_is_url(image_url))
		return ctx_error(ctx, EINVAL, "%s: --digest-url is for an image at a URL, whose "
				 "bytes are checked against it (give a file's digest with --digest)",
				 image_url);
	if (!url_file_name(image_url, name, sizeof(name)))
		return ctx_error(ctx, EINVAL, "%s: no file name in the URL to look up in %s",
				 image_url, sums_url);
	rc = fetch_sums(ctx, sums_url, &text, &len);
	if (rc < 0)
		return rc;
	rc = checksums_find(text, len, name, digest, why, sizeof(why));
	free(text);
	if (rc < 0)
		return ctx_error(ctx, ENOKEY, "%s: %s; nothing was fetched or written", sums_url, why);
	return 0;
}
