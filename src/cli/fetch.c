/*
 * The options of provision and info that say how an image named by a URL
 * is fetched (--ca-file, --insecure, --header-file, --retries, --timeout),
 * parsed into the context's fetch options. Credentials come only from a
 * file, never from the command line, where other users see them in ps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A whole number from 0 to max; false otherwise. */
static bool parse_count(const char *arg, unsigned long max, unsigned long *out)
{
	char *end;

	if (*arg < '0' || *arg > '9')
		return false;
	*out = strtoul(arg, &end, 10);
	return !*end && *out <= max;
}

int cli_fetch_option(struct cli *cli, int c, const char *arg, struct imgdev_fetch_opts *fo)
{
	unsigned long n;

	switch (c) {
	case CLI_OPT_CA_FILE: fo->ca_file = arg; return 0;
	case CLI_OPT_INSECURE: fo->insecure = true; return 0;
	case CLI_OPT_HEADER_FILE: fo->header_file = arg; return 0;
	case CLI_OPT_RETRIES:
		if (!parse_count(arg, 100, &n))
			return cli_usage_error(cli, "--retries %s: expected a number from 0 to 100",
					       arg);
		fo->retries = (int)n;
		return 0;
	case CLI_OPT_TIMEOUT:
		if (!parse_count(arg, 86400, &n) || n == 0)
			return cli_usage_error(cli, "--timeout %s: expected seconds, from 1 to 86400",
					       arg);
		fo->timeout = (unsigned int)n;
		return 0;
	default: return -1;
	}
}

int cli_fetch_apply(struct cli *cli, const struct imgdev_fetch_opts *fo)
{
	return imgdev_ctx_set_fetch(cli->ctx, fo) < 0 ? cli_fail(cli, -EINVAL) : 0;
}
