/*
 * The HTTP(S) byte source's shared state (bytesrc_http.c and the http_*.c
 * files it is divided into): the source, its stream and pool, one request
 * and its response, an attempt's outcome; and the functions the parts
 * share. Internal to the source: the library sees bytesrc.h.
 */
#ifndef IMGDEV_HTTP_SRC_H
#define IMGDEV_HTTP_SRC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>

struct bytesrc;
struct imgdev_ctx;
struct imgdev_fetch_opts;

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

/* http_request.c */
int64_t http_now_ms(void);
void http_msgf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void http_warn(struct http_src *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void http_slist_free_wiped(struct curl_slist *list);
int http_configure(struct imgdev_ctx *ctx, struct http_src *h, const struct imgdev_fetch_opts *fo);
bool http_make_resume_headers(struct http_src *h);
/*
 * What every request of imgdev's has (the HTTP source's, the registry
 * client's): url, headers, redirects followed (at most MAX_REDIRS, never
 * from https to http), the user agent, TLS as ca_file and insecure say.
 * false when libcurl refused one.
 */
bool http_easy_basics(CURL *e, const char *url, struct curl_slist *headers, const char *ca_file,
		      bool insecure);
CURL *http_easy_new(struct http_src *h);
void http_req_prepare(struct http_req *r, bool ranged, uint64_t want, uint64_t last,
		      struct curl_slist *headers);

/* http_response.c */
size_t http_header(char *line, size_t size, size_t nitems, void *p);
int http_xferinfo(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);
bool http_is_followed(const struct http_resp *rp);
bool http_fatal(struct http_req *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *http_resp_validator(const struct http_src *h, const struct http_resp *rp);
bool http_check_same_file(struct http_req *r, bool strict);
void http_add_received(struct http_src *h, size_t n);

/* http_retry.c */
void http_outcome_set(struct http_outcome *o, int err, bool transient, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void http_classify(struct http_req *r, CURLcode res, struct http_outcome *o);
void http_where_at(char *where, size_t cap, uint64_t pos, const struct http_req *r, uint64_t last);
void http_final_message(const struct http_src *h, const struct http_outcome *o, const char *where,
			unsigned int attempts, char *msg, size_t cap);
bool http_retry_next(struct http_src *h, const struct http_outcome *o, const char *where,
		     unsigned int *tries, int64_t *delay_ms);

/* http_stream.c */
int http_stream_start(struct imgdev_ctx *ctx, struct http_src *h);
void http_stream_stop(struct http_src *h);
void http_set_msg(struct bytesrc *bs, const char *msg);
ssize_t http_read(struct bytesrc *bs, void *buf, size_t len);
ssize_t http_peek(struct bytesrc *bs, void *buf, size_t len);

/* http_pread.c */
int http_pread(struct bytesrc *bs, void *buf, size_t len, uint64_t off);

#endif
