/*
 * The options of provision and info that say how an image named by a URL
 * or a registry is fetched (--ca-file, --insecure, --header-file,
 * --retries, --timeout, --auth-file) and what a container image gives
 * (--platform, --disk-path), parsed into the context's fetch and container
 * options. Credentials come only from a file, never from the command line,
 * where other users see them in ps.
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

/* Whether arg is "os/arch" or "os/arch/variant", each part non-empty, no spaces. */
static bool platform_valid(const char *arg)
{
	int parts = 1;
	size_t run = 0;

	for (const char *p = arg; *p; p++) {
		if (*p == '/') {
			if (run == 0)
				return false;
			parts++;
			run = 0;
		} else if (*p <= ' ') {
			return false;
		} else {
			run++;
		}
	}
	return run > 0 && (parts == 2 || parts == 3);
}

int cli_fetch_option(struct cli *cli, int c, const char *arg, struct cli_fetch *f)
{
	struct imgdev_fetch_opts *fo = &f->fetch;
	unsigned long n;

	switch (c) {
	case CLI_OPT_AUTH_FILE: f->container.auth_file = arg; return 0;
	case CLI_OPT_DISK_PATH: f->container.disk_path = arg; return 0;
	case CLI_OPT_PLATFORM:
		if (!platform_valid(arg))
			return cli_usage_error(cli, "--platform %s: expected OS/ARCH or "
					       "OS/ARCH/VARIANT, such as linux/arm64/v8", arg);
		f->container.platform = arg;
		return 0;
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

int cli_fetch_apply(struct cli *cli, const struct cli_fetch *f)
{
	int rc = imgdev_ctx_set_fetch(cli->ctx, &f->fetch);

	if (rc == 0)
		rc = imgdev_ctx_set_container(cli->ctx, &f->container);
	return rc < 0 ? cli_fail(cli, rc) : 0;
}
