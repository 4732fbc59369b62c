#!/usr/bin/env bash
# Host tests of the header commands (ensure, header) through the imgdev binary,
# on plain files and on real loop devices; checks bytes on disk, exit statuses
# and messages. Needs root for the loop devices (those cases skip otherwise).
. "$(dirname "$0")/../lib.sh"

tmp=$(mktemp -d /var/tmp/imgdev-host.XXXXXX)
cleanup() {
	detach_loops_under "$tmp"
	rm -rf "$tmp"
}
trap cleanup EXIT

HEX_A=$(printf a | sha256sum | cut -c1-64)
HEX_B=$(printf b | sha256sum | cut -c1-64)
MAGIC=263dbe52ba576702

new_disk() { # new_disk NAME SIZE: a file of pseudo-random bytes
	head -c "$2" /dev/urandom >"$tmp/$1"
	echo "$tmp/$1"
}

expect 'ensure on a fresh file writes the Virtlet layout: magic, version 1, hash, zeros' '
	d=$(new_disk d1 8192)
	tail -c +513 "$d" >"$tmp/rest.before"
	run_imgdev ensure "$d" "$HEX_A"; assert_rc 0; assert_eq "$out" written
	want="${MAGIC}0001${HEX_A}$(printf "%0940d" 0)"
	assert_eq "$(sector0_hex "$d")" "$want"
	tail -c +513 "$d" | cmp - "$tmp/rest.before"
	assert_eq "$(stat -c %s "$d")" 8192'

expect 'ensure again with the same hash says matched and writes nothing' '
	d=$(new_disk d2 4096)
	run_imgdev ensure "$d" "sha256:$HEX_A"; assert_eq "$out" written
	printf "\x77" | dd of="$d" bs=1 seek=300 conv=notrunc status=none
	before=$(sector0_hex "$d")
	run_imgdev ensure "$d" "$HEX_A"; assert_rc 0; assert_eq "$out" matched
	assert_eq "$(sector0_hex "$d")" "$before"'

expect 'ensure with another hash rewrites the header' '
	d=$(new_disk d3 4096)
	run_imgdev ensure "$d" "$HEX_A"
	run_imgdev ensure "$d" "$HEX_B"; assert_rc 0; assert_eq "$out" written
	run_imgdev header "$d"; assert_contains "$out" "sha256:$HEX_B"'

expect 'ensure refuses a matching header of another version, naming it, writing nothing' '
	d=$(new_disk d4 4096)
	{ printf "$MAGIC""0003$HEX_A" | xxd -r -p; head -c 470 /dev/zero; } | dd of="$d" conv=notrunc status=none
	before=$(sector0_hex "$d")
	run_imgdev ensure "$d" "$HEX_A"; assert_rc 1
	assert_contains "$err" "imgdev: ensure: "
	assert_contains "$err" "version 3"
	assert_eq "$(sector0_hex "$d")" "$before"'

expect 'ensure --force replaces an MBR in sector 0 entirely, partition table and all' '
	d=$tmp/d5; truncate -s 64M "$d"
	printf "label: dos\n,10M\n" | sfdisk -q "$d"
	run_imgdev ensure "$d" "$HEX_A"; assert_rc 6; assert_contains "$err" "dos partition table"
	run_imgdev ensure --force "$d" "$HEX_A"; assert_rc 0; assert_eq "$out" written
	assert_eq "$(head -c 512 "$d" | tail -c 470 | tr -d "\0" | wc -c)" 0
	[ -z "$(blkid -p "$d" 2>/dev/null)" ]'

expect 'bad hashes are usage errors (exit 2) that say what is wrong' '
	d=$(new_disk d6 4096); before=$(sector0_hex "$d")
	run_imgdev ensure "$d" abc; assert_rc 2; assert_contains "$err" "64 hex digits"
	run_imgdev ensure "$d" "md5:$HEX_A"; assert_rc 2; assert_contains "$err" "algorithm"
	run_imgdev ensure "$d" "${HEX_A%?}z"; assert_rc 2; assert_contains "$err" "not a hex digit"
	assert_eq "$(sector0_hex "$d")" "$before"'

expect 'bad targets fail with exit 1 (too small: 8) and a message naming the path' '
	run_imgdev ensure "$tmp/missing" "$HEX_A"; assert_rc 1
	assert_contains "$err" "imgdev: ensure: $tmp/missing: No such file or directory"
	run_imgdev ensure "$tmp" "$HEX_A"; assert_rc 1; assert_contains "$err" "is a directory"
	run_imgdev ensure /dev/null "$HEX_A"; assert_rc 1; assert_contains "$err" "character device"
	: >"$tmp/empty"; run_imgdev ensure "$tmp/empty" "$HEX_A"; assert_rc 8
	assert_contains "$err" "too small"; assert_eq "$(stat -c %s "$tmp/empty")" 0'

expect 'usage errors exit 2: unknown command, unknown option, missing arguments' '
	run_imgdev frobnicate; assert_rc 2; assert_contains "$err" "unknown command"
	run_imgdev ensure --bogus x y; assert_rc 2; assert_contains "$err" "unknown option \"--bogus\""
	run_imgdev ensure onlyone; assert_rc 2; assert_contains "$err" "expected 2 arguments"
	run_imgdev map a virtlet-dm-x; assert_rc 2; assert_contains "$err" "--image-size"
	run_imgdev map a virtlet-dm-x --image-size 12x; assert_rc 2
	run_imgdev; assert_rc 2'

expect 'header reports absence, and presence as text and JSON' '
	d=$(new_disk d7 4096)
	run_imgdev header "$d"; assert_rc 0; assert_contains "$out" "none"
	run_imgdev header --json "$d"; assert_contains "$out" "\"present\": false"
	run_imgdev ensure "$d" "$HEX_A"
	run_imgdev header "$d" --json; assert_rc 0
	assert_contains "$out" "\"present\": true"
	assert_contains "$out" "\"version\": 1"
	assert_contains "$out" "\"image_hash\": \"sha256:$HEX_A\""
	assert_contains "$out" "\"data_offset\": 512"'

expect '--version and --help answer on stdout' '
	run_imgdev --version; assert_rc 0; assert_contains "$out" "imgdev 0."
	run_imgdev --help; assert_rc 0; assert_contains "$out" "ensure DEVICE HASH"'

if [ "$(id -u)" = 0 ] && losetup -f >/dev/null 2>&1; then
	expect 'ensure on a loop device, through a symlink, lands in the backing file' '
		d=$(new_disk loopdisk 1048576)
		l=$(losetup -f --show "$d")
		ln -s "$l" "$tmp/link"
		run_imgdev ensure "$tmp/link" "$HEX_B"; assert_rc 0; assert_eq "$out" written
		assert_eq "$(sector0_hex "$d" | cut -c1-84)" "${MAGIC}0001${HEX_B}"
		run_imgdev ensure "$l" "$HEX_B"; assert_eq "$out" matched
		run_imgdev header "$l" --json; assert_contains "$out" "sha256:$HEX_B"
		losetup -d "$l"'

	expect 'map --backend dm on a kernel without device-mapper fails clearly and creates nothing' '
		if [ -e /dev/mapper/control ]; then exit 0; fi
		d=$(new_disk mapdisk 1048576)
		l=$(losetup -f --show "$d")
		run_imgdev map "$l" virtlet-dm-host --image-size 4096 --backend dm; assert_rc 1
		assert_contains "$err" "no device-mapper"
		[ ! -e /dev/mapper/virtlet-dm-host ]
		losetup -d "$l"'

	expect 'map refuses a plain file (dm backend) and a bad name before touching the kernel' '
		d=$(new_disk mapfile 1048576)
		run_imgdev --backend dm map "$d" virtlet-dm-f --image-size 4096; assert_rc 1
		assert_contains "$err" "not a block device"
		run_imgdev map "$d" wrongprefix --image-size 4096; assert_rc 1
		assert_contains "$err" "must start with \"virtlet-dm-\""'
else
	skip 'loop device cases' 'needs root and a free loop device'
fi

finish
