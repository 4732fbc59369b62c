/*
 * The device-mapper backend (see backend.h): an image mapping is one linear
 * target over sector 1 of the device, with the UUID IMGDEV-NAME. Creates
 * <dev>/mapper/NAME itself (never waiting on udev) and removes the node on
 * unmap. Mappings made by others (Virtlet) are recognised by their table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backend.h"
#include "blockdev.h"
#include "dmctl.h"
#include "header.h"
#include "internal.h"
#include "layout.h"
#include "mapping.h"
#include "parse.h"
#include "sha256.h"

#define REMOVE_TRIES 25

/* The dm UUID for a name: IMGDEV-NAME, or IMGDEV-<sha256 of NAME> if too long. */
static void uuid_for_name(const char *name, char uuid[DMCTL_UUID_MAX])
{
	const size_t plen = strlen(IMGDEV_DM_UUID_PREFIX);
	uint8_t digest[SHA256_SIZE];

	if (plen + strlen(name) < DMCTL_UUID_MAX) {
		snprintf(uuid, DMCTL_UUID_MAX, "%s%s", IMGDEV_DM_UUID_PREFIX, name);
		return;
	}
	if (sha256_digest(name, strlen(name), digest) < 0)
		memset(digest, 0, sizeof(digest));	/* out of memory: creating will fail too */
	memcpy(uuid, IMGDEV_DM_UUID_PREFIX, plen);
	for (unsigned int i = 0; i < SHA256_SIZE; i++)
		snprintf(uuid + plen + 2 * i, 3, "%02x", digest[i]);
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
		ctx_log(ctx, LOGP_WARNING, "%s: cannot remove device node: %s", path, strerror(errno));
}

/* Map bd's payload from data_offset as the device-mapper device name. */
static int dmmap_create(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			const char *name, char **mapped_path)
{
	char uuid[DMCTL_UUID_MAX];
	char *path = mapping_mapper_path(ctx, name);
	dev_t dev;
	int fd = -1, rc = 0;

	if (!path)
		return ctx_error(ctx, ENOMEM, "out of memory");
	rc = dmctl_open(ctx, &fd);
	if (rc < 0)
		goto out;
	uuid_for_name(name, uuid);
	rc = dmctl_create_linear(ctx, fd, name, uuid, layout_room(bd, data_offset) / 512, bd->rdev,
				 data_offset / 512, &dev);
	if (rc < 0)
		goto out;
	rc = node_ensure(ctx, path, dev);
	if (rc < 0) {
		if (dmctl_remove(ctx, fd, name, REMOVE_TRIES) < 0)
			ctx_log(ctx, LOGP_WARNING, "%s: could not remove after failure", name);
		goto out;
	}
	ctx_log(ctx, LOGP_INFO, "%s: mapped %s from byte %llu (sector %llu) as %s", name, bd->path,
		(unsigned long long)data_offset, (unsigned long long)(data_offset / 512), path);
	*mapped_path = path;
	path = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

static int dmmap_check_target(struct imgdev_ctx *ctx, const struct bdev *bd)
{
	int fd, rc;

	if (!bd->is_block)
		return ctx_error(ctx, ENOTBLK,
				 "%s: not a block device, so device-mapper cannot map it (attach it with losetup, or use --backend loop)",
				 bd->path);
	rc = dmctl_open(ctx, &fd);
	if (rc == 0)
		close(fd);
	return rc;
}

/* Whether name is ours to remove: our UUID prefix, or a recognised mapping. */
static int unmap_allowed(struct imgdev_ctx *ctx, int fd, const char *name, dev_t dev, const char *uuid)
{
	struct dmctl_target t;
	int count, ours;

	if (strncmp(uuid, IMGDEV_DM_UUID_PREFIX, strlen(IMGDEV_DM_UUID_PREFIX)) == 0)
		return 1;
	count = dmctl_table(ctx, fd, name, &t);
	if (count < 0)
		return count;
	ours = mapping_inspect(ctx, name, dev, count, &t, NULL);
	dmctl_target_clear(&t);
	if (ours == 0)
		return ctx_error(ctx, EPERM,
				 "%s: not an image mapping (uuid \"%s\", not one linear target over a device with an image header); refusing to remove it",
				 name, uuid);
	return ours;
}

static int dmmap_remove(struct imgdev_ctx *ctx, const char *name)
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
	rc = unmap_allowed(ctx, fd, name, dev, uuid);
	if (rc < 0)
		goto out;
	rc = dmctl_remove(ctx, fd, name, REMOVE_TRIES);
	if (rc < 0)
		goto out;
	path = mapping_mapper_path(ctx, name);
	if (path)
		node_remove(ctx, path, dev);
	ctx_log(ctx, LOGP_INFO, "%s: unmapped", name);
out:
	free(path);
	close(fd);
	return rc;
}

/* Inspect one device and append it to *list if it is an image mapping. */
static int list_consider(struct imgdev_ctx *ctx, int fd, const char *name,
			 struct imgdev_mapping **list, int *count)
{
	struct imgdev_mapping m, *grown;
	struct dmctl_target t;
	char uuid[DMCTL_UUID_MAX];
	dev_t dev;
	int n = dmctl_info(ctx, fd, name, &dev, uuid);

	if (n == 0)
		n = dmctl_table(ctx, fd, name, &t);
	if (n == -ENOENT) /* removed while we listed */
		return 0;
	if (n < 0)
		return n;
	n = mapping_inspect(ctx, name, dev, n, &t, &m);
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

static int dmmap_list(struct imgdev_ctx *ctx, struct imgdev_mapping **list, int *count)
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

/* Whether the table of name is "linear backing START" alone, START the payload's sector. */
static int maps_onto(struct imgdev_ctx *ctx, int fd, const char *name, dev_t backing,
		     uint64_t data_offset)
{
	struct dmctl_target t;
	unsigned int maj, min;
	uint64_t offset;
	int n = dmctl_table(ctx, fd, name, &t), same;

	if (n < 0)
		return n;
	same = n == 1 && strcmp(t.type, "linear") == 0 && t.start == 0 && t.params &&
	       parse_linear_params(t.params, &maj, &min, &offset) == 0 &&
	       offset == data_offset / 512 &&
	       makedev(maj, min) == backing;
	dmctl_target_clear(&t);
	return same;
}

/* The first two are maps_onto's answers. */
enum name_state { NAME_MAPS_OTHER = 0, NAME_MAPS_BD = 1, NAME_FREE = 2 };

/* Whether name is free or maps bd's payload (*dev set) or something else; or -errno. */
static int name_state(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
		      const char *name, dev_t *dev)
{
	char uuid[DMCTL_UUID_MAX];
	int fd, rc = dmctl_open(ctx, &fd);

	if (rc < 0)
		return rc;
	rc = dmctl_info(ctx, fd, name, dev, uuid);
	if (rc == -ENOENT)
		rc = NAME_FREE;
	else if (rc == 0)
		rc = maps_onto(ctx, fd, name, bd->rdev, data_offset);
	close(fd);
	return rc;
}

static int dmmap_ensure(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			const char *name, char **mapped_path)
{
	char *path;
	dev_t dev;
	int rc = name_state(ctx, bd, data_offset, name, &dev);

	if (rc == NAME_FREE)
		return dmmap_create(ctx, bd, data_offset, name, mapped_path);
	if (rc == NAME_MAPS_OTHER)
		return ctx_error(ctx, EEXIST, "%s: already exists and maps something other than %s",
				 name, bd->path);
	if (rc < 0)
		return rc;
	path = mapping_mapper_path(ctx, name);
	rc = path ? node_ensure(ctx, path, dev) : ctx_error(ctx, ENOMEM, "out of memory");
	if (rc < 0) {
		free(path);
		return rc;
	}
	*mapped_path = path;
	return 0;
}

static int dmmap_check_name(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			    const char *name)
{
	dev_t dev;
	int rc = name_state(ctx, bd, data_offset, name, &dev);

	if (rc == NAME_MAPS_OTHER)
		return ctx_error(ctx, EEXIST,
				 "%s: already exists and maps something other than %s; nothing written",
				 name, bd->path);
	return rc < 0 ? rc : 0;
}

const struct map_backend map_backend_dm = {
	.id = IMGDEV_BACKEND_DM,
	.name = "dm",
	.check_target = dmmap_check_target,
	.check_name = dmmap_check_name,
	.map = dmmap_create,
	.map_ensure = dmmap_ensure,
	.unmap = dmmap_remove,
	.list = dmmap_list,
};
