/*
 * Credentials for the registry client: the auth file in the "auths" format
 * of podman, skopeo and the kubelet (the longest key naming the host, or
 * the host and a leading part of the repository), and the answer to a
 * registry's challenge (WWW-Authenticate): Basic with those credentials,
 * or a Bearer token fetched from the challenge's realm for pull on the
 * repository. Credentials and tokens are never put in a message; their
 * memory is wiped when freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "bytesrc.h"
#include "internal.h"
#include "registry.h"

#define AUTH_FILE_MAX (1u << 20)
#define TOKEN_ANSWER_MAX (1u << 20)

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 of len bytes (malloc'd), or NULL without memory. */
static char *base64_encode(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned int v = (unsigned int)in[i] << 16;

		v |= i + 1 < len ? (unsigned int)in[i + 1] << 8 : 0;
		v |= i + 2 < len ? in[i + 2] : 0;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/*
 * Whether s is base64 of "user:password" with a user: decoded one byte at
 * a time and wiped, only to check it.
 */
static bool base64_credentials(const char *s)
{
	size_t len = strlen(s), pad = 0, n = 0;
	bool colon = false, user = false;
	unsigned int acc = 0;
	int bits = 0;

	while (pad < len && s[len - 1 - pad] == '=')
		pad++;
	if (!len || len % 4 || pad > 2)
		return false;
	for (size_t i = 0; i < len - pad; i++) {
		const char *c = strchr(b64, s[i]);

		if (!c || !*c)
			return false;
		acc = (acc << 6) | (unsigned int)(c - b64);
		bits += 6;
		if (bits >= 8) {
			char byte = (char)((acc >> (bits - 8)) & 0xff);

			bits -= 8;
			if (byte == ':' && !colon)
				colon = true, user = n > 0;
			n++;
		}
	}
	explicit_bzero(&acc, sizeof(acc));
	return colon && user;
}

/*
 * An auth file's key as HOST[/PATH]: the scheme and a trailing '/'
 * dropped, Docker Hub's names (its legacy key https://index.docker.io/v1/
 * too) as registry_ref_parse names its host.
 */
static void key_normalize(const char *key, char *out, size_t cap)
{
	static const char *const hub[] = { "index.docker.io/v1", "index.docker.io", "docker.io" };
	const char *sep = strstr(key, "://");
	size_t len;

	if (sep)
		key = sep + 3;
	snprintf(out, cap, "%s", key);
	for (size_t i = 0; i < sizeof(hub) / sizeof(hub[0]); i++) {
		len = strlen(hub[i]);
		if (!strncmp(key, hub[i], len) && (!key[len] || key[len] == '/')) {
			snprintf(out, cap, "registry-1.docker.io%s", key + len);
			break;
		}
	}
	len = strlen(out);
	while (len && out[len - 1] == '/')
		out[--len] = '\0';
}

/* How long a match key (normalized) is for host and repo: 0 when it does not name them. */
static size_t key_match(const char *key, const struct registry_ref *ref)
{
	size_t hl = strlen(ref->host), kl = strlen(key), pl;

	if (kl < hl || strncasecmp(key, ref->host, hl))
		return 0;
	if (kl == hl)
		return kl;
	if (key[hl] != '/')
		return 0;
	pl = kl - hl - 1;
	if (strncmp(key + hl + 1, ref->repo, pl) || (ref->repo[pl] && ref->repo[pl] != '/'))
		return 0;
	return kl;
}

/* One entry's credentials as base64(user:password) into *basic (NULL: it has none). 0 or -EINVAL. */
static int entry_credentials(struct imgdev_ctx *ctx, const char *file, const char *key,
			     struct json_object *entry, char **basic)
{
	struct json_object *a, *u, *p;
	size_t ul, pl;
	char *plain;

	*basic = NULL;
	if (!json_object_is_type(entry, json_type_object))
		return ctx_error(ctx, EINVAL, "%s: auths[\"%.200s\"] is not an object", file, key);
	if (json_object_object_get_ex(entry, "auth", &a)) {
		if (!json_object_is_type(a, json_type_string) ||
		    !base64_credentials(json_object_get_string(a)))
			return ctx_error(ctx, EINVAL,
					 "%s: auths[\"%.200s\"].auth is not base64 of user:password",
					 file, key);
		*basic = strdup(json_object_get_string(a));
		return *basic ? 0 : ctx_error(ctx, ENOMEM, "out of memory");
	}
	u = json_object_object_get_ex(entry, "username", &u) ? u : NULL;
	p = json_object_object_get_ex(entry, "password", &p) ? p : NULL;
	if (!u && !p)
		return 0;
	if (!u || !p || !json_object_is_type(u, json_type_string) ||
	    !json_object_is_type(p, json_type_string) || !json_object_get_string_len(u))
		return ctx_error(ctx, EINVAL,
				 "%s: auths[\"%.200s\"] needs both username and password, as strings",
				 file, key);
	ul = (size_t)json_object_get_string_len(u);
	pl = (size_t)json_object_get_string_len(p);
	plain = malloc(ul + pl + 2);
	if (!plain)
		return ctx_error(ctx, ENOMEM, "out of memory");
	snprintf(plain, ul + pl + 2, "%s:%s", json_object_get_string(u), json_object_get_string(p));
	*basic = base64_encode((const unsigned char *)plain, ul + pl + 1);
	explicit_bzero(plain, ul + pl + 2);
	free(plain);
	return *basic ? 0 : ctx_error(ctx, ENOMEM, "out of memory");
}

static void wipe_free(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

/* The longest entry of auths matching r's host and repository into r->basic; every entry checked. */
static int pick_entry(struct imgdev_ctx *ctx, struct registry *r, const char *file,
		      struct json_object *auths)
{
	size_t best = 0;
	int rc = 0;

	json_object_object_foreach(auths, key, entry)
	{
		char norm[512], *basic;
		size_t m;

		rc = entry_credentials(ctx, file, key, entry, &basic);
		if (rc < 0)
			break;
		key_normalize(key, norm, sizeof(norm));
		m = basic ? key_match(norm, &r->ref) : 0;
		if (m > best) {
			wipe_free(r->basic);
			r->basic = basic;
			best = m;
		} else {
			wipe_free(basic);
		}
	}
	return rc;
}

/* The file's text (malloc'd, NUL-terminated); 0 or -errno with the message in ctx. */
static int read_auth_file(struct imgdev_ctx *ctx, const char *file, char **text)
{
	FILE *f = fopen(file, "re");
	size_t n;
	int err;

	if (!f)
		return ctx_error(ctx, errno, "%s: cannot read the auth file: %s", file,
				 strerror(errno));
	*text = malloc(AUTH_FILE_MAX + 1);
	if (!*text) {
		fclose(f);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	n = fread(*text, 1, AUTH_FILE_MAX + 1, f);
	err = ferror(f) ? errno : 0;
	fclose(f);
	(*text)[n > AUTH_FILE_MAX ? AUTH_FILE_MAX : n] = '\0';
	if (err)
		return ctx_error(ctx, err, "%s: cannot read the auth file: %s", file, strerror(err));
	if (n > AUTH_FILE_MAX)
		return ctx_error(ctx, EINVAL, "%s: the auth file is larger than %u bytes", file,
				 AUTH_FILE_MAX);
	return 0;
}

int reg_auth_load(struct imgdev_ctx *ctx, struct registry *r, const char *file)
{
	struct json_object *root = NULL, *auths;
	char *text = NULL;
	int rc;

	if (!file)
		return 0;
	snprintf(r->auth_file, sizeof(r->auth_file), "%s", file);
	rc = read_auth_file(ctx, file, &text);
	if (rc == 0 && !(root = json_tokener_parse(text)))
		rc = ctx_error(ctx, EINVAL, "%s: the auth file is not JSON", file);
	else if (rc == 0 && (!json_object_object_get_ex(root, "auths", &auths) ||
			     !json_object_is_type(auths, json_type_object)))
		rc = ctx_error(ctx, EINVAL, "%s: the auth file has no \"auths\" object", file);
	else if (rc == 0)
		rc = pick_entry(ctx, r, file, auths);
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
	json_object_put(root);
	ctx_log(ctx, LOGP_INFO, "%s: %s", r->image,
		rc < 0     ? "auth file refused"
		: r->basic ? "credentials from the auth file"
			   : "no credentials for it in the auth file");
	return rc;
}

/* WWW-Authenticate parsing (RFC 9110 section 11.6.1). */
static bool is_tchar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A token at p: its length. */
static size_t token_len(const char *p)
{
	size_t n = 0;

	while (is_tchar(p[n]))
		n++;
	return n;
}

/* A parameter's value at p into out; past it, or NULL when malformed. */
static const char *param_value(const char *p, char *out, size_t cap)
{
	size_t n = 0;

	if (*p != '"') {
		size_t len = token_len(p);

		snprintf(out, cap, "%.*s", (int)len, p);
		return len ? p + len : NULL;
	}
	for (p++; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1])
			p++;
		if (n + 1 < cap)
			out[n++] = *p;
	}
	out[n] = '\0';
	return *p == '"' ? p + 1 : NULL;
}

bool reg_parse_challenges(const char *hdr, struct reg_challenge *c)
{
	struct reg_challenge cur;
	const char *p = hdr;
	bool have = false;

	memset(c, 0, sizeof(*c));
	while (*(p = skip_ows(p))) {
		size_t n;

		if (*p == ',') {
			p++;
			continue;
		}
		n = token_len(p);
		if (!n)
			return false;
		memset(&cur, 0, sizeof(cur));
		snprintf(cur.scheme, sizeof(cur.scheme), "%.*s", (int)n, p);
		p = skip_ows(p + n);
		/* Parameters, until a token not followed by '=' starts the next challenge. */
		for (;;) {
			const char *q = skip_ows(p[0] == ',' ? p + 1 : p), *v;
			char name[32], value[1024];
			size_t nl = token_len(q);

			if (!nl || *skip_ows(q + nl) != '=')
				break;
			snprintf(name, sizeof(name), "%.*s", (int)nl, q);
			v = skip_ows(skip_ows(q + nl) + 1);
			p = param_value(v, value, sizeof(value));
			if (!p)
				return false;
			p = skip_ows(p);
			if (!strcasecmp(name, "realm"))
				snprintf(cur.realm, sizeof(cur.realm), "%s", value);
			else if (!strcasecmp(name, "service"))
				snprintf(cur.service, sizeof(cur.service), "%.255s", value);
			if (*p && *p != ',')
				return false;
		}
		if (!have || !strcasecmp(cur.scheme, "Bearer") ||
		    (!strcasecmp(cur.scheme, "Basic") && strcasecmp(c->scheme, "Bearer")))
			*c = cur;
		have = true;
	}
	return have;
}

/* A header line "Authorization: SCHEME CREDENTIALS" (malloc'd) into *line; 0 or -ENOMEM. */
static int set_authorization(struct registry *r, const char *scheme, const char *creds)
{
	size_t n = strlen(scheme) + strlen(creds) + 17;
	char *line = malloc(n);

	if (!line)
		return -ENOMEM;
	snprintf(line, n, "Authorization: %s %s", scheme, creds);
	wipe_free(r->authorization);
	r->authorization = line;
	return 0;
}

/* realm?service=S&scope=repository:REPO:pull (malloc'd), or NULL without memory. */
static char *token_url(const struct registry *r)
{
	char scope[300], *s = NULL, *sc = NULL, *url = NULL;
	size_t n;

	snprintf(scope, sizeof(scope), "repository:%s:pull", r->ref.repo);
	s = curl_easy_escape(NULL, r->service, 0);
	sc = curl_easy_escape(NULL, scope, 0);
	n = strlen(r->realm) + (s ? strlen(s) : 0) + (sc ? strlen(sc) : 0) + 32;
	if (s && sc && (url = malloc(n)))
		snprintf(url, n, "%s%cservice=%s&scope=%s", r->realm,
			 strchr(r->realm, '?') ? '&' : '?', s, sc);
	curl_free(s);
	curl_free(sc);
	return url;
}

/* The token of the realm's JSON answer into r->authorization; 0 or -EREMOTEIO. */
static int take_token(struct imgdev_ctx *ctx, struct registry *r, const struct reg_resp *resp)
{
	struct json_object *root = resp->body ? json_tokener_parse(resp->body) : NULL, *t;
	const char *tok = NULL;
	int rc;

	if (root && ((json_object_object_get_ex(root, "token", &t) &&
		      json_object_is_type(t, json_type_string)) ||
		     (json_object_object_get_ex(root, "access_token", &t) &&
		      json_object_is_type(t, json_type_string))))
		tok = json_object_get_string(t);
	if (!tok || !*tok || strpbrk(tok, "\r\n") || strlen(tok) > REGISTRY_AUTH_MAX)
		rc = ctx_error(ctx, EREMOTEIO, "%s: token: the answer of %s holds no token", r->image,
			       r->realm);
	else if ((rc = set_authorization(r, "Bearer", tok)) < 0)
		rc = ctx_error(ctx, ENOMEM, "out of memory");
	if (resp->body)
		explicit_bzero(resp->body, resp->len);
	json_object_put(root);
	return rc;
}

int reg_auth_refresh(struct imgdev_ctx *ctx, struct registry *r)
{
	const char *hdrs[3] = { "Accept: application/json", NULL, NULL };
	char *url = token_url(r), *basic_line = NULL, what[256];
	struct reg_resp resp;
	int rc;

	if (!url)
		return ctx_error(ctx, ENOMEM, "out of memory");
	if (r->basic) {
		size_t n = strlen(r->basic) + 22;

		if (!(basic_line = malloc(n))) {
			free(url);
			return ctx_error(ctx, ENOMEM, "out of memory");
		}
		snprintf(basic_line, n, "Authorization: Basic %s", r->basic);
		hdrs[1] = basic_line;
	}
	rc = reg_http_get(ctx, url, hdrs, TOKEN_ANSWER_MAX, false, &resp);
	wipe_free(basic_line);
	if (rc < 0)
		rc = ctx_error(ctx, EREMOTEIO, "%s: token from %s: %s", r->image, r->realm, resp.why);
	else if (resp.status != 200)
		rc = ctx_error(ctx, reg_resp_describe(&resp, what, sizeof(what)),
			       "%s: token from %s%s: %s", r->image, r->realm,
			       r->basic ? " with the auth file's credentials" : " (anonymous)", what);
	else if (resp.too_big)
		rc = ctx_error(ctx, EREMOTEIO, "%s: token: the answer of %s is too large", r->image,
			       r->realm);
	else
		rc = take_token(ctx, r, &resp);
	if (rc == 0)
		ctx_log(ctx, LOGP_INFO, "%s: a token from %s (%s)", r->image, r->realm,
			r->basic ? "with credentials" : "anonymous");
	free(url);
	reg_resp_free(&resp);
	return rc;
}

/* A Bearer challenge's realm and service taken, and a token fetched from it. */
static int answer_bearer(struct imgdev_ctx *ctx, struct registry *r, const char *what,
			 const struct reg_challenge *c)
{
	if (!c->realm[0] || !bytesrc_is_url(c->realm))
		return ctx_error(ctx, EREMOTEIO,
				 "%s: %s: 401: the Bearer challenge names no http(s) realm",
				 r->image, what);
	/* Credentials go no further than the registry's own scheme: never from https to http. */
	if (!strncasecmp(r->base, "https://", 8) && strncasecmp(c->realm, "https://", 8))
		return ctx_error(ctx, EREMOTEIO,
				 "%s: %s: 401: the token realm %.300s is plain http, the registry https: "
				 "refused",
				 r->image, what, c->realm);
	snprintf(r->realm, sizeof(r->realm), "%s", c->realm);
	snprintf(r->service, sizeof(r->service), "%s", c->service);
	r->bearer = true;
	return reg_auth_refresh(ctx, r);
}

int reg_auth_answer(struct imgdev_ctx *ctx, struct registry *r, const char *what,
		    const struct reg_resp *resp)
{
	struct reg_challenge c;

	if (!resp->www_authenticate[0] || !reg_parse_challenges(resp->www_authenticate, &c))
		return ctx_error(ctx, EREMOTEIO, "%s: %s: 401 without a challenge it can read",
				 r->image, what);
	if (!strcasecmp(c.scheme, "Bearer"))
		return answer_bearer(ctx, r, what, &c);
	if (strcasecmp(c.scheme, "Basic"))
		return ctx_error(ctx, EACCES,
				 "%s: %s: 401: asks for %.32s authentication, which "
				 "imgdev lacks",
				 r->image, what, c.scheme);
	if (!r->basic && !r->auth_file[0])
		return ctx_error(ctx, EACCES,
				 "%s: %s: 401: the registry needs credentials: "
				 "give --auth-file",
				 r->image, what);
	if (!r->basic)
		return ctx_error(ctx, EACCES,
				 "%s: %s: 401: the registry needs credentials, and "
				 "%.512s has none for %s",
				 r->image, what, r->auth_file, r->ref.host);
	return set_authorization(r, "Basic", r->basic) < 0 ? ctx_error(ctx, ENOMEM, "out of memory")
							   : 0;
}
