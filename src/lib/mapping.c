/*
 * Recognising image mappings (see mapping.h): the table must be one linear
 * target starting at sector 1 of its backing device, and that device's
 * sector 0 must carry our magic — whoever made the mapping, Virtlet included.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blockdev.h"
#include "header.h"
#include "internal.h"
#include "mapping.h"
#include "ops.h"
#include "parse.h"

#define UEVENT_MAX 4096

int mapping_backing_path(struct imgdev_ctx *ctx, unsigned int maj, unsigned int min, char **path)
{
	char rel[64], text[UEVENT_MAX], devname[256];
	char *uevent;
	ssize_t n;
	int fd, rc;

	snprintf(rel, sizeof(rel), "dev/block/%u:%u/uevent", maj, min);
	uevent = path_join(ctx->sysfs_dir, rel);
	if (!uevent)
		return ctx_error(ctx, ENOMEM, "out of memory");
	fd = open(uevent, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = ctx_error(ctx, errno, "%s: %s", uevent, strerror(errno));
		goto out;
	}
	n = read(fd, text, sizeof(text));
	rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc < 0) {
		rc = ctx_error(ctx, rc, "%s: %s", uevent, strerror(-rc));
		goto out;
	}
	rc = parse_uevent_devname(text, (size_t)n, devname, sizeof(devname));
	if (rc < 0) {
		rc = ctx_error(ctx, rc, "%s: %s", uevent,
			       rc == -ENOENT ? "no DEVNAME" : "DEVNAME is not a safe device name");
		goto out;
	}
	*path = path_join(ctx->dev_dir, devname);
	if (!*path)
		rc = ctx_error(ctx, ENOMEM, "out of memory");
out:
	free(uevent);
	return rc;
}

int mapping_backing_header(struct imgdev_ctx *ctx, const char *path, struct hdr *h)
{
	struct bdev bd;
	int rc = bdev_open(ctx, path, O_RDONLY, &bd);

	if (rc < 0)
		return rc;
	rc = bdev_read_header(ctx, &bd, h);
	bdev_close(&bd);
	return rc < 0 ? rc : hdr_has_magic(h);
}

/* strdup that keeps NULL: 0, or -ENOMEM. */
static int dup_or_null(const char *s, char **out)
{
	*out = s ? strdup(s) : NULL;
	return s && !*out ? -ENOMEM : 0;
}

int mapping_set(struct imgdev_ctx *ctx, struct imgdev_mapping *out, const struct mapping_desc *d)
{
	memset(out, 0, sizeof(*out));
	out->name = strdup(d->name);
	out->backend = d->backend;
	out->backing = strdup(d->backing);
	if (!out->name || !out->backing || dup_or_null(d->path, &out->path) < 0 ||
	    dup_or_null(d->device, &out->device) < 0) {
		mapping_clear(out);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	out->backing_major = major(d->backing_dev);
	out->backing_minor = minor(d->backing_dev);
	out->sectors = d->sectors;
	memcpy(out->image_hash, d->image_hash, IMGDEV_HASH_SIZE);
	return 1;
}

char *mapping_mapper_path(struct imgdev_ctx *ctx, const char *name)
{
	char *dir = path_join(ctx->dev_dir, "mapper");
	char *path = dir ? path_join(dir, name) : NULL;

	free(dir);
	return path;
}

bool mapping_is_node_of(const char *path, dev_t dev)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == dev;
}

/* *path = p when it is a node of dev, else free p. */
static void keep_if_node(char *p, dev_t dev, char **path)
{
	if (p && mapping_is_node_of(p, dev))
		*path = p;
	else
		free(p);
}

int mapping_pick_nodes(struct imgdev_ctx *ctx, char *preferred, char *kernel, dev_t dev,
		       char **path, char **device)
{
	bool oom = false;

	*path = *device = NULL;
	keep_if_node(preferred, dev, path);
	keep_if_node(kernel, dev, device);
	if (!*path && *device)
		oom = !(*path = strdup(*device));
	else if (*path && !*device)
		oom = !(*device = strdup(*path));
	if (!oom)
		return 0;
	free(*path);
	free(*device);
	*path = *device = NULL;
	return ctx_error(ctx, ENOMEM, "out of memory");
}

int mapping_node_paths(struct imgdev_ctx *ctx, const char *name, dev_t dev, char **path, char **device)
{
	char *mapper = mapping_mapper_path(ctx, name), *kernel = NULL;
	/* A missing sysfs entry only means no kernel node to offer: not an error. */
	int rc = mapping_backing_path(ctx, major(dev), minor(dev), &kernel);

	if (!mapper || rc == -ENOMEM) {
		free(mapper);
		free(kernel);
		*path = *device = NULL;
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	return mapping_pick_nodes(ctx, mapper, kernel, dev, path, device);
}

bool mapping_offset_is_layout(uint64_t offset)
{
	return offset == hdr_layout_offset(HDR_VERSION_VIRTLET) ||
	       offset == hdr_layout_offset(HDR_VERSION_ALIGNED);
}

bool mapping_offset_fits(const struct hdr *h, uint64_t offset)
{
	return !hdr_version_known(h) || hdr_data_offset(h) == offset;
}

int mapping_inspect(struct imgdev_ctx *ctx, const char *name, dev_t dev, int target_count,
		    const struct dmctl_target *t, struct imgdev_mapping *out)
{
	unsigned int maj, min;
	uint64_t offset;
	char *backing = NULL, *path = NULL, *device = NULL;
	struct hdr h;
	int rc;

	if (target_count != 1 || strcmp(t->type, "linear") != 0 || t->start != 0 || !t->params ||
	    parse_linear_params(t->params, &maj, &min, &offset) < 0 ||
	    !mapping_offset_is_layout(offset * 512))
		return 0;
	rc = mapping_backing_path(ctx, maj, min, &backing);
	if (rc == 0)
		rc = mapping_backing_header(ctx, backing, &h);
	if (rc == 1 && !mapping_offset_fits(&h, offset * 512))
		rc = 0; /* not where this header's payload starts */
	if (rc < 0) {
		ctx_log(ctx, LOGP_WARNING, "%s: skipped: backing device %u:%u: %s", name, maj, min,
			ctx->errmsg);
		free(backing);
		return rc == -ENOMEM ? rc : 0;
	}
	if (rc == 0 || !out) { /* no header: not an image mapping; or only asked whether */
		free(backing);
		return rc;
	}
	rc = mapping_node_paths(ctx, name, dev, &path, &device);
	if (rc == 0 && !path)
		ctx_log(ctx, LOGP_WARNING,
			"%s: no device node for %u:%u under %s (imgdev map makes %s/mapper/%s)",
			name, major(dev), minor(dev), ctx->dev_dir, ctx->dev_dir, name);
	if (rc == 0) {
		struct mapping_desc d = { .name = name,
					  .backend = IMGDEV_BACKEND_DM,
					  .path = path,
					  .device = device,
					  .backing = backing,
					  .backing_dev = makedev(maj, min),
					  .sectors = t->length,
					  .image_hash = h.image_hash };

		rc = mapping_set(ctx, out, &d);
	}
	free(path);
	free(device);
	free(backing);
	return rc;
}

void mapping_clear(struct imgdev_mapping *m)
{
	free(m->name);
	free(m->path);
	free(m->device);
	free(m->backing);
	memset(m, 0, sizeof(*m));
}
