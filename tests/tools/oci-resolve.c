/*
 * oci-resolve: what libimgdev reads of an OCI image layout, for the shell
 * tests to hold against skopeo's and jq's reading of the same files (not
 * installed). Usage: oci-resolve DIR[:TAG] [OS/ARCH[/VARIANT]]. Prints
 *   top MEDIATYPE DIGEST          the entry index.json names
 *   manifest DIGEST               the platform's manifest (the image's name)
 *   layer MEDIATYPE DIGEST SIZE   each layer, lowest first
 * or the library's message on stderr and exit 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "imgdev.h"
#include "oci.h"

#define DOC_MAX (4u << 20)

static int fail(struct imgdev_ctx *ctx)
{
	fprintf(stderr, "oci-resolve: %s\n", imgdev_ctx_last_error(ctx));
	return 1;
}

/* The index's entry for platform into *d, its bytes replacing *doc. 0 or 1. */
static int pick(struct imgdev_ctx *ctx, const char *dir, const char *platform,
		struct oci_descriptor *d, char **doc, size_t *len)
{
	struct oci_descriptor *e;
	size_t n, i;

	if (oci_parse_index(ctx, *doc, *len, &e, &n) || oci_pick_platform(ctx, e, n, platform, &i))
		return 1;
	*d = e[i];
	free(e);
	free(*doc);
	return oci_layout_read_blob(ctx, dir, d, DOC_MAX, doc, len) ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct imgdev_ctx *ctx;
	struct oci_descriptor d;
	struct oci_manifest m;
	char *dir, *doc;
	size_t len;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: oci-resolve DIR[:TAG] [OS/ARCH[/VARIANT]]\n");
		return 2;
	}
	if (imgdev_ctx_new(&ctx) != 0)
		return 1;
	if (oci_layout_resolve(ctx, argv[1], &dir, &d) ||
	    oci_layout_read_blob(ctx, dir, &d, DOC_MAX, &doc, &len))
		return fail(ctx);
	printf("top %s %s\n", d.media_type, d.digest);
	if (oci_media_kind(d.media_type) == OCI_KIND_INDEX &&
	    pick(ctx, dir, argc > 2 ? argv[2] : NULL, &d, &doc, &len))
		return fail(ctx);
	if (oci_parse_manifest(ctx, doc, len, &m))
		return fail(ctx);
	printf("manifest %s\n", d.digest);
	for (size_t i = 0; i < m.n_layers; i++)
		printf("layer %s %s %llu\n", m.layers[i].media_type, m.layers[i].digest,
		       (unsigned long long)m.layers[i].size);
	oci_manifest_free(&m);
	free(doc);
	free(dir);
	imgdev_ctx_free(ctx);
	return 0;
}
