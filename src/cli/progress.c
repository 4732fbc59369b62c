/*
 * Progress reporting for long commands: a single self-erasing line on a
 * terminal (bytes, percent, rate, ETA), or one JSON object per line for an
 * orchestrator; both on stderr, a few times a second at most. A total of 0
 * is unknown (a stream): then only the bytes and the rate.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"

#define PROGRESS_INTERVAL 0.25

static double monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(struct progress *p, enum progress_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode == PROGRESS_BAR && !isatty(STDERR_FILENO) ? PROGRESS_NONE : mode;
	p->start = monotonic();
}

static void human_bytes(double v, char *out, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.1f %s", v, unit[u]);
}

static void progress_bar(uint64_t done, uint64_t total, double rate)
{
	char d[32], t[32], r[32];
	double eta = rate > 0 ? (double)(total - done) / rate : 0;

	human_bytes((double)done, d, sizeof(d));
	human_bytes((double)total, t, sizeof(t));
	human_bytes(rate, r, sizeof(r));
	if (!total) {
		fprintf(stderr, "\r\033[K%s  %s/s", d, r);
		return;
	}
	fprintf(stderr, "\r\033[K%s / %s  %3.0f%%  %s/s  ETA %d:%02d", d, t,
		total ? 100.0 * (double)done / (double)total : 100.0, r, (int)eta / 60, (int)eta % 60);
}

static void progress_json(uint64_t done, uint64_t total, double rate)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "bytes_done", json_object_new_uint64(done));
	json_object_object_add(o, "bytes_total", total ? json_object_new_uint64(total) : NULL);
	json_object_object_add(o, "bytes_per_second", json_object_new_uint64((uint64_t)rate));
	json_object_object_add(o, "eta_seconds",
			       total && rate > 0 ? json_object_new_uint64(
							   (uint64_t)((double)(total - done) / rate))
						 : NULL);
	fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

void progress_update(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	double now = monotonic(), rate;

	if (p->mode == PROGRESS_NONE)
		return;
	if ((done < total || !total) && now - p->last < PROGRESS_INTERVAL) {
		p->pending = true;
		p->pending_done = done;
		p->pending_total = total;
		return;
	}
	p->pending = false;
	p->last = now;
	rate = now > p->start ? (double)done / (now - p->start) : 0;
	if (p->mode == PROGRESS_BAR) {
		progress_bar(done, total, rate);
		p->shown = true;
	} else {
		progress_json(done, total, rate);
	}
	fflush(stderr);
}

void progress_end(struct progress *p)
{
	if (p->mode == PROGRESS_JSON && p->pending) {
		double now = monotonic();

		progress_json(p->pending_done, p->pending_total,
			      now > p->start ? (double)p->pending_done / (now - p->start) : 0);
	}
	if (p->mode == PROGRESS_BAR && p->shown)
		fputs("\r\033[K", stderr);
	fflush(stderr);
}
