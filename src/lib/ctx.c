/*
 * The library context: settings (dev and sysfs roots, name prefix, log
 * callback) and the last error message. Nothing here touches a device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifndef IMGDEV_VERSION
#define IMGDEV_VERSION "unknown"
#endif

const char *imgdev_version(void)
{
	return IMGDEV_VERSION;
}

int imgdev_ctx_new(struct imgdev_ctx **ctx)
{
	struct imgdev_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->dev_dir = strdup("/dev");
	c->sysfs_dir = strdup("/sys");
	c->prefix = strdup(IMGDEV_DEFAULT_PREFIX);
	c->run_dir = strdup("/run/imgdev");
	c->fetch = (struct imgdev_fetch_opts)IMGDEV_FETCH_OPTS_INIT;
	c->container = (struct imgdev_container_opts)IMGDEV_CONTAINER_OPTS_INIT;
	if (!c->dev_dir || !c->sysfs_dir || !c->prefix || !c->run_dir) {
		imgdev_ctx_free(c);
		return -ENOMEM;
	}
	*ctx = c;
	return 0;
}

static void free_container_opts(struct imgdev_container_opts *c)
{
	free((char *)c->platform);
	free((char *)c->disk_path);
	free((char *)c->auth_file);
}

void imgdev_ctx_free(struct imgdev_ctx *ctx)
{
	if (!ctx)
		return;
	free(ctx->dev_dir);
	free(ctx->sysfs_dir);
	free(ctx->prefix);
	free(ctx->run_dir);
	free((char *)ctx->fetch.ca_file);
	free((char *)ctx->fetch.header_file);
	free_container_opts(&ctx->container);
	free(ctx);
}

/* Replace *slot by a copy of value; 0 or -errno. */
static int replace_string(struct imgdev_ctx *ctx, char **slot, const char *value,
			  const char *what)
{
	char *copy;

	if (!value || !*value)
		return ctx_error(ctx, EINVAL, "%s: must not be empty", what);
	copy = strdup(value);
	if (!copy)
		return ctx_error(ctx, ENOMEM, "%s: out of memory", what);
	free(*slot);
	*slot = copy;
	return 0;
}

int imgdev_ctx_set_dev_dir(struct imgdev_ctx *ctx, const char *dir)
{
	return replace_string(ctx, &ctx->dev_dir, dir, "dev directory");
}

int imgdev_ctx_set_sysfs_dir(struct imgdev_ctx *ctx, const char *dir)
{
	return replace_string(ctx, &ctx->sysfs_dir, dir, "sysfs directory");
}

int imgdev_ctx_set_prefix(struct imgdev_ctx *ctx, const char *prefix)
{
	return replace_string(ctx, &ctx->prefix, prefix, "name prefix");
}

int imgdev_ctx_set_run_dir(struct imgdev_ctx *ctx, const char *dir)
{
	return replace_string(ctx, &ctx->run_dir, dir, "run directory");
}

/* A copy of an optional string into *copy; false when out of memory. */
static bool copy_optional(const char *value, const char **copy)
{
	*copy = value ? strdup(value) : NULL;
	return !value || *copy;
}

int imgdev_ctx_set_fetch(struct imgdev_ctx *ctx, const struct imgdev_fetch_opts *opts)
{
	struct imgdev_fetch_opts f;

	if (!opts || opts->version < 1 || opts->version > IMGDEV_FETCH_OPTS_VERSION)
		return ctx_error(ctx, EINVAL, "fetch options of an unknown version");
	f = *opts;
	if (!copy_optional(opts->ca_file, &f.ca_file) ||
	    !copy_optional(opts->header_file, &f.header_file)) {
		free((char *)f.ca_file);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	free((char *)ctx->fetch.ca_file);
	free((char *)ctx->fetch.header_file);
	ctx->fetch = f;
	return 0;
}

int imgdev_ctx_set_container(struct imgdev_ctx *ctx, const struct imgdev_container_opts *opts)
{
	struct imgdev_container_opts c = IMGDEV_CONTAINER_OPTS_INIT;

	if (!opts || opts->version < 1 || opts->version > IMGDEV_CONTAINER_OPTS_VERSION)
		return ctx_error(ctx, EINVAL, "container options of an unknown version");
	if (!copy_optional(opts->platform, &c.platform) ||
	    !copy_optional(opts->disk_path, &c.disk_path) ||
	    !copy_optional(opts->auth_file, &c.auth_file)) {
		free_container_opts(&c);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	free_container_opts(&ctx->container);
	ctx->container = c;
	return 0;
}

int ctx_new_child(const struct imgdev_ctx *parent, struct imgdev_ctx **child)
{
	struct imgdev_ctx *c;
	int rc = imgdev_ctx_new(&c);

	if (rc == 0)
		rc = imgdev_ctx_set_fetch(c, &parent->fetch);
	if (rc == 0)
		rc = imgdev_ctx_set_container(c, &parent->container);
	if (rc < 0) {
		imgdev_ctx_free(c);
		return -ENOMEM;
	}
	c->log_fn = parent->log_fn;
	c->log_data = parent->log_data;
	c->log_max = parent->log_max;
	*child = c;
	return 0;
}

int imgdev_ctx_set_backend(struct imgdev_ctx *ctx, int backend)
{
	if (backend != IMGDEV_BACKEND_AUTO && backend != IMGDEV_BACKEND_DM &&
	    backend != IMGDEV_BACKEND_LOOP)
		return ctx_error(ctx, EINVAL, "unknown backend %d", backend);
	ctx->backend = backend;
	return 0;
}

void imgdev_ctx_set_log(struct imgdev_ctx *ctx, imgdev_log_fn fn, void *userdata,
			int max_priority)
{
	ctx->log_fn = fn;
	ctx->log_data = userdata;
	ctx->log_max = max_priority;
}

const char *imgdev_ctx_last_error(const struct imgdev_ctx *ctx)
{
	return ctx->errmsg;
}

int ctx_error(struct imgdev_ctx *ctx, int err, const char *fmt, ...)
{
	char msg[IMGDEV_ERRMSG_MAX];
	va_list ap;

	/* Formatted aside first: the arguments may hold the last message itself. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(ctx->errmsg, msg, sizeof(msg));
	ctx_log(ctx, LOGP_DEBUG, "error: %s", ctx->errmsg);
	return err > 0 ? -err : err;
}

void ctx_log(struct imgdev_ctx *ctx, int priority, const char *fmt, ...)
{
	char msg[IMGDEV_ERRMSG_MAX];
	va_list ap;

	if (!ctx->log_fn || priority > ctx->log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->log_fn(ctx->log_data, priority, msg);
}

char *path_join(const char *dir, const char *name)
{
	size_t dlen = strlen(dir);
	char *out;

	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	while (*name == '/')
		name++;
	if (asprintf(&out, "%.*s/%s", (int)dlen, dir, name) < 0)
		return NULL;
	return out;
}
