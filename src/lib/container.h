/*
 * Container images as provisioning sees them: a name (oci:DIR[:TAG], an
 * OCI image layout; docker://REGISTRY/REPOSITORY[:TAG|@DIGEST], a
 * registry) resolved to its platform's manifest, whose digest is the
 * image's identity, known before any layer is read (container.c); then
 * the disk inside the layers as a byte source, every layer checked against
 * its descriptor as it is read (container_disk.c).
 */
#ifndef IMGDEV_CONTAINER_H
#define IMGDEV_CONTAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "imgdev.h"
#include "oci.h"
#include "tar_disk.h"

struct bytesrc;
struct imgdev_ctx;
struct registry;

struct container_image {
	char *name;		       /* as given, for messages */
	char *layout_dir;	       /* oci: the layout's directory; else NULL */
	struct registry *reg;	       /* docker://: the registry session; else NULL */
	struct oci_descriptor manifest; /* the platform's manifest */
	/* The image's identity: the manifest's digest (with a disk path asked, see container.c) */
	uint8_t digest[IMGDEV_HASH_SIZE];
	char platform[100];	       /* chosen from an index ("linux/amd64"), or "" */
	struct oci_manifest m;
};

/* Whether image names a container image (oci:, docker://). */
bool container_names(const char *image);

/*
 * Resolve image to its platform's manifest (ctx's container options: the
 * platform). Reads only the documents (index, manifest), each checked
 * against the digest that names it. 0, or -errno with the message in ctx:
 * -ENOMEDIUM (no such image, tag or platform; not a layout; a malformed
 * document), -ENOTSUP (Docker schema 1, a layer type imgdev does not
 * read), -EILSEQ (a document that does not hash to its digest), -EACCES
 * and -EREMOTEIO (the registry's).
 */
int container_resolve(struct imgdev_ctx *ctx, const char *image, struct container_image **ci);

/*
 * The disk inside ci's layers (the one regular file under disk/, or ctx's
 * disk_path) as a stream source named like the image: read and peek, size
 * the entry's. Every layer blob is read to its end and must have its
 * descriptor's size and digest (-EILSEQ, with both digests in the message);
 * check_unchanged reads whatever the copy left unread, so that it is known
 * before the commit. ci must outlive the source. 0 or -errno with the
 * message in ctx (-ENOMEDIUM for no disk, two disks, a layer that is not a
 * tar).
 */
int container_open_disk(struct imgdev_ctx *ctx, struct container_image *ci, struct bytesrc **disk);

/* What the disk source found (tar_disk_info); the layer's index 0 is the lowest. */
void container_disk_info(const struct bytesrc *disk, struct tar_disk_info *info);

void container_free(struct container_image *ci);

#endif
