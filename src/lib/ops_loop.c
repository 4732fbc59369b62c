/*
 * The loop backend (see backend.h): an image mapping as a loop device over
 * the payload (lo_offset = 512 or 1 MiB as the header's layout says,
 * lo_sizelimit = the rest, the backing's logical block size), with a stable
 * symlink <run>/NAME to /dev/loopN. The kernel keeps our mark for it, as the
 * UUID prefix is for device-mapper: lo_file_name is "IMGDEV:NAME" (losetup
 * puts the backing file's path there). A loop device is one of our mappings
 * when it carries the mark, sits where its backing device's or file's
 * header (our magic in sector 0) puts the payload; loop devices of others are never
 * listed nor detached (though any of them makes a disk busy).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backend.h"
#include "blockdev.h"
#include "header.h"
#include "internal.h"
#include "layout.h"
#include "loopctl.h"
#include "mapping.h"
#include "ops.h"

#define DETACH_TRIES 25
#define LOOP_MARK "IMGDEV:"
#define LOOP_MARK_LEN (sizeof(LOOP_MARK) - 1)
#define LOOP_NAME_MAX (LOOPCTL_NAME_MAX - (int)LOOP_MARK_LEN)

/* Whether <run>/NAME is our link to loop nr; *link set to its path (malloc'ed) or NULL. */
static bool link_points_at(struct imgdev_ctx *ctx, const char *name, int nr, char **link)
{
	char *target = loopctl_path(ctx, nr), buf[4096];
	ssize_t n;

	*link = path_join(ctx->run_dir, name);
	n = *link && target ? readlink(*link, buf, sizeof(buf) - 1) : -1;
	if (n > 0)
		buf[n] = '\0';
	n = n > 0 && strcmp(buf, target) == 0;
	free(target);
	return n;
}

/*
 * The mapping name of a loop device we made, else NULL: what follows our
 * mark; or, for one an imgdev before the mark made, lo_file_name itself when
 * <run>/NAME links to it (so an upgrade neither loses nor doubles it).
 */
static const char *loopmap_name(struct imgdev_ctx *ctx, const struct loopctl_info *info)
{
	char *link;
	bool legacy;

	if (strncmp(info->name, LOOP_MARK, LOOP_MARK_LEN) == 0)
		return info->name[LOOP_MARK_LEN] ? info->name + LOOP_MARK_LEN : NULL;
	if (!info->name[0] || strchr(info->name, '/') || strcmp(info->name, ".") == 0 ||
	    strcmp(info->name, "..") == 0)
		return NULL;
	legacy = link_points_at(ctx, info->name, info->nr, &link);
	free(link);
	return legacy ? info->name : NULL;
}

/* Take the run directory's lock, so that name checks and attaches pair up. */
static int run_dir_lock(struct imgdev_ctx *ctx, int *fd)
{
	char *lock = path_join(ctx->run_dir, ".lock");
	int rc = 0;

	if (!lock)
		return ctx_error(ctx, ENOMEM, "out of memory");
	if (mkdir(ctx->run_dir, 0755) < 0 && errno != EEXIST)
		rc = ctx_error(ctx, errno, "%s: cannot create: %s", ctx->run_dir, strerror(errno));
	*fd = rc ? -1 : open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (!rc && *fd < 0)
		rc = ctx_error(ctx, errno, "%s: %s", lock, strerror(errno));
	while (!rc && flock(*fd, LOCK_EX) < 0)
		if (errno != EINTR)
			rc = ctx_error(ctx, errno, "%s: cannot lock: %s", lock, strerror(errno));
	free(lock);
	return rc;
}

/*
 * Whether info is our image mapping: ours (*name set), over a device with
 * our magic (h filled) from where its layout puts the payload. 1, 0, or
 * -ENOMEM.
 */
static int loopmap_is_image(struct imgdev_ctx *ctx, const struct loopctl_info *info,
			    const char **name, struct hdr *h)
{
	int rc;

	*name = mapping_offset_is_layout(info->offset) ? loopmap_name(ctx, info) : NULL;
	if (!*name)
		return 0;
	if (strstr(info->backing_file, " (deleted)")) {
		ctx_log(ctx, LOGP_WARNING, "loop%d (%s): skipped: its backing file was deleted",
			info->nr, info->name);
		return 0;
	}
	rc = mapping_backing_header(ctx, info->backing_file, h);
	if (rc < 0) {
		ctx_log(ctx, LOGP_WARNING, "loop%d (%s): skipped: %s", info->nr, info->name,
			ctx->errmsg);
		return rc == -ENOMEM ? rc : 0;
	}
	return rc == 1 && mapping_offset_fits(h, info->offset);
}

/* A visitor of loop mappings: the device, its mapping name, its header. */
typedef int (*loopmap_fn)(void *arg, const struct loopctl_info *info, const char *name,
			  const struct hdr *h);

/*
 * Visit the image loop mappings: fn(arg, info, name, h) for each; stops
 * early when fn returns non-zero and returns that. 0 when all were visited,
 * or -errno.
 */
static int loopmap_each(struct imgdev_ctx *ctx, loopmap_fn fn, void *arg)
{
	struct loopctl_info info;
	int *nrs = NULL, n, rc = 0;
	const char *name;
	struct hdr h;

	n = loopctl_attached(ctx, &nrs);
	if (n < 0)
		return n;
	for (int i = 0; i < n && rc == 0; i++) {
		if (loopctl_info(ctx, nrs[i], &info) < 0)
			continue; /* detached meanwhile */
		rc = loopmap_is_image(ctx, &info, &name, &h);
		if (rc == 1)
			rc = fn(arg, &info, name, &h);
	}
	free(nrs);
	return rc;
}

struct find_name {
	const char *name;
	struct loopctl_info found;
};

static int match_name(void *arg, const struct loopctl_info *info, const char *name,
		      const struct hdr *h)
{
	struct find_name *f = arg;

	(void)h;
	if (strcmp(name, f->name) != 0)
		return 0;
	f->found = *info;
	return 1;
}

/* The image loop mapping called name: 1 with *info, 0 if none, or -errno. */
static int loopmap_find(struct imgdev_ctx *ctx, const char *name, struct loopctl_info *info)
{
	struct find_name f = { .name = name };
	int rc = loopmap_each(ctx, match_name, &f);

	if (rc == 1)
		*info = f.found;
	return rc;
}

/* Whether the loop is attached over bd (the same inode, or the same device). */
static bool loopmap_backs_onto(const struct loopctl_info *info, const struct bdev *bd)
{
	struct stat st;

	if (fstat(bd->fd, &st) == 0 && info->backing_dev == st.st_dev && info->backing_ino == st.st_ino)
		return true;
	return bd->is_block && stat(info->backing_file, &st) == 0 && S_ISBLK(st.st_mode) &&
	       st.st_rdev == bd->rdev;
}

/* Whether the loop shows bd's payload from data_offset. */
static bool loopmap_shows_payload(const struct loopctl_info *info, const struct bdev *bd,
				  uint64_t data_offset)
{
	return info->offset == data_offset && loopmap_backs_onto(info, bd);
}

struct find_backing {
	const struct bdev *bd;
	struct loopctl_info found;
};

static int match_backing(struct find_backing *f, const struct loopctl_info *info)
{
	if (!loopmap_backs_onto(info, f->bd))
		return 0;
	f->found = *info;
	return 1;
}

int loopmap_check_not_mapped(struct imgdev_ctx *ctx, const struct bdev *bd)
{
	struct find_backing f = { .bd = bd };
	struct loopctl_info info;
	int *nrs = NULL, n, rc = 0;

	/* Every loop device counts here, not only image mappings: any user of the disk. */
	n = loopctl_attached(ctx, &nrs);
	if (n < 0)
		return n;
	for (int i = 0; i < n && rc == 0; i++) {
		if (loopctl_info(ctx, nrs[i], &info) == 0)
			rc = match_backing(&f, &info);
	}
	free(nrs);
	if (rc == 1) {
		const char *name = loopmap_name(ctx, &f.found) ? loopmap_name(ctx, &f.found)
							       : f.found.name;

		return ctx_error(ctx, EBUSY,
				 "%s: device is in use (mapped as loop device %s/loop%d%s%s); refusing to write to it",
				 bd->path, ctx->dev_dir, f.found.nr, name[0] ? ", " : "", name);
	}
	return rc;
}

/* Point <run>/NAME at <dev>/loopN, replacing what was there; 0 or -errno. */
static int link_set(struct imgdev_ctx *ctx, const char *name, int nr, char **link_path)
{
	char *target = loopctl_path(ctx, nr), *link = path_join(ctx->run_dir, name);
	char *tmp = NULL;
	int rc = 0;

	if (!target || !link || asprintf(&tmp, "%s.new", link) < 0) {
		tmp = NULL;
		rc = ctx_error(ctx, ENOMEM, "out of memory");
	}
	if (rc == 0) {
		unlink(tmp);
		if (symlink(target, tmp) < 0 || rename(tmp, link) < 0)
			rc = ctx_error(ctx, errno, "%s: cannot create the link: %s", link,
				       strerror(errno));
	}
	free(target);
	free(tmp);
	if (rc == 0)
		*link_path = link;
	else
		free(link);
	return rc;
}

/* Remove <run>/NAME if it points at loop nr. */
static void link_remove(struct imgdev_ctx *ctx, const char *name, int nr)
{
	char *link;

	if (link_points_at(ctx, name, nr, &link) && unlink(link) < 0 && errno != ENOENT)
		ctx_log(ctx, LOGP_WARNING, "%s: cannot remove: %s", link, strerror(errno));
	free(link);
}

static int loopmap_check_length(struct imgdev_ctx *ctx, const char *name)
{
	if (strlen(name) > LOOP_NAME_MAX)
		return ctx_error(ctx, EINVAL,
				 "%s: a loop mapping name holds at most %d bytes (the kernel's lo_file_name, after the mark \"%s\"); this has %zu",
				 name, LOOP_NAME_MAX, LOOP_MARK, strlen(name));
	return 0;
}

/* Attach bd's payload from data_offset as name, under the run-dir lock; 0 or -errno. */
static int loopmap_attach_locked(struct imgdev_ctx *ctx, const struct bdev *bd,
				 uint64_t data_offset, const char *name, char **mapped_path)
{
	struct loopctl_place place = { .offset = data_offset,
				       .sizelimit = layout_room(bd, data_offset),
				       .block_size = bdev_logical_block_size(bd) };
	char marked[LOOPCTL_NAME_MAX + 1];
	struct loopctl_info existing;
	int fd, nr, rc;

	rc = loopmap_find(ctx, name, &existing);
	if (rc == 1)
		return ctx_error(ctx, EEXIST,
				 "%s: a loop mapping with this name already exists (%s/loop%d)",
				 name, ctx->dev_dir, existing.nr);
	if (rc < 0)
		return rc;
	fd = open(bd->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return ctx_error(ctx, errno, "%s: cannot open: %s", bd->path, strerror(errno));
	if ((size_t)snprintf(marked, sizeof(marked), "%s%s", LOOP_MARK, name) >= sizeof(marked))
		return ctx_error(ctx, EINVAL, "%s: too long for a loop mapping", name);
	rc = loopctl_attach(ctx, fd, &place, marked, &nr);
	close(fd);
	if (rc < 0)
		return rc;
	rc = link_set(ctx, name, nr, mapped_path);
	if (rc < 0 && loopctl_detach(ctx, nr, DETACH_TRIES) < 0)
		ctx_log(ctx, LOGP_WARNING, "loop%d: could not detach after failure", nr);
	if (rc == 0)
		ctx_log(ctx, LOGP_INFO, "%s: mapped %s from byte %llu as loop%d", name, bd->path,
			(unsigned long long)data_offset, nr);
	return rc;
}

static int loopmap_attach(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			  const char *name, char **mapped_path)
{
	int lock = -1, rc = loopmap_check_length(ctx, name);

	if (rc == 0)
		rc = run_dir_lock(ctx, &lock);
	if (rc == 0)
		rc = loopmap_attach_locked(ctx, bd, data_offset, name, mapped_path);
	if (lock >= 0)
		close(lock);
	return rc;
}

static int loopmap_check_name(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			      const char *name)
{
	struct loopctl_info info;
	int rc = loopmap_check_length(ctx, name);

	if (rc == 0)
		rc = loopmap_find(ctx, name, &info);
	if (rc == 1 && !loopmap_shows_payload(&info, bd, data_offset))
		return ctx_error(ctx, EEXIST,
				 "%s: already exists and maps something other than %s; nothing written",
				 name, bd->path);
	return rc < 0 ? rc : 0;
}

static int loopmap_ensure(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
			  const char *name, char **mapped_path)
{
	struct loopctl_info info;
	int rc = loopmap_check_length(ctx, name), lock = -1;

	if (rc == 0)
		rc = run_dir_lock(ctx, &lock);
	if (rc == 0)
		rc = loopmap_find(ctx, name, &info);
	if (rc == 0)
		rc = loopmap_attach_locked(ctx, bd, data_offset, name, mapped_path);
	else if (rc == 1 && !loopmap_shows_payload(&info, bd, data_offset))
		rc = ctx_error(ctx, EEXIST, "%s: already exists and maps something other than %s",
			       name, bd->path);
	else if (rc == 1)
		rc = link_set(ctx, name, info.nr, mapped_path);
	if (lock >= 0)
		close(lock);
	return rc;
}

static int loopmap_detach(struct imgdev_ctx *ctx, const char *name)
{
	struct loopctl_info info;
	int lock = -1, rc = run_dir_lock(ctx, &lock);

	if (rc == 0)
		rc = loopmap_find(ctx, name, &info);
	if (rc == 0)
		rc = ctx_error(ctx, ENOENT, "%s: no such mapping", name);
	if (rc == 1)
		rc = loopctl_detach(ctx, info.nr, DETACH_TRIES);
	if (rc == 0) {
		link_remove(ctx, name, info.nr);
		ctx_log(ctx, LOGP_INFO, "%s: unmapped (loop%d)", name, info.nr);
	}
	if (lock >= 0)
		close(lock);
	return rc;
}

struct list_acc {
	struct imgdev_ctx *ctx;
	struct imgdev_mapping **list;
	int *count;
};

/*
 * The nodes that open loop device info, of those that exist: *path the link
 * <run>/NAME when it leads to it, else <dev>/loopN; *device <dev>/loopN.
 * Both NULL (with a warning) when <dev>/loopN is not there. 0 or -ENOMEM.
 */
static int loopmap_nodes(struct imgdev_ctx *ctx, const struct loopctl_info *info,
			 const char *name, char **path, char **device)
{
	char *link = NULL, *node = loopctl_path(ctx, info->nr);
	int rc;

	if (!link_points_at(ctx, name, info->nr, &link)) {
		free(link);
		link = NULL;
	}
	if (!node) {
		free(link);
		*path = *device = NULL;
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	rc = mapping_pick_nodes(ctx, link, node, info->dev, path, device);
	if (rc == 0 && !*path)
		ctx_log(ctx, LOGP_WARNING, "%s: no device node for loop%d under %s", name,
			info->nr, ctx->dev_dir);
	return rc;
}

static int list_add(void *arg, const struct loopctl_info *info, const char *name,
		    const struct hdr *h)
{
	struct list_acc *a = arg;
	struct imgdev_mapping *grown;
	char *path, *device;
	struct stat st;
	int rc = loopmap_nodes(a->ctx, info, name, &path, &device);
	struct mapping_desc d = { .name = name,
				  .backend = IMGDEV_BACKEND_LOOP,
				  .path = path,
				  .device = device,
				  .backing = info->backing_file,
				  .sectors = info->sectors,
				  .image_hash = h->image_hash };

	if (rc < 0)
		return rc;
	if (stat(info->backing_file, &st) == 0 && S_ISBLK(st.st_mode))
		d.backing_dev = st.st_rdev;
	grown = realloc(*a->list, sizeof(*grown) * (size_t)(*a->count + 1));
	rc = grown ? 0 : -ENOMEM;
	if (grown) {
		*a->list = grown;
		rc = mapping_set(a->ctx, &grown[*a->count], &d);
	}
	if (rc == 1)
		(*a->count)++;
	free(path);
	free(device);
	return rc == 1 ? 0 : ctx_error(a->ctx, ENOMEM, "out of memory");
}

static int loopmap_list(struct imgdev_ctx *ctx, struct imgdev_mapping **list, int *count)
{
	struct list_acc a = { .ctx = ctx, .list = list, .count = count };

	return loopmap_each(ctx, list_add, &a);
}

/* A loop device maps a file as well as a block device. */
static int loopmap_check_target(struct imgdev_ctx *ctx, const struct bdev *bd)
{
	(void)ctx;
	(void)bd;
	return 0;
}

const struct map_backend map_backend_loop = {
	.id = IMGDEV_BACKEND_LOOP,
	.name = "loop",
	.check_target = loopmap_check_target,
	.check_name = loopmap_check_name,
	.map = loopmap_attach,
	.map_ensure = loopmap_ensure,
	.unmap = loopmap_detach,
	.list = loopmap_list,
};
