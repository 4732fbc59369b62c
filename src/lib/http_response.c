/*
 * One response of the HTTP source, as libcurl hands its header lines over:
 * status, length, range, validators (ETag, Last-Modified), encoding and
 * where a redirect goes (never from https to http, and with the header
 * file's credentials only within the URL's origin); whether a later answer
 * is still the same file; and the transfer's progress callback (stalls).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http_src.h"

/* The standard phrase of a status, for HTTP/2 (which sends none). */
static const char *status_phrase(long status)
{
	switch (status) {
	case 200: return "OK";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 412: return "Precondition Failed";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "";
	}
}

static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static bool parse_u64(const char *s, const char **end, uint64_t *v)
{
	char *e;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &e, 10);
	*end = e;
	return errno == 0;
}

/* "bytes first-last/total", the total possibly "*". */
static void parse_content_range(struct http_resp *rp, const char *v)
{
	const char *p;

	if (strncasecmp(v, "bytes ", 6))
		return;
	v += 6;
	if (!parse_u64(v, &p, &rp->range_first) || *p != '-' ||
	    !parse_u64(p + 1, &p, &rp->range_last) || *p != '/' || rp->range_last < rp->range_first)
		return;
	rp->range_total_known = parse_u64(p + 1, &p, &rp->range_total);
	rp->has_range = true;
}

static void parse_status(struct http_resp *rp, const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len), *end = line + len;

	memset(rp, 0, sizeof(*rp));
	if (!sp)
		return;
	rp->status = strtol(sp + 1, NULL, 10);
	sp = memchr(sp + 1, ' ', (size_t)(end - sp - 1));
	if (sp && sp + 1 < end)
		copy_value(rp->reason, sizeof(rp->reason), sp + 1, (size_t)(end - sp - 1));
	if (!rp->reason[0])
		snprintf(rp->reason, sizeof(rp->reason), "%s", status_phrase(rp->status));
}

static void parse_field(struct http_resp *rp, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len), *v, *end = line + len;
	size_t nlen, vlen;
	const char *p;

	if (!colon)
		return;
	nlen = (size_t)(colon - line);
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	vlen = (size_t)(end - v);
#define IS(name) (nlen == sizeof(name) - 1 && !strncasecmp(line, name, nlen))
	if (IS("ETag") && strncmp(v, "W/", 2))
		copy_value(rp->etag, sizeof(rp->etag), v, vlen);
	else if (IS("Last-Modified"))
		copy_value(rp->last_modified, sizeof(rp->last_modified), v, vlen);
	else if (IS("Location"))
		copy_value(rp->location, sizeof(rp->location), v, vlen);
	else if (IS("Content-Encoding") && !(vlen == 8 && !strncasecmp(v, "identity", 8)))
		copy_value(rp->encoding, sizeof(rp->encoding), v, vlen);
	else if (IS("Transfer-Encoding") && vlen >= 7 && !strncasecmp(end - 7, "chunked", 7))
		rp->chunked = true;
	else if (IS("Content-Length"))
		rp->has_length = parse_u64(v, &p, &rp->length) && p == end;
	else if (IS("Accept-Ranges"))
		rp->accept_ranges = vlen == 5 && !strncasecmp(v, "bytes", 5);
	else if (IS("Content-Range")) {
		char tmp[128];

		copy_value(tmp, sizeof(tmp), v, vlen);
		parse_content_range(rp, tmp);
	}
#undef IS
}

/* Whether libcurl goes on to the Location of this response. */
bool http_is_followed(const struct http_resp *rp)
{
	return rp->status >= 300 && rp->status < 400 && rp->status != 304 && rp->location[0];
}

bool http_fatal(struct http_req *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The length of url's scheme://host:port, or 0 for a relative one. */
static size_t origin_len(const char *url)
{
	const char *sep = strstr(url, "://");

	if (!sep || strcspn(url, "/?#") < (size_t)(sep - url))
		return 0;
	return (size_t)(sep + 3 - url) + strcspn(sep + 3, "/?#");
}

/*
 * A redirect of a request carrying the header file's headers (credentials)
 * to another origin is refused: libcurl would send them there (it drops
 * only Authorization and Cookie), to a CDN or a bucket they are not for.
 */
static bool redirect_allowed(struct http_req *r)
{
	const char *loc = r->resp.location, *now = NULL;
	size_t n = origin_len(loc);

	if (!r->h->file_headers || n == 0)
		return true;
	curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &now);
	if (now && origin_len(now) == n && !strncasecmp(now, loc, n))
		return true;
	return http_fatal(r, EREMOTEIO,
			  "redirect to %.*s refused: the headers of the header file go "
			  "only to %.*s",
			  (int)n, loc, now ? (int)origin_len(now) : 0, now ? now : "");
}

size_t http_header(char *line, size_t size, size_t nitems, void *p)
{
	struct http_req *r = p;
	struct http_resp *rp = &r->resp;
	size_t n = size * nitems, len = n;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		parse_status(rp, line, len);
		return n;
	}
	if (rp->complete || !rp->status)
		return n;
	if (len) {
		parse_field(rp, line, len);
		return n;
	}
	rp->complete = true;
	if (http_is_followed(rp))
		return redirect_allowed(r) ? n : 0;
	if (rp->status < 200)
		return n;
	return r->on_headers(r) ? n : 0;
}

/* The stall clock (CURLOPT_LOW_SPEED_* would count a full ring as a stall). */
int http_xferinfo(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct http_req *r = p;
	int64_t now = http_now_ms();

	(void)dltotal;
	(void)ultotal;
	(void)ulnow;
	if (r->abort && atomic_load(r->abort))
		return 1;
	if (dlnow != r->last_dlnow) {
		r->last_dlnow = dlnow;
		r->last_progress_ms = now;
	} else if (now - r->last_progress_ms > (int64_t)r->h->timeout * 1000) {
		r->stalled = true;
		return 1;
	}
	return 0;
}

static const char *validator_name(enum validator_kind k)
{
	return k == VALIDATOR_ETAG ? "ETag" : "Last-Modified";
}

/* The response's validator of the first response's kind, "" if it has none. */
const char *http_resp_validator(const struct http_src *h, const struct http_resp *rp)
{
	return h->vkind == VALIDATOR_ETAG            ? rp->etag
	       : h->vkind == VALIDATOR_LAST_MODIFIED ? rp->last_modified
						     : "";
}

bool http_fatal(struct http_req *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Decide r's outcome in a callback (not retried); false, to abort. */
bool http_fatal(struct http_req *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->fatal_msg, sizeof(r->fatal_msg), fmt, ap);
	va_end(ap);
	r->fatal = -err;
	return false;
}

/* Remember that the file changed, for check_unchanged; false, to abort. */
static bool note_changed(struct http_req *r)
{
	struct http_src *h = r->h;

	pthread_mutex_lock(&h->lock);
	if (!h->changed)
		snprintf(h->changed_msg, sizeof(h->changed_msg), "%s", r->fatal_msg);
	h->changed = true;
	pthread_mutex_unlock(&h->lock);
	return false;
}

/* The file changed on the server: its validator was, and now is; false, to abort. */
static bool changed(struct http_req *r, const char *was, const char *now)
{
	struct http_src *h = r->h;

	http_fatal(r, ESTALE, "%s: the file changed on the server during the transfer (%s %s then %s)",
		   h->url, validator_name(h->vkind), was, now[0] ? now : "none");
	return note_changed(r);
}

/* The same for a size that differs from the first response's. */
static bool changed_size(struct http_req *r, uint64_t now)
{
	struct http_src *h = r->h;

	http_fatal(r, ESTALE,
		   "%s: the file changed on the server during the transfer (%" PRIu64
		   " bytes, then %" PRIu64 ")",
		   h->url, h->size, now);
	return note_changed(r);
}

/*
 * Checks every later 2xx passes: not encoded, the same file as the first
 * (a validator of the first's kind, equal to it; strict: it must be there);
 * false, to abort.
 */
bool http_check_same_file(struct http_req *r, bool strict)
{
	struct http_src *h = r->h;
	const struct http_resp *rp = &r->resp;
	const char *v = http_resp_validator(h, rp);

	if (rp->encoding[0])
		return http_fatal(r, EREMOTEIO, "%s: the server sent the body encoded (%s)", h->url,
				  rp->encoding);
	if (h->vkind != VALIDATOR_NONE && (v[0] || strict) && strcmp(v, h->validator))
		return changed(r, h->validator, v);
	if (h->size_known && rp->status == 200 && rp->has_length && !rp->chunked && rp->length != h->size)
		return changed_size(r, rp->length);
	if (h->size_known && rp->status == 206 && rp->range_total_known && rp->range_total != h->size)
		return changed_size(r, rp->range_total);
	return true;
}

void http_add_received(struct http_src *h, size_t n)
{
	pthread_mutex_lock(&h->lock);
	h->bytes_received += n;
	pthread_mutex_unlock(&h->lock);
}
