/*
 * What a failed attempt of the HTTP source was (TLS, the network, the
 * server's status, a stall, a short body, a refused redirect), whether it is
 * worth a retry, and the backoff: attempts are counted in a row without
 * progress, up to --retries. Also the final message, with the server's words.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include <curl/curl.h>

#include "http_src.h"

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

void http_outcome_set(struct http_outcome *o, int err, bool transient, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void http_outcome_set(struct http_outcome *o, int err, bool transient, const char *fmt, ...)
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

	http_outcome_set(o, err, transient, "HTTP %ld%s%s", s, rp->reason[0] ? " " : "", rp->reason);
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
void http_classify(struct http_req *r, CURLcode res, struct http_outcome *o)
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
		http_outcome_set(o, EREMOTEIO, true, "no data for %u s", r->h->timeout);
		return;
	}
	curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
	switch (res) {
	case CURLE_OK: http_outcome_set(o, 0, false, "done"); return;
	case CURLE_UNSUPPORTED_PROTOCOL:
		if (http_is_followed(&r->resp)) {
			const char *to = redirect_target(r);

			http_outcome_set(o, EREMOTEIO, false, "redirect to %s refused (%s)", to,
					 r->h->https && !strncasecmp(to, "http:", 5)
						 ? "https to http"
						 : "only http and https");
			return;
		}
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		http_outcome_set(o, EREMOTEIO, false, "too many redirects (more than %d)", MAX_REDIRS);
		return;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		if (os_errno == ECONNRESET)
			http_outcome_set(o, EREMOTEIO, true, "connection reset");
		else
			http_outcome_set(o, EREMOTEIO, true, "%s", why);
		return;
	case CURLE_PARTIAL_FILE:
		http_outcome_set(o, EREMOTEIO, true, "connection closed before the end of the body");
		return;
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3: http_outcome_set(o, EREMOTEIO, true, "%s", why); return;
	case CURLE_OUT_OF_MEMORY: http_outcome_set(o, ENOMEM, false, "out of memory"); return;
	default: break;
	}
	if (is_tls_error(res))
		http_outcome_set(o, EREMOTEIO, res == CURLE_SSL_CONNECT_ERROR && os_errno == ECONNRESET,
				 "TLS: %s", why);
	else
		http_outcome_set(o, EREMOTEIO, false, "%s", why);
}

/*
 * Where a failure came, for messages: " after N bytes" of the stream, " at
 * byte N (range A-B)" of a pread, "" before any body byte.
 */
void http_where_at(char *where, size_t cap, uint64_t pos, const struct http_req *r, uint64_t last)
{
	if (r->ranged && last != UINT64_MAX)
		snprintf(where, cap, " at byte %" PRIu64 " (range %" PRIu64 "-%" PRIu64 ")", pos,
			 r->want, last);
	else if (r->ranged)
		snprintf(where, cap, " at byte %" PRIu64, pos);
	else if (pos)
		snprintf(where, cap, " after %" PRIu64 " bytes", pos);
	else
		where[0] = '\0';
}

/* The message of a failure that is final, after attempts in a row. */
void http_final_message(const struct http_src *h, const struct http_outcome *o, const char *where,
			unsigned int attempts, char *msg, size_t cap)
{
	if (o->whole)
		http_msgf(msg, cap, "%s", o->what);
	else if (attempts > 1)
		http_msgf(msg, cap, "%s: %s%s%s after %u attempts", h->url, o->what, where,
			  where[0] ? "; gave up" : "", attempts);
	else
		http_msgf(msg, cap, "%s: %s%s", h->url, o->what, where);
}

/*
 * Whether to try again after o, the (*tries + 1)th failure in a row: if so,
 * warns, counts it and gives how long to wait first (0.25 s, doubling, at
 * most 4 s).
 */
bool http_retry_next(struct http_src *h, const struct http_outcome *o, const char *where,
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
