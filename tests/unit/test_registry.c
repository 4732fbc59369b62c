/*
 * Unit tests of the registry client's parsers, without a registry (those
 * with one are tests/host/test_registry.sh): docker:// references
 * (Docker Hub's names, ports, IPv6, tags, digests, the grammar's
 * refusals) and WWW-Authenticate challenges (quoted strings with commas
 * and escapes, several challenges in one header, malformed ones).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "imgdev.h"
#include "registry.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void parses(const char *image, const char *host, const char *repo, const char *tag,
		   const char *digest)
{
	struct registry_ref ref;
	struct imgdev_ctx *ctx;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(registry_ref_parse(ctx, image, &ref), 0);
	assert_string_equal(ref.host, host);
	assert_string_equal(ref.repo, repo);
	assert_string_equal(ref.tag, tag);
	assert_string_equal(ref.digest, digest);
	imgdev_ctx_free(ctx);
}

static void refused(const char *image, const char *why)
{
	struct registry_ref ref;
	struct imgdev_ctx *ctx;

	assert_int_equal(imgdev_ctx_new(&ctx), 0);
	assert_int_equal(registry_ref_parse(ctx, image, &ref), -EINVAL);
	if (!strstr(imgdev_ctx_last_error(ctx), why))
		fail_msg("%s: [%s] lacks [%s]", image, imgdev_ctx_last_error(ctx), why);
	imgdev_ctx_free(ctx);
}

static void test_references(void **state)
{
	(void)state;
	assert_true(registry_names("docker://x/y"));
	assert_false(registry_names("oci:/x"));
	assert_false(registry_names("docker:x/y"));
	parses("docker://127.0.0.1:5000/vm/disk", "127.0.0.1:5000", "vm/disk", "latest", "");
	parses("docker://quay.io/a/b/c:v1.2-rc_3", "quay.io", "a/b/c", "v1.2-rc_3", "");
	parses("docker://localhost:5000/disk@" DIGEST, "localhost:5000", "disk", "", DIGEST);
	parses("docker://[::1]:5000/a.b__c--d:T", "[::1]:5000", "a.b__c--d", "T", "");
	parses("docker://docker.io/ubuntu:22.04", "registry-1.docker.io", "library/ubuntu", "22.04",
	       "");
	parses("docker://index.docker.io/kubevirt/fedora", "registry-1.docker.io",
	       "kubevirt/fedora", "latest", "");
	refused("docker://", "no host");
	refused("docker:///disk", "no host");
	refused("docker://quay.io", "no repository");
	refused("docker://quay.io/", "no repository after the host");
	refused("docker://quay.io/Kubevirt/disk", "uppercase in the repository");
	refused("docker://quay.io/a_-b", "is not lowercase components");
	refused("docker://quay.io/a___b", "is not lowercase components");
	refused("docker://quay.io/a/", "is not lowercase components");
	refused("docker://quay.io/a:.x", "the tag \".x\"");
	refused("docker://quay.io/a:", "the tag \"\"");
	refused("docker://quay.io/a@sha256:0123", "the digest is not sha256");
	refused("docker://quay.io/a:v1@" DIGEST, "both a tag and a digest");
	refused("docker://quay.io:x/a", "is not HOST[:PORT]");
	refused("docker://[::1/a", "is not HOST[:PORT]");
}

static void challenge(const char *hdr, const char *scheme, const char *realm, const char *service)
{
	struct reg_challenge c;

	if (!reg_parse_challenges(hdr, &c))
		fail_msg("[%s] not parsed", hdr);
	assert_string_equal(c.scheme, scheme);
	assert_string_equal(c.realm, realm);
	assert_string_equal(c.service, service);
}

static void test_challenges(void **state)
{
	struct reg_challenge c;

	(void)state;
	challenge("Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
		  "scope=\"repository:a/b:pull,push\"",
		  "Bearer", "https://auth.example/token", "registry.example");
	challenge("Bearer service=\"a, b\" , realm=\"http://127.0.0.1:1/t?x=1,2\"", "Bearer",
		  "http://127.0.0.1:1/t?x=1,2", "a, b");
	challenge("Bearer realm=\"q\\\"uote\\\\d\",service=tok", "Bearer", "q\"uote\\d", "tok");
	challenge("Basic realm=\"reg\"", "Basic", "reg", "");
	challenge("basic realm=\"reg\", Bearer realm=\"r2\",service=\"s\"", "Bearer", "r2", "s");
	challenge("Bearer realm=\"r\", Basic realm=\"b\"", "Bearer", "r", "");
	challenge("Negotiate, Basic realm=\"b\"", "Basic", "b", "");
	assert_false(reg_parse_challenges("Bearer realm=\"unterminated", &c));
	assert_false(reg_parse_challenges("Bearer realm=", &c));
	assert_false(reg_parse_challenges("", &c));
	assert_false(reg_parse_challenges("=x", &c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_challenges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
