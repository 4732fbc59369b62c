/*
 * Deciding whether a device-mapper device is an image mapping, from its
 * table and the header on its backing device (found through sysfs).
 * Separate from the ioctls so that a fake /dev + /sys tree can test it.
 */
#ifndef IMGDEV_MAPPING_H
#define IMGDEV_MAPPING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmctl.h"
#include "imgdev.h"

/*
 * <dev>/DEVNAME for the block device maj:min, from
 * <sys>/dev/block/MAJ:MIN/uevent. 0 with *path malloc'ed, or -errno.
 */
int mapping_backing_path(struct imgdev_ctx *ctx, unsigned int maj, unsigned int min, char **path);

/*
 * Whether the device `name` (number dev), whose table has target_count
 * targets and first target t, is an image mapping: exactly one linear target
 * at sector 0, mapping a device whose sector 0 has the header magic from
 * where its layout puts the payload (sector 1 for version 1, sector 2048
 * for version 2; either for a version this build does not know). Returns 1 with *out filled (free its strings), 0 when it is not one
 * (a backing device that cannot be resolved or read is logged as a warning),
 * or -ENOMEM. out->path and out->device name nodes that exist and are dev
 * (see mapping_node_paths), or are NULL. With out NULL, only whether.
 */
int mapping_inspect(struct imgdev_ctx *ctx, const char *name, dev_t dev, int target_count,
		    const struct dmctl_target *t, struct imgdev_mapping *out);

/* Whether offset is where a layout puts the payload: byte 512 or 1 MiB. */
bool mapping_offset_is_layout(uint64_t offset);
struct hdr;
/* Whether a mapping from offset shows the payload of the header h (any, for an unknown version). */
bool mapping_offset_fits(const struct hdr *h, uint64_t offset);

/* Whether path opens the block device dev (following symlinks). */
bool mapping_is_node_of(const char *path, dev_t dev);

/* "<dev>/mapper/NAME", malloc'ed, or NULL. */
char *mapping_mapper_path(struct imgdev_ctx *ctx, const char *name);

/*
 * Of two candidate nodes for the block device dev (malloc'ed or NULL; both
 * taken): *path the preferred one if it opens dev, else the kernel's;
 * *device the kernel's if it opens dev, else *path. Both NULL when neither
 * does. 0 or -ENOMEM.
 */
int mapping_pick_nodes(struct imgdev_ctx *ctx, char *preferred, char *kernel, dev_t dev,
		       char **path, char **device);

/*
 * The nodes that open the device-mapper device name (number dev), of those
 * that exist: *path <dev>/mapper/NAME if it is a node of dev (a symlink to
 * one counts, as udev makes them), else the kernel's own <dev>/dm-N (from
 * sysfs); *device the kernel's node if it is there, else *path. Either is
 * NULL when no such node exists (a host without udev or devtmpfs). 0 or
 * -ENOMEM.
 */
int mapping_node_paths(struct imgdev_ctx *ctx, const char *name, dev_t dev, char **path, char **device);

struct hdr;

/* Read sector 0 of path: 1 with our magic (h filled), 0 without, <0 error. */
int mapping_backing_header(struct imgdev_ctx *ctx, const char *path, struct hdr *h);

/* What makes a mapping, to be copied into a struct imgdev_mapping. */
struct mapping_desc {
	const char *name;
	int backend;
	const char *path;
	const char *device;
	const char *backing;
	dev_t backing_dev;
	uint64_t sectors;
	const uint8_t *image_hash;
};

/* Fill out from d (strings copied; path and device may be NULL); 1, or -ENOMEM. */
int mapping_set(struct imgdev_ctx *ctx, struct imgdev_mapping *out, const struct mapping_desc *d);

/* Free the strings of one mapping. */
void mapping_clear(struct imgdev_mapping *m);

#endif
