/*
 * A tiny program on libimgdev: print what sector 0 of a device or image
 * file holds. Build it against an installed libimgdev with
 *   cc imgdev-header.c $(pkg-config --cflags --libs libimgdev) -o imgdev-header
 */
#include <stdio.h>

#include <imgdev.h>

static void on_log(void *userdata, int priority, const char *msg)
{
	(void)userdata;
	fprintf(stderr, "libimgdev <%d>: %s\n", priority, msg);
}

int main(int argc, char **argv)
{
	struct imgdev_ctx *ctx;
	struct imgdev_header h;
	char hash[72];
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DEVICE\n", argv[0]);
		return 2;
	}
	if (imgdev_ctx_new(&ctx) < 0)
		return 1;
	imgdev_ctx_set_log(ctx, on_log, NULL, 4);
	rc = imgdev_header_read(ctx, argv[1], &h);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", argv[0], imgdev_ctx_last_error(ctx));
		imgdev_ctx_free(ctx);
		return 1;
	}
	printf("libimgdev %s\n", imgdev_version());
	if (!h.present) {
		printf("%s: no image header\n", argv[1]);
	} else {
		imgdev_format_hash(h.image_hash, hash);
		printf("%s: version %u, image %s, payload at byte %llu, %s\n", argv[1], h.version,
		       hash, (unsigned long long)h.data_offset,
		       h.commit_state == IMGDEV_COMMIT_COMPLETE ? "committed" : "not committed");
	}
	imgdev_ctx_free(ctx);
	return 0;
}
