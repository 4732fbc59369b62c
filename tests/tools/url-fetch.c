/*
 * url-fetch: a test tool that writes the body at URL to standard output
 * through the URL byte source (bytesrc_http.c): by read, or by pread in
 * CHUNK-sized pieces (from THREADS threads at once), after peeking at the
 * first PEEK bytes if asked (and checking that read gives them again).
 * Prints "received=N retries=N" to standard error; warnings go there too.
 * Exits 1 with the message on failure, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytesrc.h"
#include "imgdev.h"

struct job {
	struct bytesrc *bs;
	unsigned char *buf;
	size_t len;
	uint64_t off;
	int rc;
};

static void log_stderr(void *data, int priority, const char *msg)
{
	(void)data;
	(void)priority;
	fprintf(stderr, "url-fetch: %s\n", msg);
}

static void usage(void)
{
	fprintf(stderr, "usage: url-fetch [--pread CHUNK [--threads N] [--no-stream]] [--peek N] "
			"[--ca-file F] [--insecure] [--header-file F] [--retries N] "
			"[--timeout S] URL\n");
	exit(2);
}

static int write_all(const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *pread_job(void *arg)
{
	struct job *j = arg;

	j->rc = bytesrc_pread(j->bs, j->buf, j->len, j->off);
	return NULL;
}

/* The body by pread, nthreads chunks at a time, written in order; 0 or -errno. */
static int fetch_pread(struct bytesrc *bs, size_t chunk, int nthreads)
{
	struct job jobs[16];
	pthread_t tids[16];
	int rc = 0;

	if (!bs->ops->pread) {
		fprintf(stderr, "url-fetch: %s: no pread (the server does not honour ranges)\n",
			bs->name);
		return -ENOTSUP;
	}
	for (int i = 0; i < nthreads; i++) {
		jobs[i].bs = bs;
		jobs[i].buf = malloc(chunk);
		if (!jobs[i].buf)
			return -ENOMEM;
	}
	for (uint64_t off = 0; off < bs->size && !rc;) {
		int n = 0;

		for (; n < nthreads && off < bs->size; n++) {
			jobs[n].off = off;
			jobs[n].len = bs->size - off < chunk ? (size_t)(bs->size - off) : chunk;
			off += jobs[n].len;
			if (pthread_create(&tids[n], NULL, pread_job, &jobs[n]))
				return -EAGAIN;
		}
		for (int i = 0; i < n; i++)
			pthread_join(tids[i], NULL);
		for (int i = 0; i < n && !rc; i++) {
			rc = jobs[i].rc;
			if (rc < 0)
				fprintf(stderr, "url-fetch: pread at %llu: %s (%s)\n",
					(unsigned long long)jobs[i].off, bytesrc_error(bs, rc),
					strerrorname_np(-rc));
			else
				rc = write_all(jobs[i].buf, jobs[i].len);
		}
	}
	for (int i = 0; i < nthreads; i++)
		free(jobs[i].buf);
	return rc;
}

/* The body by read, checked against what peek gave (peeked bytes); 0 or -errno. */
static int fetch_read(struct bytesrc *bs, const unsigned char *peeked, size_t npeek)
{
	size_t cap = 1 << 20, seen = 0;
	unsigned char *buf = malloc(cap);
	ssize_t n;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while ((n = bytesrc_read(bs, buf, cap)) > 0) {
		size_t cmp = seen < npeek ? npeek - seen : 0;

		if (cmp > (size_t)n)
			cmp = (size_t)n;
		if (cmp && memcmp(buf, peeked + seen, cmp)) {
			fprintf(stderr, "url-fetch: read differs from peek\n");
			rc = -EIO;
			break;
		}
		seen += (size_t)n;
		rc = write_all(buf, (size_t)n);
		if (rc < 0)
			break;
	}
	if (n < 0) {
		fprintf(stderr, "url-fetch: read: %s (%s)\n", bytesrc_error(bs, (int)n),
			strerrorname_np((int)-n));
		rc = (int)n;
	}
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pread", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 'j' },
		{ "no-stream", no_argument, NULL, 'n' },
		{ "peek", required_argument, NULL, 'k' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'i' },
		{ "header-file", required_argument, NULL, 'H' },
		{ "retries", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct imgdev_fetch_opts fo = IMGDEV_FETCH_OPTS_INIT;
	size_t chunk = 0, npeek = 0;
	unsigned char *peeked = NULL;
	struct bytesrc_stats st;
	struct imgdev_ctx *ctx;
	struct bytesrc *bs;
	bool no_stream = false;
	int c, rc, nthreads = 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': chunk = strtoull(optarg, NULL, 0); break;
		case 'j': nthreads = atoi(optarg); break;
		case 'n': no_stream = true; break;
		case 'k': npeek = strtoull(optarg, NULL, 0); break;
		case 'c': fo.ca_file = optarg; break;
		case 'i': fo.insecure = true; break;
		case 'H': fo.header_file = optarg; break;
		case 'r': fo.retries = atoi(optarg); break;
		case 't': fo.timeout = (unsigned int)atoi(optarg); break;
		default: usage();
		}
	}
	if (optind != argc - 1 || nthreads < 1 || nthreads > 16)
		usage();
	if (imgdev_ctx_new(&ctx) < 0)
		return 1;
	imgdev_ctx_set_log(ctx, log_stderr, NULL, 6);
	rc = bytesrc_open_url(ctx, argv[optind], &fo, &bs);
	if (rc < 0) {
		fprintf(stderr, "url-fetch: %s (%s)\n", imgdev_ctx_last_error(ctx),
			strerrorname_np(-rc));
		imgdev_ctx_free(ctx);
		return 1;
	}
	fprintf(stderr, "url-fetch: size=%s%llu pread=%s\n", bs->size_known ? "" : "unknown ",
		(unsigned long long)bs->size, bs->ops->pread ? "yes" : "no");
	if (npeek) {
		ssize_t n;

		peeked = malloc(npeek);
		n = peeked ? bytesrc_peek(bs, peeked, npeek) : -ENOMEM;
		if (n < 0) {
			fprintf(stderr, "url-fetch: peek: %s\n", bytesrc_error(bs, (int)n));
			rc = (int)n;
		} else {
			npeek = (size_t)n;
			fprintf(stderr, "url-fetch: peeked=%zu\n", npeek);
		}
	}
	if (rc == 0 && chunk) {
		if (no_stream)
			bytesrc_advise(bs, 0, 0, BYTESRC_NO_STREAM);
		rc = fetch_pread(bs, chunk, nthreads);
	} else if (rc == 0) {
		rc = fetch_read(bs, peeked, npeek);
	}
	if (rc == 0 && bytesrc_check_unchanged(ctx, bs) < 0) {
		fprintf(stderr, "url-fetch: %s\n", imgdev_ctx_last_error(ctx));
		rc = -ESTALE;
	}
	bytesrc_stats(bs, &st);
	fprintf(stderr, "received=%llu retries=%u\n", (unsigned long long)st.bytes_received,
		st.retries);
	bytesrc_close(bs);
	free(peeked);
	imgdev_ctx_free(ctx);
	return rc < 0 ? 1 : 0;
}
