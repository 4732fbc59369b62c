/*
 * The provision and verify commands: option parsing, progress wiring, and
 * their text and JSON results.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"

enum { OPT_NAME = 256, OPT_DIGEST, OPT_NO_MAP, OPT_PROGRESS, OPT_JSON, OPT_THREADS, OPT_FORCE,
       OPT_BACKEND, OPT_NO_MMAP, OPT_DIGEST_URL, OPT_LAYOUT };

static const struct option provision_opts[] = {
	{ "name", required_argument, NULL, OPT_NAME },
	{ "digest", required_argument, NULL, OPT_DIGEST },
	{ "no-map", no_argument, NULL, OPT_NO_MAP },
	{ "progress", optional_argument, NULL, OPT_PROGRESS },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "no-mmap", no_argument, NULL, OPT_NO_MMAP },
	{ "digest-url", required_argument, NULL, OPT_DIGEST_URL },
	{ "layout", required_argument, NULL, OPT_LAYOUT },
	CLI_FETCH_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ 0 }
};

struct provision_args {
	struct imgdev_provision_opts opts;
	struct cli_fetch fetch;
	const char *digest_url;
	enum progress_mode progress;
	bool json;
};

static int parse_progress(struct cli *cli, const char *arg, enum progress_mode *mode)
{
	if (!arg)
		*mode = PROGRESS_BAR;
	else if (strcmp(arg, "json") == 0)
		*mode = PROGRESS_JSON;
	else
		return cli_usage_error(cli, "--progress=%s: expected --progress or --progress=json", arg);
	return 0;
}

static int parse_threads(struct cli *cli, const char *arg, unsigned int *threads)
{
	char *end;
	unsigned long n = strtoul(arg, &end, 10);

	if (*arg < '0' || *arg > '9' || *end || n < 1 || n > 64)
		return cli_usage_error(cli, "--threads %s: expected a number from 1 to 64", arg);
	*threads = (unsigned int)n;
	return 0;
}

static int parse_layout(struct cli *cli, const char *arg, enum imgdev_layout *layout)
{
	if (strcmp(arg, "virtlet") == 0)
		*layout = IMGDEV_LAYOUT_VIRTLET;
	else if (strcmp(arg, "aligned") == 0)
		*layout = IMGDEV_LAYOUT_ALIGNED;
	else
		return cli_usage_error(cli, "--layout %s: expected virtlet or aligned", arg);
	return 0;
}

/* Parse one provision option; 0 to go on, else an exit status. */
static int provision_option(struct cli *cli, int c, char **argv, struct provision_args *a)
{
	switch (c) {
	case OPT_NAME: a->opts.name = optarg; return 0;
	case OPT_NO_MAP: a->opts.no_map = true; return 0;
	case OPT_FORCE: a->opts.force = true; return 0;
	case OPT_NO_MMAP: a->opts.mmap_image = false; return 0;
	case OPT_BACKEND: return cli_set_backend(cli, optarg);
	case OPT_JSON: a->json = true; return 0;
	case OPT_PROGRESS: return parse_progress(cli, optarg, &a->progress);
	case OPT_THREADS: return parse_threads(cli, optarg, &a->opts.threads);
	case OPT_LAYOUT: return parse_layout(cli, optarg, &a->opts.layout);
	case OPT_DIGEST:
		if (imgdev_parse_hash(cli->ctx, optarg, a->opts.digest) < 0)
			return cli_usage_error(cli, "--digest: %s", imgdev_ctx_last_error(cli->ctx));
		a->opts.has_digest = true;
		return 0;
	case OPT_DIGEST_URL: a->digest_url = optarg; return 0;
	default: {
		int rc = cli_fetch_option(cli, c, optarg, &a->fetch);

		return rc >= 0 ? rc : cli_option_error(cli, c, argv);
	}
	}
}

/*
 * After the options: the fetch options in the context, and the digest a
 * --digest-url gives for the image (before anything else is done).
 */
static int provision_prepare(struct cli *cli, struct provision_args *a, const char *image)
{
	int rc = cli_fetch_apply(cli, &a->fetch);

	if (rc || !a->digest_url)
		return rc;
	if (a->opts.has_digest)
		return cli_usage_error(cli, "--digest and --digest-url: give one of them");
	if (!strncmp(image, "docker://", 9) || !strncmp(image, "oci:", 4))
		return cli_usage_error(cli, "--digest-url: a container image is named by its "
				       "manifest's digest (REPOSITORY@sha256:...)");
	rc = imgdev_digest_from_url(cli->ctx, a->digest_url, image, a->opts.digest);
	if (rc < 0)
		return cli_fail(cli, rc);
	a->opts.has_digest = true;
	return 0;
}

/*
 * With the image mapped (mmap_image and a digest), a truncation of the
 * image file or a failing read of its storage in mid-copy arrives as
 * SIGBUS. The device is still marked "writing" then (nothing is committed
 * before the copy ends), so say so and exit as for an unreadable image
 * instead of dying with "Bus error". Two workers may fault at once: the
 * first one reports.
 */
static char sigbus_msg[1024];
static size_t sigbus_len;
static int sigbus_reported;

static void on_sigbus(int sig)
{
	ssize_t n;

	(void)sig;
	if (__atomic_exchange_n(&sigbus_reported, 1, __ATOMIC_SEQ_CST))
		for (;;)
			pause();	/* the first one exits */
	n = write(STDERR_FILENO, sigbus_msg, sigbus_len);
	(void)n;	/* nothing more to do if stderr is gone */
	_exit(EXIT_IMAGE);
}

static void catch_sigbus(const char *device, const char *image, bool progress_bar,
			 struct sigaction *old)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	int n = snprintf(sigbus_msg, sizeof(sigbus_msg),
			 "%simgdev: provision: %s: reading the image failed in mid-copy (SIGBUS: the file "
			 "was truncated or its storage failed); %s is left marked \"writing\"; provision "
			 "again, or use --no-mmap to get the read error itself\n",
			 progress_bar ? "\r\033[K" : "", image, device);

	sigbus_len = n < 0 ? 0 : (size_t)n < sizeof(sigbus_msg) ? (size_t)n : sizeof(sigbus_msg) - 1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, old);
}

static void provision_print_json(const struct imgdev_provision_result *r)
{
	struct json_object *o = json_object_new_object();
	char hash[72];

	json_object_object_add(o, "written", json_object_new_boolean(r->written));
	json_object_object_add(o, "mapped_path",
			       r->mapped_path ? json_object_new_string(r->mapped_path) : NULL);
	imgdev_format_hash(r->image_hash, hash);
	json_object_object_add(o, "image_hash", json_object_new_string(hash));
	imgdev_format_hash(r->content_hash, hash);
	json_object_object_add(o, "content_hash", json_object_new_string(hash));
	json_object_object_add(o, "image_size", json_object_new_uint64(r->image_size));
	json_object_object_add(o, "bytes_written", json_object_new_uint64(r->bytes_written));
	json_object_object_add(o, "bytes_zeroed", json_object_new_uint64(r->bytes_zeroed));
	json_object_object_add(o, "resumed_at", json_object_new_uint64(r->resumed_at));
	json_object_object_add(o, "zeroing", json_object_new_string(imgdev_zeroing_name(r->zeroing)));
	json_object_object_add(o, "layout", json_object_new_string(imgdev_layout_name(r->layout)));
	json_object_object_add(o, "data_offset", json_object_new_uint64(r->data_offset));
	json_object_object_add(o, "direct_io", json_object_new_boolean(r->direct_io));
	if (r->disk_path)
		json_object_object_add(o, "disk_path", json_object_new_string(r->disk_path));
	json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
	cli_print_json(o);
}

int cmd_provision(struct cli *cli, int argc, char **argv)
{
	struct provision_args a = { .opts = IMGDEV_PROVISION_OPTS_INIT, .fetch = CLI_FETCH_INIT };
	struct imgdev_provision_result res;
	struct progress progress;
	struct sigaction old_sigbus;
	bool mapped;
	int c, rc;

	a.opts.mmap_image = true;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", provision_opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(cli);
		rc = provision_option(cli, c, argv, &a);
		if (rc)
			return rc;
	}
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	if (!a.opts.name && !a.opts.no_map)
		return cli_usage_error(cli, "--name NAME is required (or --no-map)");
	rc = provision_prepare(cli, &a, argv[optind + 1]);
	if (rc)
		return rc;
	progress_init(&progress, a.progress);
	a.opts.progress = progress_update;
	a.opts.progress_data = &progress;
	mapped = a.opts.mmap_image && a.opts.has_digest;	/* when the library maps */
	if (mapped)
		catch_sigbus(argv[optind], argv[optind + 1], progress.mode == PROGRESS_BAR, &old_sigbus);
	rc = imgdev_provision(cli->ctx, argv[optind], argv[optind + 1], &a.opts, &res);
	if (mapped)
		sigaction(SIGBUS, &old_sigbus, NULL);
	progress_end(&progress);
	if (rc < 0)
		return cli_fail(cli, rc);
	if (a.json) {
		provision_print_json(&res);
	} else {
		puts(res.written ? "written" : "matched");
		if (res.mapped_path)
			puts(res.mapped_path);
	}
	imgdev_provision_result_clear(&res);
	return EXIT_OK;
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
	struct imgdev_verify_opts opts = IMGDEV_VERIFY_OPTS_INIT;
	struct imgdev_verify_result res;
	char hash[72];
	bool json = false;
	int status, rc;

	if (cli_parse_simple(cli, argc, argv, &json, false, &status) < 0)
		return status;
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	rc = imgdev_verify(cli->ctx, argv[optind], &opts, &res);
	if (json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "device", json_object_new_string(argv[optind]));
		json_object_object_add(o, "ok", json_object_new_boolean(rc == 0));
		if (rc < 0)
			json_object_object_add(o, "error",
					       json_object_new_string(imgdev_ctx_last_error(cli->ctx)));
		imgdev_format_hash(res.image_hash, hash);
		json_object_object_add(o, "image_hash", json_object_new_string(hash));
		imgdev_format_hash(res.content_hash, hash);
		json_object_object_add(o, "content_hash", json_object_new_string(hash));
		json_object_object_add(o, "image_size", json_object_new_uint64(res.image_size));
		json_object_object_add(o, "seconds", json_object_new_double(res.seconds));
			cli_print_json(o);
	}
	if (rc < 0)
		return cli_fail(cli, rc);
	if (!json)
		puts("ok");
	return EXIT_OK;
}

static void info_print_text(const char *image, const struct imgdev_image_info *i)
{
	printf("image:        %s\n", image);
	if (i->container) {
		printf("manifest:     %s%s%s\nlayers:       %u\n", i->manifest_digest,
		       i->platform[0] ? " for " : "", i->platform, i->layers);
		if (i->disk_path[0])
			printf("disk:         %s\n", i->disk_path);
		if (strcmp(i->image_hash, i->manifest_digest) != 0)
			printf("image hash:   %s (the manifest and the disk path)\n", i->image_hash);
	}
	printf("format:       %s\n", i->format);
	if (i->qcow2_version)
		printf("qcow2:        version %u, %" PRIu64 "-byte clusters%s%s\n", i->qcow2_version,
		       i->cluster_size, i->extended_l2 ? ", extended L2" : "",
		       i->dirty ? ", dirty" : "");
	if (i->cluster_compression[0])
		printf("clusters:     %s-compressed\n", i->cluster_compression);
	printf("compression:  %s\nfile size:    %" PRIu64 "\nvirtual size: %" PRIu64 "\n",
	       i->compression, i->file_size, i->virtual_size);
	if (i->allocated_known)
		printf("allocated:    %" PRIu64 "\n", i->allocated);
	printf("supported:    %s%s%s\n", i->supported ? "yes" : "no",
	       i->supported ? "" : " — ", i->supported ? "" : i->reason);
}

static void info_print_json(const char *image, const struct imgdev_image_info *i)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "image", json_object_new_string(image));
	json_object_object_add(o, "format", json_object_new_string(i->format));
	json_object_object_add(o, "compression", json_object_new_string(i->compression));
	json_object_object_add(o, "file_size", json_object_new_uint64(i->file_size));
	json_object_object_add(o, "virtual_size", json_object_new_uint64(i->virtual_size));
	json_object_object_add(o, "allocated", i->allocated_known ?
				       json_object_new_uint64(i->allocated) : NULL);
	if (i->qcow2_version) {
		json_object_object_add(o, "qcow2_version", json_object_new_int((int)i->qcow2_version));
		json_object_object_add(o, "cluster_size", json_object_new_uint64(i->cluster_size));
		json_object_object_add(o, "extended_l2", json_object_new_boolean(i->extended_l2));
		json_object_object_add(o, "dirty", json_object_new_boolean(i->dirty));
		json_object_object_add(o, "cluster_compression", i->cluster_compression[0] ?
				       json_object_new_string(i->cluster_compression) : NULL);
	}
	if (i->container) {
		json_object_object_add(o, "manifest_digest", json_object_new_string(i->manifest_digest));
		json_object_object_add(o, "image_hash", json_object_new_string(i->image_hash));
		json_object_object_add(o, "platform", i->platform[0] ?
				       json_object_new_string(i->platform) : NULL);
		json_object_object_add(o, "layers", json_object_new_int((int)i->layers));
		json_object_object_add(o, "disk_path", i->disk_path[0] ?
				       json_object_new_string(i->disk_path) : NULL);
	}
	json_object_object_add(o, "supported", json_object_new_boolean(i->supported));
	json_object_object_add(o, "reason", i->supported ? NULL : json_object_new_string(i->reason));
	cli_print_json(o);
}

/* info's options: --json and the fetch options; 0 to go on, else an exit status. */
static int info_options(struct cli *cli, int argc, char **argv, bool *json)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		CLI_FETCH_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct cli_fetch fetch = CLI_FETCH_INIT;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_help(cli);
		if (c == 'j') {
			*json = true;
			continue;
		}
		rc = cli_fetch_option(cli, c, optarg, &fetch);
		if (rc)
			return rc > 0 ? rc : cli_option_error(cli, c, argv);
	}
	return cli_fetch_apply(cli, &fetch);
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
	struct imgdev_image_info info;
	bool json = false;
	int rc = info_options(cli, argc, argv, &json);

	if (rc)
		return rc;
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	rc = imgdev_image_info(cli->ctx, argv[optind], &info);
	if (rc < 0)
		return cli_fail(cli, rc);
	if (json)
		info_print_json(argv[optind], &info);
	else
		info_print_text(argv[optind], &info);
	if (!info.supported)
		fprintf(stderr, "imgdev: info: %s\n", info.reason);
	return info.supported ? EXIT_OK : EXIT_IMAGE;
}
