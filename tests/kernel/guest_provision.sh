#!/usr/bin/env bash
# Kernel tests of provisioning, run inside user-mode Linux (see test_kernel.sh):
# full provision with a real device-mapper mapping, idempotent re-runs, and
# I/O errors injected under the target with dm `error` targets.
# Disks: /dev/ubdf (64 MiB) and /dev/ubdg (64 MiB).
. "$(dirname "$0")/../lib.sh"

work=$(mktemp -d)
img=$work/image
# 8 MiB + 777 bytes: random data, a zero run, a hole, more data.
head -c 3M /dev/urandom >"$img"
head -c 2M /dev/zero >>"$img"
truncate -s 7M "$img"
head -c $((1024 * 1024 + 777)) /dev/urandom >>"$img"
size=$(stat -c %s "$img")
imghash=$(sha256sum "$img" | cut -c1-64)
other=$work/other
head -c 1M /dev/urandom >"$other"
devno() { cat "/sys/block/${1#/dev/}/dev"; }
commit_of() { "$IMGDEV" header --json "$1" | sed -n 's/.*"commit": "\(.*\)".*/\1/p'; }

expect 'provision writes, maps, and the mapping reads back as the image' '
	run_imgdev provision /dev/ubdf "$img" --name virtlet-dm-prov; assert_rc 0
	assert_eq "$out" "written
/dev/mapper/virtlet-dm-prov"
	cmp <(head -c "$size" /dev/mapper/virtlet-dm-prov) "$img"
	assert_eq "$(dmsetup table virtlet-dm-prov)" "0 $(($(blockdev --getsz /dev/ubdf) - 1)) linear $(devno /dev/ubdf) 1"
	run_imgdev list; assert_contains "$out" virtlet-dm-prov
	run_imgdev header /dev/ubdf; assert_contains "$out" "sha256:$imghash"'

expect 'provision again while mapped: matched, same path, nothing written' '
	before=$(head -c 512 /dev/ubdf | sha256sum)
	run_imgdev provision /dev/ubdf "$img" --name virtlet-dm-prov; assert_rc 0
	assert_eq "$out" "matched
/dev/mapper/virtlet-dm-prov"
	assert_eq "$(head -c 512 /dev/ubdf | sha256sum)" "$before"
	run_imgdev provision /dev/ubdf "$img" --name virtlet-dm-prov --digest "sha256:$imghash" --json
	assert_rc 0; assert_contains "$out" "\"written\": false"'

expect 'verify passes on the mapped device' '
	run_imgdev verify /dev/ubdf; assert_rc 0; assert_eq "$out" ok'

expect 'a different image onto a mapped device is refused as in use, nothing written' '
	before=$(head -c 512 /dev/ubdf | sha256sum)
	run_imgdev provision /dev/ubdf "$other" --name virtlet-dm-prov; assert_rc 5
	assert_contains "$err" "in use (mapped as device-mapper device virtlet-dm-prov)"
	assert_eq "$(head -c 512 /dev/ubdf | sha256sum)" "$before"'

expect 'provision with a name that maps another device is refused before writing' '
	before=$(head -c 2M /dev/ubdg | sha256sum)
	run_imgdev provision /dev/ubdg "$other" --name virtlet-dm-prov; assert_rc 1
	assert_contains "$err" "maps something other"
	assert_eq "$(head -c 2M /dev/ubdg | sha256sum)" "$before"'

expect 'unmap, then verify catches a flipped payload byte' '
	run_imgdev unmap virtlet-dm-prov; assert_rc 0
	flip_byte /dev/ubdf $((512 + 4096))
	run_imgdev verify /dev/ubdf; assert_rc 3; assert_contains "$err" "does not match"'

# /dev/mapper/faulty: ubdg with an I/O error range in the middle of the payload.
make_faulty() { # make_faulty ERROR_START ERROR_LEN
	local n=$(($(blockdev --getsz /dev/ubdg))) s=$1 l=$2 dev
	dev=$(devno /dev/ubdg)
	{
		[ "$s" -eq 0 ] || printf "0 %d linear %s 0\n" "$s" "$dev"
		printf "%d %d error\n" "$s" "$l"
		printf "%d %d linear %s %d\n" $((s + l)) $((n - s - l)) "$dev" $((s + l))
	} | dmsetup create faulty
	dmsetup mknodes faulty
}

expect 'a write error mid-payload stops with the offset and errno text, never complete' '
	make_faulty 8192 64
	# --force: libblkid, probing a device without our header, would trip on the error range.
	run_imgdev provision /dev/mapper/faulty "$img" --no-map --force; assert_rc 1
	assert_contains "$err" "write error at payload offset"
	assert_contains "$err" "Input/output error"
	assert_eq "$(commit_of /dev/mapper/faulty)" writing
	run_imgdev verify /dev/mapper/faulty; assert_rc 4; assert_contains "$err" "did not complete"
	dmsetup remove faulty'

expect 'an error on sector 0 fails before any payload is written' '
	dd if=/dev/zero of=/dev/ubdg bs=1M count=4 conv=fsync status=none
	make_faulty 0 1
	run_imgdev provision /dev/mapper/faulty "$img" --no-map --force; assert_rc 1
	assert_contains "$err" "sector 0"
	dmsetup remove faulty
	assert_eq "$(head -c 4M /dev/ubdg | tr -d "\0" | wc -c)" 0'

expect 'after the failures, a healthy provision of the same device succeeds (with --digest: the image mapped, not read)' '
	run_imgdev provision /dev/ubdg "$img" --name virtlet-dm-again --digest "sha256:$imghash"; assert_rc 0
	cmp <(head -c "$size" /dev/mapper/virtlet-dm-again) "$img"
	run_imgdev verify /dev/ubdg; assert_rc 0
	run_imgdev unmap virtlet-dm-again; assert_rc 0'

dmsetup remove_all 2>/dev/null
rm -rf "$work"
finish
