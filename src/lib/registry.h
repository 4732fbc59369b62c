/*
 * A client of the container registry HTTP API (distribution API v2) for
 * images named docker://REGISTRY/REPOSITORY[:TAG|@sha256:HEX]: references
 * parsed (registry.c), a session that has answered the registry's
 * challenge with the auth file's credentials (registry_auth.c), manifests
 * fetched whole and checked against their digest, blobs streamed by the
 * HTTP byte source. The small GETs with their response headers are
 * registry_http.c's. Every message names the image.
 */
#ifndef IMGDEV_REGISTRY_H
#define IMGDEV_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "oci.h"

struct imgdev_ctx;
struct bytesrc;

struct registry_ref {
	char host[256];              /* as given, with :port; docker.io: "registry-1.docker.io" */
	char repo[256];              /* path; docker.io's one-component names get "library/" */
	char tag[128];               /* "" when by digest; "latest" when neither is given */
	char digest[OCI_DIGEST_MAX]; /* "" when by tag */
};

/* Whether image starts with "docker://". */
bool registry_names(const char *image);
/*
 * Parse docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX] into *ref. 0, or
 * -EINVAL with a message naming what is wrong (no host, no repository, a
 * tag or repository against the distribution spec's grammar, uppercase in
 * the repository, a digest not sha256: and 64 lowercase hex digits, both a
 * tag and a digest).
 */
int registry_ref_parse(struct imgdev_ctx *ctx, const char *image, struct registry_ref *ref);

/* A session, used from one thread at a time. */
struct registry;
/*
 * A session with the registry for ref's repository, fetching as ctx->fetch
 * says (its header file is not used) with the credentials auth_file holds
 * for it (NULL: anonymous). Probes GET /v2/ (https, or http where https
 * cannot be had and the host is loopback) and
 * answers its challenge. 0, or -EACCES (refused, or credentials needed),
 * -ENOMEDIUM, -EREMOTEIO (the registry's answers), -EINVAL (a malformed auth file), the
 * errno of an auth file that cannot be read, with the message in ctx.
 */
int registry_open(struct imgdev_ctx *ctx, const struct registry_ref *ref, const char *auth_file,
		  struct registry **r);
/*
 * GET /v2/REPO/manifests/REFERENCE (a tag or a digest), accepting
 * OCI_MANIFEST_ACCEPT: the body (at most 4 MiB, malloc'd, NUL-terminated)
 * in *bytes and *len, the SHA-256 of its bytes in digest. A reference that
 * is a digest must be what the bytes hash to, and so must a
 * Docker-Content-Digest the registry sends (-EILSEQ otherwise). 0, or
 * -EACCES (401, 403), -ENOMEDIUM (404), -EREMOTEIO, -EILSEQ, -EINVAL (a
 * malformed reference) with the message in ctx.
 */
int registry_get_manifest(struct imgdev_ctx *ctx, struct registry *r, const char *reference,
			  char **bytes, size_t *len, char digest[OCI_DIGEST_MAX]);
/*
 * A byte source streaming blob d (GET /v2/REPO/blobs/DIGEST) with the
 * session's Authorization, which goes to the registry only: redirects to
 * another origin are followed without it. Its size is the descriptor's;
 * the digest of what is read is the caller's to check. 0, or the errors of
 * bytesrc_open_url, with the message in ctx naming the image.
 */
int registry_open_blob(struct imgdev_ctx *ctx, struct registry *r, const struct oci_descriptor *d,
		       struct bytesrc **bs);
/* The base URL used ("http://127.0.0.1:5000", "https://HOST"), for messages. */
const char *registry_base_url(const struct registry *r);
/* Close and free (credentials wiped); NULL is allowed. */
void registry_close(struct registry *r);

/*
 * Internal to registry.c, registry_auth.c and registry_http.c.
 */
#define REGISTRY_IMAGE_MAX 700
#define REGISTRY_AUTH_MAX 8192 /* an Authorization header line ("Authorization: Bearer T") */

struct registry {
	struct registry_ref ref;
	char image[REGISTRY_IMAGE_MAX]; /* docker://HOST/REPO:TAG or @DIGEST, for messages */
	char base[300];                 /* scheme://HOST */
	char auth_file[512];            /* its path, or "": for messages */
	char *basic;                    /* base64(user:password) from the auth file, or NULL */
	char *authorization;            /* the header line sent, or NULL (anonymous) */
	bool bearer;                    /* the registry wants tokens: a 401 asks for a new one */
	char realm[1024], service[256]; /* the Bearer challenge's */
};

/* One small GET's answer (registry_http.c). */
struct reg_resp {
	long status;
	char reason[96];
	char www_authenticate[2048]; /* the first challenge header, "" without one */
	char content_type[256];
	char content_digest[128]; /* Docker-Content-Digest, or "" */
	char *body;               /* malloc'd, NUL-terminated, len bytes */
	size_t len;
	bool too_big;       /* the body went past the cap (and was cut there) */
	char why[512];      /* what failed when no answer came */
	bool no_connection; /* neither a TCP connection nor a TLS session could be had */
};

/*
 * GET url with the extra header lines (NULL-terminated, may be NULL),
 * keeping at most max bytes of the body, as ctx->fetch says (CA file,
 * insecure, timeout, retries of transient failures unless once). 0 for any
 * HTTP answer (status in resp); -EREMOTEIO when none came (resp->why).
 * Free resp with reg_resp_free.
 */
int reg_http_get(struct imgdev_ctx *ctx, const char *url, const char *const *headers, size_t max,
		 bool once, struct reg_resp *resp);
void reg_resp_free(struct reg_resp *resp);
/*
 * What a non-2xx answer said, "404 MANIFEST_UNKNOWN: manifest unknown"
 * from the registry's error JSON, else "404 Not Found"; and the errno it
 * maps to (EACCES, ENOMEDIUM, EREMOTEIO).
 */
int reg_resp_describe(const struct reg_resp *resp, char *buf, size_t cap);

/*
 * A WWW-Authenticate header's challenges (RFC 9110 section 11.6.1): each a
 * scheme and name=value parameters, a value a token or a quoted string
 * (backslash escapes, commas inside). The Bearer one's (else the Basic
 * one's, else the first's) scheme, realm and service into *c; false when
 * malformed.
 */
struct reg_challenge {
	char scheme[32];
	char realm[1024], service[256];
};
bool reg_parse_challenges(const char *hdr, struct reg_challenge *c);

/* registry_auth.c: the auth file's credentials for r's host and repository into r->basic. */
int reg_auth_load(struct imgdev_ctx *ctx, struct registry *r, const char *auth_file);
/*
 * Answer the challenge of a 401 (resp) to the request for what ("/v2/",
 * "manifest"): a Bearer token fetched from its realm (never an http realm
 * for an https registry), or Basic with r->basic, into r->authorization.
 * 0 or -errno with the message in ctx.
 */
int reg_auth_answer(struct imgdev_ctx *ctx, struct registry *r, const char *what,
		    const struct reg_resp *resp);
/* A new token after a 401 on a Bearer session: 0, or -errno with the message in ctx. */
int reg_auth_refresh(struct imgdev_ctx *ctx, struct registry *r);

#endif
