/*
 * Internal entry points shared between the public operations.
 */
#ifndef IMGDEV_OPS_H
#define IMGDEV_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct imgdev_ctx;
struct bdev;
struct hdr;
struct imgdev_mapping;
struct imgdev_provision_opts;
struct imgdev_provision_result;
struct bytesrc;
struct imgsrc;

/* Seconds on the monotonic clock, for the operations' timings. */
static inline double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Write src onto bd (open O_RDWR | O_EXCL) by the commit protocol
 * (provision_write.c), the payload from data_offset (the layout's: 512 for
 * Virtlet's, 1 MiB for the aligned one), and fill res; 0 or -errno, the device then left
 * marked "writing". received: the hashing source src reads through (a URL,
 * standard input), whose hash is the identity, or NULL. resume_at: 0, or
 * the payload bytes an interrupted write of this image left durable on the
 * device (its record's resume point), which are re-read from there rather
 * than from src (opened at that offset, imgsrc_open_raw_at); the identity
 * is then the payload's, checked against the digest, and -ERESTART says
 * that the copy should start over from the first byte: the whole did not
 * match, or those bytes could not be re-read (the message in ctx). A copy
 * that did not match its digest (-EILSEQ) leaves no resume point.
 * digest: the image hash known before the copy (the caller's, a container
 * image's manifest's), or NULL; with received, what it must hash to.
 */
int provision_write(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t data_offset,
		    struct imgsrc *src, struct bytesrc *received, uint64_t resume_at,
		    const uint8_t *digest, const struct imgdev_provision_opts *opts,
		    struct imgdev_provision_result *res);

/* Read and decode sector 0 of bd into h; 0 or -errno with the message in ctx. */
int bdev_read_header(struct imgdev_ctx *ctx, const struct bdev *bd, struct hdr *h);

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
 * Whether bd can hold an image of image_size bytes from data_offset on (in
 * whole logical blocks); 0 or -ENOSPC.
 */
int check_room(struct imgdev_ctx *ctx, const struct bdev *bd, uint64_t image_size,
	       uint64_t data_offset);

/*
 * -EBUSY naming the loop device when any is attached over bd (imgdev's or
 * another's: any user of the disk); else 0 (ops_loop.c).
 */
int loopmap_check_not_mapped(struct imgdev_ctx *ctx, const struct bdev *bd);

#endif
