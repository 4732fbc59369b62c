#!/usr/bin/env bash
# Host tests of the loop backend: the payload of a file or of a loop-backed
# "disk" mapped as a loop device at offset 512, or 1 MiB in the aligned layout
# (checked through sysfs and by reading it back), found by name in list, unmapped with its link; provision
# through it; names and duplicates refused. Needs root and loop devices.
. "$(dirname "$0")/../lib.sh"

need_root_and_loop
tmp=$(mktemp -d /var/tmp/imgdev-loop.XXXXXX)
run=$tmp/run
cleanup() {
	for l in "$run"/*; do [ -L "$l" ] && losetup -d "$(readlink "$l")" 2>/dev/null; done
	detach_loops_under "$tmp"
	rm -rf "$tmp"
}
trap cleanup EXIT

L() { run_imgdev --run-dir "$run" --backend loop "$@"; }
loopname() { basename "$(readlink "$run/$1")"; }
img=$tmp/image
head -c 3000000 /dev/urandom >"$img"
size=$(stat -c %s "$img")
disk=$tmp/disk
truncate -s 8M "$disk"
run_imgdev provision "$disk" "$img" --no-map

expect 'map a file: loop at offset 512, size limit the rest, reads back as the payload' '
	L map "$disk" virtlet-dm-file --image-size "$size"; assert_rc 0
	assert_eq "$out" "$run/virtlet-dm-file"
	n=$(loopname virtlet-dm-file)
	assert_eq "$(cat /sys/block/$n/loop/offset)" 512
	assert_eq "$(cat /sys/block/$n/loop/sizelimit)" $((8 * 1048576 - 512))
	assert_eq "$(cat /sys/block/$n/loop/backing_file)" "$disk"
	cmp <(head -c "$size" "$run/virtlet-dm-file") "$img"'

expect 'list finds it by name, with the loop backend in JSON' '
	L list; assert_rc 0; assert_eq "$out" virtlet-dm-file
	L list --json
	assert_contains "$out" "\"name\": \"virtlet-dm-file\""
	assert_contains "$out" "\"backend\": \"loop\""
	assert_contains "$out" "\"path\": \"$run/virtlet-dm-file\""
	assert_contains "$out" "\"device\": \"/dev/$(loopname virtlet-dm-file)\""
	assert_contains "$out" "\"backing\": \"$disk\""
	assert_contains "$out" "\"image_hash\": \"sha256:$(sha256sum "$img" | cut -c1-64)\""'

expect 'mapping the same name twice fails, and the first mapping stays' '
	n=$(loopname virtlet-dm-file)
	L map "$disk" virtlet-dm-file --image-size "$size"; assert_rc 1
	assert_contains "$err" "already exists"
	assert_eq "$(loopname virtlet-dm-file)" "$n"'

expect 'the header cannot be rewritten under a loop mapping' '
	before=$(head -c 512 "$disk" | sha256sum)
	run_imgdev --run-dir "$run" ensure "$disk" "$(printf b | sha256sum | cut -c1-64)"; assert_rc 5
	assert_contains "$err" "in use (mapped as loop device"
	assert_eq "$(head -c 512 "$disk" | sha256sum)" "$before"'

expect 'unmap detaches the loop device and removes the link' '
	n=$(loopname virtlet-dm-file)
	L unmap virtlet-dm-file; assert_rc 0
	[ ! -e "$run/virtlet-dm-file" ] && [ ! -L "$run/virtlet-dm-file" ]
	[ ! -e /sys/block/$n/loop/backing_file ]
	L unmap virtlet-dm-file; assert_rc 1; assert_contains "$err" "no such mapping"'

expect 'map a loop-backed disk (a block device) the same way' '
	d=$tmp/bdisk; truncate -s 8M "$d"; b=$(losetup -f --show "$d")
	run_imgdev provision "$b" "$img" --no-map; assert_rc 0
	L map "$b" virtlet-dm-blk --image-size "$size"; assert_rc 0
	n=$(loopname virtlet-dm-blk)
	assert_eq "$(cat /sys/block/$n/loop/offset)" 512
	assert_eq "$(cat /sys/block/$n/loop/backing_file)" "$b"
	cmp <(head -c "$size" "$run/virtlet-dm-blk") "$img"
	L list --json; assert_contains "$out" "\"backing_dev\": \"$(cat /sys/block/${b#/dev/}/dev)\""
	L unmap virtlet-dm-blk; assert_rc 0
	losetup -d "$b"'

expect 'provision --backend loop writes, maps, and matches on a re-run' '
	d=$tmp/pdisk; truncate -s 8M "$d"
	L provision "$d" "$img" --name virtlet-dm-prov; assert_rc 0
	assert_eq "$out" "written
$run/virtlet-dm-prov"
	cmp <(head -c "$size" "$run/virtlet-dm-prov") "$img"
	L provision "$d" "$img" --name virtlet-dm-prov; assert_rc 0
	assert_eq "$out" "matched
$run/virtlet-dm-prov"
	head -c 1000 /dev/urandom >"$tmp/other"
	L provision "$d" "$tmp/other" --name virtlet-dm-prov; assert_rc 5
	assert_contains "$err" "in use (mapped as loop device"
	L provision "$tmp/disk" "$img" --name virtlet-dm-prov; assert_rc 1
	assert_contains "$err" "maps something other"
	L unmap virtlet-dm-prov; assert_rc 0'

expect 'the aligned layout: a file and a 4096-byte-sector disk mapped from byte 1 MiB, listed, matched, unmapped; a loop at 512 over it is not ours' '
	d=$tmp/adisk; truncate -s 8M "$d"
	L provision "$d" "$img" --name virtlet-dm-al --layout aligned; assert_rc 0
	n=$(loopname virtlet-dm-al)
	assert_eq "$(cat /sys/block/$n/loop/offset)" 1048576
	assert_eq "$(cat /sys/block/$n/loop/sizelimit)" $((7 * 1048576))
	cmp <(head -c "$size" "$run/virtlet-dm-al") "$img"
	L list; assert_contains "$out" virtlet-dm-al
	L provision "$d" "$img" --name virtlet-dm-al; assert_rc 0
	assert_eq "$out" "matched
$run/virtlet-dm-al"
	L unmap virtlet-dm-al; assert_rc 0
	# map (after provision --no-map) follows the header too.
	L map "$d" virtlet-dm-al2 --image-size "$size"; assert_rc 0
	assert_eq "$(cat /sys/block/$(loopname virtlet-dm-al2)/loop/offset)" 1048576
	L unmap virtlet-dm-al2; assert_rc 0
	# A marked loop at 512 (the Virtlet layout'"'"'s offset) shows no payload of this header.
	x=$("$(dirname "$IMGDEV")/tests/loop-attach-named" "$d" 512 IMGDEV:virtlet-dm-x512)
	L list; assert_eq "$out" ""
	L unmap virtlet-dm-x512; assert_rc 1
	losetup -d "$x"
	f=$tmp/a4k; truncate -s 8M "$f"; b=$(losetup -f --show --sector-size 4096 "$f")
	L provision "$b" "$img" --name virtlet-dm-al4k; assert_rc 0
	n=$(loopname virtlet-dm-al4k)
	assert_eq "$(cat /sys/block/$n/loop/offset)" 1048576
	assert_eq "$(cat /sys/block/$n/queue/logical_block_size)" 4096 "the mapping'"'"'s sector size"
	cmp <(head -c "$size" "$run/virtlet-dm-al4k") "$img"
	run_imgdev verify "$b"; assert_rc 0
	L unmap virtlet-dm-al4k; assert_rc 0
	losetup -d "$b"
	# A device in Virtlet'"'"'s layout seen through 4096-byte sectors cannot be mapped there.
	v=$tmp/v4k; truncate -s 8M "$v"
	run_imgdev provision "$v" "$img" --no-map --layout virtlet; assert_rc 0
	b=$(losetup -f --show --sector-size 4096 "$v")
	L map "$b" virtlet-dm-v4k --image-size "$size"; assert_rc 2
	assert_contains "$err" "starts at byte 512 (Virtlet'"'"'s layout), inside the first of its 4096-byte logical sectors"
	[ ! -e "$run/virtlet-dm-v4k" ]
	losetup -d "$b"'

expect 'provision with a name that maps another device writes nothing' '
	L map "$disk" virtlet-dm-taken --image-size "$size"; assert_rc 0
	d=$tmp/victim; head -c 8M /dev/urandom >"$d"; before=$(sha256sum <"$d")
	L provision "$d" "$img" --name virtlet-dm-taken --force; assert_rc 1
	assert_contains "$err" "maps something other"
	assert_eq "$(sha256sum <"$d")" "$before"
	L unmap virtlet-dm-taken; assert_rc 0'

expect 'unmap of a loop mapping held open fails as in use, and the mapping stays whole' '
	L map "$disk" virtlet-dm-held --image-size "$size"; assert_rc 0
	n=$(loopname virtlet-dm-held)
	exec 3<"$run/virtlet-dm-held"
	L unmap virtlet-dm-held; rc1=$rc; exec 3<&-
	assert_eq "$rc1" 5; assert_contains "$err" "in use"
	[ -L "$run/virtlet-dm-held" ]
	assert_eq "$(cat /sys/block/$n/loop/autoclear)" 0
	L unmap virtlet-dm-held; assert_rc 0
	[ ! -e /sys/block/$n/loop/backing_file ]'

expect 'auto picks loop without device-mapper, and unmap finds it' '
	if [ -e /dev/mapper/control ]; then exit 0; fi
	run_imgdev --run-dir "$run" map "$disk" virtlet-dm-auto --image-size "$size"; assert_rc 0
	assert_eq "$out" "$run/virtlet-dm-auto"
	run_imgdev --run-dir "$run" list; assert_contains "$out" virtlet-dm-auto
	run_imgdev --run-dir "$run" unmap virtlet-dm-auto; assert_rc 0'

expect 'names: longer than lo_file_name holds after the mark, or without the prefix, map nothing' '
	before=$(losetup -a | wc -l)
	L map "$disk" "virtlet-dm-$(printf "%046d" 0)" --image-size 1; assert_rc 1
	assert_contains "$err" "at most 56 bytes"
	L map "$disk" other --image-size 1; assert_rc 1; assert_contains "$err" "must start with"
	L map "$disk" virtlet-dm-big --image-size $((8 * 1048576)); assert_rc 8; assert_contains "$err" "too small"
	assert_eq "$(losetup -a | wc -l)" "$before"'

expect 'the longest name that fits (56 bytes) maps, lists and unmaps' '
	long="virtlet-dm-$(printf "%045d" 0)"
	L map "$disk" "$long" --image-size "$size"; assert_rc 0
	L list; assert_eq "$out" "$long"
	L unmap "$long"; assert_rc 0
	L list; assert_eq "$out" ""'

expect 'a loop device someone else attached at offset 512 over our disk is not listed, and unmap leaves it' '
	other=$(losetup -f --show -o 512 "$disk")
	L map "$disk" virtlet-dm-ours --image-size "$size"; assert_rc 0
	L list; assert_eq "$out" virtlet-dm-ours
	L list --json; assert_eq "$(jq -r ".[].name" <<<"$out")" virtlet-dm-ours
	L unmap "$disk"; assert_rc 1; assert_contains "$err" "not a valid mapping name"
	L unmap "${disk##*/}"; assert_rc 1; assert_contains "$err" "no such mapping"
	[ -e "/sys/block/${other#/dev/}/loop/backing_file" ]
	L unmap virtlet-dm-ours; assert_rc 0
	losetup -d "$other"'

expect 'every path list prints exists and opens the mapping, the link or else /dev/loopN' '
	other=$(losetup -f --show -o 512 "$disk")
	L map "$disk" virtlet-dm-paths --image-size "$size"; assert_rc 0
	L list --json
	for p in $(jq -r ".[] | .path, .device, .backing" <<<"$out"); do [ -e "$p" ] || { echo "$p missing"; exit 1; }; done
	assert_eq "$(jq -r ".[0].path" <<<"$out")" "$run/virtlet-dm-paths"
	cmp <(head -c "$size" "$(jq -r ".[0].path" <<<"$out")") "$img"
	rm "$run/virtlet-dm-paths"
	L list --json
	n=$(jq -r ".[0].device" <<<"$out")
	assert_eq "$(jq -r ".[0].path" <<<"$out")" "$n"
	assert_eq "$n" "/dev/$(basename "$n")"; [ -b "$n" ]
	cmp <(head -c "$size" "$n") "$img"
	L unmap virtlet-dm-paths; assert_rc 0
	[ ! -e "/sys/block/${n#/dev/}/loop/backing_file" ]
	losetup -d "$other"'

named=$(dirname "$IMGDEV")/tests/loop-attach-named
expect 'a loop mapping an imgdev before the mark made (lo_file_name NAME, linked in the run dir) stays ours: listed, matched, never doubled, unmapped' '
	d=$tmp/legacy; truncate -s 8M "$d"
	run_imgdev provision "$d" "$img" --no-map; assert_rc 0
	l=$("$named" "$d" 512 virtlet-dm-legacy)
	mkdir -p "$run"; ln -sfn "$l" "$run/virtlet-dm-legacy"
	L list; assert_eq "$out" virtlet-dm-legacy
	before=$(losetup -j "$d" | wc -l)
	L provision "$d" "$img" --name virtlet-dm-legacy; assert_rc 0
	assert_eq "$out" "matched
$run/virtlet-dm-legacy"
	assert_eq "$(readlink "$run/virtlet-dm-legacy")" "$l"
	assert_eq "$(losetup -j "$d" | wc -l)" "$before"
	L unmap virtlet-dm-legacy; assert_rc 0
	[ ! -e "/sys/block/${l#/dev/}/loop/backing_file" ] && [ ! -L "$run/virtlet-dm-legacy" ]'

expect 'a loop device named like a mapping but without the mark or our link is not ours' '
	l=$("$named" "$disk" 512 virtlet-dm-stranger)
	L list; assert_eq "$out" ""
	L unmap virtlet-dm-stranger; assert_rc 1; assert_contains "$err" "no such mapping"
	[ -e "/sys/block/${l#/dev/}/loop/backing_file" ]
	losetup -d "$l"'

expect 'a loop mapping over a device without our header is not listed nor unmapped' '
	d=$tmp/plain; truncate -s 4M "$d"
	l=$(losetup -f --show -o 512 "$d")
	L list; assert_eq "$out" ""
	losetup -d "$l"'

expect '--backend with an unknown value is a usage error' '
	run_imgdev --backend xfs list; assert_rc 2; assert_contains "$err" "expected dm, loop or auto"
	run_imgdev list --backend nbd; assert_rc 2'

finish
