/*
 * The two on-disk layouts (docs/FORMAT.md): Virtlet's, header version 1
 * with the payload from byte 512, and the aligned one, header version 2
 * with the payload from byte 1 MiB. Which one a provision writes, which
 * one a device holds, and how much room a layout leaves for a payload.
 */
#ifndef IMGDEV_LAYOUT_H
#define IMGDEV_LAYOUT_H

#include <stdint.h>

#include "imgdev.h"

struct bdev;
struct hdr;
struct imgdev_ctx;

/* The header version of a layout (AUTO: none, 0). */
uint16_t layout_version(enum imgdev_layout layout);
/* The layout of a header version this build knows (else AUTO). */
enum imgdev_layout layout_of_version(uint16_t version);

/*
 * The layout a provision of bd writes when asked for want: AUTO is
 * Virtlet's on a device with 512-byte logical sectors, the aligned one on
 * a larger sector size. Virtlet's asked for on such a device: -EMEDIUMTYPE
 * and why. 0 with *out set, or -errno.
 */
int layout_choose(struct imgdev_ctx *ctx, const struct bdev *bd, enum imgdev_layout want,
		  enum imgdev_layout *out);

/*
 * Whether a device can hold a payload in the layout of header version
 * `version`: Virtlet's only on 512-byte logical sectors.
 */
bool layout_fits_device(const struct bdev *bd, uint16_t version);

/*
 * The layout of the payload a mapping of bd is to show, by its sector 0:
 * its header's version, or Virtlet's when there is no header (as Virtlet
 * maps after writing its own). -EPROTO for a version this build does not
 * know, -EMEDIUMTYPE for a payload not on a logical block (Virtlet's layout
 * on 4096-byte sectors). 0 with *data_offset set, or -errno.
 */
int layout_of_device(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t *data_offset);

/*
 * Whether a payload at data_offset of bd starts on a logical block (so it
 * can be mapped); 0, or -EMEDIUMTYPE and why.
 */
int layout_check_fits(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset);

/*
 * Bytes of bd from data_offset on in whole logical blocks: the most a
 * mapping shows (0 when the device ends before).
 */
uint64_t layout_room(const struct bdev *bd, uint64_t data_offset);

/* n rounded up to bd's logical block size. */
uint64_t layout_round_up(const struct bdev *bd, uint64_t n);

#endif
