/*
 * registry-get: the registry client of libimgdev (registry.h) from the
 * command line, for the shell tests against a real registry (not
 * installed). Usage:
 *   registry-get [--auth-file F] [--insecure] [--sleep S] [-v] docker://REF manifest
 *       the manifest's digest on the first line, then its bytes
 *   registry-get [--auth-file F] [--insecure] [-v] docker://REF blob DIGEST SIZE
 *       the blob's bytes
 * --sleep waits S seconds between opening the session and the request (a
 * token may expire meanwhile). The library's log goes to stderr with -v
 * (info level). On error its
 * message goes to stderr, and the exit status says which errno: 9 EACCES,
 * 7 ENOMEDIUM, 11 EREMOTEIO, 10 EBADMSG or EILSEQ (not its digest or size), 1 anything else.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytesrc.h"
#include "imgdev.h"
#include "registry.h"

static void log_stderr(void *data, int priority, const char *msg)
{
	(void)data;
	fprintf(stderr, "registry-get: <%d> %s\n", priority, msg);
}

static int status_of(int rc)
{
	switch (-rc) {
	case EACCES: return 9;
	case ENOMEDIUM: return 7;
	case EREMOTEIO: return 11;
	case EBADMSG:
	case EILSEQ: return 10;
	default: return 1;
	}
}

static int print_manifest(struct imgdev_ctx *ctx, struct registry *r, const struct registry_ref *ref)
{
	char digest[OCI_DIGEST_MAX];
	size_t len;
	char *bytes;
	int rc;

	rc = registry_get_manifest(ctx, r, ref->digest[0] ? ref->digest : ref->tag, &bytes, &len,
				   digest);
	if (rc < 0)
		return rc;
	printf("%s\n", digest);
	fwrite(bytes, 1, len, stdout);
	free(bytes);
	return fflush(stdout) ? -errno : 0;
}

static int copy_blob(struct imgdev_ctx *ctx, struct registry *r, const char *digest, const char *size)
{
	struct oci_descriptor d = { .size = strtoull(size, NULL, 10) };
	static char buf[1 << 16];
	struct bytesrc *bs;
	ssize_t n;
	int rc;

	snprintf(d.digest, sizeof(d.digest), "%s", digest);
	rc = registry_open_blob(ctx, r, &d, &bs);
	if (rc < 0)
		return rc;
	while ((n = bytesrc_read(bs, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			break;
	if (n < 0)
		fprintf(stderr, "registry-get: read: %s\n", bytesrc_error(bs, (int)n));
	bytesrc_close(bs);
	return n < 0 ? (int)n : fflush(stdout) ? -errno : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: registry-get [--auth-file F] [--insecure] [--sleep S] [-v] docker://REF "
			"manifest | blob DIGEST SIZE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "auth-file", required_argument, NULL, 'a' },
		{ "insecure", no_argument, NULL, 'i' },
		{ "sleep", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct imgdev_fetch_opts fo = IMGDEV_FETCH_OPTS_INIT;
	const char *auth_file = NULL;
	struct registry_ref ref;
	struct imgdev_ctx *ctx;
	struct registry *r = NULL;
	bool verbose = false, manifest;
	unsigned int pause = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 'a': auth_file = optarg; break;
		case 'i': fo.insecure = true; break;
		case 's': pause = (unsigned int)atoi(optarg); break;
		case 'v': verbose = true; break;
		default: usage();
		}
	}
	if (argc - optind < 2)
		usage();
	manifest = !strcmp(argv[optind + 1], "manifest");
	if (manifest ? argc - optind != 2 : strcmp(argv[optind + 1], "blob") || argc - optind != 4)
		usage();
	if (imgdev_ctx_new(&ctx) < 0)
		return 1;
	if (verbose)
		imgdev_ctx_set_log(ctx, log_stderr, NULL, 6);
	rc = imgdev_ctx_set_fetch(ctx, &fo);
	if (rc == 0)
		rc = registry_ref_parse(ctx, argv[optind], &ref);
	if (rc == 0)
		rc = registry_open(ctx, &ref, auth_file, &r);
	if (rc == 0 && pause)
		sleep(pause);
	if (rc == 0 && manifest)
		rc = print_manifest(ctx, r, &ref);
	else if (rc == 0)
		rc = copy_blob(ctx, r, argv[optind + 2], argv[optind + 3]);
	if (rc < 0 && imgdev_ctx_last_error(ctx)[0])
		fprintf(stderr, "registry-get: %s\n", imgdev_ctx_last_error(ctx));
	registry_close(r);
	imgdev_ctx_free(ctx);
	return rc < 0 ? status_of(rc) : 0;
}
