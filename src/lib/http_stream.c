/*
 * The HTTP source's stream: a transfer thread runs the first GET (from the
 * first byte, or from where a resumed copy starts) and, after a break, GETs
 * resumed with Range and If-Range from the byte reached; the body goes
 * through a 16 MiB ring that read empties and peek looks into. A 200 where
 * a range was asked for is the same file again or -ESTALE, never spliced.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "bytesrc.h"
#include "http_src.h"
#include "internal.h"

/*
 * The first answer to a stream that starts past the first byte: the range
 * asked for, of a file whose size it says; false, to abort, if not, with
 * -ERANGE (the caller may then start from the first byte instead).
 */
static bool first_range_ok(struct http_req *r)
{
	const struct http_resp *rp = &r->resp;

	if (rp->status == 416)
		return http_fatal(r, ERANGE, "%s: the server has no bytes from %" PRIu64 " (HTTP 416)",
				  r->h->url, r->want);
	if (rp->has_range && rp->range_first == r->want && rp->range_total_known &&
	    rp->range_last + 1 == rp->range_total)
		return true;
	return http_fatal(r, ERANGE,
			  "%s: asked for the bytes from %" PRIu64 ", the server sent another range",
			  r->h->url, r->want);
}

/* The first response, or a retry's: which bytes of it to take. */
static bool stream_on_headers(struct http_req *r)
{
	struct http_src *h = r->h;
	const struct http_resp *rp = &r->resp;

	if (!h->have_first && r->ranged && rp->status == 416)
		return first_range_ok(r);
	if (rp->status < 200 || rp->status > 299) {
		r->http_error = true;
		return false;
	}
	if (!h->have_first) {
		if (rp->status == 206 && r->ranged && !first_range_ok(r))
			return false;
		if (rp->status != 200 && rp->status != 203 && !(rp->status == 206 && r->ranged))
			return http_fatal(r, EREMOTEIO, "%s: unexpected answer HTTP %ld %s", h->url,
					  rp->status, rp->reason);
		if (rp->encoding[0])
			return http_fatal(r, EREMOTEIO, "%s: the server sent the body encoded (%s)",
					  h->url, rp->encoding);
		h->vkind = rp->etag[0]            ? VALIDATOR_ETAG
			   : rp->last_modified[0] ? VALIDATOR_LAST_MODIFIED
						  : VALIDATOR_NONE;
		snprintf(h->validator, sizeof(h->validator), "%s", http_resp_validator(h, rp));
		if (h->vkind != VALIDATOR_NONE && !http_make_resume_headers(h))
			return http_fatal(r, ENOMEM, "out of memory");
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
			return http_fatal(r, EREMOTEIO,
					  "%s: asked for the bytes from %" PRIu64
					  ", the server sent another range",
					  h->url, r->want);
		/* If-Range vouches for it; a validator sent must still be the same. */
		if (!http_check_same_file(r, false))
			return false;
	} else if (rp->status == 200) {
		/* The whole file again: if it is the same, what was delivered is skipped. */
		if (!http_check_same_file(r, true))
			return false;
		r->pos = 0;
	} else {
		return http_fatal(r, EREMOTEIO, "%s: unexpected answer HTTP %ld %s", h->url,
				  rp->status, rp->reason);
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
		return http_is_followed(&r->resp) ? n : 0;
	http_add_received(h, n);
	if (h->size_known && (r->pos > h->size || n > h->size - r->pos)) {
		http_fatal(r, EREMOTEIO, "%s: the body is longer than its %" PRIu64 " bytes",
			   h->url, h->size);
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
	r->last_progress_ms = http_now_ms();
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

		http_req_prepare(r, ranged, start, UINT64_MAX,
				 ranged && h->resume_headers ? h->resume_headers : h->headers);
		res = stream_perform(s);
		if (atomic_load(&s->abort))
			break;
		http_classify(r, res, &o);
		if (o.err == 0 && h->size_known && s->filled < h->size)
			http_outcome_set(&o, EREMOTEIO, true, "the body ended early");
		if (o.err == 0) {
			stream_end(h, 0, "");
			break;
		}
		if (s->filled > start)
			tries = 0;
		if (o.transient && s->filled > h->start && h->vkind == VALIDATOR_NONE) {
			http_msgf(msg, sizeof(msg),
				  "%s: %s after %" PRIu64 " bytes, and the transfer cannot be resumed "
				  "safely (the server gave no ETag or Last-Modified)",
				  h->url, o.what, s->filled);
			stream_end(h, -ESTALE, msg);
			break;
		}
		http_where_at(where, sizeof(where), s->filled, r, UINT64_MAX);
		if (!http_retry_next(h, &o, where, &tries, &delay)) {
			http_final_message(h, &o, where, tries + 1, msg, sizeof(msg));
			stream_end(h, o.err, msg);
			break;
		}
		if (!stream_sleep(h, delay))
			break;
	}
	return NULL;
}

/* The ring, the handles and the thread, and the first response awaited; 0 or -errno. */
int http_stream_start(struct imgdev_ctx *ctx, struct http_src *h)
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
void http_stream_stop(struct http_src *h)
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

void http_set_msg(struct bytesrc *bs, const char *msg)
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

ssize_t http_read(struct bytesrc *bs, void *buf, size_t len)
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
		http_set_msg(bs, "the stream was stopped (BYTESRC_NO_STREAM)");
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
			http_set_msg(bs, s->msg);
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

ssize_t http_peek(struct bytesrc *bs, void *buf, size_t len)
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
		http_set_msg(bs, h->start ? "peek of a stream that starts past the first byte"
					  : "peek after read");
		return -EINVAL;
	}
	while (s->filled < len && !s->ended && !s->stopped)
		pthread_cond_wait(&h->cond, &h->lock);
	have = s->filled < len ? s->filled : len;
	err = s->err;
	pthread_mutex_unlock(&h->lock);
	if (have < len && err) {
		http_set_msg(bs, s->msg);
		return err;
	}
	ring_copy(s, buf, 0, (size_t)have);
	return (ssize_t)have;
}
