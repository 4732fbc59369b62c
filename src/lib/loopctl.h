/*
 * A small client of the kernel's loop-device interface (<linux/loop.h>):
 * attach a backing file or device at an offset with a size limit and a name
 * (LOOP_CONFIGURE, or LOOP_SET_FD + LOOP_SET_STATUS64 on older kernels),
 * read a loop device's state, detach it. Nodes are <dev>/loopN; the list of
 * loop devices comes from <sys>/block.
 */
#ifndef IMGDEV_LOOPCTL_H
#define IMGDEV_LOOPCTL_H

#include <stdint.h>
#include <sys/types.h>

struct imgdev_ctx;

#define LOOPCTL_NAME_MAX 63	/* lo_file_name holds 64 bytes with the NUL */

struct loopctl_info {
	int nr;				/* N of /dev/loopN */
	dev_t dev;			/* the loop device's own number */
	char name[LOOPCTL_NAME_MAX + 1];	/* lo_file_name */
	uint64_t offset;
	uint64_t sizelimit;
	uint64_t sectors;		/* its size, from sysfs */
	dev_t backing_dev;		/* st_dev of the backing file (lo_device) */
	uint64_t backing_ino;		/* lo_inode */
	char backing_file[4096];	/* from sysfs; may end in " (deleted)" */
};

/* What a loop device shows of its backing file or device. */
struct loopctl_place {
	uint64_t offset;		/* from this byte */
	uint64_t sizelimit;		/* at most so many bytes */
	unsigned int block_size;	/* its logical block size; 512 or less: the default */
};

/*
 * Attach backing_fd as a free loop device showing place, named name.
 * Returns 0 with *nr set, or -errno with a message.
 */
int loopctl_attach(struct imgdev_ctx *ctx, int backing_fd, const struct loopctl_place *place,
		   const char *name, int *nr);

/* Detach loop device nr, retrying while busy. 0 or -errno. */
int loopctl_detach(struct imgdev_ctx *ctx, int nr, int tries);

/* State of an attached loop device: 0, -ENXIO when it is not attached, -errno. */
int loopctl_info(struct imgdev_ctx *ctx, int nr, struct loopctl_info *info);

/*
 * The numbers of the attached loop devices (those with a loop/backing_file
 * in sysfs). Returns the count with *nrs malloc'ed, or -errno.
 */
int loopctl_attached(struct imgdev_ctx *ctx, int **nrs);

/* "<dev>/loopN", malloc'ed, or NULL. */
char *loopctl_path(struct imgdev_ctx *ctx, int nr);

#endif
