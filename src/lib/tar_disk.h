/*
 * The disk inside a container image's layers (a KubeVirt containerDisk):
 * the layers, tar streams (plain, gzip or zstd), are read once, in order,
 * from the top layer down, and the one regular file under disk/ that no
 * upper layer whited out is given as a byte source that streams it. No
 * path from a tar header is ever used to create or open a file.
 */
#ifndef IMGDEV_TAR_DISK_H
#define IMGDEV_TAR_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytesrc.h"

struct imgdev_ctx;

/*
 * Past n bytes of a layer's stream without reading them: how many (at most
 * n; 0 when it cannot, and they are read instead), or -errno with the
 * message in the source's msg.
 */
typedef int64_t tar_layer_skip_fn(struct bytesrc *bs, int64_t n);

struct tar_layer {
	struct bytesrc *bs; /* the layer blob's bytes, read in order; owned by the caller */
	/*
	 * NULL, or how its stream skips: libarchive uses it to pass over the
	 * data of an uncompressed layer's entries it does not read.
	 */
	tar_layer_skip_fn *skip;
};

struct tar_disk_opts {
	/* NULL: the one regular file directly under disk/; else that path ("disk/fedora.qcow2") */
	const char *disk_path;
};

/*
 * A source over the disk's bytes, read from layers (n of them, in manifest
 * order: the lowest first) as a stream: read gives the disk's bytes as the
 * layer gives them, peek its first ones (up to 4096) without consuming
 * them, size the entry's. Before its EOF read reads the rest of the layers
 * (every blob to its last byte) and fails with -ENOTUNIQ when they hold a
 * second disk, -ENODATA when a layer ends inside an entry, -EBADMSG when one is
 * not a tar, or a layer source's own error, the message in the source's msg.
 * The layers' sources stay the caller's and must outlive the disk source.
 * Returns 0, or -errno with the message in ctx: -ENOENT when no layer holds
 * a disk, -EINVAL for a disk_path that cannot name one, or a layer's error
 * met before the disk.
 */
int tar_disk_open(struct imgdev_ctx *ctx, const struct tar_layer *layers, size_t n,
		  const struct tar_disk_opts *o, struct bytesrc **disk);

/*
 * The disk's data is read elsewhere (by ranges on its layer's blob, at
 * tar_disk_info's data_offset): from now on read passes over what is left
 * of it (through the layer's skip where it can) and reads the rest of the
 * layers as before, giving 0 at their end or their failure; it gives no
 * more of the disk's bytes.
 */
void tar_disk_skip_data(struct bytesrc *disk);

/* What was found, for messages and JSON (complete once read gave EOF). */
struct tar_disk_info {
	char path[4096];         /* normalised: "disk/NAME" */
	size_t layer;            /* index in the layers given (0: the lowest) */
	uint64_t size;           /* the entry's size */
	bool layer_uncompressed; /* the layer is a plain tar */
	uint64_t data_offset;    /* the data's offset in the blob, when layer_uncompressed */
};

/*
 * A tar path normalised into out, as the disk's path is compared: no
 * leading "./" or "/", no empty or "." components, no trailing "/".
 * Returns false for a ".." component or a path too long for size.
 */
bool tar_disk_norm_path(const char *in, char *out, size_t size);

/* Fills info from a source tar_disk_open made. */
void tar_disk_info(const struct bytesrc *disk, struct tar_disk_info *info);

#endif
