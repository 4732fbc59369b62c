/*
 * Unit tests of the container image documents (oci.h): OCI indexes and
 * Docker manifest lists parsed and a platform chosen from them (with a
 * variant, the host's, none offered: the message lists what is); OCI and
 * Docker schema 2 manifests with their layers' compressions; schema 1,
 * digests of other algorithms or malformed, missing fields and bad JSON
 * refused with a message naming the field; and a document's digest checked.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imgdev.h"
#include "oci.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static const char OCI_INDEX[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
	"\"manifests\":["
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D1 "\","
	"\"size\":500,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
	"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D2 "\","
	"\"size\":501,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"},"
	"\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}";

static const char DOCKER_LIST[] =
	"{\"schemaVersion\":2,"
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\","
	"\"manifests\":["
	"{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"digest\":\"" D1
	"\",\"size\":7,\"platform\":{\"os\":\"linux\",\"architecture\":\"s390x\"}},"
	"{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"digest\":\"" D2
	"\",\"size\":8,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
	"{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"digest\":\"" D3
	"\",\"size\":9,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}]}";

static const char OCI_MANIFEST[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1
	"\",\"size\":2},\"layers\":["
	"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D2
	"\",\"size\":123456789012},"
	"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D3
	"\",\"size\":0},"
	"{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" D1
	"\",\"size\":10240}]}";

static const char DOCKER_MANIFEST[] =
	"{\"schemaVersion\":2,"
	"\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
	"\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\","
	"\"digest\":\"" D1 "\",\"size\":1469},\"layers\":["
	"{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"" D2
	"\",\"size\":977}]}";

struct fx {
	struct imgdev_ctx *ctx;
};

static int setup(void **state)
{
	static struct fx fx;

	assert_int_equal(imgdev_ctx_new(&fx.ctx), 0);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	imgdev_ctx_free(fx->ctx);
	return 0;
}

static struct imgdev_ctx *ctx_of(void **state)
{
	return ((struct fx *)*state)->ctx;
}

static const char *msg(void **state)
{
	return imgdev_ctx_last_error(ctx_of(state));
}

static void test_oci_index_platforms(void **state)
{
	struct oci_descriptor *e;
	enum oci_kind kind;
	size_t n, i = 99;

	assert_int_equal(oci_document_kind(ctx_of(state), OCI_INDEX, strlen(OCI_INDEX), &kind), 0);
	assert_int_equal(kind, OCI_KIND_INDEX);
	assert_int_equal(oci_parse_index(ctx_of(state), OCI_INDEX, strlen(OCI_INDEX), &e, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].arch, "arm64");
	assert_string_equal(e[0].variant, "v8");
	assert_int_equal(e[1].size, 501);
	assert_string_equal(e[1].digest, D2);
	assert_string_equal(e[1].ref_name, "v1");
	assert_string_equal(e[0].ref_name, "");
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/amd64", &i), 0);
	assert_int_equal(i, 1);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/arm64", &i), 0);
	assert_int_equal(i, 0);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/arm64/v8", &i), 0);
	assert_int_equal(i, 0);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/arm64/v7", &i), -ENOENT);
	assert_non_null(strstr(msg(state), "no manifest for linux/arm64/v7"));
	assert_non_null(strstr(msg(state), "linux/arm64/v8, linux/amd64"));
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/riscv64", &i), -ENOENT);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux", &i), -EINVAL);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/amd64/v2/x", &i), -EINVAL);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "/amd64", &i), -EINVAL);
	if (oci_host_platform() && strcmp(oci_host_platform(), "linux/amd64") == 0) {
		assert_int_equal(oci_pick_platform(ctx_of(state), e, n, NULL, &i), 0);
		assert_int_equal(i, 1);
	}
	free(e);
}

static void test_docker_list_prefers_no_variant(void **state)
{
	struct oci_descriptor *e;
	size_t n, i = 99;

	assert_int_equal(oci_parse_index(ctx_of(state), DOCKER_LIST, strlen(DOCKER_LIST), &e, &n), 0);
	assert_int_equal(n, 3);
	/* Two arm64 entries: without a variant asked, the one without wins. */
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/arm64", &i), 0);
	assert_int_equal(i, 2);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/arm64/v8", &i), 0);
	assert_int_equal(i, 1);
	assert_int_equal(oci_pick_platform(ctx_of(state), e, n, "linux/s390x", &i), 0);
	assert_int_equal(i, 0);
	free(e);
}

static void test_manifests(void **state)
{
	struct oci_manifest m;
	enum oci_kind kind;

	assert_int_equal(oci_parse_manifest(ctx_of(state), OCI_MANIFEST, strlen(OCI_MANIFEST), &m), 0);
	assert_int_equal(m.n_layers, 3);
	assert_string_equal(m.config.digest, D1);
	assert_int_equal(m.layers[0].size, 123456789012ULL);
	assert_int_equal(oci_layer_compression(m.layers[0].media_type), OCI_LAYER_GZIP);
	assert_int_equal(oci_layer_compression(m.layers[1].media_type), OCI_LAYER_ZSTD);
	assert_int_equal(oci_layer_compression(m.layers[2].media_type), OCI_LAYER_TAR);
	assert_int_equal(oci_layer_compression(m.config.media_type), OCI_LAYER_UNKNOWN);
	oci_manifest_free(&m);
	assert_int_equal(oci_parse_manifest(ctx_of(state), DOCKER_MANIFEST, strlen(DOCKER_MANIFEST), &m),
			 0);
	assert_int_equal(m.n_layers, 1);
	assert_int_equal(m.config.size, 1469);
	assert_int_equal(oci_layer_compression(m.layers[0].media_type), OCI_LAYER_GZIP);
	oci_manifest_free(&m);
	assert_int_equal(oci_document_kind(ctx_of(state), DOCKER_MANIFEST, strlen(DOCKER_MANIFEST),
					   &kind),
			 0);
	assert_int_equal(kind, OCI_KIND_MANIFEST);
	/* A manifest is not an index, nor the other way round. */
	struct oci_descriptor *e;
	size_t n;
	assert_int_equal(oci_parse_index(ctx_of(state), OCI_MANIFEST, strlen(OCI_MANIFEST), &e, &n),
			 -EBADMSG);
	assert_int_equal(oci_parse_manifest(ctx_of(state), OCI_INDEX, strlen(OCI_INDEX), &m), -EBADMSG);
}

/* An OCI manifest without mediaType is known by its layers. */
static void test_kind_without_media_type(void **state)
{
	static const char j[] =
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D1
		"\",\"size\":2},\"layers\":[{\"mediaType\":\"y\",\"digest\":\"" D2 "\",\"size\":3}]}";
	static const char idx[] = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"y\","
				  "\"digest\":\"" D2 "\",\"size\":3}]}";
	struct oci_manifest m;
	enum oci_kind kind;

	assert_int_equal(oci_parse_manifest(ctx_of(state), j, strlen(j), &m), 0);
	assert_string_equal(m.media_type, "");
	oci_manifest_free(&m);
	assert_int_equal(oci_document_kind(ctx_of(state), idx, strlen(idx), &kind), 0);
	assert_int_equal(kind, OCI_KIND_INDEX);
}

/* expect_refusal: json parsed as a manifest fails with err and a message holding words. */
static void expect_refusal(void **state, const char *json, int err, const char *words)
{
	struct oci_manifest m;

	assert_int_equal(oci_parse_manifest(ctx_of(state), json, strlen(json), &m), err);
	if (!strstr(msg(state), words))
		fail_msg("message [%s] does not hold [%s]", msg(state), words);
	assert_null(m.layers);
}

#define MANIFEST_WITH_LAYER(layer)                                                           \
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"," \
	"\"config\":{\"mediaType\":\"c\",\"digest\":\"" D1 "\",\"size\":2},\"layers\":[" layer "]}"

static void test_refusals(void **state)
{
	expect_refusal(state, "{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"y\",\"fsLayers\":[]}",
		       -ENOTSUP, "schema 1");
	expect_refusal(state,
		       "{\"schemaVersion\":1,\"mediaType\":"
		       "\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}",
		       -ENOTSUP, "schema 1");
	expect_refusal(state, "{\"schemaVersion\":3,\"layers\":[]}", -EBADMSG, "schemaVersion 3");
	expect_refusal(state, "{\"layers\":[]}", -EBADMSG, "no \"schemaVersion\"");
	expect_refusal(state, MANIFEST_WITH_LAYER(""), -EBADMSG, "no layers");
	expect_refusal(state,
		       MANIFEST_WITH_LAYER("{\"mediaType\":\"t\",\"digest\":\"sha512:"
					   "ab\",\"size\":1}"),
		       -ENOTSUP, "only sha256");
	expect_refusal(state,
		       MANIFEST_WITH_LAYER("{\"mediaType\":\"t\",\"digest\":\"sha256:"
					   "AB11111111111111111111111111111111111111111111111111111111111111"
					   "\",\"size\":1}"),
		       -EBADMSG, "lowercase hex");
	expect_refusal(state,
		       MANIFEST_WITH_LAYER("{\"mediaType\":\"t\",\"digest\":\"sha256:abc\",\"size\":1}"),
		       -EBADMSG, "layers[0]");
	expect_refusal(state,
		       MANIFEST_WITH_LAYER("{\"mediaType\":\"t\",\"digest\":\"../../etc/passwd\","
					   "\"size\":1}"),
		       -EBADMSG, "is not sha256:");
	expect_refusal(state, MANIFEST_WITH_LAYER("{\"mediaType\":\"t\",\"digest\":\"" D2 "\"}"),
		       -EBADMSG, "layers[0]: no \"size\"");
	expect_refusal(state,
		       MANIFEST_WITH_LAYER("{\"mediaType\":\"t\",\"digest\":\"" D2 "\",\"size\":-1}"),
		       -EBADMSG, "not a byte count");
	expect_refusal(state,
		       MANIFEST_WITH_LAYER("{\"mediaType\":\"t\",\"digest\":\"" D2 "\",\"size\":\"9\"}"),
		       -EBADMSG, "\"size\" is not a int");
	expect_refusal(state, MANIFEST_WITH_LAYER("{\"digest\":\"" D2 "\",\"size\":1}"), -EBADMSG,
		       "no \"mediaType\"");
	expect_refusal(state, MANIFEST_WITH_LAYER("7"), -EBADMSG, "layers[0] is not a JSON object");
	expect_refusal(state, "{\"schemaVersion\":2,\"mediaType\":\"text/html\"}", -EBADMSG,
		       "text/html");
	expect_refusal(state, "{\"schemaVersion\":2,", -EBADMSG, "is not JSON");
	expect_refusal(state, "{\"schemaVersion\":2} trailing", -EBADMSG, "is not JSON");
	expect_refusal(state, "[1,2]", -EBADMSG, "not a JSON object");
	expect_refusal(state, "<html>404</html>", -EBADMSG, "is not JSON");
}

static void test_check_digest(void **state)
{
	/* SHA-256 of "abc" (FIPS 180-2). */
	static const char abc[] =
		"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

	assert_true(oci_digest_valid(abc));
	assert_false(oci_digest_valid("sha256:ba78"));
	assert_int_equal(oci_check_digest(ctx_of(state), "abc", 3, abc, "manifest"), 0);
	assert_int_equal(oci_check_digest(ctx_of(state), "abd", 3, abc, "manifest"), -EILSEQ);
	assert_non_null(strstr(msg(state), "manifest: digest sha256:ba78"));
	assert_non_null(strstr(msg(state), "hashes to sha256:"));
	assert_int_equal(oci_check_digest(ctx_of(state), "abc", 3, "md5:x", "m"), -EINVAL);
}

static void test_accept_names_all_four(void **state)
{
	(void)state;
	assert_non_null(strstr(OCI_MANIFEST_ACCEPT, "application/vnd.oci.image.index.v1+json"));
	assert_non_null(strstr(OCI_MANIFEST_ACCEPT, "application/vnd.oci.image.manifest.v1+json"));
	assert_non_null(strstr(OCI_MANIFEST_ACCEPT,
			       "application/vnd.docker.distribution.manifest.v2+json"));
	assert_non_null(strstr(OCI_MANIFEST_ACCEPT,
			       "application/vnd.docker.distribution.manifest.list.v2+json"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_index_platforms),
		cmocka_unit_test(test_docker_list_prefers_no_variant),
		cmocka_unit_test(test_manifests),
		cmocka_unit_test(test_kind_without_media_type),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_check_digest),
		cmocka_unit_test(test_accept_names_all_four),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
