/*
 * The byte source over an http:// or https:// URL (bytesrc.h), with libcurl.
 * Open sends the first GET from a transfer thread and waits for its headers;
 * the body then streams through a bounded ring that read empties. A broken
 * transfer is resumed where it broke (Range, If-Range), never spliced onto a
 * file that changed. pread, when the server honours ranges, is a Range GET
 * on one of a few pooled handles that keep their connections alive.
 * The file is divided: settings and the request headers; one response's
 * headers; what a failure was and whether to retry; the stream (its thread,
 * ring, read and peek); pread; the operations and open.
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
#include <time.h>

#include <curl/curl.h>

#include "bytesrc.h"
#include "internal.h"

#define RING_SIZE (16u << 20)
#define POOL_MAX 4
#define MAX_REDIRS 10
#define DEFAULT_RETRIES 5
#define DEFAULT_TIMEOUT 30
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 4000
#define RECV_BUFFER (128 * 1024)

enum validator_kind {
	VALIDATOR_NONE,
	VALIDATOR_ETAG, /* a strong ETag */
	VALIDATOR_LAST_MODIFIED,
};

/* What one response's headers said. */
struct http_resp {
	long status;
	char reason[96];
	char etag[256]; /* as sent, quotes included; "" if none or weak */
	char last_modified[64];
	char location[1024];
	char encoding[32]; /* Content-Encoding, "" if none */
	bool chunked;
	bool has_length;
	uint64_t length;
	bool has_range; /* Content-Range: bytes first-last/total */
	uint64_t range_first, range_last, range_total;
	bool range_total_known;
	bool accept_ranges;
	bool complete; /* its blank line was seen (what follows are trailers) */
};

struct http_src;

/* One request (the stream's, reused for its retries, or one pread's). */
struct http_req {
	struct http_src *h;
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
	struct http_resp resp;
	/* Called at the end of a final response's headers: take its body? */
	bool (*on_headers)(struct http_req *r);
	uint64_t want; /* the file offset asked for (0 without a Range) */
	bool ranged;
	bool accepted;   /* a 2xx whose body is being taken */
	bool http_error; /* a final answer other than 2xx: aborted at its headers */
	uint64_t pos;    /* the file offset of the body's next byte */
	/* The stall clock: the last time bytes came (or the consumer let us go on). */
	int64_t last_progress_ms;
	curl_off_t last_dlnow;
	bool stalled;
	const atomic_bool *abort; /* NULL, or set to abort the transfer */
	int fatal;                /* -errno decided by a callback (not retried), with fatal_msg */
	char fatal_msg[512];
};

/* How an attempt ended. */
struct http_outcome {
	int err;        /* 0 or -errno */
	bool transient; /* worth a retry */
	char what[512]; /* what happened, for messages (without the URL) */
	bool whole;     /* what is the whole message (URL included), no position */
};

struct http_stream {
	struct http_req req;
	CURLM *multi;
	pthread_t thread;
	bool started;
	atomic_bool abort;
	unsigned char *ring;
	/* Under h->lock: file offsets delivered into the ring, and read out of it. */
	uint64_t filled, consumed;
	bool ended; /* the thread is done: the body is complete, or err */
	int err;
	char msg[512];
	bool read_started;
	bool stopped; /* BYTESRC_NO_STREAM */
};

struct http_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	CURL *idle[POOL_MAX];
	int nidle;
	int nmade;
};

struct http_src {
	const char *url;        /* bs->name */
	struct imgdev_ctx *ctx; /* warnings about retries; outlives the source */
	pthread_mutex_t log_lock;
	char *ca_file;
	bool insecure;
	bool https;
	unsigned int retries;
	unsigned int timeout;              /* seconds */
	struct curl_slist *headers;        /* every request's */
	bool file_headers;                 /* some of them from the header file (credentials) */
	struct curl_slist *resume_headers; /* and If-Range */
	uint64_t start; /* the file offset the stream starts at (a resumed copy's) */
	/* The first 200 (or 206, from start): set by the transfer thread before open returns, then fixed. */
	bool have_first;
	enum validator_kind vkind;
	char validator[256];
	bool accept_ranges;
	uint64_t size;
	bool size_known;
	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the stream's changes, both ways */
	uint64_t bytes_received;
	unsigned int retried;
	bool changed;
	char changed_msg[512];
	struct http_stream stream;
	struct http_pool pool;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msgf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A message into buf, cut at cap (a URL may be long). */
static void msgf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}

static void http_warn(struct http_src *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A warning to the context that opened the source, from whichever thread. */
static void http_warn(struct http_src *h, const char *fmt, ...)
{
	char msg[IMGDEV_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&h->log_lock);
	ctx_log(h->ctx, LOGP_WARNING, "%s", msg);
	pthread_mutex_unlock(&h->log_lock);
}

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

/* --- Settings and the request headers --- */

static bool is_token_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void slist_free_wiped(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

/*
 * One line of the header file as "Name: value" (or "Name;", curl's way to
 * send an empty value) into *list; 1 if taken, 0 if to be skipped, -1 if
 * malformed, -2 if a header imgdev sets itself, -3 out of memory.
 */
static int header_line(char *line, struct curl_slist **list, const char **reserved)
{
	size_t len = strlen(line), nlen = 0;
	struct curl_slist *l;
	char *value;
	int rc = 1;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
		       line[len - 1] == '\t'))
		line[--len] = '\0';
	if (!len || line[0] == '#' || strspn(line, " \t") == len)
		return 0;
	while (nlen < len && is_token_char((unsigned char)line[nlen]))
		nlen++;
	if (!nlen || line[nlen] != ':')
		return -1;
	for (value = line + nlen + 1; *value == ' ' || *value == '\t'; value++)
		;
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return -1;
	line[nlen] = '\0';
	for (const char **r = (const char *[]){ "Range", "If-Range", "Accept-Encoding", NULL }; *r; r++)
		if (!strcasecmp(line, *r)) {
			*reserved = *r;
			return -2;
		}
	if (*value) {
		line[nlen] = ':';
	} else {
		line[nlen] = ';';
		line[nlen + 1] = '\0';
	}
	l = curl_slist_append(*list, line);
	if (!l)
		rc = -3;
	else
		*list = l;
	return rc;
}

/* The header file's headers onto h->headers; 0 or -errno with the message in ctx. */
static int load_header_file(struct imgdev_ctx *ctx, struct http_src *h, const char *path)
{
	FILE *f = fopen(path, "re");
	const char *reserved = NULL;
	unsigned int lineno = 0;
	size_t cap = 0;
	char *line = NULL;
	int rc = 0, err;

	if (!f)
		return ctx_error(ctx, errno, "%s: cannot read the header file: %s", path,
				 strerror(errno));
	while (rc == 0 && getline(&line, &cap, f) >= 0) {
		lineno++;
		switch (header_line(line, &h->headers, &reserved)) {
		case -1:
			rc = ctx_error(ctx, EINVAL, "%s: line %u: not a header (Name: value)", path,
				       lineno);
			break;
		case -2:
			rc = ctx_error(ctx, EINVAL, "%s: line %u: the %s header is imgdev's own",
				       path, lineno, reserved);
			break;
		case -3: rc = ctx_error(ctx, ENOMEM, "out of memory"); break;
		case 1: h->file_headers = true; break;
		}
		explicit_bzero(line, cap);
	}
	err = errno;
	if (rc == 0 && ferror(f))
		rc = ctx_error(ctx, err, "%s: cannot read the header file: %s", path, strerror(err));
	free(line);
	fclose(f);
	return rc;
}

/* Settings from fo and the request headers; 0 or -errno with the message in ctx. */
static int http_configure(struct imgdev_ctx *ctx, struct http_src *h, const struct imgdev_fetch_opts *fo)
{
	h->https = !strncasecmp(h->url, "https://", 8);
	h->insecure = fo->insecure;
	h->retries = fo->retries < 0 ? DEFAULT_RETRIES : (unsigned int)fo->retries;
	h->timeout = fo->timeout ? fo->timeout : DEFAULT_TIMEOUT;
	if (fo->ca_file && !(h->ca_file = strdup(fo->ca_file)))
		return ctx_error(ctx, ENOMEM, "out of memory");
	h->headers = curl_slist_append(NULL, "Accept-Encoding: identity");
	if (!h->headers)
		return ctx_error(ctx, ENOMEM, "out of memory");
	return fo->header_file ? load_header_file(ctx, h, fo->header_file) : 0;
}

/* h->headers and "If-Range: <validator>", for resuming the stream; false without memory. */
static bool make_resume_headers(struct http_src *h)
{
	struct curl_slist *list = NULL;
	char line[300];

	for (struct curl_slist *l = h->headers; l; l = l->next) {
		struct curl_slist *n = curl_slist_append(list, l->data);

		if (!n) {
			slist_free_wiped(list);
			return false;
		}
		list = n;
	}
	snprintf(line, sizeof(line), "If-Range: %s", h->validator);
	if (!curl_slist_append(list, line)) {
		slist_free_wiped(list);
		return false;
	}
	h->resume_headers = list;
	return true;
}

static size_t http_header(char *line, size_t size, size_t nitems, void *p);
static int http_xferinfo(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow);

/* A handle with everything but the request's own (data pointers, range); NULL without memory. */
static CURL *http_easy_new(struct http_src *h)
{
	CURL *e = curl_easy_init();
	bool bad = false;

	if (!e)
		return NULL;
	bad |= curl_easy_setopt(e, CURLOPT_URL, h->url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRS) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, h->https ? "https" : "http,https") !=
	       CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "imgdev/" IMGDEV_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, http_xferinfo) != CURLE_OK;
	if (h->ca_file)
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file) != CURLE_OK;
	if (h->insecure) {
		bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK;
	}
	if (bad) {
		curl_easy_cleanup(e);
		return NULL;
	}
	return e;
}

/*
 * Ready r for its next attempt on its handle: a Range from want (to last,
 * or to the end when last is UINT64_MAX) when ranged.
 */
static void req_prepare(struct http_req *r, bool ranged, uint64_t want, uint64_t last,
			struct curl_slist *headers)
{
	char range[48];

	memset(&r->resp, 0, sizeof(r->resp));
	r->errbuf[0] = '\0';
	r->want = ranged ? want : 0;
	r->ranged = ranged;
	r->accepted = r->http_error = r->stalled = false;
	r->pos = r->want;
	r->fatal = 0;
	r->fatal_msg[0] = '\0';
	r->last_progress_ms = now_ms();
	r->last_dlnow = 0;
	if (last == UINT64_MAX)
		snprintf(range, sizeof(range), "%" PRIu64 "-", want);
	else
		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, want, last);
	curl_easy_setopt(r->easy, CURLOPT_RANGE, ranged ? range : NULL);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_XFERINFODATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
}

/* --- One response's headers --- */

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
static bool is_followed(const struct http_resp *rp)
{
	return rp->status >= 300 && rp->status < 400 && rp->status != 304 && rp->location[0];
}

static bool fatal(struct http_req *r, int err, const char *fmt, ...)
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
	return fatal(r, EREMOTEIO, "redirect to %.*s refused: the headers of the header file go "
		     "only to %.*s", (int)n, loc, now ? (int)origin_len(now) : 0, now ? now : "");
}

static size_t http_header(char *line, size_t size, size_t nitems, void *p)
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
	if (is_followed(rp))
		return redirect_allowed(r) ? n : 0;
	if (rp->status < 200)
		return n;
	return r->on_headers(r) ? n : 0;
}

/* The stall clock (CURLOPT_LOW_SPEED_* would count a full ring as a stall). */
static int http_xferinfo(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	struct http_req *r = p;
	int64_t now = now_ms();

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
static const char *resp_validator(const struct http_src *h, const struct http_resp *rp)
{
	return h->vkind == VALIDATOR_ETAG            ? rp->etag
	       : h->vkind == VALIDATOR_LAST_MODIFIED ? rp->last_modified
						     : "";
}

static bool fatal(struct http_req *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Decide r's outcome in a callback (not retried); false, to abort. */
static bool fatal(struct http_req *r, int err, const char *fmt, ...)
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

	fatal(r, ESTALE, "%s: the file changed on the server during the transfer (%s %s then %s)",
	      h->url, validator_name(h->vkind), was, now[0] ? now : "none");
	return note_changed(r);
}

/* The same for a size that differs from the first response's. */
static bool changed_size(struct http_req *r, uint64_t now)
{
	struct http_src *h = r->h;

	fatal(r, ESTALE,
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
static bool check_same_file(struct http_req *r, bool strict)
{
	struct http_src *h = r->h;
	const struct http_resp *rp = &r->resp;
	const char *v = resp_validator(h, rp);

	if (rp->encoding[0])
		return fatal(r, EREMOTEIO, "%s: the server sent the body encoded (%s)", h->url,
			     rp->encoding);
	if (h->vkind != VALIDATOR_NONE && (v[0] || strict) && strcmp(v, h->validator))
		return changed(r, h->validator, v);
	if (h->size_known && rp->status == 200 && rp->has_length && !rp->chunked && rp->length != h->size)
		return changed_size(r, rp->length);
	if (h->size_known && rp->status == 206 && rp->range_total_known && rp->range_total != h->size)
		return changed_size(r, rp->range_total);
	return true;
}

static void add_received(struct http_src *h, size_t n)
{
	pthread_mutex_lock(&h->lock);
	h->bytes_received += n;
	pthread_mutex_unlock(&h->lock);
}

/* --- What a failure was, and the retries --- */

static bool is_tls_error(CURLcode res)
{
	switch (res) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED: return true;
	default: return false;
	}
}

static void outcome_set(struct http_outcome *o, int err, bool transient, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void outcome_set(struct http_outcome *o, int err, bool transient, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->what, sizeof(o->what), fmt, ap);
	va_end(ap);
	o->err = -err;
	o->transient = transient;
	o->whole = false;
}

/* The final answer's status, as an outcome. */
static void status_outcome(const struct http_resp *rp, struct http_outcome *o)
{
	long s = rp->status;
	int err = s == 404 || s == 410 ? ENOMEDIUM : s == 401 || s == 403 ? EACCES : EREMOTEIO;

	/* 5xx but those that will not change; 408 and 429 (a timeout, a rate limit) too. */
	bool transient = (s >= 500 && s <= 599 && s != 501 && s != 505) || s == 408 || s == 429;

	outcome_set(o, err, transient, "HTTP %ld%s%s", s, rp->reason[0] ? " " : "", rp->reason);
}

/* Where a refused redirect led. */
static const char *redirect_target(const struct http_req *r)
{
	char *u = NULL;

	if (curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &u) == CURLE_OK && u && *u)
		return u;
	return r->resp.location;
}

/* How the attempt on r that libcurl ended with res went. */
static void classify(struct http_req *r, CURLcode res, struct http_outcome *o)
{
	const char *why = r->errbuf[0] ? r->errbuf : curl_easy_strerror(res);
	long os_errno = 0;

	if (r->fatal) {
		o->err = r->fatal;
		o->transient = false;
		o->whole = true;
		snprintf(o->what, sizeof(o->what), "%s", r->fatal_msg);
		return;
	}
	if (r->http_error || (res == CURLE_OK && !r->accepted)) {
		status_outcome(&r->resp, o);
		return;
	}
	if (r->stalled) {
		outcome_set(o, EREMOTEIO, true, "no data for %u s", r->h->timeout);
		return;
	}
	curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
	switch (res) {
	case CURLE_OK: outcome_set(o, 0, false, "done"); return;
	case CURLE_UNSUPPORTED_PROTOCOL:
		if (is_followed(&r->resp)) {
			const char *to = redirect_target(r);

			outcome_set(o, EREMOTEIO, false, "redirect to %s refused (%s)", to,
				    r->h->https && !strncasecmp(to, "http:", 5)
					    ? "https to http"
					    : "only http and https");
			return;
		}
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		outcome_set(o, EREMOTEIO, false, "too many redirects (more than %d)", MAX_REDIRS);
		return;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		if (os_errno == ECONNRESET)
			outcome_set(o, EREMOTEIO, true, "connection reset");
		else
			outcome_set(o, EREMOTEIO, true, "%s", why);
		return;
	case CURLE_PARTIAL_FILE:
		outcome_set(o, EREMOTEIO, true, "connection closed before the end of the body");
		return;
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3: outcome_set(o, EREMOTEIO, true, "%s", why); return;
	case CURLE_OUT_OF_MEMORY: outcome_set(o, ENOMEM, false, "out of memory"); return;
	default: break;
	}
	if (is_tls_error(res))
		outcome_set(o, EREMOTEIO, res == CURLE_SSL_CONNECT_ERROR && os_errno == ECONNRESET,
			    "TLS: %s", why);
	else
		outcome_set(o, EREMOTEIO, false, "%s", why);
}

/*
 * Where a failure came, for messages: " after N bytes" of the stream, " at
 * byte N (range A-B)" of a pread, "" before any body byte.
 */
static void where_at(char *where, size_t cap, uint64_t pos, const struct http_req *r, uint64_t last)
{
	if (r->ranged && last != UINT64_MAX)
		snprintf(where, cap, " at byte %" PRIu64 " (range %" PRIu64 "-%" PRIu64 ")", pos,
			 r->want, last);
	else if (pos)
		snprintf(where, cap, " after %" PRIu64 " bytes", pos);
	else
		where[0] = '\0';
}

/* The message of a failure that is final, after attempts in a row. */
static void final_message(const struct http_src *h, const struct http_outcome *o, const char *where,
			  unsigned int attempts, char *msg, size_t cap)
{
	if (o->whole)
		msgf(msg, cap, "%s", o->what);
	else if (attempts > 1)
		msgf(msg, cap, "%s: %s%s%s after %u attempts", h->url, o->what, where,
		     where[0] ? "; gave up" : "", attempts);
	else
		msgf(msg, cap, "%s: %s%s", h->url, o->what, where);
}

/*
 * Whether to try again after o, the (*tries + 1)th failure in a row: if so,
 * warns, counts it and gives how long to wait first (0.25 s, doubling, at
 * most 4 s).
 */
static bool retry_next(struct http_src *h, const struct http_outcome *o, const char *where,
		       unsigned int *tries, int64_t *delay_ms)
{
	if (!o->transient || *tries >= h->retries)
		return false;
	*delay_ms = BACKOFF_FIRST_MS << (*tries < 5 ? *tries : 5);
	if (*delay_ms > BACKOFF_MAX_MS)
		*delay_ms = BACKOFF_MAX_MS;
	(*tries)++;
	http_warn(h, "%s: %s%s; retrying in %g s (%u of %u)", h->url, o->what, where,
		  (double)*delay_ms / 1000, *tries, h->retries);
	pthread_mutex_lock(&h->lock);
	h->retried++;
	pthread_mutex_unlock(&h->lock);
	return true;
}

/* --- The stream --- */

/*
 * The first answer to a stream that starts past the first byte: the range
 * asked for, of a file whose size it says; false, to abort, if not.
 */
static bool first_range_ok(struct http_req *r)
{
	const struct http_resp *rp = &r->resp;

	if (rp->has_range && rp->range_first == r->want && rp->range_total_known &&
	    rp->range_last + 1 == rp->range_total)
		return true;
	return fatal(r, EREMOTEIO,
		     "%s: asked for the bytes from %" PRIu64 ", the server sent another range",
		     r->h->url, r->want);
}

/* The first response, or a retry's: which bytes of it to take. */
static bool stream_on_headers(struct http_req *r)
{
	struct http_src *h = r->h;
	const struct http_resp *rp = &r->resp;

	if (rp->status < 200 || rp->status > 299) {
		r->http_error = true;
		return false;
	}
	if (!h->have_first) {
		if (rp->status == 206 && r->ranged && !first_range_ok(r))
			return false;
		if (rp->status != 200 && rp->status != 203 && !(rp->status == 206 && r->ranged))
			return fatal(r, EREMOTEIO, "%s: unexpected answer HTTP %ld %s", h->url,
				     rp->status, rp->reason);
		if (rp->encoding[0])
			return fatal(r, EREMOTEIO, "%s: the server sent the body encoded (%s)",
				     h->url, rp->encoding);
		h->vkind = rp->etag[0]            ? VALIDATOR_ETAG
			   : rp->last_modified[0] ? VALIDATOR_LAST_MODIFIED
						  : VALIDATOR_NONE;
		snprintf(h->validator, sizeof(h->validator), "%s", resp_validator(h, rp));
		if (h->vkind != VALIDATOR_NONE && !make_resume_headers(h))
			return fatal(r, ENOMEM, "out of memory");
		if (rp->status == 206) {
			h->size_known = true;
			h->size = rp->range_total;
		} else {
			h->size_known = rp->has_length && !rp->chunked;
			h->size = h->size_known ? rp->length : 0;
			r->pos = 0; /* the whole file: the bytes before start are skipped */
			if (r->ranged)
				http_warn(h,
					  "%s: the server sent the whole file, not the bytes from %" PRIu64
					  ": they are fetched again and skipped",
					  h->url, r->want);
		}
		h->accept_ranges = rp->accept_ranges || rp->status == 206;
		pthread_mutex_lock(&h->lock);
		h->have_first = true;
		pthread_cond_broadcast(&h->cond);
		pthread_mutex_unlock(&h->lock);
	} else if (rp->status == 206 && r->ranged) {
		if (!rp->has_range || rp->range_first != r->want)
			return fatal(r, EREMOTEIO,
				     "%s: asked for the bytes from %" PRIu64
				     ", the server sent another range",
				     h->url, r->want);
		/* If-Range vouches for it; a validator sent must still be the same. */
		if (!check_same_file(r, false))
			return false;
	} else if (rp->status == 200) {
		/* The whole file again: if it is the same, what was delivered is skipped. */
		if (!check_same_file(r, true))
			return false;
		r->pos = 0;
	} else {
		return fatal(r, EREMOTEIO, "%s: unexpected answer HTTP %ld %s", h->url, rp->status,
			     rp->reason);
	}
	r->accepted = true;
	return true;
}

/* Body bytes into the ring, past those delivered before a retry; waits while it is full. */
static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *p)
{
	struct http_req *r = p;
	struct http_src *h = r->h;
	struct http_stream *s = &h->stream;
	size_t n = size * nmemb, left = n;

	if (!r->accepted)
		return is_followed(&r->resp) ? n : 0;
	add_received(h, n);
	if (h->size_known && (r->pos > h->size || n > h->size - r->pos)) {
		fatal(r, EREMOTEIO, "%s: the body is longer than its %" PRIu64 " bytes", h->url,
		      h->size);
		return 0;
	}
	if (r->pos < s->filled) {
		size_t skip = s->filled - r->pos < left ? (size_t)(s->filled - r->pos) : left;

		ptr += skip;
		left -= skip;
		r->pos += skip;
	}
	while (left) {
		size_t at = (size_t)(s->filled % RING_SIZE), k;

		pthread_mutex_lock(&h->lock);
		while (!atomic_load(&s->abort) && s->filled - s->consumed == RING_SIZE)
			pthread_cond_wait(&h->cond, &h->lock);
		k = RING_SIZE - (size_t)(s->filled - s->consumed);
		pthread_mutex_unlock(&h->lock);
		if (atomic_load(&s->abort))
			return 0;
		if (k > RING_SIZE - at)
			k = RING_SIZE - at;
		if (k > left)
			k = left;
		memcpy(s->ring + at, ptr, k);
		ptr += k;
		left -= k;
		r->pos += k;
		pthread_mutex_lock(&h->lock);
		s->filled += k;
		pthread_cond_broadcast(&h->cond);
		pthread_mutex_unlock(&h->lock);
	}
	/* Time spent waiting for the reader is not a stall. */
	r->last_progress_ms = now_ms();
	return n;
}

/* One attempt on the stream's handle, through its multi handle (so close can wake it). */
static CURLcode stream_perform(struct http_stream *s)
{
	CURLcode res = CURLE_ABORTED_BY_CALLBACK;
	int running = 1, left;
	CURLMsg *m;

	if (curl_multi_add_handle(s->multi, s->req.easy) != CURLM_OK)
		return CURLE_OUT_OF_MEMORY;
	while (running && !atomic_load(&s->abort)) {
		if (curl_multi_perform(s->multi, &running) != CURLM_OK) {
			res = CURLE_OUT_OF_MEMORY;
			break;
		}
		if (running && curl_multi_poll(s->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
			res = CURLE_OUT_OF_MEMORY;
			break;
		}
	}
	while ((m = curl_multi_info_read(s->multi, &left)))
		if (m->msg == CURLMSG_DONE)
			res = m->data.result;
	curl_multi_remove_handle(s->multi, s->req.easy);
	return res;
}

/* Wait ms, or less if the stream is stopped; false if it was. */
static bool stream_sleep(struct http_src *h, int64_t ms)
{
	struct http_stream *s = &h->stream;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&h->lock);
	while (!atomic_load(&s->abort) && pthread_cond_timedwait(&h->cond, &h->lock, &ts) == 0)
		;
	pthread_mutex_unlock(&h->lock);
	return !atomic_load(&s->abort);
}

static void stream_end(struct http_src *h, int err, const char *msg)
{
	struct http_stream *s = &h->stream;

	pthread_mutex_lock(&h->lock);
	s->ended = true;
	s->err = err;
	snprintf(s->msg, sizeof(s->msg), "%s", msg);
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/*
 * The transfer thread: the first GET, then as many resumed GETs as breaks
 * and the retries allow, each from the byte reached.
 */
static void *stream_main(void *arg)
{
	struct http_src *h = arg;
	struct http_stream *s = &h->stream;
	struct http_req *r = &s->req;
	unsigned int tries = 0;
	char msg[512], where[96];

	for (;;) {
		uint64_t start = s->filled;
		bool ranged = start > 0;
		struct http_outcome o;
		int64_t delay;
		CURLcode res;

		req_prepare(r, ranged, start, UINT64_MAX,
			    ranged && h->resume_headers ? h->resume_headers : h->headers);
		res = stream_perform(s);
		if (atomic_load(&s->abort))
			break;
		classify(r, res, &o);
		if (o.err == 0 && h->size_known && s->filled < h->size)
			outcome_set(&o, EREMOTEIO, true, "the body ended early");
		if (o.err == 0) {
			stream_end(h, 0, "");
			break;
		}
		if (s->filled > start)
			tries = 0;
		if (o.transient && s->filled > h->start && h->vkind == VALIDATOR_NONE) {
			msgf(msg, sizeof(msg),
			     "%s: %s after %" PRIu64 " bytes, and the transfer cannot be resumed "
			     "safely (the server gave no ETag or Last-Modified)",
			     h->url, o.what, s->filled);
			stream_end(h, -ESTALE, msg);
			break;
		}
		where_at(where, sizeof(where), s->filled, r, UINT64_MAX);
		if (!retry_next(h, &o, where, &tries, &delay)) {
			final_message(h, &o, where, tries + 1, msg, sizeof(msg));
			stream_end(h, o.err, msg);
			break;
		}
		if (!stream_sleep(h, delay))
			break;
	}
	return NULL;
}

/* The ring, the handles and the thread, and the first response awaited; 0 or -errno. */
static int stream_start(struct imgdev_ctx *ctx, struct http_src *h)
{
	struct http_stream *s = &h->stream;
	struct http_req *r = &s->req;
	int err;

	s->ring = malloc(RING_SIZE);
	s->multi = curl_multi_init();
	r->easy = http_easy_new(h);
	if (!s->ring || !s->multi || !r->easy)
		return ctx_error(ctx, ENOMEM, "out of memory");
	r->h = h;
	r->on_headers = stream_on_headers;
	r->abort = &s->abort;
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, stream_write);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	err = pthread_create(&s->thread, NULL, stream_main, h);
	if (err)
		return ctx_error(ctx, err, "cannot start a thread: %s", strerror(err));
	s->started = true;
	pthread_mutex_lock(&h->lock);
	while (!h->have_first && !s->ended)
		pthread_cond_wait(&h->cond, &h->lock);
	err = h->have_first ? 0 : s->err;
	pthread_mutex_unlock(&h->lock);
	return err ? ctx_error(ctx, err, "%s", s->msg) : 0;
}

/* Abort the transfer and wait for its thread (promptly: the multi handle is woken). */
static void stream_stop(struct http_src *h)
{
	struct http_stream *s = &h->stream;

	atomic_store(&s->abort, true);
	pthread_mutex_lock(&h->lock);
	s->stopped = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	if (s->started) {
		curl_multi_wakeup(s->multi);
		pthread_join(s->thread, NULL);
		s->started = false;
	}
	if (s->req.easy)
		curl_easy_cleanup(s->req.easy);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	free(s->ring);
	s->req.easy = NULL;
	s->multi = NULL;
	s->ring = NULL;
}

static void set_msg(struct bytesrc *bs, const char *msg)
{
	struct http_src *h = bs->priv;

	pthread_mutex_lock(&h->lock);
	snprintf(bs->msg, sizeof(bs->msg), "%s", msg);
	pthread_mutex_unlock(&h->lock);
}

/* Copy out of the ring at file offset pos (it holds [pos, pos+n)). */
static void ring_copy(const struct http_stream *s, void *buf, uint64_t pos, size_t n)
{
	size_t at = (size_t)(pos % RING_SIZE), first = RING_SIZE - at < n ? RING_SIZE - at : n;

	memcpy(buf, s->ring + at, first);
	memcpy((char *)buf + first, s->ring, n - first);
}

static ssize_t http_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct http_src *h = bs->priv;
	struct http_stream *s = &h->stream;
	uint64_t avail;
	int err;

	if (!len)
		return 0;
	pthread_mutex_lock(&h->lock);
	if (s->stopped) {
		pthread_mutex_unlock(&h->lock);
		set_msg(bs, "the stream was stopped (BYTESRC_NO_STREAM)");
		return -EINVAL;
	}
	s->read_started = true;
	while (s->filled == s->consumed && !s->ended && !s->stopped)
		pthread_cond_wait(&h->cond, &h->lock);
	avail = s->filled - s->consumed;
	err = s->err;
	pthread_mutex_unlock(&h->lock);
	if (!avail) {
		if (err)
			set_msg(bs, s->msg);
		return err;
	}
	if (avail < len)
		len = (size_t)avail;
	ring_copy(s, buf, s->consumed, len);
	pthread_mutex_lock(&h->lock);
	s->consumed += len;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return (ssize_t)len;
}

static int http_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off);

static ssize_t http_peek(struct bytesrc *bs, void *buf, size_t len)
{
	struct http_src *h = bs->priv;
	struct http_stream *s = &h->stream;
	uint64_t have;
	int err;

	if (len > RING_SIZE)
		len = RING_SIZE;
	pthread_mutex_lock(&h->lock);
	if (s->stopped && bs->ops->pread) {
		pthread_mutex_unlock(&h->lock);
		if (len > h->size)
			len = (size_t)h->size;
		err = http_pread(bs, buf, len, 0);
		return err < 0 ? err : (ssize_t)len;
	}
	if (s->read_started || s->stopped || h->start) {
		pthread_mutex_unlock(&h->lock);
		set_msg(bs, h->start ? "peek of a stream that starts past the first byte"
				     : "peek after read");
		return -EINVAL;
	}
	while (s->filled < len && !s->ended && !s->stopped)
		pthread_cond_wait(&h->cond, &h->lock);
	have = s->filled < len ? s->filled : len;
	err = s->err;
	pthread_mutex_unlock(&h->lock);
	if (have < len && err) {
		set_msg(bs, s->msg);
		return err;
	}
	ring_copy(s, buf, 0, (size_t)have);
	return (ssize_t)have;
}

/* --- pread --- */

struct pread_req {
	struct http_req r;
	unsigned char *buf;
	size_t len;
	uint64_t off;
	size_t got;
};

/* A 206 with exactly the range asked for, of the same file. */
static bool pread_on_headers(struct http_req *r)
{
	struct http_src *h = r->h;
	const struct http_resp *rp = &r->resp;
	struct pread_req *pr = (struct pread_req *)r;
	uint64_t last = pr->off + pr->len - 1;

	if (rp->status < 200 || rp->status > 299) {
		r->http_error = true;
		return false;
	}
	if (!check_same_file(r, true))
		return false;
	if (rp->status == 200)
		return fatal(r, ENOTSUP,
			     "%s: the server ignores ranges (HTTP 200 to a range request)", h->url);
	if (rp->status != 206)
		return fatal(r, EREMOTEIO, "%s: unexpected answer HTTP %ld %s to a range request",
			     h->url, rp->status, rp->reason);
	if (!rp->has_range || rp->range_first != r->want || rp->range_last != last)
		return fatal(r, EREMOTEIO,
			     "%s: asked for bytes %" PRIu64 "-%" PRIu64
			     ", the server sent another range",
			     h->url, r->want, last);
	r->accepted = true;
	return true;
}

static size_t pread_write(char *ptr, size_t size, size_t nmemb, void *p)
{
	struct pread_req *pr = p;
	size_t n = size * nmemb;

	if (!pr->r.accepted)
		return is_followed(&pr->r.resp) ? n : 0;
	add_received(pr->r.h, n);
	if (n > pr->len - pr->got) {
		fatal(&pr->r, EREMOTEIO, "%s: the server sent more than the range asked for",
		      pr->r.h->url);
		return 0;
	}
	memcpy(pr->buf + pr->got, ptr, n);
	pr->got += n;
	return n;
}

/* An idle handle of the pool, or a new one while there are fewer than POOL_MAX; NULL: no memory. */
static CURL *pool_get(struct http_src *h)
{
	struct http_pool *p = &h->pool;
	CURL *e = NULL;

	pthread_mutex_lock(&p->lock);
	while (!p->nidle && p->nmade == POOL_MAX)
		pthread_cond_wait(&p->cond, &p->lock);
	if (p->nidle) {
		e = p->idle[--p->nidle];
		pthread_mutex_unlock(&p->lock);
		return e;
	}
	p->nmade++;
	pthread_mutex_unlock(&p->lock);
	e = http_easy_new(h);
	if (e) {
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pread_write);
		return e;
	}
	pthread_mutex_lock(&p->lock);
	p->nmade--;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Back to the pool, without pointers into the pread that used it. */
static void pool_put(struct http_src *h, CURL *e)
{
	struct http_pool *p = &h->pool;

	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, NULL);
	pthread_mutex_lock(&p->lock);
	p->idle[p->nidle++] = e;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int http_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
{
	struct http_src *h = bs->priv;
	struct pread_req pr = { .buf = buf, .len = len, .off = off };
	unsigned int tries = 0;
	char msg[512], where[96];
	int rc = 0;

	if (!len)
		return 0;
	if (off > h->size || len > h->size - off) {
		snprintf(msg, sizeof(msg),
			 "%s: %zu bytes at %" PRIu64 " are past its end (%" PRIu64 " bytes)",
			 h->url, len, off, h->size);
		set_msg(bs, msg);
		return -EIO;
	}
	pr.r.h = h;
	pr.r.on_headers = pread_on_headers;
	pr.r.easy = pool_get(h);
	if (!pr.r.easy) {
		set_msg(bs, "out of memory");
		return -ENOMEM;
	}
	curl_easy_setopt(pr.r.easy, CURLOPT_WRITEDATA, &pr);
	for (;;) {
		size_t start = pr.got;
		struct http_outcome o;
		int64_t delay;
		CURLcode res;

		req_prepare(&pr.r, true, off + start, off + len - 1, h->headers);
		res = curl_easy_perform(pr.r.easy);
		classify(&pr.r, res, &o);
		if (o.err == 0 && pr.got < len)
			outcome_set(&o, EREMOTEIO, true, "the body ended early");
		if (o.err == 0)
			break;
		if (pr.got > start)
			tries = 0;
		where_at(where, sizeof(where), off + pr.got, &pr.r, off + len - 1);
		if (!retry_next(h, &o, where, &tries, &delay)) {
			final_message(h, &o, where, tries + 1, msg, sizeof(msg));
			set_msg(bs, msg);
			rc = o.err;
			break;
		}
		sleep_ms(delay);
	}
	pool_put(h, pr.r.easy);
	return rc;
}

/* --- The operations, and open --- */

static int http_check_unchanged(struct imgdev_ctx *ctx, const struct bytesrc *bs)
{
	struct http_src *h = bs->priv;
	char msg[512];
	bool was_changed;

	pthread_mutex_lock(&h->lock);
	was_changed = h->changed;
	snprintf(msg, sizeof(msg), "%s", h->changed_msg);
	pthread_mutex_unlock(&h->lock);
	return was_changed ? ctx_error(ctx, ESTALE, "%s", msg) : 0;
}

static void http_advise(const struct bytesrc *bs, uint64_t off, uint64_t len, enum bytesrc_advice advice)
{
	(void)off;
	(void)len;
	if (advice == BYTESRC_NO_STREAM)
		stream_stop(bs->priv);
}

static void http_close(struct bytesrc *bs)
{
	struct http_src *h = bs->priv;

	if (!h)
		return;
	stream_stop(h);
	for (int i = 0; i < h->pool.nidle; i++)
		curl_easy_cleanup(h->pool.idle[i]);
	slist_free_wiped(h->headers);
	slist_free_wiped(h->resume_headers);
	free(h->ca_file);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->log_lock);
	pthread_mutex_destroy(&h->pool.lock);
	pthread_cond_destroy(&h->pool.cond);
	free(h);
	bs->priv = NULL;
}

/* A pure stream: the server does not honour ranges on this file (or cannot be checked). */
static const struct bytesrc_ops http_stream_ops = {
	.read = http_read,
	.peek = http_peek,
	.check_unchanged = http_check_unchanged,
	.advise = http_advise,
	.close = http_close,
};

/* A stream, and ranges. */
static const struct bytesrc_ops http_range_ops = {
	.pread = http_pread,
	.read = http_read,
	.peek = http_peek,
	.check_unchanged = http_check_unchanged,
	.advise = http_advise,
	.close = http_close,
};

bool bytesrc_is_url(const char *name)
{
	return !strncasecmp(name, "http://", 7) || !strncasecmp(name, "https://", 8);
}

void bytesrc_stats(const struct bytesrc *bs, struct bytesrc_stats *st)
{
	struct http_src *h = bs->priv;

	memset(st, 0, sizeof(*st));
	if (bs->ops != &http_stream_ops && bs->ops != &http_range_ops)
		return;
	pthread_mutex_lock(&h->lock);
	st->bytes_received = h->bytes_received;
	st->retries = h->retried;
	pthread_mutex_unlock(&h->lock);
}

/* The state, with its locks; NULL without memory. */
static struct http_src *http_src_new(void)
{
	struct http_src *h = calloc(1, sizeof(*h));
	pthread_condattr_t ca;

	if (!h)
		return NULL;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, &ca);
	pthread_mutex_init(&h->log_lock, NULL);
	pthread_mutex_init(&h->pool.lock, NULL);
	pthread_cond_init(&h->pool.cond, NULL);
	pthread_condattr_destroy(&ca);
	atomic_init(&h->stream.abort, false);
	return h;
}

int bytesrc_open_url(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
		     struct bytesrc **out)
{
	return bytesrc_open_url_at(ctx, url, fo, 0, out);
}

int bytesrc_open_url_at(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
			uint64_t start, struct bytesrc **out)
{
	static const struct imgdev_fetch_opts defaults = IMGDEV_FETCH_OPTS_INIT;
	struct bytesrc *bs;
	struct http_src *h;
	int rc;

	if (!bytesrc_is_url(url))
		return ctx_error(ctx, EINVAL, "%s: not an http:// or https:// URL", url);
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return ctx_error(ctx, ENOMEM, "cannot initialise libcurl: %s",
				 curl_easy_strerror(curl_init_rc));
	bs = calloc(1, sizeof(*bs));
	h = http_src_new();
	if (bs) {
		bs->ops = &http_stream_ops;
		bs->fd = -1;
		bs->priv = h;
		bs->name = strdup(url);
	}
	if (!bs || !h || !bs->name) {
		if (!bs)
			free(h);
		bytesrc_close(bs);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	h->url = bs->name;
	h->ctx = ctx;
	h->start = h->stream.filled = h->stream.consumed = start;
	rc = http_configure(ctx, h, fo ? fo : &defaults);
	if (rc == 0)
		rc = stream_start(ctx, h);
	if (rc < 0) {
		bytesrc_close(bs);
		return rc;
	}
	bs->size = h->size;
	bs->size_known = h->size_known;
	if (h->accept_ranges && h->size_known && h->vkind != VALIDATOR_NONE)
		bs->ops = &http_range_ops;
	*out = bs;
	return 0;
}
