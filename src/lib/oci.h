/*
 * Container images (OCI image spec, Docker schema 2): the documents a
 * registry or an OCI layout serves, parsed into what imgdev needs of them
 * (oci_manifest.c). A descriptor names a blob by digest and size; an image
 * index (or Docker manifest list) holds descriptors of manifests, one per
 * platform; a manifest holds the config's descriptor and the layers', in
 * order, lowest first. Digests are checked here too: whatever is fetched by
 * digest must hash to it. Only SHA-256 digests are taken.
 */
#ifndef IMGDEV_OCI_H
#define IMGDEV_OCI_H

#include <stddef.h>
#include <stdint.h>

struct imgdev_ctx;

#define OCI_DIGEST_MAX 72 /* "sha256:" + 64 hex digits + NUL, rounded up */

struct oci_descriptor {
	char media_type[128];
	char digest[OCI_DIGEST_MAX]; /* "sha256:" and 64 lowercase hex digits */
	uint64_t size;
	/* An index entry's platform ("" when it has none or is not an index entry). */
	char os[32], arch[32], variant[32];
	/* Its org.opencontainers.image.ref.name annotation (a tag), or "". */
	char ref_name[256];
};

struct oci_manifest {
	char media_type[128]; /* as the document says, or "" (OCI lets it out) */
	struct oci_descriptor config;
	struct oci_descriptor *layers; /* lowest first */
	size_t n_layers;
};

enum oci_kind {
	OCI_KIND_UNKNOWN,
	OCI_KIND_INDEX,    /* OCI image index, Docker manifest list */
	OCI_KIND_MANIFEST, /* OCI image manifest, Docker schema 2 manifest */
};

enum oci_layer_compression {
	OCI_LAYER_UNKNOWN,
	OCI_LAYER_TAR,
	OCI_LAYER_GZIP,
	OCI_LAYER_ZSTD,
};

/* The media types a client accepts for a manifest, for an Accept header. */
extern const char OCI_MANIFEST_ACCEPT[];

/* What a manifest media type names; OCI_KIND_UNKNOWN for anything else. */
enum oci_kind oci_media_kind(const char *media_type);
/*
 * How a layer of this media type is compressed (the OCI layer types,
 * non-distributable ones too, and Docker's gzip rootfs diff); unknown else.
 */
enum oci_layer_compression oci_layer_compression(const char *media_type);

/*
 * Which kind of document json is, by its mediaType or, without one, by
 * what it holds (manifests: an index; layers: a manifest). 0 with *kind
 * set, or -EBADMSG (not JSON, not a schema 2 document) or -ENOTSUP (Docker
 * schema 1) with the message in ctx.
 */
int oci_document_kind(struct imgdev_ctx *ctx, const char *json, size_t len, enum oci_kind *kind);
/*
 * An image index or manifest list: its entries into *out (malloc'd, *n of
 * them). 0, or -EBADMSG (a field missing or malformed, named), -ENOTSUP
 * (a digest not SHA-256) with the message in ctx.
 */
int oci_parse_index(struct imgdev_ctx *ctx, const char *json, size_t len,
		    struct oci_descriptor **out, size_t *n);
/*
 * An image manifest: config and layers into *m (free with
 * oci_manifest_free). 0, or -EBADMSG (malformed, or no layers), -ENOTSUP
 * (schema 1, a digest not SHA-256) with the message in ctx.
 */
int oci_parse_manifest(struct imgdev_ctx *ctx, const char *json, size_t len, struct oci_manifest *m);
void oci_manifest_free(struct oci_manifest *m);

/*
 * The host's platform as an index names it: "linux/amd64", "linux/arm64",
 * ...; NULL on an architecture imgdev does not know the name of.
 */
const char *oci_host_platform(void);
/*
 * The entry of an index for platform ("os/arch" or "os/arch/variant"; NULL:
 * the host's) into *index. Without a variant asked, an entry without one
 * is preferred, else the first. 0, or -ENOENT with a message listing the
 * platforms the index has, or -EINVAL for a malformed platform.
 */
int oci_pick_platform(struct imgdev_ctx *ctx, const struct oci_descriptor *entries, size_t n,
		      const char *platform, size_t *index);

/*
 * An OCI layout's oci-layout file: 0 when it says imageLayoutVersion
 * 1.0.0, else -ENOMEDIUM with the message in ctx.
 */
int oci_check_layout_file(struct imgdev_ctx *ctx, const char *json, size_t len);

/* Whether digest is "sha256:" and 64 lowercase hex digits. */
int oci_digest_valid(const char *digest);
/* "os/arch" or "os/arch/variant" of an index entry into buf. */
void oci_platform_name(const struct oci_descriptor *e, char *buf, size_t cap);
/* The digest of bytes, "sha256:" and 64 lowercase hex digits. 0 or -ENOMEM. */
int oci_digest_of(const void *bytes, size_t len, char digest[OCI_DIGEST_MAX]);
/*
 * Whether got (a digest computed) is want: 0, or -EILSEQ with a message
 * naming what, the digest expected and the one found.
 */
int oci_expect_digest(struct imgdev_ctx *ctx, const char *got, const char *want, const char *what);
/*
 * Whether bytes hash to digest: 0, or -EILSEQ with a message naming what
 * ("manifest sha256:..."), the digest expected and the one found.
 */
int oci_check_digest(struct imgdev_ctx *ctx, const void *bytes, size_t len, const char *digest,
		     const char *what);

/*
 * An OCI image layout on local disk (oci_layout.c), named "DIR" or
 * "DIR:TAG" (split at the last colon when what follows holds no '/').
 * The manifest or index the tag names (without a tag, the only one
 * index.json lists) into *top, the directory into *dir (malloc'd). 0, or
 * -ENOMEDIUM (no oci-layout file of version 1.0.0), -ENOENT (no such tag:
 * the message lists those there are; no tag and not exactly one entry),
 * -EFBIG, -EBADMSG with the message in ctx.
 */
int oci_layout_resolve(struct imgdev_ctx *ctx, const char *spec, char **dir,
		       struct oci_descriptor *top);
/* The file of a blob: DIR/blobs/sha256/HEX (malloc'd). 0, or -EINVAL for a bad digest. */
int oci_layout_blob_path(struct imgdev_ctx *ctx, const char *dir, const char *digest, char **path);
/*
 * A small blob (an index, a manifest, a config) read whole into *bytes
 * (malloc'd, NUL-terminated, *len bytes): at most max bytes, its size the
 * descriptor's, its digest checked. 0, or -EFBIG, -EILSEQ (not its size
 * or its digest), -errno of the file with the message in ctx.
 */
int oci_layout_read_blob(struct imgdev_ctx *ctx, const char *dir, const struct oci_descriptor *d,
			 size_t max, char **bytes, size_t *len);

#endif
