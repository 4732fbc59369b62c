/*
 * Parsers for kernel-provided text (see parse.h). Strict: anything but the
 * expected shape is rejected, since the result names a device we will read.
 */
#include <errno.h>
#include <string.h>

#include "parse.h"

/* Parse decimal digits at *p into *val (bounded by max); advance *p. */
static int parse_decimal(const char **p, uint64_t max, uint64_t *val)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned int digit = (unsigned int)(*s - '0');

		if (v > (max - digit) / 10)
			return -EINVAL;
		v = v * 10 + digit;
	}
	*p = s;
	*val = v;
	return 0;
}

int parse_linear_params(const char *params, unsigned int *maj, unsigned int *min,
			uint64_t *offset)
{
	const char *p = params;
	uint64_t a, b;

	if (parse_decimal(&p, 0xffffffffu, &a) < 0 || *p++ != ':')
		return -EINVAL;
	if (parse_decimal(&p, 0xffffffffu, &b) < 0 || *p++ != ' ')
		return -EINVAL;
	if (parse_decimal(&p, UINT64_MAX, offset) < 0 || *p != '\0')
		return -EINVAL;
	*maj = (unsigned int)a;
	*min = (unsigned int)b;
	return 0;
}

static int devname_is_safe(const char *name, size_t len)
{
	if (len == 0 || name[0] == '/')
		return 0;
	for (size_t i = 0; i < len; i++) {
		int starts = i == 0 || name[i - 1] == '/';
		int dotdot = i + 1 < len && name[i] == '.' && name[i + 1] == '.' &&
			     (i + 2 == len || name[i + 2] == '/');

		if (name[i] == '\0' || (starts && dotdot))
			return 0;
	}
	return 1;
}

int parse_uevent_devname(const char *text, size_t len, char *out, size_t outlen)
{
	static const char key[] = "DEVNAME=";
	const size_t klen = sizeof(key) - 1;
	size_t pos = 0;

	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;

		pos += llen + 1;
		if (llen < klen || memcmp(line, key, klen) != 0)
			continue;
		line += klen;
		llen -= klen;
		if (!devname_is_safe(line, llen) || llen >= outlen)
			return -EINVAL;
		memcpy(out, line, llen);
		out[llen] = '\0';
		return 0;
	}
	return -ENOENT;
}
