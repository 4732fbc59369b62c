/*
 * Foreign-signature checks with libblkid (see signatures.h): the first
 * superblock or partition table found is named in the refusal, with its
 * UUID or label and the byte offset of its magic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blkid/blkid.h>

#include "blockdev.h"
#include "internal.h"
#include "signatures.h"

static const char *lookup(blkid_probe pr, const char *name)
{
	const char *value = NULL;

	if (blkid_probe_lookup_value(pr, name, &value, NULL) < 0)
		return NULL;
	return value;
}

/* "an ext4 filesystem (UUID …) at offset 1080" and the like. */
static void describe(blkid_probe pr, char *out, size_t len)
{
	const char *type = lookup(pr, "TYPE"), *pttype = lookup(pr, "PTTYPE");
	const char *usage = lookup(pr, "USAGE"), *uuid = lookup(pr, "UUID");
	const char *label = lookup(pr, "LABEL"), *off = lookup(pr, "SBMAGIC_OFFSET");
	const char *what = "signature";
	char extra[160] = "";

	if (!type && pttype) {
		type = pttype;
		what = "partition table";
		uuid = lookup(pr, "PTUUID");
		off = lookup(pr, "PTMAGIC_OFFSET");
	} else if (usage && strcmp(usage, "filesystem") == 0) {
		what = "filesystem";
	} else if (usage && (strcmp(usage, "raid") == 0 || strcmp(usage, "crypto") == 0)) {
		what = strcmp(usage, "raid") == 0 ? "RAID member" : "encrypted volume";
	}
	if (uuid && label)
		snprintf(extra, sizeof(extra), " (UUID %s, label \"%s\")", uuid, label);
	else if (uuid || label)
		snprintf(extra, sizeof(extra), " (%s %s)", uuid ? "UUID" : "label", uuid ? uuid : label);
	snprintf(out, len, "%s %s %s%s%s%s%s", strchr("aeiouxAEIOUX", (type ? type : "?")[0]) ? "an" : "a",
		 type ? type : "unknown", what, extra, off ? " at offset " : "", off ? off : "",
		 lookup(pr, "SBBADCSUM") ? ", with a bad checksum" : "");
}

static void setup_probe(blkid_probe pr)
{
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE |
					      BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL |
					      BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
}

int sig_refuse_foreign(struct imgdev_ctx *ctx, const struct bdev *bd)
{
	blkid_probe pr = blkid_new_probe();
	char found[512];
	int rc, err;

	if (!pr)
		return ctx_error(ctx, ENOMEM, "out of memory");
	if (blkid_probe_set_device(pr, bd->fd, 0, 0) < 0) {
		blkid_free_probe(pr);
		return ctx_error(ctx, EIO, "%s: cannot probe for existing signatures", bd->path);
	}
	setup_probe(pr);
	errno = 0;
	while ((rc = blkid_do_probe(pr)) == 0) {
		if (lookup(pr, "TYPE") || lookup(pr, "PTTYPE"))
			break;
	}
	err = errno;	/* a failed read inside the probe leaves it set */
	if (rc == 0) {
		describe(pr, found, sizeof(found));
		rc = ctx_error(ctx, ENOTEMPTY, "%s: contains %s; refusing to overwrite it; use --force",
			       bd->path, found);
	} else if (rc < 0) {
		rc = ctx_error(ctx, EIO, "%s: probing for existing signatures failed (%s); without "
			       "knowing what is there, imgdev does not write; use --force to write anyway",
			       bd->path, err ? strerror(err) : "libblkid gave no reason");
	} else {
		rc = 0;
	}
	blkid_free_probe(pr);
	return rc;
}
