/*
 * libimgdev — keep a VM root image on a raw block device.
 *
 * Sector 0 of the device carries a header naming the image (magic, version,
 * SHA-256); the rest is mapped as its own block device through device-mapper.
 * The on-disk header is byte-compatible with Virtlet's pkg/blockdev.
 *
 * Every function that can fail returns 0 (or a documented non-negative value)
 * on success and a negative errno on failure; the context then holds a
 * human-readable message (imgdev_ctx_last_error()). The library never prints
 * and never exits: it reports through the context's log callback.
 *
 * Some errnos mean one thing in every call, so a caller can act on them:
 *   -EACCES      permission denied (not root, or a read-only or immutable file)
 *   -EBUSY       the device is mounted, mapped, held or opened exclusively
 *   -ENOSPC      the device is too small (for a header, or for the image)
 *   -ENOTEMPTY   the device carries a foreign signature (IMGDEV_FORCE writes anyway)
 *   -ENOMEDIUM   the image cannot be read: missing, not a regular file, empty,
 *                damaged or truncated, or a read of it failed
 *   -ENOTSUP     the image uses what imgdev does not take (a backing file,
 *                encryption, an unknown feature)
 */
#ifndef IMGDEV_H
#define IMGDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMGDEV_HASH_SIZE 32		/* SHA-256 */
#define IMGDEV_SECTOR_SIZE 512
#define IMGDEV_DEFAULT_PREFIX "virtlet-dm-"
#define IMGDEV_DM_UUID_PREFIX "IMGDEV-"

struct imgdev_ctx;

/* Log priorities follow syslog: 3 error, 4 warning, 6 info, 7 debug. */
typedef void (*imgdev_log_fn)(void *userdata, int priority, const char *msg);

/* The library's version string, e.g. "0.1.0". */
const char *imgdev_version(void);

/*
 * Create a context with the defaults: /dev, /sys, prefix "virtlet-dm-",
 * no log callback. Returns 0 or -ENOMEM.
 */
int imgdev_ctx_new(struct imgdev_ctx **ctx);
/* Free a context; NULL is allowed. */
void imgdev_ctx_free(struct imgdev_ctx *ctx);

/* Override the /dev root (where mapper/control and device nodes live). 0 or -errno. */
int imgdev_ctx_set_dev_dir(struct imgdev_ctx *ctx, const char *dir);
/* Override the /sys root (for <sys>/dev/block/MAJ:MIN/uevent). 0 or -errno. */
int imgdev_ctx_set_sysfs_dir(struct imgdev_ctx *ctx, const char *dir);
/* Set the prefix that mapping names must start with. 0 or -errno. */
int imgdev_ctx_set_prefix(struct imgdev_ctx *ctx, const char *prefix);
/* Mapping backends. AUTO: device-mapper when <dev>/mapper/control opens, else loop. */
#define IMGDEV_BACKEND_AUTO 0
#define IMGDEV_BACKEND_DM 1
#define IMGDEV_BACKEND_LOOP 2
/* Choose the backend of map, unmap, list and provision. 0 or -EINVAL. */
int imgdev_ctx_set_backend(struct imgdev_ctx *ctx, int backend);
/* Where loop mappings get their stable symlinks NAME (default /run/imgdev). */
int imgdev_ctx_set_run_dir(struct imgdev_ctx *ctx, const char *dir);

#define IMGDEV_FETCH_OPTS_VERSION 1

/*
 * How images named by a URL (http://, https://) are fetched; start from
 * IMGDEV_FETCH_OPTS_INIT. TLS is verified against the system's CA store
 * unless told otherwise; proxies come from the usual environment variables
 * (http_proxy, https_proxy, no_proxy).
 */
struct imgdev_fetch_opts {
	unsigned int version;		/* IMGDEV_FETCH_OPTS_VERSION */
	const char *ca_file;		/* NULL: the system's CA store */
	bool insecure;			/* do not verify the server's certificate */
	/* NULL, or a file of request headers, one "Name: value" a line (credentials) */
	const char *header_file;
	int retries;			/* a broken transfer is retried so often; -1: the default, 5 */
	unsigned int timeout;		/* seconds without progress before a retry; 0: the default, 30 */
};
#define IMGDEV_FETCH_OPTS_INIT { .version = IMGDEV_FETCH_OPTS_VERSION, .retries = -1 }

/*
 * The fetch options for what this context opens from now on (copied);
 * 0, or -EINVAL for options of an unknown version, -ENOMEM.
 */
int imgdev_ctx_set_fetch(struct imgdev_ctx *ctx, const struct imgdev_fetch_opts *opts);

/*
 * How container images are chosen and pulled: docker://REGISTRY/REPOSITORY
 * [:TAG|@sha256:DIGEST] and oci:DIR[:TAG] (an OCI image layout). Start
 * from IMGDEV_CONTAINER_OPTS_INIT. The image's identity (the hash sector 0
 * carries) is the digest of its platform's manifest.
 */
#define IMGDEV_CONTAINER_OPTS_VERSION 1
struct imgdev_container_opts {
	unsigned int version;		/* IMGDEV_CONTAINER_OPTS_VERSION */
	/* "os/arch" or "os/arch/variant" chosen from an image index; NULL: the host's */
	const char *platform;
	/* the disk inside the layers ("disk/NAME"); NULL: the one regular file under disk/ */
	const char *disk_path;
	/* registry credentials in the "auths" format of podman, skopeo and the kubelet; NULL: none */
	const char *auth_file;
};
#define IMGDEV_CONTAINER_OPTS_INIT { .version = IMGDEV_CONTAINER_OPTS_VERSION }

/*
 * The container options for what this context opens from now on (copied);
 * 0, or -EINVAL for options of an unknown version, -ENOMEM.
 */
int imgdev_ctx_set_container(struct imgdev_ctx *ctx, const struct imgdev_container_opts *opts);

/*
 * Register a log callback; messages above max_priority are dropped. While
 * a provision or info of a URL runs, the callback may also be called from
 * the library's own threads (retries of a transfer), one call at a time per
 * image source but not in step with the calling thread: make it safe to
 * call from any thread.
 */
void imgdev_ctx_set_log(struct imgdev_ctx *ctx, imgdev_log_fn fn, void *userdata,
			int max_priority);
/* The message for the last failed call on this context ("" if none). */
const char *imgdev_ctx_last_error(const struct imgdev_ctx *ctx);

/*
 * Parse an image hash: 64 hex digits, optionally prefixed "sha256:".
 * Returns 0, or -EINVAL with a message in ctx naming what is wrong.
 */
int imgdev_parse_hash(struct imgdev_ctx *ctx, const char *text,
		      uint8_t hash[IMGDEV_HASH_SIZE]);
/*
 * The digest of the image at image_url, read from the checksum file at
 * sums_url (SHA256SUMS as cloud images publish it: the line for the image
 * URL's last path component, GNU "HEX  NAME" or BSD "SHA256 (NAME) = HEX"),
 * fetched with the context's fetch options. 0; -ENOKEY when the file gives
 * no digest for it (no line, a malformed one, two that disagree); or the
 * fetch's error (as for an image: -ENOMEDIUM, -EACCES, -EREMOTEIO).
 */
int imgdev_digest_from_url(struct imgdev_ctx *ctx, const char *sums_url, const char *image_url,
			   uint8_t digest[IMGDEV_HASH_SIZE]);
/* Format a hash as "sha256:<64 hex>" into out (at least 72 bytes). */
void imgdev_format_hash(const uint8_t hash[IMGDEV_HASH_SIZE], char out[72]);

/* The on-disk layouts (docs/FORMAT.md). */
enum imgdev_layout {
	/* Virtlet's on devices with 512-byte logical sectors, else the aligned one */
	IMGDEV_LAYOUT_AUTO,
	IMGDEV_LAYOUT_VIRTLET,		/* header version 1, the payload from byte 512 */
	IMGDEV_LAYOUT_ALIGNED,		/* header version 2, the payload from byte 1 MiB */
};

/* "auto", "virtlet" or "aligned"; NULL if unknown. */
const char *imgdev_layout_name(enum imgdev_layout layout);

/* States of the commit record (imgdev_header.commit_state). */
#define IMGDEV_COMMIT_NONE 0		/* no record: Virtlet or `ensure` wrote it */
#define IMGDEV_COMMIT_WRITING 1		/* a write started and did not finish */
#define IMGDEV_COMMIT_COMPLETE 2	/* the payload was written and flushed */
#define IMGDEV_COMMIT_CORRUPT 3		/* a record whose checksum does not match */
#define IMGDEV_COMMIT_NEWER 4		/* a record version this build does not know */

/* What sector 0 of a device holds. */
struct imgdev_header {
	bool present;			/* the magic is there */
	uint16_t version;		/* metadata version: 1 Virtlet's layout, 2 the aligned one */
	uint8_t image_hash[IMGDEV_HASH_SIZE];
	uint64_t data_offset;		/* where the payload starts, in bytes (0: a newer version) */
	int commit_state;		/* IMGDEV_COMMIT_* */
	uint16_t commit_version;
	uint64_t image_size;		/* payload bytes (with a valid record) */
	uint8_t content_hash[IMGDEV_HASH_SIZE];	/* block-wise SHA-256 of the payload */
	uint8_t target_hash[IMGDEV_HASH_SIZE];	/* the image the write is for */
	uint64_t commit_time;		/* Unix seconds of the last record write */
	/*
	 * State writing: payload bytes already durable on the device, where a
	 * rerun of the same provision (a raw image at a URL, the same digest)
	 * resumes; 0 if none.
	 */
	uint64_t resume_at;
	enum imgdev_layout layout;	/* the version's layout (AUTO: a newer version) */
};

/*
 * Read the header of a block device or regular file.
 * Returns 0 (header->present tells whether the magic was found) or -errno:
 * -ENOSPC when it is shorter than a sector.
 */
int imgdev_header_read(struct imgdev_ctx *ctx, const char *device,
		       struct imgdev_header *header);

/* Results of imgdev_ensure(). */
#define IMGDEV_MATCHED 0
#define IMGDEV_WRITTEN 1

/* Flags of imgdev_ensure(). */
#define IMGDEV_FORCE (1u << 0)	/* write over a foreign filesystem or partition table */

/*
 * Make sector 0 of device name the image with this hash (Virtlet's
 * EnsureDevHeaderMatches). Returns IMGDEV_MATCHED when the header already
 * matches (nothing written), IMGDEV_WRITTEN after writing a new version-1
 * header sector, or -errno (nothing written): -EPROTO for a header of a
 * newer version (never overwritten) or a matching one of another version,
 * -ENOTEMPTY when a device without our header carries a filesystem, RAID,
 * crypto or partition-table signature (unless flags has IMGDEV_FORCE),
 * -EBUSY when it is mounted, mapped or otherwise held, -ENOSPC when it is
 * shorter than a sector. Writers of one device
 * take turns (an advisory lock on it).
 */
int imgdev_ensure(struct imgdev_ctx *ctx, const char *device,
		  const uint8_t hash[IMGDEV_HASH_SIZE], unsigned int flags);

/*
 * Check a name for a mapping imgdev is to create: the prefix, the
 * device-mapper length limit, allowed characters ([A-Za-z0-9#+-.:=@_]), not
 * "." or "..". 0 or -EINVAL.
 */
int imgdev_check_name(struct imgdev_ctx *ctx, const char *name);

/*
 * Map the payload of device (from where its header's layout puts it, byte
 * 512 or 1 MiB; 512 without a header, to the end in whole logical blocks)
 * as name, after checking that it has room for an image of image_size
 * bytes: a
 * device-mapper linear device <dev>/mapper/NAME (device must be a block
 * device), or a loop device with the stable symlink <run>/NAME (device may
 * be a block device or a file; name at most 56 bytes), as the context's
 * backend says. On success *mapped_path is set to a malloc'ed path for the
 * hypervisor. Returns 0 or -errno (-ENOSPC when the device is too small,
 * -EMEDIUMTYPE when the payload does not start on a logical block, -EPROTO
 * for a header of a newer version); nothing is left behind on failure.
 */
int imgdev_map(struct imgdev_ctx *ctx, const char *device, const char *name,
	       uint64_t image_size, char **mapped_path);

/*
 * Remove the mapping name (and the /dev/mapper node), retrying while it is
 * briefly busy. Any name imgdev_list() reports is accepted, with or without
 * the prefix (which is for the names imgdev creates); -EPERM for a device
 * that is not an image mapping. Returns 0, -ENOENT when there is no such
 * mapping, or -errno.
 */
int imgdev_unmap(struct imgdev_ctx *ctx, const char *name);

/* One mapping found by imgdev_list(). */
struct imgdev_mapping {
	char *name;
	int backend;			/* IMGDEV_BACKEND_DM or IMGDEV_BACKEND_LOOP */
	char *path;			/* what a hypervisor opens, a node that exists:
					   <dev>/mapper/NAME, else <dev>/dm-N; <run>/NAME,
					   else <dev>/loopN; NULL when no node exists */
	char *device;			/* the kernel's node: <dev>/dm-N, <dev>/loopN; NULL
					   when no node exists */
	char *backing;			/* the backing device or file */
	unsigned int backing_major;	/* 0:0 for a backing file */
	unsigned int backing_minor;
	uint64_t sectors;		/* size of the mapping */
	uint8_t image_hash[IMGDEV_HASH_SIZE];
};

/*
 * List the image mappings, sorted by name: device-mapper devices whose table
 * is one linear target at the payload's sector (1, or 2048 under a version-2
 * header) of a device whose sector 0 carries the header magic (whoever made
 * them), and the loop devices imgdev made (marked by lo_file_name
 * "IMGDEV:NAME") at the payload's offset of such a device or file. Returns the count (>= 0) with *list set (free it with
 * imgdev_mappings_free), or -errno.
 */
int imgdev_list(struct imgdev_ctx *ctx, struct imgdev_mapping **list);
void imgdev_mappings_free(struct imgdev_mapping *list, int count);

/* Progress of a long operation: bytes done of total. */
typedef void (*imgdev_progress_fn)(void *userdata, uint64_t done, uint64_t total);

#define IMGDEV_PROVISION_OPTS_VERSION 3


/* Options of imgdev_provision(); start from IMGDEV_PROVISION_OPTS_INIT. */
struct imgdev_provision_opts {
	unsigned int version;		/* IMGDEV_PROVISION_OPTS_VERSION */
	const char *name;		/* mapping name; may be NULL with no_map */
	bool has_digest;		/* digest is the image hash (else hash the file) */
	uint8_t digest[IMGDEV_HASH_SIZE];
	bool no_map;			/* write and commit, but do not map */
	bool force;			/* write over foreign signatures */
	unsigned int threads;		/* threads reading and hashing the image
					   (four more wait on the writes); 0: one
					   per CPU, one fewer when imgdev hashes a
					   raw image itself */
	imgdev_progress_fn progress;
	void *progress_data;
	/*
	 * Since version 2. With a digest, map the image's data (a raw image's,
	 * a qcow2 image's uncompressed clusters) to hash and write it instead
	 * of copying it: a quarter to a third less time when the CPU is the
	 * limit. But if the image file is truncated, or its storage
	 * fails, while the copy runs, the process gets SIGBUS (as any reader
	 * of a mapped file does); the device is then left marked "writing".
	 * Off by default; the imgdev command turns it on and catches SIGBUS.
	 */
	bool mmap_image;
	/*
	 * Since version 3: the layout to write. AUTO (and before version 3):
	 * a device that holds the image in either layout matches; a write is
	 * in Virtlet's layout on 512-byte logical sectors, else the aligned
	 * one. VIRTLET or ALIGNED: the device matches only when it holds the
	 * image in that layout, else it is written so; VIRTLET on a device
	 * with larger sectors is refused (-EMEDIUMTYPE).
	 */
	enum imgdev_layout layout;
};
#define IMGDEV_PROVISION_OPTS_INIT { .version = IMGDEV_PROVISION_OPTS_VERSION }

/*
 * How a provision made the image's zero ranges (holes, zero blocks,
 * unallocated qcow2 clusters) read as zeros on the device.
 */
enum imgdev_zeroing {
	IMGDEV_ZEROING_NONE,		/* nothing zeroed: no zero range, or nothing written */
	/*
	 * The device zeroed them itself: write-zeroes with unmapping allowed
	 * (thin and file-backed devices free the space); on a regular file,
	 * fallocate.
	 */
	IMGDEV_ZEROING_WRITE_ZEROES,
	/*
	 * A device that discards but cannot write zeroes (dm-thin, thin
	 * LUNs): the whole discard blocks of each range discarded (the space
	 * given back), then the range read back and zeros written wherever it
	 * did not read as zeros (edges, partial blocks, a device that kept
	 * the data).
	 */
	IMGDEV_ZEROING_DISCARD,
	IMGDEV_ZEROING_ZEROS,		/* zeros written: the device can do neither */
};

/* "none", "write-zeroes", "discard" or "zeros" (as in provision --json); NULL if unknown. */
const char *imgdev_zeroing_name(enum imgdev_zeroing zeroing);

struct imgdev_provision_result {
	bool written;			/* false: the device already held the image */
	char *mapped_path;		/* malloc'ed; NULL with no_map */
	uint8_t image_hash[IMGDEV_HASH_SIZE];
	uint8_t content_hash[IMGDEV_HASH_SIZE];
	uint64_t image_size;
	uint64_t bytes_written;		/* payload bytes sent as data */
	uint64_t bytes_zeroed;		/* payload bytes zeroed without data */
	double seconds;
	/*
	 * 0, or where the write resumed: payload bytes an interrupted write of
	 * this image (a raw image at a URL, the same digest) had made durable,
	 * re-read and hashed from the device, not fetched.
	 */
	uint64_t resumed_at;
	enum imgdev_zeroing zeroing;	/* how the zero ranges were zeroed */
	enum imgdev_layout layout;	/* the layout the device holds the image in */
	uint64_t data_offset;		/* where its payload starts, in bytes */
	bool direct_io;			/* every byte written went out with O_DIRECT (no page cache) */
	/*
	 * A container image written: the disk's path inside its layers
	 * ("disk/NAME", malloc'ed); NULL otherwise (also when it matched:
	 * no layer was read).
	 */
	char *disk_path;
};

/*
 * Put the image file `image` (raw or qcow2, either possibly compressed
 * with gzip, xz or zstd; the format found by content) on device and (unless opts->no_map) map it
 * as opts->name. The image may also be a URL, "-" (standard input), or a
 * container image (docker://..., oci:DIR[:TAG]: the disk inside its
 * layers, chosen by the context's container options; its identity is its
 * platform manifest's digest, which the header carries: a device that
 * holds it matches before any layer is read; opts->has_digest is refused).
 * When the header already names this image with a complete
 * commit record, nothing is written. Otherwise, in order: sector 0 marked
 * "writing" (hash all zeros), synced; the payload, flushed; sector 0 with
 * the image hash and a "complete" record, synced. A crash at any point never
 * leaves a header that matches over a payload that differs.
 * Returns 0 with *result filled (free with imgdev_provision_result_clear),
 * or -errno; after a failed write the device stays in state "writing".
 * Refusals before anything is written: -ENOMEDIUM or -ENOTSUP for the image
 * (as at the top of this file), -ENOTEMPTY for a foreign signature without
 * opts->force, -EBUSY, -ENOSPC, -EPROTO for a header of a newer version.
 * A damaged image found only while copying also gives -ENOMEDIUM.
 */
int imgdev_provision(struct imgdev_ctx *ctx, const char *device, const char *image,
		     const struct imgdev_provision_opts *opts,
		     struct imgdev_provision_result *result);
void imgdev_provision_result_clear(struct imgdev_provision_result *result);

struct imgdev_verify_result {
	uint8_t image_hash[IMGDEV_HASH_SIZE];
	uint8_t content_hash[IMGDEV_HASH_SIZE];	/* recomputed from the payload */
	uint64_t image_size;
	double seconds;
};

#define IMGDEV_VERIFY_OPTS_VERSION 1

/* Options of imgdev_verify(); start from IMGDEV_VERIFY_OPTS_INIT. */
struct imgdev_verify_opts {
	unsigned int version;		/* IMGDEV_VERIFY_OPTS_VERSION */
	unsigned int threads;		/* threads reading and hashing; 0: two per CPU */
	imgdev_progress_fn progress;
	void *progress_data;
};
#define IMGDEV_VERIFY_OPTS_INIT { .version = IMGDEV_VERIFY_OPTS_VERSION }

/*
 * Re-read the payload of device and check it against its commit record,
 * with opts (NULL: the defaults). Returns 0 on a match; -EBADMSG when the
 * payload differs; -ENODATA when there is no complete commit record to
 * check against; -EINVAL for options of an unknown version; or -errno.
 * *result is cleared first, then filled as far as the check got.
 */
int imgdev_verify(struct imgdev_ctx *ctx, const char *device,
		  const struct imgdev_verify_opts *opts, struct imgdev_verify_result *result);

/* What imgdev_image_info() learns about an image file. */
struct imgdev_image_info {
	char format[16];		/* "raw" or "qcow2" */
	char compression[16];		/* of the file: "none", "gzip", "xz", "zstd" */
	char cluster_compression[16];	/* qcow2 with compressed clusters: "zlib", "zstd" */
	uint64_t file_size;		/* bytes of the file as given */
	uint64_t virtual_size;		/* bytes of the disk it holds (0 if unknown) */
	bool allocated_known;
	uint64_t allocated;		/* bytes of the disk backed by data */
	unsigned int qcow2_version;	/* 2 or 3 for qcow2, else 0 */
	uint64_t cluster_size;
	bool extended_l2;
	bool dirty;
	bool supported;			/* whether imgdev would provision it */
	char reason[256];		/* why not, when !supported */
	/* A container image (docker://, oci:): what it was resolved to. */
	bool container;
	char manifest_digest[72];	/* "sha256:..." of the platform's manifest */
	char image_hash[72];		/* the hash a provision writes: that digest, unless a
					   disk path was asked for (docs/FORMAT.md) */
	char platform[100];		/* chosen from an image index ("linux/amd64"), or "" */
	unsigned int layers;
	char disk_path[4096];		/* the disk inside the layers ("disk/NAME"), or "" */
};

/*
 * Look at an image the way provisioning would, without writing anything.
 * Of a container image, file_size is the disk's inside the layers.
 * Returns 0 with *info filled — also for images imgdev would refuse
 * (supported false, reason set) — or -errno when the file cannot be read
 * (-ENOMEDIUM, or -EACCES).
 */
int imgdev_image_info(struct imgdev_ctx *ctx, const char *image, struct imgdev_image_info *info);

#ifdef __cplusplus
}
#endif
#endif
