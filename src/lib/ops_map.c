/*
 * Public operations on mappings: check a name, map a device's payload, unmap
 * it, list image mappings; and the mapping steps provision uses. Each call
 * resolves the backend once (backend.h) and goes through its table.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "blockdev.h"
#include "header.h"
#include "internal.h"
#include "layout.h"
#include "mapping.h"
#include "ops.h"

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789#+-.:=@_"

/* What every name must be, made here or by others: one path component dm accepts. */
static int check_name_form(struct imgdev_ctx *ctx, const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return ctx_error(ctx, EINVAL, "mapping name is empty");
	if (len >= DM_NAME_LEN)
		return ctx_error(ctx, EINVAL,
				 "%.40s...: mapping name is %zu bytes long; device-mapper allows at most %d",
				 name, len, DM_NAME_LEN - 1);
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/'))
		return ctx_error(ctx, EINVAL, "%s: not a valid mapping name", name);
	return 0;
}

int imgdev_check_name(struct imgdev_ctx *ctx, const char *name)
{
	size_t len = strlen(name), plen = strlen(ctx->prefix);
	size_t bad = strspn(name, NAME_CHARS);
	int rc;

	if (len > 0 && len < DM_NAME_LEN && bad < len)
		return ctx_error(ctx, EINVAL,
				 "%s: mapping name has '%c' at position %zu; allowed are letters, digits and #+-.:=@_",
				 name, name[bad], bad + 1);
	rc = check_name_form(ctx, name);
	if (rc < 0)
		return rc;
	if (strncmp(name, ctx->prefix, plen) != 0)
		return ctx_error(ctx, EINVAL, "%s: mapping name must start with \"%s\"", name,
				 ctx->prefix);
	if (len == plen)
		return ctx_error(ctx, EINVAL, "%s: mapping name has nothing after the prefix", name);
	return 0;
}

int check_room(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t image_size,
	       uint64_t data_offset)
{
	uint64_t lbs = bdev_logical_block_size(bd), need;

	if (image_size == 0)
		return ctx_error(ctx, EINVAL, "image size must be at least 1 byte");
	if (image_size > UINT64_MAX - data_offset - 2 * lbs)
		need = UINT64_MAX;
	else
		need = data_offset + layout_round_up(bd, image_size);
	if (bd->size >= need)
		return 0;
	return ctx_error(ctx, ENOSPC,
			 "%s: device too small: it has %llu bytes (%llu sectors), an image of %llu bytes needs %llu bytes (%llu sectors) with the header%s",
			 bd->path, (unsigned long long)bd->size, (unsigned long long)(bd->size / 512),
			 (unsigned long long)image_size, (unsigned long long)need,
			 (unsigned long long)(need / 512),
			 data_offset == SECTOR_SIZE ? "" : " (the aligned layout: the payload from byte 1048576)");
}

/*
 * Whether the kernel has device-mapper: its control node is there. A node
 * we may not open still means device-mapper, so that the permission
 * problem is what gets reported.
 */
static bool have_device_mapper(struct imgdev_ctx *ctx)
{
	char *path = path_join(ctx->dev_dir, "mapper/control");
	int fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
	int err = errno;

	free(path);
	if (fd >= 0)
		close(fd);
	return fd >= 0 || !(err == ENOENT || err == ENODEV || err == ENXIO || err == ENOTDIR);
}

int map_backends_resolve(struct imgdev_ctx *ctx, const struct map_backend *out[MAP_BACKENDS_MAX])
{
	if (ctx->backend == IMGDEV_BACKEND_DM || ctx->backend == IMGDEV_BACKEND_LOOP) {
		out[0] = ctx->backend == IMGDEV_BACKEND_DM ? &map_backend_dm : &map_backend_loop;
		return 1;
	}
	if (!have_device_mapper(ctx)) {
		out[0] = &map_backend_loop;
		return 1;
	}
	out[0] = &map_backend_dm;
	out[1] = &map_backend_loop;
	return 2;
}

const struct map_backend *map_backend_now(struct imgdev_ctx *ctx)
{
	const struct map_backend *be[MAP_BACKENDS_MAX];

	map_backends_resolve(ctx, be);
	return be[0];
}

int imgdev_map(struct imgdev_ctx *ctx, const char *device, const char *name, uint64_t image_size,
	       char **mapped_path)
{
	const struct map_backend *be;
	uint64_t data_offset;
	struct bdev bd;
	int rc;

	rc = imgdev_check_name(ctx, name);
	if (rc < 0)
		return rc;
	rc = bdev_open(ctx, device, O_RDONLY, &bd);
	if (rc < 0)
		return rc;
	be = map_backend_now(ctx);
	rc = layout_of_device(ctx, &bd, &data_offset);
	if (rc == 0)
		rc = check_room(ctx, &bd, image_size, data_offset);
	if (rc == 0)
		rc = be->check_target(ctx, &bd);
	if (rc == 0)
		rc = be->map(ctx, &bd, data_offset, name, mapped_path);
	bdev_close(&bd);
	return rc;
}

int imgdev_unmap(struct imgdev_ctx *ctx, const char *name)
{
	const struct map_backend *be[MAP_BACKENDS_MAX];
	int n, rc = check_name_form(ctx, name);

	if (rc < 0)
		return rc;
	/* The first backend that has the name removes it. */
	n = map_backends_resolve(ctx, be);
	rc = -ENOENT;
	for (int i = 0; i < n && rc == -ENOENT; i++)
		rc = be[i]->unmap(ctx, name);
	return rc;
}

void imgdev_mappings_free(struct imgdev_mapping *list, int count)
{
	if (!list)
		return;
	for (int i = 0; i < count; i++)
		mapping_clear(&list[i]);
	free(list);
}

static int mapping_cmp(const void *a, const void *b)
{
	return strcmp(((const struct imgdev_mapping *)a)->name,
		      ((const struct imgdev_mapping *)b)->name);
}

int imgdev_list(struct imgdev_ctx *ctx, struct imgdev_mapping **list)
{
	const struct map_backend *be[MAP_BACKENDS_MAX];
	struct imgdev_mapping *out = NULL;
	int count = 0, rc = 0, n = map_backends_resolve(ctx, be);

	for (int i = 0; i < n && rc == 0; i++)
		rc = be[i]->list(ctx, &out, &count);
	if (rc < 0) {
		imgdev_mappings_free(out, count);
		return rc;
	}
	if (count > 1)
		qsort(out, (size_t)count, sizeof(*out), mapping_cmp);
	*list = out;
	return count;
}
