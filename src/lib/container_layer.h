/*
 * One layer blob of a container image as the disk reader reads it
 * (container_layer.c): a stream opened on its first read, every byte
 * hashed, checked at its end against the layer's descriptor (size and
 * digest: -EILSEQ for another size or digest, given by every read after). Ranges may be allowed for the layer a qcow2 disk is read
 * from at offsets: it then skips, and reads at offsets.
 */
#ifndef IMGDEV_CONTAINER_LAYER_H
#define IMGDEV_CONTAINER_LAYER_H

#include <stddef.h>
#include <stdint.h>

struct bytesrc;
struct container_image;
struct imgdev_ctx;

/* A source for layer i of ci's manifest (ci outlives it), not opened yet. 0 or -ENOMEM. */
int container_layer_new(struct imgdev_ctx *ctx, struct container_image *ci, size_t i,
			struct bytesrc **out);
/*
 * tar_disk's skip (tar_layer_skip_fn): once ranges are allowed, passes n
 * bytes (at most what is left) and reads at offsets from then on; else 0.
 */
int64_t container_layer_skip(struct bytesrc *bs, int64_t n);
/*
 * A layer that was opened, read to its end (a failure of the tar reader
 * may hide a blob that is not its digest): 0, or its error (-EILSEQ with
 * the message in bs->msg); 0 at once for one never opened.
 */
int container_layer_drain(struct bytesrc *bs);
/* From now on skip may pass over bytes (read at offsets elsewhere, and hashed there). */
void container_layer_allow_ranges(struct bytesrc *bs);
/* The hashing source over the blob (with pread when the blob has it), or NULL before the first read. */
struct bytesrc *container_layer_blob(const struct bytesrc *bs);

#endif
