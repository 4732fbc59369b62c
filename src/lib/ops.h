/*
 * Internal entry points shared between the public operations.
 */
#ifndef IMGDEV_OPS_H
#define IMGDEV_OPS_H

#include <stdint.h>
#include <sys/types.h>

#include <stdbool.h>

struct imgdev_ctx;
struct bdev;
struct hdr;

/* Take the device's advisory lock (writers of one device take turns). */
int bdev_lock(struct imgdev_ctx *ctx, const struct bdev *bd);

/*
 * Whether sector 0 of bd (decoded as h) may be overwritten: never a header
 * or record newer than this build; without our magic, only when libblkid
 * finds no foreign signature, or force. 0 or -errno with the reason.
 */
int check_overwrite_allowed(struct imgdev_ctx *ctx, const struct bdev *bd, const struct hdr *h,
			    bool force);

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
