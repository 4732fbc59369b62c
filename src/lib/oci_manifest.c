/*
 * Parsing of container image documents (oci.h): the media types, an image
 * index or manifest list into its entries, a manifest into its config and
 * layers, the choice of a platform's entry, and the digest checks. First
 * the JSON helpers (a field of a type, a descriptor), then each document.
 * Every refusal says which field of which document and why.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <json-c/json.h>

#include "internal.h"
#include "oci.h"
#include "sha256.h"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_V1 "application/vnd.docker.distribution.manifest.v1"

const char OCI_MANIFEST_ACCEPT[] =
	MT_OCI_MANIFEST ", " MT_OCI_INDEX ", " MT_DOCKER_MANIFEST ", " MT_DOCKER_LIST;

enum oci_kind oci_media_kind(const char *mt)
{
	if (strcmp(mt, MT_OCI_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0)
		return OCI_KIND_INDEX;
	if (strcmp(mt, MT_OCI_MANIFEST) == 0 || strcmp(mt, MT_DOCKER_MANIFEST) == 0)
		return OCI_KIND_MANIFEST;
	return OCI_KIND_UNKNOWN;
}

enum oci_layer_compression oci_layer_compression(const char *mt)
{
	static const struct {
		const char *type;
		enum oci_layer_compression c;
	} known[] = {
		{ "application/vnd.oci.image.layer.v1.tar", OCI_LAYER_TAR },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", OCI_LAYER_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd", OCI_LAYER_ZSTD },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar", OCI_LAYER_TAR },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", OCI_LAYER_GZIP },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", OCI_LAYER_ZSTD },
		{ "application/vnd.docker.image.rootfs.diff.tar", OCI_LAYER_TAR },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", OCI_LAYER_GZIP },
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", OCI_LAYER_GZIP },
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(mt, known[i].type) == 0)
			return known[i].c;
	return OCI_LAYER_UNKNOWN;
}

/* json parsed whole into *root: 0 or -EBADMSG naming what. */
static int parse_json(struct imgdev_ctx *ctx, const char *json, size_t len, const char *what,
		      json_object **root)
{
	json_tokener *tok = json_tokener_new();
	enum json_tokener_error e;

	if (!tok)
		return ctx_error(ctx, ENOMEM, "%s: out of memory", what);
	*root = len <= INT32_MAX ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
	e = json_tokener_get_error(tok);
	if (*root && (e != json_tokener_success || json_tokener_get_parse_end(tok) < len)) {
		json_object_put(*root);
		*root = NULL;
		e = e == json_tokener_success ? json_tokener_error_parse_unexpected : e;
	}
	json_tokener_free(tok);
	if (!*root)
		return ctx_error(ctx, EBADMSG, "%s is not JSON: %s", what,
				 len > INT32_MAX ? "too large" : json_tokener_error_desc(e));
	if (!json_object_is_type(*root, json_type_object)) {
		json_object_put(*root);
		return ctx_error(ctx, EBADMSG, "%s is not a JSON object", what);
	}
	return 0;
}

/* obj's field key of type t into *out, or NULL when absent. 0, or -EBADMSG when of another type. */
static int field(struct imgdev_ctx *ctx, json_object *obj, const char *key, json_type t,
		 const char *what, json_object **out)
{
	*out = NULL;
	if (!json_object_object_get_ex(obj, key, out) || json_object_is_type(*out, json_type_null)) {
		*out = NULL;
		return 0;
	}
	if (!json_object_is_type(*out, t))
		return ctx_error(ctx, EBADMSG, "%s: field \"%s\" is not a %s", what, key,
				 json_type_to_name(t));
	return 0;
}

/* A string field copied into buf (size cap); "" when absent unless required. 0 or -EBADMSG. */
static int string_field(struct imgdev_ctx *ctx, json_object *obj, const char *key, bool required,
			const char *what, char *buf, size_t cap)
{
	json_object *v;
	int rc = field(ctx, obj, key, json_type_string, what, &v);

	if (rc < 0)
		return rc;
	buf[0] = '\0';
	if (!v)
		return required ? ctx_error(ctx, EBADMSG, "%s: no \"%s\"", what, key) : 0;
	if ((size_t)json_object_get_string_len(v) >= cap)
		return ctx_error(ctx, EBADMSG, "%s: \"%s\" is longer than %zu bytes", what, key,
				 cap - 1);
	memcpy(buf, json_object_get_string(v), (size_t)json_object_get_string_len(v) + 1);
	if (strlen(buf) != (size_t)json_object_get_string_len(v))
		return ctx_error(ctx, EBADMSG, "%s: \"%s\" holds a NUL byte", what, key);
	return 0;
}

int oci_digest_valid(const char *d)
{
	if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return 0;
	for (d += 7; *d; d++)
		if (!((*d >= '0' && *d <= '9') || (*d >= 'a' && *d <= 'f')))
			return 0;
	return 1;
}

/* A digest: 0, -ENOTSUP for another algorithm, -EBADMSG for a malformed one. */
static int check_digest_syntax(struct imgdev_ctx *ctx, const char *d, const char *what)
{
	const char *colon = strchr(d, ':');

	if (oci_digest_valid(d))
		return 0;
	if (colon && colon != d && strncmp(d, "sha256:", 7) != 0)
		return ctx_error(ctx, ENOTSUP,
				 "%s: digest \"%.80s\": only sha256 digests are supported", what, d);
	return ctx_error(ctx, EBADMSG,
			 "%s: digest \"%.80s\" is not sha256: and 64 lowercase hex digits", what, d);
}

/* The size field: a non-negative integer. 0 or -EBADMSG. */
static int size_field(struct imgdev_ctx *ctx, json_object *obj, const char *what, uint64_t *size)
{
	json_object *v;
	int rc = field(ctx, obj, "size", json_type_int, what, &v);
	int64_t s;

	if (rc < 0)
		return rc;
	if (!v)
		return ctx_error(ctx, EBADMSG, "%s: no \"size\"", what);
	errno = 0;
	s = json_object_get_int64(v);
	if (s < 0 || errno == EINVAL || (s == INT64_MAX && errno == ERANGE))
		return ctx_error(ctx, EBADMSG, "%s: \"size\" is not a byte count", what);
	*size = (uint64_t)s;
	return 0;
}

/* An index entry's platform and ref.name annotation, when present. 0 or -EBADMSG. */
static int descriptor_extras(struct imgdev_ctx *ctx, json_object *obj, const char *what,
			     struct oci_descriptor *d)
{
	json_object *p, *a;
	int rc = field(ctx, obj, "platform", json_type_object, what, &p);

	if (rc == 0 && p)
		rc = string_field(ctx, p, "os", true, what, d->os, sizeof(d->os));
	if (rc == 0 && p)
		rc = string_field(ctx, p, "architecture", true, what, d->arch, sizeof(d->arch));
	if (rc == 0 && p)
		rc = string_field(ctx, p, "variant", false, what, d->variant, sizeof(d->variant));
	if (rc == 0)
		rc = field(ctx, obj, "annotations", json_type_object, what, &a);
	if (rc == 0 && a)
		rc = string_field(ctx, a, "org.opencontainers.image.ref.name", false, what,
				  d->ref_name, sizeof(d->ref_name));
	return rc;
}

/* A descriptor object into *d. 0, -EBADMSG or -ENOTSUP, naming what. */
static int parse_descriptor(struct imgdev_ctx *ctx, json_object *obj, const char *what,
			    struct oci_descriptor *d)
{
	int rc;

	memset(d, 0, sizeof(*d));
	if (!json_object_is_type(obj, json_type_object))
		return ctx_error(ctx, EBADMSG, "%s is not a JSON object", what);
	rc = string_field(ctx, obj, "mediaType", true, what, d->media_type, sizeof(d->media_type));
	if (rc == 0)
		rc = string_field(ctx, obj, "digest", true, what, d->digest, sizeof(d->digest));
	if (rc == 0)
		rc = check_digest_syntax(ctx, d->digest, what);
	if (rc == 0)
		rc = size_field(ctx, obj, what, &d->size);
	if (rc == 0)
		rc = descriptor_extras(ctx, obj, what, d);
	return rc;
}

/* schemaVersion must be 2 (1: Docker's schema 1, refused). 0, -ENOTSUP or -EBADMSG. */
static int check_schema(struct imgdev_ctx *ctx, json_object *root, const char *what)
{
	json_object *v;
	int rc = field(ctx, root, "schemaVersion", json_type_int, what, &v);

	if (rc < 0)
		return rc;
	if (!v)
		return ctx_error(ctx, EBADMSG, "%s: no \"schemaVersion\"", what);
	if (json_object_get_int64(v) == 1)
		return ctx_error(ctx, ENOTSUP,
				 "%s: Docker image manifest schema 1 is not supported (only schema 2 "
				 "and OCI)",
				 what);
	if (json_object_get_int64(v) != 2)
		return ctx_error(ctx, EBADMSG, "%s: schemaVersion %lld, not 2", what,
				 (long long)json_object_get_int64(v));
	return 0;
}

/* The kind of a parsed document (see oci_document_kind). */
static int kind_of(struct imgdev_ctx *ctx, json_object *root, const char *what, enum oci_kind *kind)
{
	char mt[128];
	json_object *v;
	int rc = string_field(ctx, root, "mediaType", false, what, mt, sizeof(mt));

	if (rc == 0 && strncmp(mt, MT_DOCKER_V1, strlen(MT_DOCKER_V1)) == 0)
		return ctx_error(ctx, ENOTSUP,
				 "%s: Docker image manifest schema 1 is not supported", what);
	if (rc == 0)
		rc = check_schema(ctx, root, what);
	if (rc < 0)
		return rc;
	*kind = mt[0] ? oci_media_kind(mt) : OCI_KIND_UNKNOWN;
	if (mt[0] && *kind == OCI_KIND_UNKNOWN)
		return ctx_error(ctx, EBADMSG,
				 "%s: media type %s is not an image manifest or index", what, mt);
	if (!mt[0] && json_object_object_get_ex(root, "manifests", &v))
		*kind = OCI_KIND_INDEX;
	else if (!mt[0] && json_object_object_get_ex(root, "layers", &v))
		*kind = OCI_KIND_MANIFEST;
	if (*kind == OCI_KIND_UNKNOWN)
		return ctx_error(ctx, EBADMSG, "%s: neither an image index nor a manifest", what);
	return 0;
}

int oci_document_kind(struct imgdev_ctx *ctx, const char *json, size_t len, enum oci_kind *kind)
{
	json_object *root;
	int rc = parse_json(ctx, json, len, "manifest", &root);

	if (rc < 0)
		return rc;
	rc = kind_of(ctx, root, "manifest", kind);
	json_object_put(root);
	return rc;
}

/*
 * json parsed into *root as a document of kind want (an index or a
 * manifest). 0, or -EBADMSG / -ENOTSUP with the message in ctx (and no
 * *root to free).
 */
static int open_document(struct imgdev_ctx *ctx, const char *json, size_t len,
			 enum oci_kind want, json_object **root)
{
	const char *what = want == OCI_KIND_INDEX ? "image index" : "manifest";
	enum oci_kind kind;
	int rc = parse_json(ctx, json, len, what, root);

	if (rc < 0)
		return rc;
	rc = kind_of(ctx, *root, what, &kind);
	if (rc == 0 && kind != want)
		rc = ctx_error(ctx, EBADMSG, "%s: the document is %s", what,
			       kind == OCI_KIND_INDEX ? "an image index" : "a manifest");
	if (rc < 0)
		json_object_put(*root);
	return rc;
}

/* The array field key of root, each element a descriptor, into *out (*n). */
static int parse_descriptors(struct imgdev_ctx *ctx, json_object *root, const char *key,
			     const char *what, struct oci_descriptor **out, size_t *n)
{
	json_object *arr;
	char name[96];
	int rc = field(ctx, root, key, json_type_array, what, &arr);

	*out = NULL;
	*n = 0;
	if (rc < 0)
		return rc;
	if (!arr || json_object_array_length(arr) == 0)
		return ctx_error(ctx, EBADMSG, "%s: no %s", what, key);
	*out = calloc(json_object_array_length(arr), sizeof(**out));
	if (!*out)
		return ctx_error(ctx, ENOMEM, "%s: out of memory", what);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		snprintf(name, sizeof(name), "%s: %s[%zu]", what, key, i);
		rc = parse_descriptor(ctx, json_object_array_get_idx(arr, i), name, &(*out)[i]);
		if (rc < 0) {
			free(*out);
			*out = NULL;
			return rc;
		}
		(*n)++;
	}
	return 0;
}

int oci_parse_index(struct imgdev_ctx *ctx, const char *json, size_t len,
		    struct oci_descriptor **out, size_t *n)
{
	json_object *root;
	int rc = open_document(ctx, json, len, OCI_KIND_INDEX, &root);

	*out = NULL;
	*n = 0;
	if (rc < 0)
		return rc;
	rc = parse_descriptors(ctx, root, "manifests", "image index", out, n);
	json_object_put(root);
	return rc;
}

int oci_parse_manifest(struct imgdev_ctx *ctx, const char *json, size_t len, struct oci_manifest *m)
{
	json_object *root, *config;
	int rc = open_document(ctx, json, len, OCI_KIND_MANIFEST, &root);

	memset(m, 0, sizeof(*m));
	if (rc < 0)
		return rc;
	rc = string_field(ctx, root, "mediaType", false, "manifest", m->media_type,
				  sizeof(m->media_type));
	if (rc == 0)
		rc = field(ctx, root, "config", json_type_object, "manifest", &config);
	if (rc == 0 && !config)
		rc = ctx_error(ctx, EBADMSG, "manifest: no config");
	if (rc == 0)
		rc = parse_descriptor(ctx, config, "manifest: config", &m->config);
	if (rc == 0)
		rc = parse_descriptors(ctx, root, "layers", "manifest", &m->layers, &m->n_layers);
	json_object_put(root);
	if (rc < 0)
		oci_manifest_free(m);
	return rc;
}

/* -ENOMEDIUM "not an OCI image layout: " and the message ctx holds. */
static int not_a_layout(struct imgdev_ctx *ctx)
{
	char why[256];

	snprintf(why, sizeof(why), "%s", imgdev_ctx_last_error(ctx));
	return ctx_error(ctx, ENOMEDIUM, "not an OCI image layout: %s", why);
}

int oci_check_layout_file(struct imgdev_ctx *ctx, const char *json, size_t len)
{
	json_object *root;
	char version[32];
	int rc = parse_json(ctx, json, len, "oci-layout", &root);

	if (rc < 0)
		return not_a_layout(ctx);
	rc = string_field(ctx, root, "imageLayoutVersion", true, "oci-layout", version,
			  sizeof(version));
	json_object_put(root);
	if (rc < 0)
		return not_a_layout(ctx);
	if (strcmp(version, "1.0.0") != 0)
		return ctx_error(ctx, ENOMEDIUM, "OCI image layout version %s, not 1.0.0", version);
	return 0;
}

void oci_manifest_free(struct oci_manifest *m)
{
	free(m->layers);
	m->layers = NULL;
	m->n_layers = 0;
}

const char *oci_host_platform(void)
{
	static const struct {
		const char *machine, *platform;
	} names[] = {
		{ "x86_64", "linux/amd64" },    { "aarch64", "linux/arm64" },
		{ "ppc64le", "linux/ppc64le" }, { "s390x", "linux/s390x" },
		{ "riscv64", "linux/riscv64" }, { "i686", "linux/386" },
	};
	struct utsname u;

	if (uname(&u) < 0)
		return NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(u.machine, names[i].machine) == 0)
			return names[i].platform;
	return NULL;
}

/* "os/arch[/variant]" split into its parts: 0 or -EINVAL. */
static int split_platform(struct imgdev_ctx *ctx, const char *platform, char os[32], char arch[32],
			  char variant[32])
{
	int end = 0, more = 0;

	variant[0] = '\0';
	if (sscanf(platform, "%31[^/]/%31[^/]%n", os, arch, &end) != 2 ||
	    (platform[end] && sscanf(platform + end, "/%31[^/]%n", variant, &more) != 1) ||
	    platform[end + more] != '\0' || strchr(platform, ' '))
		return ctx_error(ctx, EINVAL, "platform \"%s\" is not os/arch or os/arch/variant",
				 platform);
	return 0;
}

void oci_platform_name(const struct oci_descriptor *e, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%s%s%s", e->os, e->arch, e->variant[0] ? "/" : "", e->variant);
}

/* The platforms entries name, "os/arch[/variant], ..." into buf. */
static void list_platforms(const struct oci_descriptor *e, size_t n, char *buf, size_t cap)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < cap; i++) {
		char name[sizeof(e->os) + sizeof(e->arch) + sizeof(e->variant)];

		if (!e[i].os[0])
			continue;
		oci_platform_name(&e[i], name, sizeof(name));
		used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", name);
	}
	if (!buf[0])
		snprintf(buf, cap, "no platforms");
}

int oci_pick_platform(struct imgdev_ctx *ctx, const struct oci_descriptor *e, size_t n,
		      const char *platform, size_t *index)
{
	char os[32], arch[32], variant[32], offered[512];
	size_t found = n;
	int rc;

	if (!platform && !(platform = oci_host_platform()))
		return ctx_error(ctx, EINVAL, "this machine's platform has no OCI name: give one");
	rc = split_platform(ctx, platform, os, arch, variant);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(e[i].os, os) != 0 || strcmp(e[i].arch, arch) != 0)
			continue;
		if (variant[0] ? strcmp(e[i].variant, variant) == 0 : !e[i].variant[0]) {
			*index = i;
			return 0;
		}
		if (!variant[0] && found == n)
			found = i;
	}
	if (found < n) {
		*index = found;
		return 0;
	}
	list_platforms(e, n, offered, sizeof(offered));
	return ctx_error(ctx, ENOENT, "no manifest for %s; the index has %s", platform, offered);
}

int oci_digest_of(const void *bytes, size_t len, char digest[OCI_DIGEST_MAX])
{
	uint8_t h[SHA256_SIZE];

	if (sha256_digest(bytes, len, h) < 0)
		return -ENOMEM;
	imgdev_format_hash(h, digest);
	return 0;
}

int oci_expect_digest(struct imgdev_ctx *ctx, const char *got, const char *want, const char *what)
{
	if (strcmp(got, want) != 0)
		return ctx_error(ctx, EILSEQ, "%s: digest %s expected, the content hashes to %s",
				 what, want, got);
	return 0;
}

int oci_check_digest(struct imgdev_ctx *ctx, const void *bytes, size_t len, const char *digest,
		     const char *what)
{
	char got[OCI_DIGEST_MAX];

	if (!oci_digest_valid(digest))
		return ctx_error(ctx, EINVAL, "%s: \"%.80s\" is not a sha256 digest", what, digest);
	if (oci_digest_of(bytes, len, got) < 0)
		return ctx_error(ctx, ENOMEM, "%s: cannot hash", what);
	return oci_expect_digest(ctx, got, digest, what);
}
