/*
 * The byte source over an http:// or https:// URL (bytesrc.h), with libcurl.
 * Open sends the first GET from a transfer thread and waits for its headers;
 * the body then streams through a bounded ring that read empties. A broken
 * transfer is resumed where it broke (Range, If-Range), never spliced onto a
 * file that changed. pread, when the server honours ranges, is a Range GET
 * on one of a few pooled handles that keep their connections alive. Here:
 * the operations, open and close. The parts, sharing http_src.h: settings
 * and the request headers (http_request.c); one response's headers
 * (http_response.c); what a failure was and whether to retry
 * (http_retry.c); the stream (http_stream.c); pread (http_pread.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "bytesrc.h"
#include "http_src.h"
#include "internal.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

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
		http_stream_stop(bs->priv);
}

static void http_close(struct bytesrc *bs)
{
	struct http_src *h = bs->priv;

	if (!h)
		return;
	http_stream_stop(h);
	for (int i = 0; i < h->pool.nidle; i++)
		curl_easy_cleanup(h->pool.idle[i]);
	http_slist_free_wiped(h->headers);
	http_slist_free_wiped(h->resume_headers);
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

/*
 * An Authorization header line onto every request's headers. It is not a
 * header file's (file_headers stays false), so redirects to another origin
 * are followed, and libcurl (>= 7.83, CVE-2022-27776) sends a custom
 * Authorization only to the first URL's host, port and scheme unless
 * CURLOPT_UNRESTRICTED_AUTH is set, which it never is here: another origin
 * (a CDN, a bucket) does not get it. 0 or -errno with the message in ctx.
 */
static int add_authorization(struct imgdev_ctx *ctx, struct http_src *h, const char *authorization)
{
	struct curl_slist *l;

	if (strncasecmp(authorization, "Authorization:", 14) || strpbrk(authorization, "\r\n"))
		return ctx_error(ctx, EINVAL, "%s: not an Authorization header line", h->url);
	l = curl_slist_append(h->headers, authorization);
	if (!l)
		return ctx_error(ctx, ENOMEM, "out of memory");
	h->headers = l;
	return 0;
}

static int open_url(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
		    uint64_t start, const char *authorization, struct bytesrc **out)
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
	if (rc == 0 && authorization)
		rc = add_authorization(ctx, h, authorization);
	if (rc == 0)
		rc = http_stream_start(ctx, h);
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

int bytesrc_open_url(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
		     struct bytesrc **out)
{
	return open_url(ctx, url, fo, 0, NULL, out);
}

int bytesrc_open_url_at(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
			uint64_t start, struct bytesrc **out)
{
	return open_url(ctx, url, fo, start, NULL, out);
}

int bytesrc_open_url_auth(struct imgdev_ctx *ctx, const char *url, const struct imgdev_fetch_opts *fo,
			  const char *authorization, struct bytesrc **out)
{
	return open_url(ctx, url, fo, 0, authorization, out);
}
