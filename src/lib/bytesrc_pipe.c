/*
 * The byte source over a descriptor that only reads forward: standard
 * input, a pipe, a socket (bytesrc.h). Its size is unknown; it has no pread
 * and no rewind. peek reads the first bytes ahead and holds them, and read
 * hands those out before reading on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytesrc.h"
#include "internal.h"

#define PEEK_MAX 4096

struct pipe_state {
	int fd;                 /* not the source's fd: that says "a file" */
	uint8_t held[PEEK_MAX]; /* read ahead by peek, not yet by read */
	size_t held_len, held_pos;
	bool eof;
};

/* One read(2), retried on EINTR: bytes read, 0 at the end, or -errno. */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t pipe_read(struct bytesrc *bs, void *buf, size_t len)
{
	struct pipe_state *p = bs->priv;
	ssize_t n;

	if (p->held_pos < p->held_len)
		return (ssize_t)bytesrc_take_held(p->held, p->held_len, &p->held_pos, buf, len);
	if (p->eof)
		return 0;
	n = read_some(p->fd, buf, len);
	if (n < 0)
		snprintf(bs->msg, sizeof(bs->msg), "%s: read error: %s", bs->name, strerror((int)-n));
	p->eof = n == 0;
	return n;
}

static ssize_t pipe_peek(struct bytesrc *bs, void *buf, size_t len)
{
	struct pipe_state *p = bs->priv;

	if (len > PEEK_MAX)
		len = PEEK_MAX;
	while (p->held_len < len && !p->eof) {
		ssize_t n = read_some(p->fd, p->held + p->held_len, len - p->held_len);

		if (n < 0) {
			snprintf(bs->msg, sizeof(bs->msg), "%s: read error: %s", bs->name,
				 strerror((int)-n));
			return n;
		}
		p->eof = n == 0;
		p->held_len += (size_t)n;
	}
	len = p->held_len < len ? p->held_len : len;
	memcpy(buf, p->held, len);
	return (ssize_t)len;
}

static void pipe_close(struct bytesrc *bs)
{
	free(bs->priv);
}

static const struct bytesrc_ops pipe_ops = {
	.read = pipe_read,
	.peek = pipe_peek,
	.close = pipe_close,
};

int bytesrc_open_pipe(struct imgdev_ctx *ctx, int fd, const char *name, struct bytesrc **out)
{
	struct bytesrc *bs = calloc(1, sizeof(*bs));
	struct pipe_state *p = calloc(1, sizeof(*p));

	if (!bs || !p || !(bs->name = strdup(name))) {
		free(bs);
		free(p);
		return ctx_error(ctx, ENOMEM, "out of memory");
	}
	bs->ops = &pipe_ops;
	bs->fd = -1;
	p->fd = fd;
	bs->priv = p;
	*out = bs;
	return 0;
}
