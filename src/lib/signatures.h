/*
 * Foreign signatures: before imgdev writes to a device that carries no
 * image header, libblkid looks for filesystems, RAID or crypto superblocks
 * and partition tables (bad checksums included), so that a wrong device
 * path never costs someone their data.
 */
#ifndef IMGDEV_SIGNATURES_H
#define IMGDEV_SIGNATURES_H

struct imgdev_ctx;
struct bdev;

/*
 * Probe bd. Returns 0 when nothing is found; -ENOTEMPTY with a message naming
 * what was found and where ("…; refusing to overwrite it; use --force");
 * or another -errno when the probe itself failed.
 */
int sig_refuse_foreign(struct imgdev_ctx *ctx, const struct bdev *bd);

#endif
