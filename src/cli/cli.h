/*
 * Shared pieces of the imgdev command: the exit statuses, the per-command
 * entry points, and the helpers that report errors in one format.
 */
#ifndef IMGDEV_CLI_H
#define IMGDEV_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "imgdev.h"

/* Exit statuses; status.c maps the library's errnos to them and says what they mean. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,		/* any failure not listed here */
	EXIT_USAGE = 2,
	EXIT_MISMATCH = 3,	/* verify: the payload differs from its record */
	EXIT_NO_RECORD = 4,	/* verify: no complete commit record */
	EXIT_BUSY = 5,		/* the device is mounted, mapped or held */
	EXIT_FOREIGN = 6,	/* a foreign signature, refused without --force */
	EXIT_IMAGE = 7,		/* the image is unreadable or unsupported */
	EXIT_TOO_SMALL = 8,	/* the device is too small */
	EXIT_PERMISSION = 9,	/* permission denied */
	EXIT_DIGEST = 10,	/* the image received is not the one its digest names */
	EXIT_REMOTE = 11,	/* the image's server or the network failed */
};

/*
 * The getopt codes of the fetch options (fetch.c), shared by provision and
 * info: how a URL or a registry is fetched, and which disk of which
 * platform a container image gives.
 */
enum {
	CLI_OPT_CA_FILE = 512,
	CLI_OPT_INSECURE,
	CLI_OPT_HEADER_FILE,
	CLI_OPT_RETRIES,
	CLI_OPT_TIMEOUT,
	CLI_OPT_AUTH_FILE,
	CLI_OPT_PLATFORM,
	CLI_OPT_DISK_PATH,
};
#define CLI_FETCH_OPTIONS                                                   \
	{ "ca-file", required_argument, NULL, CLI_OPT_CA_FILE },            \
	{ "insecure", no_argument, NULL, CLI_OPT_INSECURE },                \
	{ "header-file", required_argument, NULL, CLI_OPT_HEADER_FILE },    \
	{ "retries", required_argument, NULL, CLI_OPT_RETRIES },            \
	{ "timeout", required_argument, NULL, CLI_OPT_TIMEOUT },            \
	{ "auth-file", required_argument, NULL, CLI_OPT_AUTH_FILE },        \
	{ "platform", required_argument, NULL, CLI_OPT_PLATFORM },          \
	{ "disk-path", required_argument, NULL, CLI_OPT_DISK_PATH }
#define CLI_FETCH_USAGE                                                                        \
	"[--ca-file FILE] [--insecure] [--header-file FILE] [--retries N] [--timeout SECONDS] " \
	"[--auth-file FILE] [--platform OS/ARCH[/VARIANT]] [--disk-path PATH]"

/* Where provision and info take the image from: the fetch and container options. */
struct cli_fetch {
	struct imgdev_fetch_opts fetch;
	struct imgdev_container_opts container;
};
#define CLI_FETCH_INIT \
	{ .fetch = IMGDEV_FETCH_OPTS_INIT, .container = IMGDEV_CONTAINER_OPTS_INIT }

struct cli;

/* One subcommand: argv[0] is the command name. Returns an exit status. */
typedef int (*cli_command_fn)(struct cli *cli, int argc, char **argv);

/*
 * A row of the command table (main.c), the one place a command's usage text
 * and arity are written: its --help, its usage errors and imgdev --help all
 * read them from here.
 */
struct cli_command {
	const char *name;
	cli_command_fn fn;
	const char *args;	/* usage after the name: "DEVICE [--json]" */
	const char *summary;	/* what it does, for imgdev --help */
	int nargs;		/* positional arguments it takes */
};

struct cli {
	struct imgdev_ctx *ctx;
	const char *command;	/* for messages */
	const struct cli_command *cmd;	/* the one running, NULL before */
	int verbose;
};

int cmd_ensure(struct cli *cli, int argc, char **argv);
int cmd_map(struct cli *cli, int argc, char **argv);
int cmd_unmap(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_header(struct cli *cli, int argc, char **argv);
int cmd_provision(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
int cmd_info(struct cli *cli, int argc, char **argv);

enum progress_mode { PROGRESS_NONE, PROGRESS_BAR, PROGRESS_JSON };

struct progress {
	enum progress_mode mode;
	double start;
	double last;
	bool shown;
	/* The last update, when it was not shown (too soon): progress_end shows it. */
	bool pending;
	uint64_t pending_done, pending_total;
};

/* PROGRESS_BAR turns itself off when stderr is not a terminal. */
void progress_init(struct progress *p, enum progress_mode mode);
/* An imgdev_progress_fn; arg is the struct progress. */
void progress_update(void *arg, uint64_t done, uint64_t total);
/* Show an update held back as too soon (a JSON line), and clear the terminal line. */
void progress_end(struct progress *p);

/* "imgdev: CMD: <what>" on stderr; returns EXIT_USAGE. */
int cli_usage_error(struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Report getopt's complaint c (':' or '?') about argv; returns EXIT_USAGE. */
int cli_option_error(struct cli *cli, int c, char **argv);
/* Print "Usage: imgdev NAME ARGS" of the running command; returns an exit status. */
int cli_help(struct cli *cli);
/*
 * After the options: whether the running command got its number of
 * positional arguments; 0, or EXIT_USAGE after a message with its usage.
 */
int cli_want_args(struct cli *cli, int argc);
/* The exit status for a library call's result rc (0 or -errno). */
int cli_exit_status(int rc);
/* Report the context's last error, from a call that returned rc; returns its exit status. */
int cli_fail(struct cli *cli, int rc);
/*
 * A fetch option c (CLI_OPT_*) with its argument into f: 0, an exit status
 * after a usage error, or -1 when c is not one.
 */
int cli_fetch_option(struct cli *cli, int c, const char *arg, struct cli_fetch *f);
/* Make f the context's fetch and container options: 0, or an exit status. */
int cli_fetch_apply(struct cli *cli, const struct cli_fetch *f);
/* The table of exit statuses, for imgdev --help. */
void cli_print_exit_statuses(FILE *out);
/*
 * Parse the options of a simple command: --help, --json when json is given,
 * --backend when backend is true. -1 means exit with *status.
 */
int cli_parse_simple(struct cli *cli, int argc, char **argv, bool *json, bool backend,
		     int *status);
struct json_object;
/* Print a json-c object on stdout, pretty, and drop it. */
void cli_print_json(struct json_object *obj);
/* Apply --backend NAME; 0, or an exit status after a message. */
int cli_set_backend(struct cli *cli, const char *name);

#endif
