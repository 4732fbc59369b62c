/*
 * Unit tests of mapping recognition against a fake /dev + /sys tree: which
 * tables count as image mappings, how the backing device is found through
 * the uevent file, and that unresolvable devices are skipped with a warning;
 * which node a mapping is listed under (only nodes that exist and are the
 * mapping's). Also the mapping-name rules.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "file_helpers.h"
#include "header.h"
#include "mapping.h"

struct fixture {
	struct imgdev_ctx *ctx;
	char root[64];
	int warnings;
	char last_warning[512];
};

static void make_dir(const char *root, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void on_log(void *userdata, int priority, const char *msg)
{
	struct fixture *fx = userdata;

	if (priority == 4) {
		fx->warnings++;
		snprintf(fx->last_warning, sizeof(fx->last_warning), "%s", msg);
	}
}

/* The mapping's own number in these tests; sysfs names its node dm-5. */
#define MAPPING_DEV makedev(253, 5)

/* /dev/imgdisk carries a header; /dev/plaindisk does not; 7:3 and 7:4 name them. */
static int setup(void **state)
{
	static const char ev_img[] = "MAJOR=7\nMINOR=3\nDEVNAME=imgdisk\nDEVTYPE=disk\n";
	static const char ev_plain[] = "MAJOR=7\nMINOR=4\nDEVNAME=plaindisk\n";
	static const char ev_dm[] = "MAJOR=253\nMINOR=5\nDEVNAME=dm-5\n";
	struct fixture *fx = calloc(1, sizeof(*fx));
	uint8_t sector[SECTOR_SIZE], hash[IMGDEV_HASH_SIZE];
	char dir[128];
	struct hdr h;

	assert_non_null(fx);
	strcpy(fx->root, "/tmp/imgdev-tree-XXXXXX");
	assert_non_null(mkdtemp(fx->root));
	for (const char *d = "dev\0sys\0sys/dev\0sys/dev/block\0sys/dev/block/7:3\0"
			     "sys/dev/block/7:4\0sys/dev/block/253:5\0dev/mapper\0";
	     *d; d += strlen(d) + 1)
		make_dir(fx->root, d);
	put_text(fx->root, "sys/dev/block/7:3/uevent", ev_img);
	put_text(fx->root, "sys/dev/block/7:4/uevent", ev_plain);
	put_text(fx->root, "sys/dev/block/253:5/uevent", ev_dm);
	memset(hash, 0x3c, sizeof(hash));
	hdr_init_v1(&h, hash);
	hdr_encode(&h, sector);
	put_file(fx->root, "dev/imgdisk", sector, sizeof(sector));
	memset(sector, 0, sizeof(sector));
	put_file(fx->root, "dev/plaindisk", sector, sizeof(sector));
	assert_int_equal(imgdev_ctx_new(&fx->ctx), 0);
	snprintf(dir, sizeof(dir), "%s/dev", fx->root);
	assert_int_equal(imgdev_ctx_set_dev_dir(fx->ctx, dir), 0);
	snprintf(dir, sizeof(dir), "%s/sys", fx->root);
	assert_int_equal(imgdev_ctx_set_sysfs_dir(fx->ctx, dir), 0);
	imgdev_ctx_set_log(fx->ctx, on_log, fx, 7);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	assert_int_equal(system(cmd), 0);
	imgdev_ctx_free(fx->ctx);
	free(fx);
	return 0;
}

static int inspect(struct fixture *fx, int count, const char *type, uint64_t start,
		   const char *params, struct imgdev_mapping *m)
{
	struct dmctl_target t = { .start = start, .length = 2047 };

	snprintf(t.type, sizeof(t.type), "%s", type);
	t.params = (char *)params;
	return mapping_inspect(fx->ctx, "virtlet-dm-a", MAPPING_DEV, count, &t, m);
}

/* Make <root>/rel a block node of dev: 0, or -1 when we may not (not root). */
static int make_node(const char *root, const char *rel, dev_t dev)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	unlink(path);
	return mknod(path, S_IFBLK | 0600, dev) == 0 ? 0 : -1;
}

/* Assert m->path and m->device are <root>/path_rel and <root>/device_rel. */
static void assert_nodes(const struct fixture *fx, const struct imgdev_mapping *m,
			 const char *path_rel, const char *device_rel)
{
	char expect[256];

	snprintf(expect, sizeof(expect), "%s/%s", fx->root, path_rel);
	assert_string_equal(m->path, expect);
	snprintf(expect, sizeof(expect), "%s/%s", fx->root, device_rel);
	assert_string_equal(m->device, expect);
}

static void test_recognises_image_mapping(void **state)
{
	struct fixture *fx = *state;
	struct imgdev_mapping m;
	char expect[128];

	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 1", &m), 1);
	assert_string_equal(m.name, "virtlet-dm-a");
	snprintf(expect, sizeof(expect), "%s/dev/imgdisk", fx->root);
	assert_string_equal(m.backing, expect);
	assert_int_equal(m.backing_major, 7);
	assert_int_equal(m.backing_minor, 3);
	assert_true(m.sectors == 2047);
	assert_int_equal(m.image_hash[0], 0x3c);
	mapping_clear(&m);
}

/*
 * No node of the mapping in the tree: listed, with no path (and a warning
 * saying so), never with a /dev/mapper path that does not exist.
 */
static void test_no_node_no_path(void **state)
{
	struct fixture *fx = *state;
	struct imgdev_mapping m;

	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 1", &m), 1);
	assert_null(m.path);
	assert_null(m.device);
	assert_int_equal(fx->warnings, 1);
	assert_non_null(strstr(fx->last_warning, "no device node for 253:5"));
	mapping_clear(&m);
}

/* The node that exists and is the mapping's: mapper/NAME, else the kernel's dm-N. */
static void test_listed_under_the_node_that_exists(void **state)
{
	struct fixture *fx = *state;
	struct imgdev_mapping m;

	if (make_node(fx->root, "dev/dm-5", MAPPING_DEV) < 0)
		skip();		/* mknod needs root */
	/* Only the kernel's node, as dmsetup leaves it on a host without udev. */
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 1", &m), 1);
	assert_nodes(fx, &m, "dev/dm-5", "dev/dm-5");
	mapping_clear(&m);
	/* A mapper node of another device does not count. */
	assert_int_equal(make_node(fx->root, "dev/mapper/virtlet-dm-a", makedev(253, 6)), 0);
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 1", &m), 1);
	assert_nodes(fx, &m, "dev/dm-5", "dev/dm-5");
	mapping_clear(&m);
	/* Its own mapper node is the path; the kernel's node stays the device. */
	assert_int_equal(make_node(fx->root, "dev/mapper/virtlet-dm-a", MAPPING_DEV), 0);
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 1", &m), 1);
	assert_nodes(fx, &m, "dev/mapper/virtlet-dm-a", "dev/dm-5");
	mapping_clear(&m);
	/* A udev-style symlink to the kernel's node counts as the mapper node. */
	assert_int_equal(make_node(fx->root, "dev/dm-5", MAPPING_DEV), 0);
	{
		char link[256];

		snprintf(link, sizeof(link), "%s/dev/mapper/virtlet-dm-a", fx->root);
		assert_int_equal(unlink(link), 0);
		assert_int_equal(symlink("../dm-5", link), 0);
	}
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 1", &m), 1);
	assert_nodes(fx, &m, "dev/mapper/virtlet-dm-a", "dev/dm-5");
	mapping_clear(&m);
	assert_int_equal(fx->warnings, 0);
}

static void test_rejects_other_tables(void **state)
{
	struct fixture *fx = *state;
	struct imgdev_mapping m;

	assert_int_equal(inspect(fx, 2, "linear", 0, "7:3 1", &m), 0);	/* two targets */
	assert_int_equal(inspect(fx, 1, "striped", 0, "7:3 1", &m), 0);
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 2", &m), 0);	/* other offset */
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:3 0", &m), 0);
	assert_int_equal(inspect(fx, 1, "linear", 8, "7:3 1", &m), 0);
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:4 1", &m), 0);	/* no header */
	assert_int_equal(inspect(fx, 0, "", 0, NULL, &m), 0);
	assert_int_equal(fx->warnings, 0);
}

static void test_unresolvable_backing_warns(void **state)
{
	struct fixture *fx = *state;
	struct imgdev_mapping m;
	char rel[] = "sys/dev/block/7:4/uevent";
	static const char escape[] = "DEVNAME=../sys/dev/block/7:3/uevent\n";

	assert_int_equal(inspect(fx, 1, "linear", 0, "9:9 1", &m), 0);
	assert_int_equal(fx->warnings, 1);
	assert_non_null(strstr(fx->last_warning, "9:9"));
	put_text(fx->root, rel, escape);
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:4 1", &m), 0);
	assert_int_equal(fx->warnings, 2);
	assert_non_null(strstr(fx->last_warning, "DEVNAME"));
	put_text(fx->root, rel, "MAJOR=7\n");
	assert_int_equal(inspect(fx, 1, "linear", 0, "7:4 1", &m), 0);
	assert_int_equal(fx->warnings, 3);
}

static void test_names(void **state)
{
	struct fixture *fx = *state;
	char longname[200];

	assert_int_equal(imgdev_check_name(fx->ctx, "virtlet-dm-5d2b1e3a-0f4c"), 0);
	assert_int_equal(imgdev_check_name(fx->ctx, "other-x"), -EINVAL);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "must start with \"virtlet-dm-\""));
	assert_int_equal(imgdev_check_name(fx->ctx, "virtlet-dm-a/b"), -EINVAL);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "'/'"));
	assert_int_equal(imgdev_check_name(fx->ctx, "virtlet-dm-"), -EINVAL);
	assert_int_equal(imgdev_check_name(fx->ctx, ""), -EINVAL);
	assert_int_equal(imgdev_check_name(fx->ctx, ".."), -EINVAL);
	assert_int_equal(imgdev_check_name(fx->ctx, "virtlet-dm-a b"), -EINVAL);
	memset(longname, 'x', sizeof(longname));
	memcpy(longname, "virtlet-dm-", 11);
	longname[127] = '\0';
	assert_int_equal(imgdev_check_name(fx->ctx, longname), 0);
	longname[127] = 'x';
	longname[128] = '\0';
	assert_int_equal(imgdev_check_name(fx->ctx, longname), -EINVAL);
	assert_non_null(strstr(imgdev_ctx_last_error(fx->ctx), "at most 127"));
	assert_int_equal(imgdev_ctx_set_prefix(fx->ctx, "vm-"), 0);
	assert_int_equal(imgdev_check_name(fx->ctx, "vm-1"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_recognises_image_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_node_no_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listed_under_the_node_that_exists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejects_other_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unresolvable_backing_warns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
