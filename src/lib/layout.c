/*
 * The on-disk layouts (layout.h): the choice of one for a provision, the
 * one a device's header says, and the room each leaves.
 */
#include <errno.h>
#include <stdbool.h>

#include "blockdev.h"
#include "header.h"
#include "internal.h"
#include "layout.h"
#include "ops.h"

uint16_t layout_version(enum imgdev_layout layout)
{
	switch (layout) {
	case IMGDEV_LAYOUT_VIRTLET: return HDR_VERSION_VIRTLET;
	case IMGDEV_LAYOUT_ALIGNED: return HDR_VERSION_ALIGNED;
	case IMGDEV_LAYOUT_AUTO: break;
	}
	return 0;
}

enum imgdev_layout layout_of_version(uint16_t version)
{
	switch (version) {
	case HDR_VERSION_VIRTLET: return IMGDEV_LAYOUT_VIRTLET;
	case HDR_VERSION_ALIGNED: return IMGDEV_LAYOUT_ALIGNED;
	}
	return IMGDEV_LAYOUT_AUTO;
}

const char *imgdev_layout_name(enum imgdev_layout layout)
{
	switch (layout) {
	case IMGDEV_LAYOUT_AUTO: return "auto";
	case IMGDEV_LAYOUT_VIRTLET: return "virtlet";
	case IMGDEV_LAYOUT_ALIGNED: return "aligned";
	}
	return NULL;
}

bool layout_fits_device(const struct bdev *bd, uint16_t version)
{
	uint64_t off = hdr_layout_offset(version);

	return off != 0 && off % bdev_logical_block_size(bd) == 0;
}

int layout_choose(struct imgdev_ctx *ctx, const struct bdev *bd, enum imgdev_layout want,
		  enum imgdev_layout *out)
{
	unsigned int lbs = bdev_logical_block_size(bd);

	if (want != IMGDEV_LAYOUT_AUTO && want != IMGDEV_LAYOUT_VIRTLET &&
	    want != IMGDEV_LAYOUT_ALIGNED)
		return ctx_error(ctx, EINVAL, "unknown layout %d", (int)want);
	if (want == IMGDEV_LAYOUT_AUTO)
		want = lbs == SECTOR_SIZE ? IMGDEV_LAYOUT_VIRTLET : IMGDEV_LAYOUT_ALIGNED;
	if (!layout_fits_device(bd, layout_version(want)))
		return ctx_error(ctx, EMEDIUMTYPE,
				 "%s has %u-byte logical sectors: Virtlet's layout (header version 1) puts the payload at byte 512, inside the first sector, where device-mapper cannot map it nor O_DIRECT write it; use the aligned layout (--layout aligned, the default on such a device)",
				 bd->path, lbs);
	*out = want;
	return 0;
}

int layout_of_device(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t *data_offset)
{
	struct hdr h;
	int rc = bdev_read_header(ctx, bd, &h);

	if (rc < 0)
		return rc;
	if (!hdr_has_magic(&h)) {
		*data_offset = SECTOR_SIZE;
		return layout_check_fits(ctx, bd, *data_offset);
	}
	*data_offset = hdr_data_offset(&h);
	if (*data_offset == 0)
		return ctx_error(ctx, EPROTO,
				 "%s: header has metadata version %u, newer than this build understands (%d): where its payload starts is not known",
				 bd->path, h.version, HDR_VERSION_MAX);
	return layout_check_fits(ctx, bd, *data_offset);
}

int layout_check_fits(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset)
{
	unsigned int lbs = bdev_logical_block_size(bd);

	if (data_offset % lbs != 0)
		return ctx_error(ctx, EMEDIUMTYPE,
				 "%s: its payload starts at byte %llu (Virtlet's layout), inside the first of its %u-byte logical sectors: it cannot be mapped there; provision it again in the aligned layout",
				 bd->path, (unsigned long long)data_offset, lbs);
	return 0;
}

uint64_t layout_room(const struct bdev *bd, uint64_t data_offset)
{
	uint64_t lbs = bdev_logical_block_size(bd);

	if (bd->size <= data_offset)
		return 0;
	return (bd->size - data_offset) / lbs * lbs;
}

uint64_t layout_round_up(const struct bdev *bd, uint64_t n)
{
	uint64_t lbs = bdev_logical_block_size(bd);

	return (n + lbs - 1) / lbs * lbs;
}
