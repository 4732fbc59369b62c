/*
 * Device-mapper through its ioctls. Each call builds a struct dm_ioctl
 * buffer (header, then payload at data_start); calls that return lists grow
 * the buffer while the kernel sets DM_BUFFER_FULL_FLAG. Note the kernel's
 * two conventions for dm_target_spec.next: on table load it is relative to
 * the previous spec, on status output relative to the start of the data.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "dmctl.h"
#include "internal.h"

#define DM_BUF_INITIAL (16 * 1024)
#define DM_BUF_MAX (64 * 1024 * 1024)
#define DM_ALIGN 8
#define BUSY_RETRY_NS (200 * 1000 * 1000L)

static size_t align_up(size_t n)
{
	return (n + DM_ALIGN - 1) & ~(size_t)(DM_ALIGN - 1);
}

/* A zeroed ioctl buffer of size bytes with the header filled in, or NULL. */
static struct dm_ioctl *dmio_new(size_t size, const char *name, uint32_t flags)
{
	struct dm_ioctl *io = calloc(1, size);

	if (!io)
		return NULL;
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = (uint32_t)size;
	io->data_start = sizeof(*io);
	io->flags = flags;
	if (name)
		snprintf(io->name, sizeof(io->name), "%s", name);
	return io;
}

/*
 * Run cmd for name, growing the buffer while the kernel reports it full.
 * 0 with *out set (caller frees), or -errno (errno of the ioctl).
 */
static int dmio_run(int fd, unsigned long cmd, const char *name, uint32_t flags,
		    struct dm_ioctl **out)
{
	size_t size = DM_BUF_INITIAL;

	for (;;) {
		struct dm_ioctl *io = dmio_new(size, name, flags);

		if (!io)
			return -ENOMEM;
		if (ioctl(fd, cmd, io) < 0) {
			int err = errno;

			free(io);
			return -err;
		}
		if (!(io->flags & DM_BUFFER_FULL_FLAG)) {
			*out = io;
			return 0;
		}
		free(io);
		if (size >= DM_BUF_MAX)
			return -E2BIG;
		size *= 2;
	}
}

static int dm_errmsg(struct imgdev_ctx *ctx, int rc, const char *what, const char *name)
{
	if (rc == -ENXIO)
		return ctx_error(ctx, ENOENT, "%s: no such device-mapper device", name);
	if (rc == -EPERM || rc == -EACCES)
		return ctx_error(ctx, EACCES,
				 "%s: %s: permission denied (device-mapper needs CAP_SYS_ADMIN; run as root)",
				 name, what);
	return ctx_error(ctx, rc, "%s: %s: %s", name, what, strerror(-rc));
}

int dmctl_open(struct imgdev_ctx *ctx, int *fd)
{
	char *path = path_join(ctx->dev_dir, "mapper/control");
	int err;

	if (!path)
		return ctx_error(ctx, ENOMEM, "out of memory");
	*fd = open(path, O_RDWR | O_CLOEXEC);
	err = errno;
	if (*fd >= 0) {
		free(path);
		return 0;
	}
	if (err == ENOENT)
		err = ctx_error(ctx, ENOENT,
				"%s: not found: this kernel has no device-mapper (or %s is not the right /dev)",
				path, ctx->dev_dir);
	else if (err == EACCES || err == EPERM)
		err = ctx_error(ctx, EACCES,
				"%s: permission denied (device-mapper needs CAP_SYS_ADMIN; run as root)",
				path);
	else
		err = ctx_error(ctx, err, "%s: cannot open: %s", path, strerror(err));
	free(path);
	return err;
}

static int dmio_simple(int fd, unsigned long cmd, const char *name, uint32_t flags)
{
	struct dm_ioctl *io = NULL;
	int rc = dmio_run(fd, cmd, name, flags, &io);

	free(io);
	return rc;
}

/* Load a one-target linear table into name's inactive slot. */
static int dmctl_load_linear(int fd, const char *name, uint64_t length, dev_t backing,
			     uint64_t offset)
{
	char params[64];
	struct dm_target_spec *spec;
	struct dm_ioctl *io;
	size_t plen, size;
	int rc = 0;

	plen = (size_t)snprintf(params, sizeof(params), "%u:%u %llu", major(backing),
				minor(backing), (unsigned long long)offset) + 1;
	size = sizeof(*io) + align_up(sizeof(*spec) + plen);
	io = dmio_new(size, name, 0);
	if (!io)
		return -ENOMEM;
	io->target_count = 1;
	spec = (struct dm_target_spec *)((char *)io + io->data_start);
	spec->sector_start = 0;
	spec->length = length;
	spec->next = (uint32_t)align_up(sizeof(*spec) + plen);
	snprintf(spec->target_type, sizeof(spec->target_type), "linear");
	memcpy(spec + 1, params, plen);
	if (ioctl(fd, DM_TABLE_LOAD, io) < 0)
		rc = -errno;
	free(io);
	return rc;
}

static int dmctl_create_device(int fd, const char *name, const char *uuid, dev_t *dev)
{
	struct dm_ioctl *io = dmio_new(sizeof(*io), name, 0);
	int rc = 0;

	if (!io)
		return -ENOMEM;
	snprintf(io->uuid, sizeof(io->uuid), "%s", uuid);
	if (ioctl(fd, DM_DEV_CREATE, io) < 0)
		rc = -errno;
	else
		*dev = (dev_t)io->dev;
	free(io);
	return rc;
}

int dmctl_create_linear(struct imgdev_ctx *ctx, int fd, const char *name,
			const char *uuid, uint64_t length, dev_t backing,
			uint64_t offset, dev_t *dev)
{
	const char *step = "create";
	int rc;

	rc = dmctl_create_device(fd, name, uuid, dev);
	/* The kernel answers EBUSY when the name or the uuid is taken. */
	if (rc == -EEXIST || rc == -EBUSY)
		return ctx_error(ctx, EEXIST,
				 "%s: a device-mapper device with this name (or uuid %s) already exists",
				 name, uuid);
	if (rc < 0)
		return dm_errmsg(ctx, rc, step, name);
	step = "load table";
	rc = dmctl_load_linear(fd, name, length, backing, offset);
	if (rc == 0) {
		step = "resume";
		rc = dmio_simple(fd, DM_DEV_SUSPEND, name, 0);
	}
	if (rc < 0) {
		int undo = dmio_simple(fd, DM_DEV_REMOVE, name, 0);

		dm_errmsg(ctx, rc, step, name);
		if (undo < 0)
			ctx_log(ctx, LOGP_WARNING, "%s: could not remove the half-made device: %s",
				name, strerror(-undo));
		return rc;
	}
	return 0;
}

int dmctl_remove(struct imgdev_ctx *ctx, int fd, const char *name, int tries)
{
	const struct timespec pause = { 0, BUSY_RETRY_NS };
	int rc;

	for (int i = 0;; i++) {
		rc = dmio_simple(fd, DM_DEV_REMOVE, name, 0);
		if (rc != -EBUSY || i + 1 >= tries)
			break;
		ctx_log(ctx, LOGP_DEBUG, "%s: busy, retrying removal (%d/%d)", name, i + 1, tries);
		nanosleep(&pause, NULL);
	}
	if (rc == -EBUSY)
		return ctx_error(ctx, EBUSY, "%s: still in use after %d attempts (open by a process or held by another device)",
				 name, tries);
	if (rc < 0)
		return dm_errmsg(ctx, rc, "remove", name);
	return 0;
}

int dmctl_info(struct imgdev_ctx *ctx, int fd, const char *name, dev_t *dev,
	       char uuid[DMCTL_UUID_MAX])
{
	struct dm_ioctl *io = NULL;
	int rc = dmio_run(fd, DM_DEV_STATUS, name, 0, &io);

	if (rc < 0)
		return dm_errmsg(ctx, rc, "status", name);
	*dev = (dev_t)io->dev;
	snprintf(uuid, DMCTL_UUID_MAX, "%s", io->uuid);
	free(io);
	return 0;
}

void dmctl_names_free(char **names, int count)
{
	if (!names)
		return;
	for (int i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* Append a copy of name to the array; 0 or -ENOMEM. */
static int names_push(char ***names, int *count, const char *name)
{
	char **grown = realloc(*names, sizeof(char *) * (size_t)(*count + 1));

	if (!grown)
		return -ENOMEM;
	*names = grown;
	grown[*count] = strdup(name);
	if (!grown[*count])
		return -ENOMEM;
	(*count)++;
	return 0;
}

int dmctl_list(struct imgdev_ctx *ctx, int fd, char ***names)
{
	struct dm_ioctl *io = NULL;
	char **out = NULL;
	int count = 0;
	int rc = dmio_run(fd, DM_LIST_DEVICES, NULL, 0, &io);

	if (rc < 0)
		return dm_errmsg(ctx, rc, "list", "device-mapper");
	for (uint32_t off = io->data_start;;) {
		struct dm_name_list *nl = (struct dm_name_list *)((char *)io + off);

		if (off + sizeof(*nl) > io->data_size || nl->dev == 0)
			break;
		/* The name must end inside the buffer. */
		if (!memchr(nl->name, '\0', io->data_size - off - sizeof(*nl))) {
			rc = ctx_error(ctx, EPROTO, "device-mapper returned a malformed list");
			goto out;
		}
		rc = names_push(&out, &count, nl->name);
		if (rc < 0) {
			ctx_error(ctx, ENOMEM, "out of memory");
			goto out;
		}
		if (nl->next == 0)
			break;
		off += nl->next;
	}
out:
	free(io);
	if (rc < 0) {
		dmctl_names_free(out, count);
		return rc;
	}
	*names = out;
	return count;
}

void dmctl_target_clear(struct dmctl_target *t)
{
	free(t->params);
	memset(t, 0, sizeof(*t));
}

int dmctl_table(struct imgdev_ctx *ctx, int fd, const char *name,
		struct dmctl_target *first)
{
	struct dm_ioctl *io = NULL;
	struct dm_target_spec *spec;
	size_t room;
	int rc = dmio_run(fd, DM_TABLE_STATUS, name, DM_STATUS_TABLE_FLAG, &io);

	memset(first, 0, sizeof(*first));
	if (rc < 0)
		return dm_errmsg(ctx, rc, "table", name);
	rc = (int)io->target_count;
	if (io->target_count == 0)
		goto out;
	if (io->data_start + sizeof(*spec) > io->data_size) {
		rc = ctx_error(ctx, EPROTO, "%s: device-mapper returned a malformed table", name);
		goto out;
	}
	spec = (struct dm_target_spec *)((char *)io + io->data_start);
	room = io->data_size - io->data_start - sizeof(*spec);
	first->start = spec->sector_start;
	first->length = spec->length;
	snprintf(first->type, sizeof(first->type), "%.*s", (int)sizeof(spec->target_type),
		 spec->target_type);
	first->params = strndup((const char *)(spec + 1), room);
	if (!first->params)
		rc = ctx_error(ctx, ENOMEM, "out of memory");
out:
	free(io);
	return rc;
}
