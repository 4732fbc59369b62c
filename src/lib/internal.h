/*
 * Internal state shared by the library's modules: the context behind the
 * opaque handle, and the error/log helpers every module reports through.
 */
#ifndef IMGDEV_INTERNAL_H
#define IMGDEV_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "imgdev.h"
#include "sha256mb.h"

#define IMGDEV_ERRMSG_MAX 1024

struct imgdev_ctx {
	char *dev_dir;
	char *sysfs_dir;
	char *prefix;
	char *run_dir;
	int backend;
	imgdev_log_fn log_fn;
	void *log_data;
	int log_max;
	char errmsg[IMGDEV_ERRMSG_MAX];
	/* How URLs are fetched (imgdev_ctx_set_fetch); its strings are the context's copies. */
	struct imgdev_fetch_opts fetch;
	/* How container images are chosen (imgdev_ctx_set_container); its strings are copies. */
	struct imgdev_container_opts container;
	/* The block hashing (hash_choice.c), chosen on first use. */
	bool hash_chosen;
	enum sha256mb_impl hash_impl;
	double hash_mbps[SHA256MB_NIMPL];	/* as measured; 0: not run or not measured */
};

#define LOGP_ERR 3
#define LOGP_WARNING 4
#define LOGP_INFO 6
#define LOGP_DEBUG 7

/*
 * Record "fmt..." as the context's last error and return -err, so an error
 * path is one line: return ctx_error(ctx, ENOENT, "%s: no such file", path);
 */
int ctx_error(struct imgdev_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * A context for a source read on another thread: the fetch and container
 * options and the log callback of parent, an error message of its own.
 * 0 or -ENOMEM; free with imgdev_ctx_free.
 */
int ctx_new_child(const struct imgdev_ctx *parent, struct imgdev_ctx **child);
/* Send a message to the log callback, if any and if priority passes. */
void ctx_log(struct imgdev_ctx *ctx, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The environment variable that forces the block hashing: a name of
 * sha256mb_name(), or "auto" (as unset). One this CPU cannot run, or
 * no such name, is warned about and measuring chooses instead.
 */
#define IMGDEV_SHA256_IMPL_ENV "IMGDEV_SHA256_IMPL"

/*
 * The SHA-256 implementation to hash the content's blocks with: the
 * override's, or the fastest measured on this CPU (sha256mb_calibrate,
 * 1.5-3 ms, once per context; logged at info level with each one's speed).
 */
enum sha256mb_impl ctx_hash_impl(struct imgdev_ctx *ctx);

/* malloc'ed "<dir>/<name>" (name may start with '/'), or NULL. */
char *path_join(const char *dir, const char *name);

#endif
