/*
 * The exit statuses of imgdev: one table says which library errno becomes
 * which status and what each status means; cli_fail() and imgdev --help
 * both read it, so the code and the help cannot drift apart.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	int status;
	int errnos[2];		/* the library's errnos behind it (0: none) */
	const char *meaning;
} exit_statuses[] = {
	{ EXIT_OK, { 0 }, "success" },
	{ EXIT_FAIL, { 0 }, "failure not listed below" },
	{ EXIT_USAGE, { EMEDIUMTYPE }, "bad usage: unknown command or option, wrong arguments; a layout the device cannot take" },
	{ EXIT_MISMATCH, { EBADMSG }, "verify: the payload does not match its commit record" },
	{ EXIT_NO_RECORD, { ENODATA }, "verify: no complete commit record to check against" },
	{ EXIT_BUSY, { EBUSY }, "the device is busy: mounted, mapped, held or in use" },
	{ EXIT_FOREIGN, { ENOTEMPTY }, "a filesystem or partition table is there; refused without --force" },
	{ EXIT_IMAGE, { ENOMEDIUM, ENOTSUP }, "the image is unreadable (missing, damaged; HTTP 404) or unsupported" },
	{ EXIT_TOO_SMALL, { ENOSPC }, "the device is too small, or ran out of space while written" },
	{ EXIT_PERMISSION, { EACCES }, "permission denied (imgdev needs root; or the server refused: HTTP 401, 403)" },
	{ EXIT_DIGEST, { EILSEQ, ENOKEY }, "the image received does not match its digest, or --digest-url gives none for it" },
	{ EXIT_REMOTE, { EREMOTEIO }, "the image's server or the network failed (HTTP errors, TLS, redirects)" },
};

#define N_STATUSES (sizeof(exit_statuses) / sizeof(exit_statuses[0]))

int cli_exit_status(int rc)
{
	if (rc >= 0)
		return EXIT_OK;
	for (size_t i = 0; i < N_STATUSES; i++)
		for (size_t j = 0; j < 2 && exit_statuses[i].errnos[j]; j++)
			if (exit_statuses[i].errnos[j] == -rc)
				return exit_statuses[i].status;
	return EXIT_FAIL;
}

int cli_fail(struct cli *cli, int rc)
{
	const char *msg = imgdev_ctx_last_error(cli->ctx);

	fprintf(stderr, "imgdev: %s: %s\n", cli->command, msg[0] ? msg : strerror(-rc));
	return cli_exit_status(rc);
}

void cli_print_exit_statuses(FILE *out)
{
	fprintf(out, "Exit status:\n");
	for (size_t i = 0; i < N_STATUSES; i++)
		fprintf(out, "  %2d  %s\n", exit_statuses[i].status, exit_statuses[i].meaning);
}
