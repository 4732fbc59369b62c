/*
 * imgdev: the command line front of libimgdev. Parses the global options,
 * picks one subcommand from the command table (each one's usage, summary and
 * arity), and reports usage errors in the one format
 * (imgdev: <command>: <what>); status.c turns failures into exit statuses.
 */
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BACKEND_OPT "[--backend dm|loop|auto]"

static const struct cli_command commands[] = {
	{ "provision", cmd_provision,
	  "DEVICE IMAGE --name NAME [--digest sha256:HEX | --digest-url URL] [--no-map] "
	  "[--progress[=json]] [--json] [--threads N] [--force] [--no-mmap] "
	  "[--layout virtlet|aligned] " BACKEND_OPT " "
	  CLI_FETCH_USAGE,
	  "write the image, commit it, map it", 2 },
	{ "verify", cmd_verify, "DEVICE [--json]", "check the payload against its commit record", 1 },
	{ "info", cmd_info, "IMAGE [--json] " CLI_FETCH_USAGE,
	  "format, sizes, and whether imgdev takes it", 1 },
	{ "ensure", cmd_ensure, "DEVICE HASH [--force]", "make the header name this image", 2 },
	{ "map", cmd_map, "DEVICE NAME --image-size BYTES " BACKEND_OPT,
	  "map the payload (device-mapper or loop)", 2 },
	{ "unmap", cmd_unmap, "NAME " BACKEND_OPT, "remove a mapping", 1 },
	{ "list", cmd_list, "[--json] " BACKEND_OPT, "list image mappings", 0 },
	{ "header", cmd_header, "DEVICE [--json]", "show what sector 0 holds", 1 },
};

#define HELP_WIDTH 80
#define SUMMARY_COLUMN 32

/*
 * Print "  NAME ARGS" wrapped at HELP_WIDTH, breaking only between
 * bracketed groups, then the summary at SUMMARY_COLUMN (on a line of its
 * own when the usage reaches it).
 */
static void usage_command(FILE *out, const struct cli_command *c)
{
	const char *p = c->args;
	int col = fprintf(out, "  %s", c->name);

	while (*p) {
		const char *end = p;
		int depth = 0;

		while (*end && (depth || *end != ' ')) {
			depth += (*end == '[') - (*end == ']');
			end++;
		}
		if (col + 1 + (int)(end - p) > HELP_WIDTH)
			col = fprintf(out, "\n%11s", "") - 1;
		col += fprintf(out, " %.*s", (int)(end - p), p);
		p = *end ? end + 1 : end;
	}
	if (col >= SUMMARY_COLUMN - 1)
		col = fprintf(out, "\n") - 1;
	fprintf(out, "%*s%s\n", SUMMARY_COLUMN - col, "", c->summary);
}

static void usage(FILE *out)
{
	fprintf(out, "Usage: imgdev [OPTIONS] COMMAND [ARGS]\n\n"
		     "Keep a VM image on a raw block device: a header in sector 0, the image\n"
		     "after it, mapped through device-mapper or a loop device.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		usage_command(out, &commands[i]);
	fprintf(out, "\nOptions:\n"
		     "  --dev-dir DIR     the /dev to use (default /dev)\n"
		     "  --sysfs-dir DIR   the /sys to use (default /sys)\n"
		     "  --prefix P        mapping names must start with P (default %s)\n"
		     "  --backend B       dm, loop or auto (default: dm when available, else loop)\n"
		     "  --run-dir DIR     where loop mappings get their links (default /run/imgdev)\n"
		     "  -v, --verbose     log what is done on stderr (twice: debug)\n"
		     "  -h, --help        this help\n"
		     "  --version         print the version\n\n",
		IMGDEV_DEFAULT_PREFIX);
	cli_print_exit_statuses(out);
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

int cli_option_error(struct cli *cli, int c, char **argv)
{
	if (c == ':')
		return cli_usage_error(cli, "option \"%s\" needs a value", argv[optind - 1]);
	return cli_usage_error(cli, "unknown option \"%s\"", argv[optind - 1]);
}

int cli_help(struct cli *cli)
{
	return printf("Usage: imgdev %s %s\n", cli->cmd->name, cli->cmd->args) < 0 ? EXIT_FAIL
										 : EXIT_OK;
}

int cli_want_args(struct cli *cli, int argc)
{
	int n = cli->cmd->nargs;

	if (argc - optind == n)
		return 0;
	return cli_usage_error(cli, "expected %d argument%s, got %d; usage: imgdev %s %s", n,
			       n == 1 ? "" : "s", argc - optind, cli->cmd->name, cli->cmd->args);
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
		default: return cli_option_error(cli, c, argv);
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

	/*
	 * Buffers of a MiB and more straight from mmap, and back to the system
	 * when freed: glibc kept liblzma's freed 24 MiB block buffers, and an
	 * xz image's peak RSS grew with the image (285-292 MiB at 8 GiB, 196
	 * with this; docs/PERFORMANCE.md, H4). A process-wide setting: the
	 * command's to make, not the library's.
	 */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);

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
			cli.cmd = &commands[i];
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
