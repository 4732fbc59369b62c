#!/usr/bin/env bash
# Kernel tests, run inside user-mode Linux (see test_dm.sh): drive the imgdev
# binary against the real device-mapper over ubd disks /dev/ubdb../dev/ubde,
# and compare what it did with dmsetup's view of the kernel.
. "$(dirname "$0")/../lib.sh"

work=$(mktemp -d)
HEX_A=$(printf a | sha256sum | cut -c1-64)
HEX_B=$(printf b | sha256sum | cut -c1-64)
devno() { cat "/sys/block/${1#/dev/}/dev"; }
sectors() { blockdev --getsz "$1"; }
dm_names() { dmsetup ls 2>/dev/null | awk '$1 != "No" {print $1}' | sort | tr '\n' ' '; }

imgdev_ensure_ok() { "$IMGDEV" ensure "$1" "$2" >/dev/null; }
imgdev_ensure_ok /dev/ubdb "$HEX_A"
imgdev_ensure_ok /dev/ubdc "$HEX_B"
# /dev/ubdd stays header-less.
B=$(devno /dev/ubdb) C=$(devno /dev/ubdc) D=$(devno /dev/ubdd)

expect 'map through a symlink: live table, uuid, node, and the payload reads back' '
	ln -sf /dev/ubdb "$work/disk-link"
	run_imgdev map "$work/disk-link" virtlet-dm-one --image-size 1000000; assert_rc 0
	assert_eq "$out" /dev/mapper/virtlet-dm-one
	n=$(sectors /dev/ubdb)
	assert_eq "$(dmsetup table virtlet-dm-one)" "0 $((n - 1)) linear $B 1"
	assert_eq "$(dmsetup info -c --noheadings -o uuid virtlet-dm-one)" IMGDEV-virtlet-dm-one
	[ -b /dev/mapper/virtlet-dm-one ]
	mm=$(dmsetup info -c --noheadings -o major,minor --separator : virtlet-dm-one)
	assert_eq "$(stat -c "%t:%T" /dev/mapper/virtlet-dm-one)" "$(printf "%x:%x" ${mm%:*} ${mm#*:})"
	assert_eq "$(sectors /dev/mapper/virtlet-dm-one)" $((n - 1))
	cmp <(tail -c +513 /dev/ubdb | head -c 65536) <(head -c 65536 /dev/mapper/virtlet-dm-one)'

expect 'a name without the prefix is refused and nothing is created' '
	before=$(dm_names)
	run_imgdev map /dev/ubdc other-name --image-size 4096; assert_rc 1
	assert_contains "$err" "imgdev: map: other-name: mapping name must start with \"virtlet-dm-\""
	assert_eq "$(dm_names)" "$before"; [ ! -e /dev/mapper/other-name ]'

expect 'a device too small for the image is refused with both sizes, nothing created' '
	before=$(dm_names); n=$(sectors /dev/ubdc)
	run_imgdev map /dev/ubdc virtlet-dm-big --image-size $((n * 512)); assert_rc 8
	assert_contains "$err" "too small"
	assert_contains "$err" "$((n * 512)) bytes ($n sectors)"
	assert_contains "$err" "$(((n + 1) * 512)) bytes ($((n + 1)) sectors)"
	assert_eq "$(dm_names)" "$before"; [ ! -e /dev/mapper/virtlet-dm-big ]'

expect 'the largest image that fits is accepted (ceil(bytes/512)+1 sectors)' '
	n=$(sectors /dev/ubdc)
	run_imgdev map /dev/ubdc virtlet-dm-two --image-size $(((n - 1) * 512 - 100)); assert_rc 0
	assert_eq "$(dmsetup table virtlet-dm-two)" "0 $((n - 1)) linear $C 1"'

expect 'mapping a name that exists fails and leaves the existing mapping alone' '
	run_imgdev map /dev/ubdc virtlet-dm-one --image-size 4096; assert_rc 1
	assert_contains "$err" "already exists"
	assert_eq "$(dmsetup table virtlet-dm-one)" "0 $(($(sectors /dev/ubdb) - 1)) linear $B 1"'

expect 'list among a mix returns exactly the image mappings, Virtlet-made ones too' '
	dmsetup create virtlet-dm-virtlet --table "0 100 linear /dev/ubdc 1"
	dmsetup create virtlet-dm-plain --table "0 100 linear /dev/ubdd 1"
	dmsetup create virtlet-dm-striped --table "0 256 striped 2 64 /dev/ubdb 1 /dev/ubdc 1"
	printf "0 100 linear %s 1\n100 100 linear %s 200\n" "$B" "$B" | dmsetup create virtlet-dm-twotarget
	dmsetup create virtlet-dm-offset --table "0 100 linear /dev/ubdb 2"
	dmsetup create other-linear --table "0 100 linear /dev/ubdc 1"
	run_imgdev list; assert_rc 0
	assert_eq "$(echo $out)" "other-linear virtlet-dm-one virtlet-dm-two virtlet-dm-virtlet"'

expect 'list --json gives name, path, backing, major:minor, sectors and hash' '
	run_imgdev list --json; assert_rc 0
	assert_contains "$out" "\"name\": \"virtlet-dm-one\""
	assert_contains "$out" "\"path\": \"/dev/mapper/virtlet-dm-one\""
	assert_contains "$out" "\"backing\": \"/dev/ubdb\""
	assert_contains "$out" "\"backing_dev\": \"$B\""
	assert_contains "$out" "\"sectors\": $(($(sectors /dev/ubdb) - 1))"
	assert_contains "$out" "\"image_hash\": \"sha256:$HEX_A\""
	assert_contains "$out" "\"image_hash\": \"sha256:$HEX_B\""'

expect 'every path list prints exists; a mapping dmsetup made without udev is listed under /dev/dm-N' '
	run_imgdev list --json; assert_rc 0
	echo "$out" >"$work/list.json"
	for p in $(jq -r ".[] | .path, .device, .backing" "$work/list.json"); do
		[ -b "$p" ] || { echo "$p is not a block device"; exit 1; }
	done
	[ ! -e /dev/mapper/virtlet-dm-virtlet ]
	mm=$(dmsetup info -c --noheadings -o major,minor --separator : virtlet-dm-virtlet)
	p=$(jq -r ".[] | select(.name == \"virtlet-dm-virtlet\") | .path" "$work/list.json")
	assert_eq "$p" "/dev/dm-${mm#*:}"
	assert_eq "$(jq -r ".[] | select(.name == \"virtlet-dm-one\") | .device" "$work/list.json")" \
		"/dev/$(basename "$(readlink -f /sys/dev/block/$(dmsetup info -c --noheadings -o major,minor --separator : virtlet-dm-one))")"
	cmp <(tail -c +513 /dev/ubdc | head -c 51200) <(head -c 51200 "$p")'

expect 'whatever list shows, unmap removes: a name without the prefix too' '
	run_imgdev list; assert_contains "$out" other-linear
	run_imgdev unmap other-linear; assert_rc 0
	! dmsetup info other-linear >/dev/null 2>&1
	run_imgdev list; assert_rc 0
	case "$out" in *other-linear*) echo "still listed"; exit 1 ;; esac
	dmsetup create other-linear --table "0 100 linear /dev/ubdc 1"'

expect 'a backing device that cannot be read is skipped with a warning' '
	mkdir -p "$work/fakedev"
	run_imgdev --dev-dir "$work/fakedev" --backend dm list; assert_rc 1
	mkdir -p "$work/fakedev/mapper"; ln -s /dev/mapper/control "$work/fakedev/mapper/control"
	run_imgdev --dev-dir "$work/fakedev" list; assert_rc 0
	assert_eq "$out" ""
	assert_contains "$err" "warning: virtlet-dm-one: skipped: backing device $B"'

expect 'list still finds ours among 200 long-named devices (the list buffer grows)' '
	pad=$(printf "%0110d" 0) spec="" names=()
	for i in $(seq 1 200); do
		spec+="many-$i-$pad,,,,0 8 zero;"; names+=("many-$i-$pad")
	done
	dmsetup create --concise "${spec%;}"
	run_imgdev list; assert_rc 0
	assert_eq "$(echo $out)" "other-linear virtlet-dm-one virtlet-dm-two virtlet-dm-virtlet"
	dmsetup remove "${names[@]}"'

expect 'unmap removes the device and its node' '
	run_imgdev unmap virtlet-dm-two; assert_rc 0
	[ ! -e /dev/mapper/virtlet-dm-two ]
	! dmsetup info virtlet-dm-two >/dev/null 2>&1'

expect 'unmap of a missing name is an error' '
	run_imgdev unmap virtlet-dm-nosuch; assert_rc 1
	assert_contains "$err" "imgdev: unmap: virtlet-dm-nosuch: no such mapping"'

expect 'unmap refuses a device that is not an image mapping' '
	run_imgdev unmap virtlet-dm-plain; assert_rc 1
	assert_contains "$err" "not an image mapping"
	dmsetup info virtlet-dm-plain >/dev/null'

expect 'unmap removes a Virtlet-made mapping (no uuid, recognised by its table)' '
	run_imgdev unmap virtlet-dm-virtlet; assert_rc 0
	! dmsetup info virtlet-dm-virtlet >/dev/null 2>&1'

expect 'unmap waits out a brief holder, and gives up on a lasting one' '
	run_imgdev map /dev/ubdc virtlet-dm-held --image-size 4096; assert_rc 0
	(exec 3</dev/mapper/virtlet-dm-held; sleep 1) &
	sleep 0.2
	run_imgdev unmap virtlet-dm-held; assert_rc 0
	wait
	run_imgdev map /dev/ubdc virtlet-dm-held --image-size 4096; assert_rc 0
	exec 3</dev/mapper/virtlet-dm-held
	run_imgdev unmap virtlet-dm-held; exec 3<&-
	assert_rc 5; assert_contains "$err" "in use"
	run_imgdev unmap virtlet-dm-held; assert_rc 0'

expect 'a failed table load removes the half-made device' '
	mkfs.ext4 -q -F /dev/ubde 2>/dev/null || mke2fs -q -F /dev/ubde
	mkdir -p "$work/mnt"; mount /dev/ubde "$work/mnt"
	before=$(dm_names)
	run_imgdev map /dev/ubde virtlet-dm-mounted --image-size 4096
	umount "$work/mnt"
	assert_rc 5; assert_contains "$err" "load table"
	assert_eq "$(dm_names)" "$before"; [ ! -e /dev/mapper/virtlet-dm-mounted ]'

expect 'a stale node of the same name is replaced by the right one' '
	mknod /dev/mapper/virtlet-dm-stale b 1 1
	run_imgdev map /dev/ubdc virtlet-dm-stale --image-size 4096; assert_rc 0
	mm=$(dmsetup info -c --noheadings -o major,minor --separator : virtlet-dm-stale)
	assert_eq "$(stat -c "%t:%T" /dev/mapper/virtlet-dm-stale)" "$(printf "%x:%x" ${mm%:*} ${mm#*:})"
	run_imgdev unmap virtlet-dm-stale; assert_rc 0; [ ! -e /dev/mapper/virtlet-dm-stale ]'

expect 'maps and unmaps of different names in parallel do not interfere' '
	pids=()
	for i in $(seq 1 8); do "$IMGDEV" map /dev/ubdc "virtlet-dm-par$i" --image-size 4096 >"$work/par$i" 2>&1 & pids+=($!); done
	for p in "${pids[@]}"; do wait "$p"; done
	for i in $(seq 1 8); do
		assert_eq "$(cat "$work/par$i")" "/dev/mapper/virtlet-dm-par$i"
		assert_eq "$(dmsetup table "virtlet-dm-par$i")" "0 $(($(sectors /dev/ubdc) - 1)) linear $C 1"
		[ -b "/dev/mapper/virtlet-dm-par$i" ]
	done
	pids=()
	for i in $(seq 1 8); do "$IMGDEV" unmap "virtlet-dm-par$i" >"$work/unpar$i" 2>&1 & pids+=($!); done
	for p in "${pids[@]}"; do wait "$p"; done
	for i in $(seq 1 8); do
		! dmsetup info "virtlet-dm-par$i" >/dev/null 2>&1
		[ ! -e "/dev/mapper/virtlet-dm-par$i" ]
	done'

expect 'without CAP_SYS_ADMIN the error says so, not a bare EPERM' '
	run_imgdev map /dev/ubdc virtlet-dm-nocap --image-size 4096; assert_rc 0
	rc=0; err=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$IMGDEV" list 2>&1) || rc=$?
	assert_eq "$rc" 9; assert_contains "$err" "CAP_SYS_ADMIN"
	rc=0; err=$(setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin "$IMGDEV" unmap virtlet-dm-nocap 2>&1) || rc=$?
	assert_eq "$rc" 9; assert_contains "$err" "CAP_SYS_ADMIN"
	dmsetup info virtlet-dm-nocap >/dev/null
	run_imgdev unmap virtlet-dm-nocap; assert_rc 0'

expect 'list shows both backends; auto unmap finds a loop mapping after device-mapper' '
	run_imgdev map /dev/ubdc virtlet-dm-dmside --image-size 4096; assert_rc 0
	run_imgdev --backend loop map /dev/ubdb virtlet-dm-loopside --image-size 4096; assert_rc 0
	assert_eq "$out" /run/imgdev/virtlet-dm-loopside
	run_imgdev list --json
	assert_contains "$out" "\"backend\": \"dm\""
	assert_contains "$out" "\"backend\": \"loop\""
	run_imgdev list; assert_contains "$out" "virtlet-dm-dmside
virtlet-dm-loopside"
	run_imgdev unmap virtlet-dm-loopside; assert_rc 0
	[ ! -L /run/imgdev/virtlet-dm-loopside ]
	run_imgdev unmap virtlet-dm-dmside; assert_rc 0'

# The aligned layout (header version 2, the payload at sector 2048), on loop
# devices over tmpfs files: one with 4096-byte sectors, where Virtlet's layout
# cannot be, and one with 512-byte sectors.
img4k=$work/img4k
head -c 3000000 /dev/urandom >"$img4k"
head -c 1000000 /dev/zero >>"$img4k"
head -c 333 /dev/urandom >>"$img4k"
size4k=$(stat -c %s "$img4k")
loop_over() { # loop_over NAME BYTES SECTOR: a loop device over a new file in /dev/shm
	truncate -s "$2" "/dev/shm/$1"
	losetup -f --show --sector-size "$3" "/dev/shm/$1"
}

expect 'a 4096-byte-sector disk: the Virtlet layout refused; the aligned one through O_DIRECT, mapped from sector 2048 in 4096-byte sectors, listed, verified, matched, unmapped' '
	l=$(loop_over d4k 16M 4096); L=$(devno "$l")
	before=$(dm_names)
	run_imgdev provision "$l" "$img4k" --name virtlet-dm-4k --layout virtlet; assert_rc 2
	assert_contains "$err" "4096-byte logical sectors: Virtlet"
	assert_eq "$(dm_names)" "$before"
	# Nor could Virtlet map it: a linear target at sector 1 of it is refused.
	! dmsetup create virtlet-dm-at1 --table "0 8 linear $l 1" 2>/dev/null
	dmsetup remove virtlet-dm-at1 2>/dev/null || true
	run_imgdev provision "$l" "$img4k" --name virtlet-dm-4k --json; assert_rc 0
	assert_eq "$(jget layout "$out")" aligned; assert_eq "$(jget direct_io "$out")" true
	n=$(sectors "$l")
	assert_eq "$(dmsetup table virtlet-dm-4k)" "0 $((n - 2048)) linear $L 2048"
	assert_eq "$(blockdev --getss /dev/mapper/virtlet-dm-4k)" 4096
	cmp -n "$size4k" /dev/mapper/virtlet-dm-4k "$img4k"
	run_imgdev list --json; assert_contains "$out" "\"name\": \"virtlet-dm-4k\""
	run_imgdev provision "$l" "$img4k" --name virtlet-dm-4k; assert_rc 0
	assert_eq "$out" "matched
/dev/mapper/virtlet-dm-4k"
	run_imgdev unmap virtlet-dm-4k; assert_rc 0
	run_imgdev verify "$l"; assert_rc 0
	run_imgdev map "$l" virtlet-dm-4k --image-size "$size4k"; assert_rc 0
	assert_eq "$(dmsetup table virtlet-dm-4k)" "0 $((n - 2048)) linear $L 2048"
	run_imgdev unmap virtlet-dm-4k; assert_rc 0
	losetup -d "$l"; rm -f /dev/shm/d4k'

expect 'the aligned layout on a 512-byte-sector disk: a table at sector 2048; one at sector 1 over it is no image mapping' '
	l=$(loop_over d512a 16M 512); L=$(devno "$l")
	run_imgdev provision "$l" "$img4k" --name virtlet-dm-al --layout aligned; assert_rc 0
	n=$(sectors "$l")
	assert_eq "$(dmsetup table virtlet-dm-al)" "0 $((n - 2048)) linear $L 2048"
	cmp -n "$size4k" /dev/mapper/virtlet-dm-al "$img4k"
	run_imgdev unmap virtlet-dm-al; assert_rc 0
	dmsetup create virtlet-dm-al1 --table "0 100 linear $l 1"
	run_imgdev list; case $out in *virtlet-dm-al1*) echo "listed: $out"; exit 1 ;; esac
	run_imgdev unmap virtlet-dm-al1; assert_rc 1; assert_contains "$err" "not an image mapping"
	dmsetup remove virtlet-dm-al1
	losetup -d "$l"; rm -f /dev/shm/d512a'

dmsetup remove_all 2>/dev/null
rm -rf "$work"
finish
