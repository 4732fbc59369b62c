/*
 * A container image's name resolved to its platform's manifest
 * (container.h): the top document (what the tag or digest names) fetched
 * from an OCI layout or a registry, an index narrowed to the platform's
 * entry, whose manifest is fetched in turn; every document checked against
 * the digest and size that name it. No layer is read here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "internal.h"
#include "oci.h"
#include "registry.h"
#include "sha256.h"

#define DOCUMENT_MAX (4u << 20) /* an index or a manifest: a few KiB in practice */

bool container_names(const char *image)
{
	return strncmp(image, "oci:", 4) == 0 || registry_names(image);
}

/*
 * What a document's own failure means to the caller: the image is not
 * there or not one imgdev can read (-ENOMEDIUM) for no such tag, file or
 * platform, a malformed document, one too large; the rest (a digest, a
 * read error) as they are. Applied where the documents are read and parsed
 * only, not to the registry's answers, which say their own.
 */
static int document_errno(int rc)
{
	return rc == -ENOENT || rc == -EBADMSG || rc == -EFBIG ? -ENOMEDIUM : rc;
}

/*
 * From the registry: the manifest or index d names (NULL: the one the
 * reference names, its digest and size into *d_out), checked against d's
 * digest (by the registry client) and size. 0 or -errno in ctx.
 */
static int fetch_from_registry(struct imgdev_ctx *ctx, struct container_image *ci,
			       const struct oci_descriptor *d, char **bytes, size_t *len,
			       struct oci_descriptor *d_out)
{
	struct registry_ref ref;
	char digest[OCI_DIGEST_MAX];
	int rc = 0;

	if (!d && ctx->fetch.header_file)
		ctx_log(ctx, LOGP_WARNING,
			"%s: the header file is not sent to registries (credentials: --auth-file)",
			ci->name);
	if (!d) {
		rc = registry_ref_parse(ctx, ci->name, &ref);
		if (rc == 0)
			rc = registry_open(ctx, &ref, ctx->container.auth_file, &ci->reg);
	}
	if (rc == 0)
		rc = registry_get_manifest(ctx, ci->reg, d ? d->digest : ref.digest[0] ? ref.digest : ref.tag,
					   bytes, len, digest);
	if (rc == 0 && d && *len != d->size)
		rc = ctx_error(ctx, EILSEQ, "%s: manifest %s: %zu bytes, the index says %llu",
			       ci->name, d->digest, *len, (unsigned long long)d->size);
	if (rc == 0 && d_out) {
		*d_out = d ? *d : (struct oci_descriptor){ .size = *len };
		snprintf(d_out->digest, sizeof(d_out->digest), "%s", digest);
	}
	if (rc < 0 && *bytes) {
		free(*bytes);
		*bytes = NULL;
	}
	return rc;
}

/*
 * The document d names (NULL: the one the image's name names, into *d_out)
 * into *bytes (NUL-terminated, *len bytes), checked against d's digest and
 * size. 0 or -errno with the message in ctx.
 */
static int fetch_document(struct imgdev_ctx *ctx, struct container_image *ci,
			  const struct oci_descriptor *d, char **bytes, size_t *len,
			  struct oci_descriptor *d_out)
{
	struct oci_descriptor top;
	int rc = 0;

	*bytes = NULL;
	if (registry_names(ci->name))
		return fetch_from_registry(ctx, ci, d, bytes, len, d_out);
	if (!d) {
		rc = oci_layout_resolve(ctx, ci->name + 4, &ci->layout_dir, &top);
		d = &top;
	}
	if (rc == 0)
		rc = oci_layout_read_blob(ctx, ci->layout_dir, d, DOCUMENT_MAX, bytes, len);
	if (rc == 0 && d_out)
		*d_out = *d;
	return document_errno(rc);
}

/* An index's bytes: its entry for the platform asked (or the host's) into *entry. */
static int pick_from_index(struct imgdev_ctx *ctx, struct container_image *ci, const char *json,
			   size_t len, struct oci_descriptor *entry)
{
	struct oci_descriptor *e = NULL;
	size_t n = 0, i;
	int rc = oci_parse_index(ctx, json, len, &e, &n);

	if (rc == 0)
		rc = oci_pick_platform(ctx, e, n, ctx->container.platform, &i);
	if (rc == 0) {
		*entry = e[i];
		oci_platform_name(entry, ci->platform, sizeof(ci->platform));
	}
	free(e);
	if (rc < 0)
		return ctx_error(ctx, -rc, "%s: %s", ci->name, imgdev_ctx_last_error(ctx));
	return 0;
}

/* Whether every layer is of a type the disk reader takes. 0 or -ENOTSUP. */
static int check_layer_types(struct imgdev_ctx *ctx, const struct container_image *ci)
{
	for (size_t i = 0; i < ci->m.n_layers; i++)
		if (oci_layer_compression(ci->m.layers[i].media_type) == OCI_LAYER_UNKNOWN)
			return ctx_error(ctx, ENOTSUP,
					 "%s: layer %zu is of type \"%s\", not a tar, tar+gzip or "
					 "tar+zstd layer",
					 ci->name, i + 1, ci->m.layers[i].media_type);
	return 0;
}

/*
 * The image's identity: the manifest's digest; with a disk path asked for
 * (an image may hold several disks), the SHA-256 of the text "DIGEST PATH"
 * (the manifest's digest, a space, the path normalised: "disk/NAME"), so
 * that a device holding one of its disks never matches another. 0 or -errno.
 */
static int identity_of(struct imgdev_ctx *ctx, struct container_image *ci)
{
	const char *path = ctx->container.disk_path;
	char norm[4096], text[OCI_DIGEST_MAX + sizeof(norm)];
	int len;

	if (!path)
		return imgdev_parse_hash(ctx, ci->manifest.digest, ci->digest);
	if (!tar_disk_norm_path(path, norm, sizeof(norm)) || !norm[0])
		return ctx_error(ctx, EINVAL, "--disk-path %s: not a path a disk can have", path);
	len = snprintf(text, sizeof(text), "%s %s", ci->manifest.digest, norm);
	if (sha256_digest(text, (size_t)len, ci->digest) < 0)
		return ctx_error(ctx, ENOMEM, "out of memory");
	return 0;
}

/* The top document, and below an index the platform's manifest, parsed into ci. */
static int resolve(struct imgdev_ctx *ctx, struct container_image *ci)
{
	struct oci_descriptor entry;
	enum oci_kind kind = OCI_KIND_UNKNOWN;
	char *json = NULL;
	size_t len = 0;
	int rc = fetch_document(ctx, ci, NULL, &json, &len, &ci->manifest);

	if (rc == 0)
		rc = document_errno(oci_document_kind(ctx, json, len, &kind));
	if (rc == 0 && kind == OCI_KIND_INDEX) {
		rc = document_errno(pick_from_index(ctx, ci, json, len, &entry));
		free(json);
		json = NULL;
		if (rc == 0)
			rc = fetch_document(ctx, ci, &entry, &json, &len, &ci->manifest);
		if (rc == 0)
			rc = document_errno(oci_document_kind(ctx, json, len, &kind));
		if (rc == 0 && kind != OCI_KIND_MANIFEST)
			rc = ctx_error(ctx, ENOTSUP, "%s: the index's entry for %s is not a manifest",
				       ci->name, ci->platform);
	}
	if (rc == 0)
		rc = document_errno(oci_parse_manifest(ctx, json, len, &ci->m));
	free(json);
	if (rc == 0)
		rc = check_layer_types(ctx, ci);
	if (rc == 0)
		rc = identity_of(ctx, ci);
	return rc;
}

int container_resolve(struct imgdev_ctx *ctx, const char *image, struct container_image **out)
{
	struct container_image *ci = calloc(1, sizeof(*ci));
	int rc;

	*out = NULL;
	if (!ci || !(ci->name = strdup(image))) {
		free(ci);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	rc = resolve(ctx, ci);
	if (rc < 0) {
		container_free(ci);
		return rc;
	}
	ctx_log(ctx, LOGP_INFO, "%s: manifest %s%s%s, %zu layer%s", image, ci->manifest.digest,
		ci->platform[0] ? " for " : "", ci->platform, ci->m.n_layers,
		ci->m.n_layers == 1 ? "" : "s");
	*out = ci;
	return 0;
}

void container_free(struct container_image *ci)
{
	if (!ci)
		return;
	oci_manifest_free(&ci->m);
	registry_close(ci->reg);
	free(ci->layout_dir);
	free(ci->name);
	free(ci);
}
