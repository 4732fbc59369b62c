/*
 * The HTTP source's settings and request headers: the fetch options, the
 * header file (credentials: lines checked, values never echoed, wiped when
 * freed), the resume headers (If-Range), a configured libcurl handle (its
 * basics shared with the registry client, registry_http.c), and
 * one attempt's preparation (the Range asked for). Also the helpers every
 * part of the source uses: the clock, messages, warnings to the context.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http_src.h"
#include "internal.h"

int64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A message into buf, cut at cap (a URL may be long). */
void http_msgf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}

/* A warning to the context that opened the source, from whichever thread. */
void http_warn(struct http_src *h, const char *fmt, ...)
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

static bool is_token_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

void http_slist_free_wiped(struct curl_slist *list)
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
int http_configure(struct imgdev_ctx *ctx, struct http_src *h, const struct imgdev_fetch_opts *fo)
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
bool http_make_resume_headers(struct http_src *h)
{
	struct curl_slist *list = NULL;
	char line[300];

	for (struct curl_slist *l = h->headers; l; l = l->next) {
		struct curl_slist *n = curl_slist_append(list, l->data);

		if (!n) {
			http_slist_free_wiped(list);
			return false;
		}
		list = n;
	}
	snprintf(line, sizeof(line), "If-Range: %s", h->validator);
	if (!curl_slist_append(list, line)) {
		http_slist_free_wiped(list);
		return false;
	}
	h->resume_headers = list;
	return true;
}

bool http_easy_basics(CURL *e, const char *url, struct curl_slist *headers, const char *ca_file,
		      bool insecure)
{
	bool https = !strncasecmp(url, "https://", 8), bad = false;

	bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRS) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https") !=
	       CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "imgdev/" IMGDEV_VERSION) != CURLE_OK;
	if (ca_file)
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, ca_file) != CURLE_OK;
	if (insecure) {
		bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK;
	}
	return !bad;
}

/* A handle with everything but the request's own (data pointers, range); NULL without memory. */
CURL *http_easy_new(struct http_src *h)
{
	CURL *e = curl_easy_init();
	bool bad = false;

	if (!e)
		return NULL;
	bad |= !http_easy_basics(e, h->url, h->headers, h->ca_file, h->insecure);
	bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, http_xferinfo) != CURLE_OK;
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
void http_req_prepare(struct http_req *r, bool ranged, uint64_t want, uint64_t last,
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
	r->last_progress_ms = http_now_ms();
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
