/*
 * libFuzzer target for the container image documents (oci_manifest.c): any
 * bytes a registry or a layout might serve parse or are refused without a
 * crash, and what parses holds only valid sha256 digests, at least one
 * entry or layer, and a platform choice within the index.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imgdev.h"
#include "oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_descriptors(const struct oci_descriptor *d, size_t n)
{
	if (n == 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!oci_digest_valid(d[i].digest))
			abort();
}

static void try_index(struct imgdev_ctx *ctx, const char *text, size_t size)
{
	struct oci_descriptor *e;
	size_t n, i = SIZE_MAX;

	if (oci_parse_index(ctx, text, size, &e, &n) != 0)
		return;
	check_descriptors(e, n);
	if (oci_pick_platform(ctx, e, n, "linux/amd64", &i) == 0 && i >= n)
		abort();
	if (oci_pick_platform(ctx, e, n, "linux/arm64/v8", &i) == 0 && i >= n)
		abort();
	free(e);
}

static void try_manifest(struct imgdev_ctx *ctx, const char *text, size_t size)
{
	struct oci_manifest m;

	if (oci_parse_manifest(ctx, text, size, &m) != 0) {
		if (m.layers)
			abort();
		return;
	}
	check_descriptors(&m.config, 1);
	check_descriptors(m.layers, m.n_layers);
	for (size_t i = 0; i < m.n_layers; i++)
		(void)oci_layer_compression(m.layers[i].media_type);
	oci_manifest_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct imgdev_ctx *ctx;
	enum oci_kind kind;

	if (!ctx && imgdev_ctx_new(&ctx) != 0)
		return 0;
	(void)oci_document_kind(ctx, (const char *)data, size, &kind);
	try_index(ctx, (const char *)data, size);
	try_manifest(ctx, (const char *)data, size);
	(void)oci_check_layout_file(ctx, (const char *)data, size);
	return 0;
}
