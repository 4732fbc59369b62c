/*
 * Internal state shared by the library's modules: the context behind the
 * opaque handle, and the error/log helpers every module reports through.
 */
#ifndef IMGDEV_INTERNAL_H
#define IMGDEV_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "imgdev.h"

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
/* Send a message to the log callback, if any and if priority passes. */
void ctx_log(struct imgdev_ctx *ctx, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* malloc'ed "<dir>/<name>" (name may start with '/'), or NULL. */
char *path_join(const char *dir, const char *name);

#endif
