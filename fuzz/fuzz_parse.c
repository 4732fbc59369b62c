/*
 * libFuzzer target for the kernel-text parsers: linear table parameters and
 * uevent files. Any input parses or is refused without a crash; an accepted
 * DEVNAME is never absolute and has no ".." component.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_devname(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || name[0] == '/')
		abort();
	for (const char *p = name; (p = strstr(p, "..")); p++)
		if ((p == name || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), name[256];
	unsigned int maj, min;
	uint64_t off;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	(void)parse_linear_params(text, &maj, &min, &off);
	if (parse_uevent_devname(text, size, name, sizeof(name)) == 0)
		check_devname(name);
	free(text);
	return 0;
}
