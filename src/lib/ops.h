/*
 * Internal entry points shared between the public operations.
 */
#ifndef IMGDEV_OPS_H
#define IMGDEV_OPS_H

#include <stdint.h>
#include <sys/types.h>

struct imgdev_ctx;

/*
 * Map the payload of the block device `backing` (path, number) as name,
 * unless name is already mapped onto it, in which case its node is made
 * sure of and its path returned. Fails if name maps something else.
 */
int map_ensure(struct imgdev_ctx *ctx, const char *device, dev_t backing, const char *name,
	       uint64_t image_size, char **mapped_path);

/* Whether device-mapper can be used here (control node opens); 0 or -errno. */
int map_check_available(struct imgdev_ctx *ctx);

#endif
