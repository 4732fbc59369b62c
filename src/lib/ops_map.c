/*
 * Public operations on device-mapper mappings: check a name, map a device's
 * payload, unmap it, list image mappings. Creates /dev/mapper/NAME itself
 * (never waiting on udev) and removes the node on unmap.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blockdev.h"
#include "dmctl.h"
#include "header.h"
#include "internal.h"
#include "mapping.h"
#include "ops.h"
#include "parse.h"

#define REMOVE_TRIES 25
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789#+-.:=@_"

int imgdev_check_name(struct imgdev_ctx *ctx, const char *name)
{
	size_t len = strlen(name), plen = strlen(ctx->prefix);
	size_t bad = strspn(name, NAME_CHARS);

	if (len == 0)
		return ctx_error(ctx, EINVAL, "mapping name is empty");
	if (len >= DM_NAME_LEN)
		return ctx_error(ctx, EINVAL,
				 "%.40s...: mapping name is %zu bytes long; device-mapper allows at most %d",
				 name, len, DM_NAME_LEN - 1);
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return ctx_error(ctx, EINVAL, "%s: not a valid mapping name", name);
	if (bad < len)
		return ctx_error(ctx, EINVAL,
				 "%s: mapping name has '%c' at position %zu; allowed are letters, digits and #+-.:=@_",
				 name, name[bad], bad + 1);
	if (strncmp(name, ctx->prefix, plen) != 0)
		return ctx_error(ctx, EINVAL, "%s: mapping name must start with \"%s\"", name,
				 ctx->prefix);
	if (len == plen)
		return ctx_error(ctx, EINVAL, "%s: mapping name has nothing after the prefix",
				 name);
	return 0;
}

/* The dm UUID for a name: IMGDEV-NAME, or IMGDEV-<sha256 of NAME> if too long. */
static void uuid_for_name(const char *name, char uuid[DMCTL_UUID_MAX])
{
	const size_t plen = strlen(IMGDEV_DM_UUID_PREFIX);
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (plen + strlen(name) < DMCTL_UUID_MAX) {
		snprintf(uuid, DMCTL_UUID_MAX, "%s%s", IMGDEV_DM_UUID_PREFIX, name);
		return;
	}
	EVP_Digest(name, strlen(name), digest, &dlen, EVP_sha256(), NULL);
	memcpy(uuid, IMGDEV_DM_UUID_PREFIX, plen);
	for (unsigned int i = 0; i < dlen; i++)
		snprintf(uuid + plen + 2 * i, 3, "%02x", digest[i]);
}

static char *mapper_path(struct imgdev_ctx *ctx, const char *name)
{
	char *dir = path_join(ctx->dev_dir, "mapper");
	char *path = dir ? path_join(dir, name) : NULL;

	free(dir);
	return path;
}

/* Make sure path is a block node for dev; 0 or -errno. */
static int node_ensure(struct imgdev_ctx *ctx, const char *path, dev_t dev)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		if (S_ISBLK(st.st_mode) && st.st_rdev == dev)
			return 0;
		/* A stale node from an earlier device of this name. */
		if (unlink(path) < 0)
			return ctx_error(ctx, errno, "%s: cannot replace stale node: %s", path,
					 strerror(errno));
	}
	if (mknod(path, S_IFBLK | 0600, dev) < 0 && errno != EEXIST)
		return ctx_error(ctx, errno, "%s: cannot create device node: %s", path,
				 strerror(errno));
	ctx_log(ctx, LOGP_DEBUG, "%s: node for %u:%u in place", path, major(dev), minor(dev));
	return 0;
}

/* Remove path if it is the node of dev (udev may have beaten us to it). */
static void node_remove(struct imgdev_ctx *ctx, const char *path, dev_t dev)
{
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != dev)
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		ctx_log(ctx, LOGP_WARNING, "%s: cannot remove device node: %s", path,
			strerror(errno));
}

int check_room(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t image_size)
{
	uint64_t have = bd->size / SECTOR_SIZE;
	uint64_t need = image_size / SECTOR_SIZE + (image_size % SECTOR_SIZE != 0) + 1;

	if (image_size == 0)
		return ctx_error(ctx, EINVAL, "image size must be at least 1 byte");
	if (image_size > UINT64_MAX - 2 * SECTOR_SIZE || have < need)
		return ctx_error(ctx, ENOSPC,
				 "%s: device too small: it has %llu bytes (%llu sectors), an image of %llu bytes needs %llu bytes (%llu sectors) with the header sector",
				 bd->path, (unsigned long long)bd->size, (unsigned long long)have,
				 (unsigned long long)image_size,
				 (unsigned long long)(need * SECTOR_SIZE), (unsigned long long)need);
	return 0;
}

/*
 * AUTO resolved: device-mapper when the kernel has it (its control node is
 * there), else loop. A control node we may not open still means
 * device-mapper, so that the permission problem is what gets reported.
 */
static int backend_now(struct imgdev_ctx *ctx)
{
	char *path;
	int fd, err;

	if (ctx->backend != IMGDEV_BACKEND_AUTO)
		return ctx->backend;
	path = path_join(ctx->dev_dir, "mapper/control");
	fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
	err = errno;
	free(path);
	if (fd >= 0)
		close(fd);
	if (fd < 0 && (err == ENOENT || err == ENODEV || err == ENXIO || err == ENOTDIR))
		return IMGDEV_BACKEND_LOOP;
	return IMGDEV_BACKEND_DM;
}

/* Map bd's payload as the device-mapper device name. */
static int dm_map(struct imgdev_ctx *ctx, const struct bdev *bd, const char *name,
		  char **mapped_path)
{
	char uuid[DMCTL_UUID_MAX];
	char *path = mapper_path(ctx, name);
	dev_t dev;
	int fd = -1, rc = 0;

	if (!path)
		return ctx_error(ctx, ENOMEM, "out of memory");
	rc = dmctl_open(ctx, &fd);
	if (rc < 0)
		goto out;
	uuid_for_name(name, uuid);
	rc = dmctl_create_linear(ctx, fd, name, uuid, bd->size / SECTOR_SIZE - 1, bd->rdev, 1,
				 &dev);
	if (rc < 0)
		goto out;
	rc = node_ensure(ctx, path, dev);
	if (rc < 0) {
		if (dmctl_remove(ctx, fd, name, REMOVE_TRIES) < 0)
			ctx_log(ctx, LOGP_WARNING, "%s: could not remove after failure", name);
		goto out;
	}
	ctx_log(ctx, LOGP_INFO, "%s: mapped %s from sector 1 as %s", name, bd->path, path);
	*mapped_path = path;
	path = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

int map_check_target(struct imgdev_ctx *ctx, const struct bdev *bd)
{
	int fd, rc;

	if (backend_now(ctx) == IMGDEV_BACKEND_LOOP)
		return 0;
	if (!bd->is_block)
		return ctx_error(ctx, ENOTBLK,
				 "%s: not a block device, so device-mapper cannot map it (attach it with losetup, or use --backend loop)",
				 bd->path);
	rc = dmctl_open(ctx, &fd);
	if (rc == 0)
		close(fd);
	return rc;
}

int imgdev_map(struct imgdev_ctx *ctx, const char *device, const char *name,
	       uint64_t image_size, char **mapped_path)
{
	struct bdev bd;
	int rc;

	rc = imgdev_check_name(ctx, name);
	if (rc < 0)
		return rc;
	rc = bdev_open(ctx, device, O_RDONLY, &bd);
	if (rc < 0)
		return rc;
	rc = check_room(ctx, &bd, image_size);
	if (rc == 0)
		rc = map_check_target(ctx, &bd);
	if (rc == 0 && backend_now(ctx) == IMGDEV_BACKEND_LOOP)
		rc = loop_map(ctx, &bd, name, mapped_path);
	else if (rc == 0)
		rc = dm_map(ctx, &bd, name, mapped_path);
	bdev_close(&bd);
	return rc;
}

/* Whether name is ours to remove: our UUID prefix, or a recognised mapping. */
static int unmap_allowed(struct imgdev_ctx *ctx, int fd, const char *name, const char *uuid)
{
	struct imgdev_mapping m;
	struct dmctl_target t;
	int count, ours;

	if (strncmp(uuid, IMGDEV_DM_UUID_PREFIX, strlen(IMGDEV_DM_UUID_PREFIX)) == 0)
		return 1;
	count = dmctl_table(ctx, fd, name, &t);
	if (count < 0)
		return count;
	ours = mapping_inspect(ctx, name, count, &t, &m);
	dmctl_target_clear(&t);
	if (ours == 1)
		mapping_clear(&m);
	if (ours == 0)
		return ctx_error(ctx, EPERM,
				 "%s: not an image mapping (uuid \"%s\", not one linear target over a device with an image header); refusing to remove it",
				 name, uuid);
	return ours;
}

static int dm_unmap(struct imgdev_ctx *ctx, const char *name)
{
	char uuid[DMCTL_UUID_MAX];
	char *path = NULL;
	dev_t dev;
	int fd = -1, rc;

	rc = dmctl_open(ctx, &fd);
	if (rc < 0)
		return rc;
	rc = dmctl_info(ctx, fd, name, &dev, uuid);
	if (rc == -ENOENT)
		rc = ctx_error(ctx, ENOENT, "%s: no such mapping", name);
	if (rc < 0)
		goto out;
	rc = unmap_allowed(ctx, fd, name, uuid);
	if (rc < 0)
		goto out;
	rc = dmctl_remove(ctx, fd, name, REMOVE_TRIES);
	if (rc < 0)
		goto out;
	path = mapper_path(ctx, name);
	if (path)
		node_remove(ctx, path, dev);
	ctx_log(ctx, LOGP_INFO, "%s: unmapped", name);
out:
	free(path);
	close(fd);
	return rc;
}

int imgdev_unmap(struct imgdev_ctx *ctx, const char *name)
{
	int rc = imgdev_check_name(ctx, name);

	if (rc < 0)
		return rc;
	if (ctx->backend == IMGDEV_BACKEND_LOOP)
		return loop_unmap(ctx, name);
	if (ctx->backend == IMGDEV_BACKEND_DM)
		return dm_unmap(ctx, name);
	/* AUTO: whichever backend has the name. */
	if (backend_now(ctx) == IMGDEV_BACKEND_DM) {
		rc = dm_unmap(ctx, name);
		if (rc != -ENOENT)
			return rc;
	}
	return loop_unmap(ctx, name);
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

/* Inspect one device and append it to *list if it is an image mapping. */
static int list_consider(struct imgdev_ctx *ctx, int fd, const char *name,
			 struct imgdev_mapping **list, int *count)
{
	struct imgdev_mapping m, *grown;
	struct dmctl_target t;
	int n = dmctl_table(ctx, fd, name, &t);

	if (n == -ENOENT)	/* removed while we listed */
		return 0;
	if (n < 0)
		return n;
	n = mapping_inspect(ctx, name, n, &t, &m);
	dmctl_target_clear(&t);
	if (n <= 0)
		return n;
	grown = realloc(*list, sizeof(*grown) * (size_t)(*count + 1));
	if (!grown) {
		mapping_clear(&m);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	grown[(*count)++] = m;
	*list = grown;
	return 0;
}

static int dm_list(struct imgdev_ctx *ctx, struct imgdev_mapping **list, int *count)
{
	char **names = NULL;
	int fd, n, rc;

	rc = dmctl_open(ctx, &fd);
	if (rc < 0)
		return rc;
	n = dmctl_list(ctx, fd, &names);
	rc = n < 0 ? n : 0;
	for (int i = 0; i < n && rc == 0; i++)
		rc = list_consider(ctx, fd, names[i], list, count);
	dmctl_names_free(names, n);
	close(fd);
	return rc;
}

int imgdev_list(struct imgdev_ctx *ctx, struct imgdev_mapping **list)
{
	struct imgdev_mapping *out = NULL;
	int count = 0, rc = 0;

	if (ctx->backend == IMGDEV_BACKEND_DM ||
	    (ctx->backend == IMGDEV_BACKEND_AUTO && backend_now(ctx) == IMGDEV_BACKEND_DM))
		rc = dm_list(ctx, &out, &count);
	if (rc == 0 && ctx->backend != IMGDEV_BACKEND_DM)
		rc = loop_list(ctx, &out, &count);
	if (rc < 0) {
		imgdev_mappings_free(out, count);
		return rc;
	}
	if (count > 1)
		qsort(out, (size_t)count, sizeof(*out), mapping_cmp);
	*list = out;
	return count;
}

/* Whether the table of name is "linear backing 1" alone. */
static int maps_onto(struct imgdev_ctx *ctx, int fd, const char *name, dev_t backing)
{
	struct dmctl_target t;
	unsigned int maj, min;
	uint64_t offset;
	int n = dmctl_table(ctx, fd, name, &t), same;

	if (n < 0)
		return n;
	same = n == 1 && strcmp(t.type, "linear") == 0 && t.start == 0 && t.params &&
	       parse_linear_params(t.params, &maj, &min, &offset) == 0 && offset == 1 &&
	       makedev(maj, min) == backing;
	dmctl_target_clear(&t);
	return same;
}

int map_ensure(struct imgdev_ctx *ctx, const struct bdev *bd, const char *name,
	       char **mapped_path)
{
	char uuid[DMCTL_UUID_MAX];
	char *path = NULL;
	dev_t dev;
	int fd, rc;

	if (backend_now(ctx) == IMGDEV_BACKEND_LOOP)
		return loop_map_ensure(ctx, bd, name, mapped_path);
	rc = dmctl_open(ctx, &fd);
	if (rc < 0)
		return rc;
	rc = dmctl_info(ctx, fd, name, &dev, uuid);
	if (rc == -ENOENT) {
		close(fd);
		return dm_map(ctx, bd, name, mapped_path);
	}
	if (rc == 0)
		rc = maps_onto(ctx, fd, name, bd->rdev);
	if (rc == 0)
		rc = ctx_error(ctx, EEXIST, "%s: already exists and maps something other than %s",
			       name, bd->path);
	if (rc == 1) {
		path = mapper_path(ctx, name);
		rc = path ? node_ensure(ctx, path, dev) : ctx_error(ctx, ENOMEM, "out of memory");
	}
	close(fd);
	if (rc < 0) {
		free(path);
		return rc;
	}
	*mapped_path = path;
	return 0;
}

int map_check_name(struct imgdev_ctx *ctx, const struct bdev *bd, const char *name)
{
	char uuid[DMCTL_UUID_MAX];
	dev_t dev;
	int fd, rc;

	if (backend_now(ctx) == IMGDEV_BACKEND_LOOP)
		return loop_check_name_for(ctx, bd, name);
	rc = dmctl_open(ctx, &fd);
	if (rc < 0)
		return rc;
	rc = dmctl_info(ctx, fd, name, &dev, uuid);
	if (rc == -ENOENT)
		rc = 1;		/* free */
	else if (rc == 0)
		rc = maps_onto(ctx, fd, name, bd->rdev);
	close(fd);
	if (rc == 0)
		return ctx_error(ctx, EEXIST, "%s: already exists and maps something other than %s; nothing written",
				 name, bd->path);
	return rc < 0 ? rc : 0;
}
