/*
 * The registry client's references and requests (registry.h): a
 * docker:// name parsed by the distribution spec's grammar, the session
 * (its scheme chosen by probing /v2/, its challenge answered by
 * registry_auth.c), manifests fetched whole and checked against their
 * digest, blobs opened as HTTP byte sources with the session's
 * Authorization. The small GETs are registry_http.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bytesrc.h"
#include "internal.h"
#include "registry.h"

#define REGISTRY_PREFIX "docker://"
#define MANIFEST_MAX (4u << 20)
#define TAG_MAX 128
#define NAME_MAX_LEN 255

bool registry_names(const char *image)
{
	return !strncmp(image, REGISTRY_PREFIX, sizeof(REGISTRY_PREFIX) - 1);
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. */
static bool tag_valid(const char *t)
{
	size_t n = strlen(t);

	if (!n || n > TAG_MAX || t[0] == '.' || t[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(t[i]) && !(t[i] >= 'A' && t[i] <= 'Z') && !strchr("_.-", t[i]))
			return false;
	return true;
}

/*
 * A repository: components [a-z0-9]+ joined by '.', '_', "__" or runs of
 * '-', the components joined by '/'.
 */
static bool repo_valid(const char *s)
{
	for (;;) {
		if (!is_lower_alnum(*s))
			return false;
		while (is_lower_alnum(*s))
			s++;
		if (!*s)
			return true;
		if (*s == '/') {
			s++;
		} else if (*s == '.' || (*s == '_' && s[1] != '_')) {
			s++;
		} else if (*s == '_') {
			s += 2;
		} else if (*s == '-') {
			while (*s == '-')
				s++;
		} else {
			return false;
		}
	}
}

/* A host: a name or IPv4 address, or [IPv6], with an optional :PORT. */
static bool host_valid(const char *h)
{
	const char *port;

	if (*h == '[') {
		const char *end = strchr(h, ']');

		if (!end || end == h + 1 ||
		    strspn(h + 1, "0123456789abcdefABCDEF:.") != (size_t)(end - h - 1))
			return false;
		port = end + 1;
	} else {
		size_t n =
			strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");

		if (!n || h[0] == '.' || h[0] == '-')
			return false;
		port = h + n;
	}
	if (!*port)
		return true;
	return *port == ':' && port[1] && strspn(port + 1, "0123456789") == strlen(port + 1) &&
	       strlen(port + 1) <= 5;
}

/* Docker Hub's names for its registry, and "library/" for its one-component names. */
static int hub_normalize(struct imgdev_ctx *ctx, const char *image, struct registry_ref *ref)
{
	char repo[sizeof(ref->repo) + 8];

	if (strcasecmp(ref->host, "docker.io") && strcasecmp(ref->host, "index.docker.io"))
		return 0;
	snprintf(ref->host, sizeof(ref->host), "registry-1.docker.io");
	if (strchr(ref->repo, '/'))
		return 0;
	if (strlen(ref->repo) + 8 > NAME_MAX_LEN)
		return ctx_error(ctx, EINVAL, "%.300s: the repository name is too long", image);
	snprintf(repo, sizeof(repo), "library/%s", ref->repo);
	memcpy(ref->repo, repo, sizeof(ref->repo));
	return 0;
}

/* The tag or digest after the repository in path (cut off there), into ref. */
static int split_reference(struct imgdev_ctx *ctx, const char *image, char *path,
			   struct registry_ref *ref)
{
	char *at = strchr(path, '@'), *slash, *colon;

	if (at) {
		*at = '\0';
		if (!oci_digest_valid(at + 1))
			return ctx_error(ctx, EINVAL,
					 "%.300s: the digest is not sha256: and 64 lowercase hex digits",
					 image);
		snprintf(ref->digest, sizeof(ref->digest), "%s", at + 1);
	}
	slash = strrchr(path, '/');
	colon = strrchr(slash ? slash : path, ':');
	if (colon && at)
		return ctx_error(ctx, EINVAL, "%.300s: both a tag and a digest: name one", image);
	if (colon) {
		*colon = '\0';
		if (!tag_valid(colon + 1))
			return ctx_error(ctx, EINVAL,
					 "%.300s: the tag \"%.130s\" is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
					 image, colon + 1);
		snprintf(ref->tag, sizeof(ref->tag), "%s", colon + 1);
	} else if (!at) {
		snprintf(ref->tag, sizeof(ref->tag), "latest");
	}
	return 0;
}

/* The repository path (tag and digest cut off), checked, into ref. */
static int take_repo(struct imgdev_ctx *ctx, const char *image, const char *path,
		     struct registry_ref *ref)
{
	if (!*path)
		return ctx_error(ctx, EINVAL, "%.300s: no repository after the host", image);
	if (strpbrk(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
		return ctx_error(ctx, EINVAL, "%.300s: uppercase in the repository \"%.256s\"",
				 image, path);
	if (strlen(path) > NAME_MAX_LEN || !repo_valid(path))
		return ctx_error(ctx, EINVAL,
				 "%.300s: the repository \"%.256s\" is not lowercase components "
				 "[a-z0-9] joined by '.', '_', '__' or '-', separated by '/'",
				 image, path);
	snprintf(ref->repo, sizeof(ref->repo), "%s", path);
	return 0;
}

int registry_ref_parse(struct imgdev_ctx *ctx, const char *image, struct registry_ref *ref)
{
	const char *rest = image + sizeof(REGISTRY_PREFIX) - 1;
	char path[1024];
	const char *slash;
	int rc;

	memset(ref, 0, sizeof(*ref));
	if (!registry_names(image))
		return ctx_error(ctx, EINVAL, "%.300s: not a docker:// name", image);
	slash = strchr(rest, '/');
	if (!*rest || slash == rest)
		return ctx_error(ctx, EINVAL, "%.300s: no host (docker://HOST/REPOSITORY[:TAG])",
				 image);
	if (!slash)
		return ctx_error(ctx, EINVAL,
				 "%.300s: no repository (docker://HOST/REPOSITORY[:TAG])", image);
	if ((size_t)(slash - rest) >= sizeof(ref->host) || strlen(slash + 1) >= sizeof(path))
		return ctx_error(ctx, EINVAL, "%.300s: the name is too long", image);
	memcpy(ref->host, rest, (size_t)(slash - rest));
	if (!host_valid(ref->host))
		return ctx_error(ctx, EINVAL, "%.300s: \"%s\" is not HOST[:PORT]", image, ref->host);
	snprintf(path, sizeof(path), "%s", slash + 1);
	rc = split_reference(ctx, image, path, ref);
	if (rc == 0)
		rc = take_repo(ctx, image, path, ref);
	if (rc == 0)
		rc = hub_normalize(ctx, image, ref);
	return rc;
}

/* Whether host (with its port) is loopback, as Docker takes them: localhost, 127.0.0.0/8, [::1]. */
static bool host_is_loopback(const char *host)
{
	size_t n = strcspn(host, ":");

	if (!strncmp(host, "[::1]", 5))
		return !host[5] || host[5] == ':';
	if (n == 9 && !strncasecmp(host, "localhost", 9))
		return true;
	return !strncmp(host, "127.", 4) && strspn(host, "0123456789.") == n;
}

/*
 * GET url with the session's Authorization; a 401 answered once (a token
 * fetched anew, a first challenge met) and asked again. 0 for a 2xx in
 * resp; else -errno with the message in ctx naming the image and what;
 * resp->no_connection when no connection could be had.
 */
static int session_get(struct imgdev_ctx *ctx, struct registry *r, const char *what, const char *url,
		       const char *accept, size_t max, bool once, struct reg_resp *resp)
{
	const char *hdrs[3] = { accept, NULL, NULL };
	char desc[320];
	int rc;

	for (int round = 0;; round++) {
		hdrs[accept ? 1 : 0] = r->authorization;
		rc = reg_http_get(ctx, url, hdrs, max, once, resp);
		if (rc < 0)
			return ctx_error(ctx, EREMOTEIO, "%s: %s: %s: %s", r->image, what, url,
					 resp->why);
		if (resp->status != 401 || round > 0 || (r->authorization && !r->bearer))
			break;
		rc = reg_auth_answer(ctx, r, what, resp);
		if (rc < 0)
			return rc;
		reg_resp_free(resp);
	}
	if (resp->status >= 200 && resp->status < 300)
		return 0;
	rc = reg_resp_describe(resp, desc, sizeof(desc));
	return ctx_error(ctx, rc, "%s: %s: %s", r->image, what, desc);
}

/*
 * GET /v2/ on https, or on http when https cannot be had (no connection,
 * no TLS session) and the host is loopback: never elsewhere, where an
 * attacker on the path could force the fall-back and read the credentials
 * (--insecure only skips verifying the certificate).
 */
static int probe(struct imgdev_ctx *ctx, struct registry *r)
{
	bool may_fall_back = host_is_loopback(r->ref.host);
	const char *how = "anonymous";
	struct reg_resp resp;
	char url[sizeof(r->base) + 8];
	int rc;

	snprintf(r->base, sizeof(r->base), "https://%s", r->ref.host);
	snprintf(url, sizeof(url), "%s/v2/", r->base);
	rc = session_get(ctx, r, "/v2/", url, NULL, 65536, may_fall_back, &resp);
	if (rc < 0 && resp.no_connection && may_fall_back) {
		ctx_log(ctx, LOGP_INFO, "%s: no https (%s); plain http, as for a loopback registry",
			r->image, resp.why);
		reg_resp_free(&resp);
		snprintf(r->base, sizeof(r->base), "http://%s", r->ref.host);
		snprintf(url, sizeof(url), "%s/v2/", r->base);
		rc = session_get(ctx, r, "/v2/", url, NULL, 65536, false, &resp);
	}
	reg_resp_free(&resp);
	if (rc < 0)
		return rc;
	if (r->bearer)
		how = "Bearer token";
	else if (r->authorization)
		how = "Basic";
	ctx_log(ctx, LOGP_INFO, "%s: registry at %s (%s)", r->image, r->base, how);
	return 0;
}

int registry_open(struct imgdev_ctx *ctx, const struct registry_ref *ref, const char *auth_file,
		  struct registry **out)
{
	struct registry *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return ctx_error(ctx, ENOMEM, "out of memory");
	r->ref = *ref;
	snprintf(r->image, sizeof(r->image), REGISTRY_PREFIX "%s/%s%s%s", ref->host, ref->repo,
		 ref->digest[0] ? "@" : ":", ref->digest[0] ? ref->digest : ref->tag);
	rc = reg_auth_load(ctx, r, auth_file);
	if (rc == 0)
		rc = probe(ctx, r);
	if (rc < 0) {
		registry_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* The bytes' digest into digest, checked against the reference's and the registry's. */
static int check_manifest(struct imgdev_ctx *ctx, struct registry *r, const char *what,
			  const char *reference, const struct reg_resp *resp,
			  char digest[OCI_DIGEST_MAX])
{
	char name[REGISTRY_IMAGE_MAX + 256];

	if (resp->too_big)
		return ctx_error(ctx, ENOMEDIUM, "%s: %s: larger than %u MiB", r->image, what,
				 MANIFEST_MAX >> 20);
	if (oci_digest_of(resp->body ? resp->body : "", resp->len, digest) < 0)
		return ctx_error(ctx, ENOMEM, "%s: %s: cannot hash", r->image, what);
	snprintf(name, sizeof(name), "%s: %s", r->image, what);
	if (!strncmp(reference, "sha256:", 7))
		return oci_expect_digest(ctx, digest, reference, name);
	if (!strncmp(resp->content_digest, "sha256:", 7) && strcmp(resp->content_digest, digest))
		return ctx_error(ctx, EILSEQ,
				 "%s: the registry sends Docker-Content-Digest %.80s, the bytes hash to %s",
				 name, resp->content_digest, digest);
	return 0;
}

int registry_get_manifest(struct imgdev_ctx *ctx, struct registry *r, const char *reference,
			  char **bytes, size_t *len, char digest[OCI_DIGEST_MAX])
{
	char accept[512], url[1024], what[sizeof("manifest ") + TAG_MAX + OCI_DIGEST_MAX];
	bool by_digest = !strncmp(reference, "sha256:", 7);
	struct reg_resp resp;
	int rc;

	if (by_digest ? !oci_digest_valid(reference) : !tag_valid(reference))
		return ctx_error(ctx, EINVAL, "%s: \"%.80s\" is neither a tag nor a sha256 digest",
				 r->image, reference);
	if (!strcmp(reference, r->ref.digest[0] ? r->ref.digest : r->ref.tag))
		snprintf(what, sizeof(what), "manifest");
	else
		snprintf(what, sizeof(what), "manifest %s", reference);
	snprintf(accept, sizeof(accept), "Accept: %s", OCI_MANIFEST_ACCEPT);
	snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->base, r->ref.repo, reference);
	rc = session_get(ctx, r, what, url, accept, MANIFEST_MAX, false, &resp);
	if (rc == 0)
		rc = check_manifest(ctx, r, what, reference, &resp, digest);
	if (rc == 0 && !resp.body && !(resp.body = calloc(1, 1)))
		rc = ctx_error(ctx, ENOMEM, "out of memory");
	if (rc < 0) {
		reg_resp_free(&resp);
		return rc;
	}
	*bytes = resp.body;
	*len = resp.len;
	return 0;
}

/* The blob source, or -errno with ctx's message prefixed by the image and the blob. */
static int open_blob_once(struct imgdev_ctx *ctx, struct registry *r, const char *url,
			  const char *digest, struct bytesrc **bs)
{
	struct imgdev_fetch_opts fo = ctx->fetch;
	char msg[IMGDEV_ERRMSG_MAX];
	int rc;

	fo.header_file = NULL; /* for URLs; the registry gets the session's Authorization */
	rc = bytesrc_open_url_auth(ctx, url, &fo, r->authorization, bs);
	if (rc == 0)
		return 0;
	snprintf(msg, sizeof(msg), "%s", imgdev_ctx_last_error(ctx));
	return ctx_error(ctx, -rc, "%s: blob %s: %s", r->image, digest, msg);
}

int registry_open_blob(struct imgdev_ctx *ctx, struct registry *r, const struct oci_descriptor *d,
		       struct bytesrc **bs)
{
	char url[1024];
	int rc;

	if (!oci_digest_valid(d->digest))
		return ctx_error(ctx, EINVAL, "%s: blob \"%.80s\" is not a sha256 digest", r->image,
				 d->digest);
	snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", r->base, r->ref.repo, d->digest);
	rc = open_blob_once(ctx, r, url, d->digest, bs);
	if (rc == -EACCES && r->bearer && reg_auth_refresh(ctx, r) == 0)
		rc = open_blob_once(ctx, r, url, d->digest, bs);
	if (rc < 0)
		return rc;
	if ((*bs)->size_known && (*bs)->size != d->size) {
		unsigned long long got = (unsigned long long)(*bs)->size;

		bytesrc_close(*bs);
		*bs = NULL;
		return ctx_error(ctx, EILSEQ, "%s: blob %s: %llu bytes, the descriptor says %llu",
				 r->image, d->digest, got, (unsigned long long)d->size);
	}
	(*bs)->size = d->size;
	(*bs)->size_known = true;
	return 0;
}

const char *registry_base_url(const struct registry *r)
{
	return r->base;
}

void registry_close(struct registry *r)
{
	if (!r)
		return;
	if (r->basic)
		explicit_bzero(r->basic, strlen(r->basic));
	if (r->authorization)
		explicit_bzero(r->authorization, strlen(r->authorization));
	free(r->basic);
	free(r->authorization);
	free(r);
}
