/*
 * The HTTP source's pread: one Range GET per call, exactly the bytes asked
 * for, on a pool of up to POOL_MAX handles that keep their connections
 * alive; an answer of another file, another range or a short body is
 * retried as the stream's are, or an error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "bytesrc.h"
#include "http_src.h"

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
	if (!http_check_same_file(r, true))
		return false;
	if (rp->status == 200)
		return http_fatal(r, ENOTSUP,
				  "%s: the server ignores ranges (HTTP 200 to a range request)",
				  h->url);
	if (rp->status != 206)
		return http_fatal(r, EREMOTEIO, "%s: unexpected answer HTTP %ld %s to a range request",
				  h->url, rp->status, rp->reason);
	if (!rp->has_range || rp->range_first != r->want || rp->range_last != last)
		return http_fatal(r, EREMOTEIO,
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
		return http_is_followed(&pr->r.resp) ? n : 0;
	http_add_received(pr->r.h, n);
	if (n > pr->len - pr->got) {
		http_fatal(&pr->r, EREMOTEIO, "%s: the server sent more than the range asked for",
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

int http_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off)
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
		http_set_msg(bs, msg);
		return -EIO;
	}
	pr.r.h = h;
	pr.r.on_headers = pread_on_headers;
	pr.r.easy = pool_get(h);
	if (!pr.r.easy) {
		http_set_msg(bs, "out of memory");
		return -ENOMEM;
	}
	curl_easy_setopt(pr.r.easy, CURLOPT_WRITEDATA, &pr);
	for (;;) {
		size_t start = pr.got;
		struct http_outcome o;
		int64_t delay;
		CURLcode res;

		http_req_prepare(&pr.r, true, off + start, off + len - 1, h->headers);
		res = curl_easy_perform(pr.r.easy);
		http_classify(&pr.r, res, &o);
		if (o.err == 0 && pr.got < len)
			http_outcome_set(&o, EREMOTEIO, true, "the body ended early");
		if (o.err == 0)
			break;
		if (pr.got > start)
			tries = 0;
		http_where_at(where, sizeof(where), off + pr.got, &pr.r, off + len - 1);
		if (!http_retry_next(h, &o, where, &tries, &delay)) {
			http_final_message(h, &o, where, tries + 1, msg, sizeof(msg));
			http_set_msg(bs, msg);
			rc = o.err;
			break;
		}
		sleep_ms(delay);
	}
	pool_put(h, pr.r.easy);
	return rc;
}
