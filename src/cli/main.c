/*
 * imgdev: the command line front of libimgdev. Parses the global options,
 * picks one subcommand from a table, and turns failures into the one error
 * format (imgdev: <command>: <what>: <why>) and exit status (0, 1, 2).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	cli_command_fn fn;
	const char *summary;
} commands[] = {
	{ "provision", cmd_provision,
	  "provision DEVICE IMAGE --name NAME [--digest sha256:HEX] [--no-map] [--force]\n"
	  "            [--progress[=json]] [--json] [--threads N] [--no-mmap]\n"
	  "                                write the image, commit it, map it" },
	{ "verify", cmd_verify, "verify DEVICE [--json]        check the payload against its commit record" },
	{ "info", cmd_info, "info IMAGE [--json]           format, sizes, and whether imgdev takes it" },
	{ "ensure", cmd_ensure, "ensure DEVICE HASH [--force]  make the header name this image" },
	{ "map", cmd_map, "map DEVICE NAME --image-size BYTES\n"
			  "                                map the payload (device-mapper or loop)" },
	{ "unmap", cmd_unmap, "unmap NAME                    remove a mapping" },
	{ "list", cmd_list, "list [--json]                 list image mappings" },
	{ "header", cmd_header, "header DEVICE [--json]        show what sector 0 holds" },
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: imgdev [OPTIONS] COMMAND [ARGS]\n\n"
		     "Keep a VM image on a raw block device: a header in sector 0, the image\n"
		     "after it, mapped through device-mapper or a loop device.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %s\n", commands[i].summary);
	fprintf(out, "\nOptions:\n"
		     "  --dev-dir DIR     the /dev to use (default /dev)\n"
		     "  --sysfs-dir DIR   the /sys to use (default /sys)\n"
		     "  --prefix P        mapping names must start with P (default %s)\n"
		     "  --backend B       dm, loop or auto (default: dm when available, else loop)\n"
		     "  --run-dir DIR     where loop mappings get their links (default /run/imgdev)\n"
		     "  -v, --verbose     log what is done on stderr (twice: debug)\n"
		     "  -h, --help        this help\n"
		     "  --version         print the version\n\n"
		     "Exit status: 0 success, 1 failure, 2 bad usage.\n",
		IMGDEV_DEFAULT_PREFIX);
}

int cli_usage_error(struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "imgdev: %s: ", cli->command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see imgdev --help)\n");
	return EXIT_USAGE;
}

int cli_fail(struct cli *cli)
{
	fprintf(stderr, "imgdev: %s: %s\n", cli->command, imgdev_ctx_last_error(cli->ctx));
	return EXIT_FAIL;
}

static void log_to_stderr(void *userdata, int priority, const char *msg)
{
	static const char *const level[] = { [3] = "error", [4] = "warning", [6] = "info",
					     [7] = "debug" };
	struct cli *cli = userdata;
	const char *what = priority >= 0 && priority <= 7 && level[priority] ? level[priority] : "log";

	fprintf(stderr, "imgdev: %s: %s: %s\n", cli->command, what, msg);
}

enum { OPT_DEV_DIR = 256, OPT_SYSFS_DIR, OPT_PREFIX, OPT_VERSION, OPT_RUN_DIR, OPT_BACKEND };

/* Apply global options; returns -1 to go on, else an exit status. */
static int parse_globals(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dev-dir", required_argument, NULL, OPT_DEV_DIR },
		{ "sysfs-dir", required_argument, NULL, OPT_SYSFS_DIR },
		{ "prefix", required_argument, NULL, OPT_PREFIX },
		{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 }
	};
	int c, rc = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:vh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DEV_DIR: rc = imgdev_ctx_set_dev_dir(cli->ctx, optarg); break;
		case OPT_SYSFS_DIR: rc = imgdev_ctx_set_sysfs_dir(cli->ctx, optarg); break;
		case OPT_PREFIX: rc = imgdev_ctx_set_prefix(cli->ctx, optarg); break;
		case OPT_RUN_DIR: rc = imgdev_ctx_set_run_dir(cli->ctx, optarg); break;
		case OPT_BACKEND:
			if ((c = cli_set_backend(cli, optarg)))
				return c;
			break;
		case 'v': cli->verbose++; break;
		case 'h': usage(stdout); return EXIT_OK;
		case OPT_VERSION: printf("imgdev %s\n", imgdev_version()); return EXIT_OK;
		case ':': return cli_usage_error(cli, "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error(cli, "unknown option \"%s\"", argv[optind - 1]);
		}
		if (rc < 0)
			return cli_usage_error(cli, "%s", imgdev_ctx_last_error(cli->ctx));
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct cli cli = { .command = "imgdev" };
	int status;

	if (imgdev_ctx_new(&cli.ctx) < 0) {
		fprintf(stderr, "imgdev: out of memory\n");
		return EXIT_FAIL;
	}
	status = parse_globals(&cli, argc, argv);
	if (status >= 0)
		goto out;
	imgdev_ctx_set_log(cli.ctx, log_to_stderr, &cli, cli.verbose >= 2 ? 7 : cli.verbose ? 6 : 4);
	if (optind >= argc) {
		usage(stderr);
		status = EXIT_USAGE;
		goto out;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			char **cargv = argv + optind;
			int cargc = argc - optind;

			cli.command = commands[i].name;
			optind = 0;	/* restart getopt on the command's own arguments */
			status = commands[i].fn(&cli, cargc, cargv);
			goto out;
		}
	}
	status = cli_usage_error(&cli, "unknown command \"%s\"", argv[optind]);
out:
	imgdev_ctx_free(cli.ctx);
	return status;
}
