#!/usr/bin/env bash
# Host tests of imgdev's exit statuses: each documented status (imgdev --help,
# imgdev(8) EXIT STATUS) produced by a real condition — usage, a payload that
# does not match, no commit record, a mounted or mapped device, a foreign
# filesystem, a missing, empty or unsupported image, a device too small, a
# user without permission — each with the message that says what and why.
# Needs root and loop devices.
. "$(dirname "$0")/../lib.sh"

need_root_and_loop
tmp=$(mktemp -d /var/tmp/imgdev-exit.XXXXXX)
run=$tmp/run
cleanup() {
	mountpoint -q "$tmp/mnt" 2>/dev/null && umount "$tmp/mnt"
	for l in "$run"/*; do [ -L "$l" ] && losetup -d "$(readlink "$l")" 2>/dev/null; done
	detach_loops_under "$tmp"
	rm -rf "$tmp"
}
trap cleanup EXIT

HEX=$(printf a | sha256sum | cut -c1-64)
img=$tmp/image
head -c 3000000 /dev/urandom >"$img"
# new_disk NAME SIZE: a fresh sparse file of SIZE bytes; prints its path.
new_disk() { rm -f "$tmp/$1"; truncate -s "$2" "$tmp/$1"; echo "$tmp/$1"; }
# status_is RC MESSAGE...: the last run exited RC and its stderr has every MESSAGE.
status_is() {
	local want=$1 m
	shift
	assert_rc "$want"
	for m in "$@"; do assert_contains "$err" "$m"; done
	case "$err" in *Sanitizer*|*"runtime error"*) echo "sanitizer report: $err"; return 1 ;; esac
}

expect 'imgdev --help lists every exit status with its meaning' '
	run_imgdev --help; assert_rc 0
	assert_contains "$out" "Exit status:"
	for line in "0  success" "1  failure" "2  bad usage" "3  verify: the payload does not match" \
		"4  verify: no complete commit record" "5  the device is busy" \
		"6  a filesystem or partition table is there; refused without --force" \
		"7  the image is unreadable" "8  the device is too small" "9  permission denied"; do
		assert_contains "$out" "$line"
	done'

expect 'bad usage exits 2: unknown option, wrong number of arguments, unknown command' '
	run_imgdev verify --bogus; status_is 2 "verify: unknown option \"--bogus\""
	run_imgdev verify; status_is 2 "expected 1 argument, got 0" "usage: imgdev verify DEVICE"
	run_imgdev provision "$img"; status_is 2 "expected 2 arguments, got 1" "usage: imgdev provision DEVICE IMAGE"
	run_imgdev ensure a b c; status_is 2 "expected 2 arguments, got 3"
	run_imgdev frobnicate; status_is 2 "unknown command \"frobnicate\""'

expect 'a payload that no longer matches its commit record: verify exits 3' '
	d=$(new_disk mismatch 8M)
	run_imgdev provision "$d" "$img" --no-map; assert_rc 0
	run_imgdev verify "$d"; assert_rc 0
	flip_byte "$d" $((512 + 1000000))
	run_imgdev verify "$d"; status_is 3 "$d: the payload does not match its commit record"
	run_imgdev verify "$d" --json; assert_rc 3; assert_contains "$out" "\"ok\": false"'

expect 'a header without a commit record (written by ensure): verify exits 4' '
	d=$(new_disk norecord 8M)
	run_imgdev ensure "$d" "$HEX"; assert_rc 0; assert_eq "$out" written
	run_imgdev verify "$d"; status_is 4 "$d: no commit record" "nothing to verify against"
	d=$(new_disk noheader 8M)
	run_imgdev verify "$d"; status_is 4 "$d: no image header in sector 0"'

expect 'a mounted device, and one mapped as a loop device: provision and ensure exit 5' '
	f=$(new_disk mounted 64M); mkfs.ext4 -q -F "$f"
	l=$(losetup -f --show "$f"); mkdir -p "$tmp/mnt"; mount "$l" "$tmp/mnt"
	run_imgdev provision "$l" "$img" --no-map --force; status_is 5 "$l: device is in use" "mounted on $tmp/mnt"
	run_imgdev ensure "$l" "$HEX" --force; status_is 5 "mounted on $tmp/mnt"
	umount "$tmp/mnt"; losetup -d "$l"
	d=$(new_disk mapped 8M)
	run_imgdev --run-dir "$run" --backend loop provision "$d" "$img" --name virtlet-dm-exit; assert_rc 0
	head -c 1000000 /dev/urandom >"$tmp/other"
	run_imgdev --run-dir "$run" --backend loop provision "$d" "$tmp/other" --no-map
	status_is 5 "in use (mapped as loop device"
	run_imgdev --run-dir "$run" --backend loop unmap virtlet-dm-exit; assert_rc 0'

expect 'a foreign filesystem without --force: provision and ensure exit 6, and write nothing' '
	f=$(new_disk foreign 64M); mkfs.ext4 -q -F "$f"; before=$(sha256sum <"$f")
	run_imgdev provision "$f" "$img" --no-map
	status_is 6 "$f: contains an ext4 filesystem" "refusing to overwrite it; use --force"
	run_imgdev ensure "$f" "$HEX"; status_is 6 "contains an ext4 filesystem" "use --force"
	assert_eq "$(sha256sum <"$f")" "$before" "device bytes"
	run_imgdev provision "$f" "$img" --no-map --force; assert_rc 0'

expect 'an image that cannot be read (missing, empty, a directory, damaged): provision and info exit 7' '
	d=$(new_disk unreadable 8M)
	run_imgdev provision "$d" "$tmp/no-such-image" --no-map
	status_is 7 "$tmp/no-such-image: cannot open the image: No such file or directory"
	run_imgdev info "$tmp/no-such-image"; status_is 7 "No such file or directory"
	: >"$tmp/empty"
	run_imgdev provision "$d" "$tmp/empty" --no-map; status_is 7 "$tmp/empty: the image is empty"
	mkdir -p "$tmp/imgdir"
	run_imgdev provision "$d" "$tmp/imgdir" --no-map; status_is 7 "$tmp/imgdir: the image must be a regular file"
	qemu-img create -q -f qcow2 "$tmp/cut.qcow2" 8M; head -c 100 "$tmp/cut.qcow2" >"$tmp/short.qcow2"
	run_imgdev provision "$d" "$tmp/short.qcow2" --no-map; status_is 7 "$tmp/short.qcow2: qcow2:"
	head -c 1000000 "$img" | gzip -c | head -c 5000 >"$tmp/cut.gz"
	run_imgdev provision "$d" "$tmp/cut.gz" --no-map; status_is 7 "$tmp/cut.gz: gzip:"'

expect 'an image imgdev does not support (qcow2 with a backing file, encrypted): provision and info exit 7' '
	d=$(new_disk unsupported 16M)
	qemu-img create -q -f qcow2 "$tmp/base.qcow2" 4M
	qemu-img create -q -f qcow2 -b "$tmp/base.qcow2" -F qcow2 "$tmp/over.qcow2"
	run_imgdev provision "$d" "$tmp/over.qcow2" --no-map; status_is 7 "$tmp/over.qcow2: qcow2:" "backing file"
	run_imgdev info "$tmp/over.qcow2"; status_is 7 "backing file"; assert_contains "$out" "supported:    no"
	luks_qcow2 "$tmp/enc.qcow2"
	run_imgdev provision "$d" "$tmp/enc.qcow2" --no-map; status_is 7 "encrypted; not supported"'

expect 'a device too small for the image, or for a header: provision, map, ensure and header exit 8' '
	d=$(new_disk small 1M)
	run_imgdev provision "$d" "$img" --no-map; status_is 8 "$d: device too small"
	run_imgdev --run-dir "$run" --backend loop map "$d" virtlet-dm-big --image-size 2000000
	status_is 8 "$d: device too small"
	head -c 100 /dev/urandom >"$tmp/tiny"
	run_imgdev ensure "$tmp/tiny" "$HEX"; status_is 8 "$tmp/tiny: too small to hold a header"
	run_imgdev header "$tmp/tiny"; status_is 8 "too small to hold a header"
	run_imgdev verify "$tmp/tiny"; status_is 8 "too small to hold a header"'

expect 'a user who may not open the device or the image: exit 9, and nothing written' '
	chmod 755 "$tmp"
	d=$(new_disk secret 8M); chmod 600 "$d"; before=$(sha256sum <"$d")
	chmod 644 "$img"; cp "$img" "$tmp/private"; chmod 600 "$tmp/private"
	nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	IMGDEV_WRAP="nobody ${IMGDEV_WRAP:-}" run_imgdev ensure "$d" "$HEX"
	status_is 9 "$d: cannot open: permission denied" "imgdev needs root"
	IMGDEV_WRAP="nobody ${IMGDEV_WRAP:-}" run_imgdev verify "$d"; status_is 9 "permission denied"
	IMGDEV_WRAP="nobody ${IMGDEV_WRAP:-}" run_imgdev provision "$d" "$img" --no-map; status_is 9 "permission denied"
	IMGDEV_WRAP="nobody ${IMGDEV_WRAP:-}" run_imgdev info "$tmp/private"
	status_is 9 "$tmp/private: cannot open the image: Permission denied"
	assert_eq "$(sha256sum <"$d")" "$before" "device bytes"'

finish
