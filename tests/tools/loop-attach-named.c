/*
 * loop-attach-named: a test tool that attaches FILE as a free loop device at
 * OFFSET with lo_file_name set to NAME, as imgdev did before it marked its
 * loop devices (and as any other program may). Prints /dev/loopN.
 * Usage: loop-attach-named FILE OFFSET NAME
 */
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct loop_config cfg;
	char path[64];
	int ctl, nr, lfd, bfd;

	if (argc != 4) {
		fprintf(stderr, "usage: loop-attach-named FILE OFFSET NAME\n");
		return 2;
	}
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	nr = ctl < 0 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
	snprintf(path, sizeof(path), "/dev/loop%d", nr);
	lfd = nr < 0 ? -1 : open(path, O_RDWR | O_CLOEXEC);
	bfd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (lfd < 0 || bfd < 0) {
		perror("loop-attach-named: open");
		return 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (unsigned int)bfd;
	cfg.info.lo_offset = strtoull(argv[2], NULL, 10);
	snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", argv[3]);
	if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
		perror("loop-attach-named: LOOP_CONFIGURE");
		return 1;
	}
	printf("%s\n", path);
	return 0;
}
