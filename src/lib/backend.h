/*
 * The mapping backends behind imgdev_map, imgdev_unmap, imgdev_list and
 * provision's mapping step: one small table of operations each, for
 * device-mapper (ops_dm.c) and loop devices (ops_loop.c). The public
 * operations (ops_map.c) resolve the context's backend once per call and go
 * through the table; nothing else asks which backend is in use.
 */
#ifndef IMGDEV_BACKEND_H
#define IMGDEV_BACKEND_H

#include <stdint.h>

struct imgdev_ctx;
struct imgdev_mapping;
struct bdev;

struct map_backend {
	int id;           /* IMGDEV_BACKEND_DM or IMGDEV_BACKEND_LOOP */
	const char *name; /* "dm", "loop" */
	/* Whether bd can be mapped at all; 0 or -errno and why. */
	int (*check_target)(struct imgdev_ctx *ctx, const struct bdev *bd);
	/*
	 * 0 when name is free or already maps bd's payload from data_offset;
	 * -EEXIST (or -errno) and why.
	 */
	int (*check_name)(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			  const char *name);
	/*
	 * Map bd's payload, from byte data_offset to the end in whole logical
	 * blocks, as name (which must not exist); *path for the hypervisor.
	 */
	int (*map)(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
		   const char *name, char **path);
	/* Like map, but a mapping of name onto that payload already there is fine. */
	int (*map_ensure)(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			  const char *name, char **path);
	/* Remove the image mapping name: 0, -ENOENT when there is none, -errno. */
	int (*unmap)(struct imgdev_ctx *ctx, const char *name);
	/* Append this backend's image mappings to *list (*count of them); 0 or -errno. */
	int (*list)(struct imgdev_ctx *ctx, struct imgdev_mapping **list, int *count);
};

extern const struct map_backend map_backend_dm;
extern const struct map_backend map_backend_loop;

#define MAP_BACKENDS_MAX 2

/*
 * The backends the context's setting means now, first the one that maps:
 * DM or LOOP alone when chosen; AUTO gives device-mapper then loop when the
 * kernel has device-mapper (its control node is there), else loop alone.
 * unmap and list consult them in this order. Returns how many (1 or 2).
 */
int map_backends_resolve(struct imgdev_ctx *ctx, const struct map_backend *out[MAP_BACKENDS_MAX]);

/* The backend that maps, for the context's setting now. */
const struct map_backend *map_backend_now(struct imgdev_ctx *ctx);

#endif
