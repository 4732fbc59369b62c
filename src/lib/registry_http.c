/*
 * One small GET for the registry client (the /v2/ probe, a token, a
 * manifest) with libcurl's easy interface: the response headers the
 * client needs (WWW-Authenticate, Content-Type, Docker-Content-Digest)
 * and a body kept up to a cap, fetched as the context's fetch options say,
 * transient failures retried. Also what a registry's error answer said.
 * Blobs are streamed by the HTTP byte source instead (bytesrc_http.c),
 * whose basic handle settings (http_easy_basics) these share.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "http_src.h"
#include "internal.h"
#include "registry.h"

static pthread_once_t reg_curl_once = PTHREAD_ONCE_INIT;
static CURLcode reg_curl_rc;

static void reg_curl_init(void)
{
	reg_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void copy_trimmed(char *dst, size_t cap, const char *v, size_t len)
{
	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

/* A header line: a status line starts a response afresh (redirects, 100 Continue). */
static size_t on_header(char *line, size_t size, size_t nitems, void *p)
{
	struct reg_resp *rp = p;
	size_t n = size * nitems, len = n, nlen;
	const char *colon, *sp;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		rp->status = 0;
		rp->reason[0] = rp->www_authenticate[0] = rp->content_type[0] = '\0';
		rp->content_digest[0] = '\0';
		sp = memchr(line, ' ', len);
		if (sp && (sp = memchr(sp + 1, ' ', len - (size_t)(sp + 1 - line))))
			copy_trimmed(rp->reason, sizeof(rp->reason), sp + 1,
				     len - (size_t)(sp + 1 - line));
		return n;
	}
	colon = memchr(line, ':', len);
	if (!colon)
		return n;
	nlen = (size_t)(colon - line);
#define IS(name) (nlen == sizeof(name) - 1 && !strncasecmp(line, name, nlen))
	if (IS("WWW-Authenticate") && !rp->www_authenticate[0])
		copy_trimmed(rp->www_authenticate, sizeof(rp->www_authenticate), colon + 1,
			     len - nlen - 1);
	else if (IS("Content-Type"))
		copy_trimmed(rp->content_type, sizeof(rp->content_type), colon + 1, len - nlen - 1);
	else if (IS("Docker-Content-Digest"))
		copy_trimmed(rp->content_digest, sizeof(rp->content_digest), colon + 1, len - nlen - 1);
#undef IS
	return n;
}

struct body_sink {
	struct reg_resp *rp;
	size_t max, cap;
};

/* The body, kept up to the cap; past it the transfer is ended (too_big). */
static size_t on_body(char *data, size_t size, size_t nitems, void *p)
{
	struct body_sink *s = p;
	struct reg_resp *rp = s->rp;
	size_t n = size * nitems;

	if (rp->len + n > s->max) {
		rp->too_big = true;
		return 0;
	}
	if (rp->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 16384;
		char *b;

		while (cap < rp->len + n + 1)
			cap *= 2;
		b = realloc(rp->body, cap);
		if (!b)
			return 0;
		rp->body = b;
		s->cap = cap;
	}
	memcpy(rp->body + rp->len, data, n);
	rp->len += n;
	rp->body[rp->len] = '\0';
	return n;
}

/*
 * A handle for url with the fetch options and headers; NULL without
 * memory. An Authorization among hdrs is not sent to another origin after
 * a redirect: libcurl >= 7.83 sends a custom Authorization only to the
 * first URL's host, port and scheme unless CURLOPT_UNRESTRICTED_AUTH is
 * set, which it is not here.
 */
static CURL *easy_for(const struct imgdev_fetch_opts *fo, const char *url, struct curl_slist *hdrs)
{
	long timeout = fo->timeout ? (long)fo->timeout : DEFAULT_TIMEOUT;
	CURL *e = curl_easy_init();
	bool bad = false;

	if (!e)
		return NULL;
	bad |= !http_easy_basics(e, url, hdrs, fo->ca_file, fo->insecure);
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, timeout) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, timeout) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	if (bad) {
		curl_easy_cleanup(e);
		return NULL;
	}
	return e;
}

/* Whether a failure (res) or an answer (status) is worth another try. */
static bool transient(CURLcode res, long status)
{
	switch (res) {
	case CURLE_OK: return status == 429 || status == 502 || status == 503 || status == 504;
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM: return true;
	default: return false;
	}
}

/* One attempt on e into rp; the curl result. */
static CURLcode attempt(CURL *e, const char *url, size_t max, struct reg_resp *rp)
{
	struct body_sink sink = { .rp = rp, .max = max };
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_off_t tls_us = 0;
	CURLcode res;

	free(rp->body);
	memset(rp, 0, sizeof(*rp));
	curl_easy_setopt(e, CURLOPT_HEADERDATA, rp);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	res = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &rp->status);
	if (res == CURLE_WRITE_ERROR && rp->too_big)
		res = CURLE_OK;
	if (res == CURLE_OK)
		return res;
	curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &tls_us);
	rp->no_connection = res == CURLE_COULDNT_CONNECT ||
			    (!strncasecmp(url, "https://", 8) && tls_us == 0 &&
			     res != CURLE_COULDNT_RESOLVE_HOST && res != CURLE_COULDNT_RESOLVE_PROXY);
	snprintf(rp->why, sizeof(rp->why), "%s", errbuf[0] ? errbuf : curl_easy_strerror(res));
	return res;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The header lines as a list; false without memory. */
static bool make_list(const char *const *headers, struct curl_slist **list)
{
	*list = curl_slist_append(NULL, "Accept-Encoding: identity");
	for (; *list && headers && *headers; headers++) {
		struct curl_slist *l = curl_slist_append(*list, *headers);

		if (!l) {
			curl_slist_free_all(*list);
			*list = NULL;
		} else {
			*list = l;
		}
	}
	return *list != NULL;
}

int reg_http_get(struct imgdev_ctx *ctx, const char *url, const char *const *headers, size_t max,
		 bool once, struct reg_resp *resp)
{
	const struct imgdev_fetch_opts *fo = &ctx->fetch;
	unsigned int tries = 0, retries = fo->retries < 0 ? DEFAULT_RETRIES : (unsigned)fo->retries;
	long delay = BACKOFF_FIRST_MS;
	struct curl_slist *list;
	CURLcode res;
	CURL *e;

	memset(resp, 0, sizeof(*resp));
	pthread_once(&reg_curl_once, reg_curl_init);
	if (reg_curl_rc != CURLE_OK || !make_list(headers, &list)) {
		snprintf(resp->why, sizeof(resp->why), "cannot initialise libcurl");
		return -EREMOTEIO;
	}
	e = easy_for(fo, url, list);
	for (res = CURLE_FAILED_INIT; e; tries++) {
		res = attempt(e, url, max, resp);
		if (once || tries >= retries || !transient(res, resp->status))
			break;
		ctx_log(ctx, LOGP_WARNING, "%s: %s; retrying in %ld ms", url,
			res == CURLE_OK ? resp->reason : resp->why, delay);
		sleep_ms(delay);
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	}
	if (!e)
		snprintf(resp->why, sizeof(resp->why), "out of memory");
	curl_easy_cleanup(e);
	http_slist_free_wiped(list);
	return res == CURLE_OK ? 0 : -EREMOTEIO;
}

void reg_resp_free(struct reg_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

/* The first error of the registry's {"errors":[{"code","message"}]}: false without one. */
static bool error_json(const struct reg_resp *resp, char *buf, size_t cap)
{
	struct json_object *root, *errs, *first, *code, *msg;
	bool found = false;

	if (!resp->body || !resp->len)
		return false;
	root = json_tokener_parse(resp->body);
	if (root && json_object_object_get_ex(root, "errors", &errs) &&
	    json_object_is_type(errs, json_type_array) && json_object_array_length(errs) > 0 &&
	    (first = json_object_array_get_idx(errs, 0)) &&
	    json_object_object_get_ex(first, "code", &code) &&
	    json_object_is_type(code, json_type_string)) {
		if (!json_object_object_get_ex(first, "message", &msg) ||
		    !json_object_is_type(msg, json_type_string))
			msg = NULL;
		snprintf(buf, cap, "%ld %.64s%s%.200s", resp->status, json_object_get_string(code),
			 msg ? ": " : "", msg ? json_object_get_string(msg) : "");
		found = true;
	}
	json_object_put(root);
	return found;
}

int reg_resp_describe(const struct reg_resp *resp, char *buf, size_t cap)
{
	if (!error_json(resp, buf, cap))
		snprintf(buf, cap, "%ld%s%s", resp->status, resp->reason[0] ? " " : "", resp->reason);
	if (resp->status == 401 || resp->status == 403)
		return EACCES;
	return resp->status == 404 ? ENOMEDIUM : EREMOTEIO;
}
