/*
 * Unit tests of the OCI image layout on disk (oci_layout.c), on layouts the
 * test writes into a temporary directory: oci-layout, index.json with two
 * tagged manifests, and the manifests as blobs under their SHA-256. A tag
 * resolves to its entry and its blob reads back checked; no tag with two
 * images, an unknown tag (the message lists the tags), a missing or wrong
 * oci-layout, a blob changed on disk, of the wrong size or too large, and a
 * digest that is not one are each refused with their error.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "imgdev.h"
#include "oci.h"
#include "sha256.h"

static const char MANIFEST_A[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
	"\"sha256:1111111111111111111111111111111111111111111111111111111111111111\",\"size\":2},"
	"\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":"
	"\"sha256:2222222222222222222222222222222222222222222222222222222222222222\","
	"\"size\":3}]}";
static const char MANIFEST_B[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
	"\"sha256:3333333333333333333333333333333333333333333333333333333333333333\",\"size\":2},"
	"\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":"
	"\"sha256:4444444444444444444444444444444444444444444444444444444444444444\","
	"\"size\":10240}]}";

struct fx {
	struct imgdev_ctx *ctx;
	char dir[64];
	char digest_a[OCI_DIGEST_MAX], digest_b[OCI_DIGEST_MAX];
};

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* The blob text written under its digest, which goes into digest. */
static void write_blob(const char *dir, const char *text, char digest[OCI_DIGEST_MAX])
{
	uint8_t h[SHA256_SIZE];
	char name[128];

	assert_int_equal(sha256_digest(text, strlen(text), h), 0);
	strcpy(digest, "sha256:");
	for (size_t i = 0; i < SHA256_SIZE; i++)
		snprintf(digest + 7 + 2 * i, 3, "%02x", h[i]);
	snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
	write_file(dir, name, text);
}

/* One index.json entry for a manifest of len bytes tagged tag, into buf at *used. */
static void add_entry(char *buf, size_t cap, size_t *used, const char *digest, size_t len,
		      const char *tag)
{
	*used += (size_t)snprintf(buf + *used, cap - *used,
				  "%s{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
				  "\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
				  "{\"org.opencontainers.image.ref.name\":\"%s\"}}",
				  buf[*used - 1] == '[' ? "" : ",", digest, len, tag);
}

/* index.json listing manifest A tagged tag_a and, unless tag_b is NULL, B tagged tag_b. */
static void write_index(struct fx *fx, const char *tag_a, const char *tag_b)
{
	char index[2048] = "{\"schemaVersion\":2,\"manifests\":[";
	size_t used = strlen(index);

	add_entry(index, sizeof(index), &used, fx->digest_a, strlen(MANIFEST_A), tag_a);
	if (tag_b)
		add_entry(index, sizeof(index), &used, fx->digest_b, strlen(MANIFEST_B), tag_b);
	snprintf(index + used, sizeof(index) - used, "]}");
	write_file(fx->dir, "index.json", index);
}

static int setup(void **state)
{
	static struct fx fx;
	char path[128];

	assert_int_equal(imgdev_ctx_new(&fx.ctx), 0);
	strcpy(fx.dir, "/tmp/imgdev-oci-test.XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	snprintf(path, sizeof(path), "%s/blobs", fx.dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/blobs/sha256", fx.dir);
	assert_int_equal(mkdir(path, 0755), 0);
	write_file(fx.dir, "oci-layout", "{\"imageLayoutVersion\": \"1.0.0\"}");
	write_blob(fx.dir, MANIFEST_A, fx.digest_a);
	write_blob(fx.dir, MANIFEST_B, fx.digest_b);
	write_index(&fx, "latest", "v2");
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	imgdev_ctx_free(fx->ctx);
	return 0;
}

static const char *msg(struct fx *fx)
{
	return imgdev_ctx_last_error(fx->ctx);
}

/* resolve "DIR:tag" (tag NULL: "DIR"): its rc; *top and *dir on success. */
static int resolve(struct fx *fx, const char *tag, struct oci_descriptor *top)
{
	char spec[256], *dir = NULL;
	int rc;

	snprintf(spec, sizeof(spec), "%s%s%s", fx->dir, tag ? ":" : "", tag ? tag : "");
	rc = oci_layout_resolve(fx->ctx, spec, &dir, top);
	if (rc == 0)
		assert_string_equal(dir, fx->dir);
	else
		assert_null(dir);
	free(dir);
	return rc;
}

static void test_tag_resolves_and_blob_reads(void **state)
{
	struct fx *fx = *state;
	struct oci_descriptor top;
	struct oci_manifest m;
	char *bytes;
	size_t len;

	assert_int_equal(resolve(fx, "v2", &top), 0);
	assert_string_equal(top.digest, fx->digest_b);
	assert_int_equal(resolve(fx, "latest", &top), 0);
	assert_string_equal(top.digest, fx->digest_a);
	assert_int_equal(oci_layout_read_blob(fx->ctx, fx->dir, &top, 1 << 20, &bytes, &len), 0);
	assert_int_equal(len, strlen(MANIFEST_A));
	assert_int_equal(oci_parse_manifest(fx->ctx, bytes, len, &m), 0);
	assert_int_equal(m.n_layers, 1);
	oci_manifest_free(&m);
	free(bytes);
}

static void test_tag_refusals(void **state)
{
	struct fx *fx = *state;
	struct oci_descriptor top;

	assert_int_equal(resolve(fx, "nope", &top), -ENOENT);
	assert_non_null(strstr(msg(fx), "no image tagged \"nope\" (tags: latest, v2)"));
	assert_int_equal(resolve(fx, NULL, &top), -ENOENT);
	assert_non_null(strstr(msg(fx), "2 images in the layout"));
	/* One image: no tag needed. */
	write_index(fx, "only", NULL);
	assert_int_equal(resolve(fx, NULL, &top), 0);
	assert_string_equal(top.digest, fx->digest_a);
	write_index(fx, "latest", "v2");
}

static void test_not_a_layout(void **state)
{
	struct fx *fx = *state;
	struct oci_descriptor top;
	char path[128], *dir = NULL;

	write_file(fx->dir, "oci-layout", "{\"imageLayoutVersion\": \"2.0.0\"}");
	assert_int_equal(resolve(fx, "latest", &top), -ENOMEDIUM);
	assert_non_null(strstr(msg(fx), "version 2.0.0"));
	write_file(fx->dir, "oci-layout", "hello");
	assert_int_equal(resolve(fx, "latest", &top), -ENOMEDIUM);
	assert_non_null(strstr(msg(fx), "not an OCI image layout"));
	snprintf(path, sizeof(path), "%s/oci-layout", fx->dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(resolve(fx, "latest", &top), -ENOMEDIUM);
	assert_non_null(strstr(msg(fx), "no oci-layout file"));
	write_file(fx->dir, "oci-layout", "{\"imageLayoutVersion\": \"1.0.0\"}");
	assert_int_equal(oci_layout_resolve(fx->ctx, ":latest", &dir, &top), -EINVAL);
	assert_null(dir);
}

static void test_blob_refusals(void **state)
{
	struct fx *fx = *state;
	struct oci_descriptor d;
	char name[512], changed[sizeof(MANIFEST_B)], *bytes, *path;
	size_t len;

	assert_int_equal(resolve(fx, "v2", &d), 0);
	assert_int_equal(oci_layout_read_blob(fx->ctx, fx->dir, &d, 16, &bytes, &len), -EFBIG);
	assert_null(bytes);
	d.size++;
	assert_int_equal(oci_layout_read_blob(fx->ctx, fx->dir, &d, 1 << 20, &bytes, &len), -EILSEQ);
	assert_non_null(strstr(msg(fx), "the descriptor says"));
	d.size--;
	/* The same length, one byte changed: the digest says so. */
	snprintf(name, sizeof(name), "blobs/sha256/%s", d.digest + 7);
	memcpy(changed, MANIFEST_B, sizeof(MANIFEST_B));
	changed[10] ^= 1;
	write_file(fx->dir, name, changed);
	assert_int_equal(oci_layout_read_blob(fx->ctx, fx->dir, &d, 1 << 20, &bytes, &len), -EILSEQ);
	assert_non_null(strstr(msg(fx), "content hashes to"));
	assert_null(bytes);
	write_file(fx->dir, name, MANIFEST_B);
	assert_int_equal(oci_layout_read_blob(fx->ctx, fx->dir, &d, 1 << 20, &bytes, &len), 0);
	free(bytes);
	strcpy(d.digest, "sha256:../../etc/passwd");
	assert_int_equal(oci_layout_read_blob(fx->ctx, fx->dir, &d, 1 << 20, &bytes, &len), -EINVAL);
	assert_int_equal(oci_layout_blob_path(fx->ctx, fx->dir, d.digest, &path), -EINVAL);
	assert_int_equal(oci_layout_blob_path(fx->ctx, "/x", fx->digest_a, &path), 0);
	assert_int_equal(strncmp(path, "/x/blobs/sha256/", 16), 0);
	assert_string_equal(path + 16, fx->digest_a + 7);
	free(path);
	/* A missing blob: the file's error. */
	strcpy(d.digest, "sha256:5555555555555555555555555555555555555555555555555555555555555555");
	assert_int_equal(oci_layout_read_blob(fx->ctx, fx->dir, &d, 1 << 20, &bytes, &len), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tag_resolves_and_blob_reads),
		cmocka_unit_test(test_tag_refusals),
		cmocka_unit_test(test_not_a_layout),
		cmocka_unit_test(test_blob_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
