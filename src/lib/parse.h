/*
 * Pure parsers for what the kernel hands back as text: a linear target's
 * parameters ("MAJ:MIN OFFSET") and a sysfs uevent file (KEY=VALUE lines).
 * No I/O, so they are unit-tested and fuzzed directly.
 */
#ifndef IMGDEV_PARSE_H
#define IMGDEV_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* "MAJ:MIN OFFSET" exactly; 0 or -EINVAL. */
int parse_linear_params(const char *params, unsigned int *maj, unsigned int *min,
			uint64_t *offset);

/*
 * Find DEVNAME=value in a uevent text of len bytes and copy value to out.
 * 0; -ENOENT when there is no DEVNAME; -EINVAL when the value is empty,
 * too long for out, absolute, or has a ".." component.
 */
int parse_uevent_devname(const char *text, size_t len, char *out, size_t outlen);

#endif
