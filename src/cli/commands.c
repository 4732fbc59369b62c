/*
 * The subcommands of imgdev: each parses its own arguments, calls one
 * library operation, and prints its result as text or (with --json) as one
 * JSON document on stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

int cli_set_backend(struct cli *cli, const char *name)
{
	static const char *const names[] = { [IMGDEV_BACKEND_AUTO] = "auto",
					     [IMGDEV_BACKEND_DM] = "dm",
					     [IMGDEV_BACKEND_LOOP] = "loop" };

	for (int i = 0; i < 3; i++) {
		if (strcmp(name, names[i]) == 0) {
			int rc = imgdev_ctx_set_backend(cli->ctx, i);

			return rc < 0 ? cli_fail(cli, rc) : 0;
		}
	}
	return cli_usage_error(cli, "--backend %s: expected dm, loop or auto", name);
}

int cli_parse_simple(struct cli *cli, int argc, char **argv, bool *json, bool backend,
		     int *status)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'j' && json) {
			*json = true;
		} else if (c == 'b' && backend) {
			*status = cli_set_backend(cli, optarg);
			if (*status)
				return -1;
		} else if (c == 'h') {
			*status = cli_help(cli);
			return -1;
		} else {
			*status = cli_option_error(cli, c == 'j' || c == 'b' ? '?' : c, argv);
			return -1;
		}
	}
	return 0;
}

void cli_print_json(struct json_object *obj)
{
	puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
}

int cmd_ensure(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint8_t hash[IMGDEV_HASH_SIZE];
	unsigned int flags = 0;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'f')
			flags |= IMGDEV_FORCE;
		else if (c == 'h')
			return cli_help(cli);
		else
			return cli_option_error(cli, c, argv);
	}
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	if (imgdev_parse_hash(cli->ctx, argv[optind + 1], hash) < 0)
		return cli_usage_error(cli, "%s", imgdev_ctx_last_error(cli->ctx));
	rc = imgdev_ensure(cli->ctx, argv[optind], hash, flags);
	if (rc < 0)
		return cli_fail(cli, rc);
	puts(rc == IMGDEV_WRITTEN ? "written" : "matched");
	return EXIT_OK;
}

/* Parse a byte count: decimal digits only, no sign, no overflow. */
static int parse_bytes(const char *text, uint64_t *out)
{
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(text, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

int cmd_map(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "image-size", required_argument, NULL, 's' },
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *size_text = NULL;
	uint64_t size;
	char *path = NULL;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		int status = 0;

		if (c == 's')
			size_text = optarg;
		else if (c == 'b')
			status = cli_set_backend(cli, optarg);
		else if (c == 'h')
			return cli_help(cli);
		else
			return cli_option_error(cli, c, argv);
		if (status)
			return status;
	}
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	if (!size_text)
		return cli_usage_error(cli, "--image-size BYTES is required");
	if (parse_bytes(size_text, &size) < 0)
		return cli_usage_error(cli, "--image-size \"%s\": not a number of bytes", size_text);
	rc = imgdev_map(cli->ctx, argv[optind], argv[optind + 1], size, &path);
	if (rc < 0)
		return cli_fail(cli, rc);
	puts(path);
	free(path);
	return EXIT_OK;
}

int cmd_unmap(struct cli *cli, int argc, char **argv)
{
	int status;

	if (cli_parse_simple(cli, argc, argv, NULL, true, &status) < 0)
		return status;
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	status = imgdev_unmap(cli->ctx, argv[optind]);
	return status < 0 ? cli_fail(cli, status) : EXIT_OK;
}

static struct json_object *mapping_json(const struct imgdev_mapping *m)
{
	struct json_object *o = json_object_new_object();
	char hash[72], majmin[32];

	imgdev_format_hash(m->image_hash, hash);
	snprintf(majmin, sizeof(majmin), "%u:%u", m->backing_major, m->backing_minor);
	json_object_object_add(o, "name", json_object_new_string(m->name));
	json_object_object_add(o, "backend", json_object_new_string(
				       m->backend == IMGDEV_BACKEND_LOOP ? "loop" : "dm"));
	json_object_object_add(o, "path", m->path ? json_object_new_string(m->path) : NULL);
	json_object_object_add(o, "device", m->device ? json_object_new_string(m->device) : NULL);
	json_object_object_add(o, "backing", json_object_new_string(m->backing));
	json_object_object_add(o, "backing_dev", m->backing_major || m->backing_minor ?
				       json_object_new_string(majmin) : NULL);
	json_object_object_add(o, "sectors", json_object_new_uint64(m->sectors));
	json_object_object_add(o, "image_hash", json_object_new_string(hash));
	return o;
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
	struct imgdev_mapping *list = NULL;
	bool json = false;
	int status, n;

	if (cli_parse_simple(cli, argc, argv, &json, true, &status) < 0)
		return status;
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	n = imgdev_list(cli->ctx, &list);
	if (n < 0)
		return cli_fail(cli, n);
	if (json) {
		struct json_object *arr = json_object_new_array();

		for (int i = 0; i < n; i++)
			json_object_array_add(arr, mapping_json(&list[i]));
		cli_print_json(arr);
	} else {
		for (int i = 0; i < n; i++)
			puts(list[i].name);
	}
	imgdev_mappings_free(list, n);
	return EXIT_OK;
}

static const char *commit_state_name(int state)
{
	switch (state) {
	case IMGDEV_COMMIT_WRITING: return "writing";
	case IMGDEV_COMMIT_COMPLETE: return "complete";
	case IMGDEV_COMMIT_CORRUPT: return "corrupt";
	case IMGDEV_COMMIT_NEWER: return "newer";
	default: return "none";
	}
}

/* "virtlet layout", "aligned layout", or what a newer version means here. */
static const char *layout_label(const struct imgdev_header *h)
{
	switch (h->layout) {
	case IMGDEV_LAYOUT_VIRTLET: return "virtlet layout";
	case IMGDEV_LAYOUT_ALIGNED: return "aligned layout";
	default: return "newer than this build";
	}
}

static void header_print_text(const char *device, const struct imgdev_header *h)
{
	char hash[72];

	printf("device:      %s\n", device);
	if (!h->present) {
		printf("header:      none (no imgdev magic in sector 0)\n");
		return;
	}
	imgdev_format_hash(h->image_hash, hash);
	printf("header:      present\nversion:     %u (%s)\nimage hash:  %s\ndata offset: %" PRIu64 "\n",
	       h->version, layout_label(h), hash, h->data_offset);
	printf("commit:      %s\n", commit_state_name(h->commit_state));
	if (h->commit_state != IMGDEV_COMMIT_WRITING && h->commit_state != IMGDEV_COMMIT_COMPLETE)
		return;
	imgdev_format_hash(h->target_hash, hash);
	printf("image size:  %" PRIu64 "\nfor image:   %s\n", h->image_size, hash);
	imgdev_format_hash(h->content_hash, hash);
	printf("content:     %s\n", hash);
	if (h->resume_at)
		printf("resume at:   %" PRIu64 "\n", h->resume_at);
}

static void header_print_json(const char *device, const struct imgdev_header *h)
{
	struct json_object *o = json_object_new_object();
	char hash[72];

	json_object_object_add(o, "device", json_object_new_string(device));
	json_object_object_add(o, "present", json_object_new_boolean(h->present));
	if (h->present) {
		imgdev_format_hash(h->image_hash, hash);
		json_object_object_add(o, "version", json_object_new_int(h->version));
		json_object_object_add(o, "image_hash", json_object_new_string(hash));
		json_object_object_add(o, "data_offset", json_object_new_uint64(h->data_offset));
		json_object_object_add(o, "layout", h->layout == IMGDEV_LAYOUT_AUTO ? NULL :
					       json_object_new_string(imgdev_layout_name(h->layout)));
		json_object_object_add(o, "commit", json_object_new_string(commit_state_name(h->commit_state)));
	}
	if (h->commit_state == IMGDEV_COMMIT_WRITING || h->commit_state == IMGDEV_COMMIT_COMPLETE) {
		json_object_object_add(o, "image_size", json_object_new_uint64(h->image_size));
		imgdev_format_hash(h->target_hash, hash);
		json_object_object_add(o, "target_hash", json_object_new_string(hash));
		imgdev_format_hash(h->content_hash, hash);
		json_object_object_add(o, "content_hash", json_object_new_string(hash));
		json_object_object_add(o, "commit_time", json_object_new_uint64(h->commit_time));
		if (h->commit_state == IMGDEV_COMMIT_WRITING)
			json_object_object_add(o, "resume_at", json_object_new_uint64(h->resume_at));
	}
	cli_print_json(o);
}

int cmd_header(struct cli *cli, int argc, char **argv)
{
	struct imgdev_header h;
	bool json = false;
	int status, rc;

	if (cli_parse_simple(cli, argc, argv, &json, false, &status) < 0)
		return status;
	if (cli_want_args(cli, argc))
		return EXIT_USAGE;
	rc = imgdev_header_read(cli->ctx, argv[optind], &h);
	if (rc < 0)
		return cli_fail(cli, rc);
	if (json)
		header_print_json(argv[optind], &h);
	else
		header_print_text(argv[optind], &h);
	return EXIT_OK;
}
