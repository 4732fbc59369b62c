/*
 * A small client of the kernel's device-mapper ioctl interface
 * (<linux/dm-ioctl.h> on <dev>/mapper/control): create a linear device,
 * remove one, list devices, read a device's table and status. It never
 * waits on udev; node management lives with the operations that need it.
 */
#ifndef IMGDEV_DMCTL_H
#define IMGDEV_DMCTL_H

#include <stdint.h>
#include <sys/types.h>

struct imgdev_ctx;

#define DMCTL_TYPE_MAX 16
#define DMCTL_UUID_MAX 129

/* The first target of a table, as the kernel reports it. */
struct dmctl_target {
	uint64_t start;
	uint64_t length;
	char type[DMCTL_TYPE_MAX];
	char *params;		/* malloc'ed; free with dmctl_target_clear */
};

/* Open the control node; 0 with *fd set, or -errno with a message. */
int dmctl_open(struct imgdev_ctx *ctx, int *fd);

/*
 * Create name (with uuid) as one linear target "0 length linear
 * MAJ:MIN offset", load and resume it; on any failure the half-made device
 * is removed. *dev receives the new device's number. 0 or -errno.
 */
int dmctl_create_linear(struct imgdev_ctx *ctx, int fd, const char *name,
			const char *uuid, uint64_t length, dev_t backing,
			uint64_t offset, dev_t *dev);

/*
 * Remove name, retrying up to `tries` times while the kernel says EBUSY.
 * 0, -ENOENT (no such device) or -errno.
 */
int dmctl_remove(struct imgdev_ctx *ctx, int fd, const char *name, int tries);

/* Device number and UUID of name; 0, -ENOENT or -errno. */
int dmctl_info(struct imgdev_ctx *ctx, int fd, const char *name, dev_t *dev,
	       char uuid[DMCTL_UUID_MAX]);

/*
 * All device names; returns the count with *names set to a malloc'ed array
 * of malloc'ed strings (free with dmctl_names_free), or -errno.
 */
int dmctl_list(struct imgdev_ctx *ctx, int fd, char ***names);
void dmctl_names_free(char **names, int count);

/*
 * The live table of name: returns its target count (>= 0) and, when it is
 * at least 1, the first target in *first. -ENOENT or -errno on failure.
 */
int dmctl_table(struct imgdev_ctx *ctx, int fd, const char *name,
		struct dmctl_target *first);
void dmctl_target_clear(struct dmctl_target *t);

#endif
