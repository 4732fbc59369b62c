#!/usr/bin/env bash
# Thin devices stay thin (issue 15, part 1), inside user-mode Linux (see
# test_kernel.sh): a dm-thin pool with 64 KiB blocks, whose volumes discard
# but cannot write zeroes. A raw, a qcow2 and a zstd image, each onto a fresh
# volume and onto one filled with random bytes first: the payload byte-exact,
# verify ok, zeroing "discard", and the pool's used data blocks within 5 % of
# the image's non-zero 64 KiB blocks. Then a pool that skips zeroing new
# blocks (stale data under a fresh volume), and the other two ways of
# zeroing: a ubd disk (write-zeroes) and a loop device over hostfs (zeros).
# Disks: /dev/ubdk (4 MiB, pool metadata), /dev/ubdl (32 MiB, pool data),
# /dev/ubdm (8 MiB, a plain disk).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest-lib.sh"

NONZERO_BLOCKS=${NONZERO_BLOCKS:-$(dirname "$IMGDEV")/tests/nonzero-blocks}
meta=/dev/ubdk
data=/dev/ubdl
plain=/dev/ubdm
G=65536

load_dm_modules dm-bufio persistent-data/dm-persistent-data dm-bio-prison dm-thin-pool
need_dm_targets "thin pool" thin-pool thin
need_tool "thin pool" "$NONZERO_BLOCKS"

work=$(mktemp -d)
trap 'dmsetup remove thin 2>/dev/null; dmsetup remove thinpool 2>/dev/null
	detach_loops_under "$work"; rm -rf "$work"' EXIT

# A VM-shaped raw image of 20 MiB, 158 of its 320 64 KiB blocks data: 2 MiB
# of data (boot, file system metadata), a hole, 2 MiB of data with a zero
# block in the middle, a hole, 4 MiB of data, a hole, 2 MiB of data less the
# last block.
img=$work/image.raw
truncate -s 20M "$img"
put() { # put BLOCK COUNT: random bytes there
	dd if=/dev/urandom of="$img" bs=$G seek="$1" count="$2" conv=notrunc status=none
}
put 0 32
put 64 16
put 81 15
put 160 64
put 288 31
size=$(stat -c %s "$img")
qemu-img convert -f raw -O qcow2 "$img" "$work/image.qcow2"
zstd -q -1 -o "$work/image.raw.zst" "$img"
data_blocks=$("$NONZERO_BLOCKS" "$img" $G)
# What a perfect writer leaves: the blocks of the device (payload at byte 512,
# the header in block 0) that hold a non-zero byte.
device_blocks=$("$NONZERO_BLOCKS" "$img" $G 512)
echo "# image: $size bytes, $data_blocks blocks of data, $device_blocks device blocks at the least; ${SECONDS}s to make"

# The volume: exactly the room the image needs, in the layout (thin_create LAYOUT).
sectors_for() { # sectors_for virtlet|aligned
	if [ "$1" = aligned ]; then echo $((2048 + (size + 4095) / 4096 * 8)); else echo $((size / 512 + 1)); fi
}

pool_create() { # pool_create [FEATURES...]: the pool over ubdk and ubdl
	local feat=("$@")
	dmsetup create thinpool --table "0 $(blockdev --getsz $data) thin-pool $meta $data 128 0 ${#feat[@]} ${feat[*]}"
	dmsetup mknodes thinpool
}
used_blocks() { dmsetup status thinpool | awk '{ split($6, a, "/"); print a[1] }'; }
thin_create() { # thin_create [LAYOUT]: a new volume with room for the image in LAYOUT
	sectors=$(sectors_for "${1:-virtlet}")
	# What a failed case left.
	dmsetup remove thin 2>/dev/null || true
	dmsetup message thinpool 0 "delete 0" 2>/dev/null || true
	dmsetup message thinpool 0 "create_thin 0"
	dmsetup create thin --table "0 $sectors thin /dev/mapper/thinpool 0"
	dmsetup mknodes thin
}
thin_delete() { dmsetup remove thin && dmsetup message thinpool 0 "delete 0"; }

# thin_case IMAGE fresh|used [LAYOUT]: provision IMAGE in LAYOUT (virtlet)
# onto a new thin volume (used: filled with random bytes first); byte-exact,
# verified, zeroing "discard", and used blocks between the image's data
# blocks and 5 % more. On a fresh volume of a pool that zeroes new blocks,
# no zeros need writing at all.
# least_blocks LAYOUT: the fewest pool blocks the image can take on a volume in
# LAYOUT: the aligned one's payload starts on a block boundary, after the
# header's block and zeros.
least_blocks() {
	if [ "$1" = aligned ]; then echo $((data_blocks + 1)); else echo "$device_blocks"; fi
}
thin_case() {
	local image=$1 kind=$2 layout=${3:-virtlet} before after
	thin_create "$layout"
	if [ "$kind" = used ]; then
		head -c $((sectors * 512)) /dev/urandom | dd of=/dev/mapper/thin bs=1M iflag=fullblock oflag=direct status=none
	fi
	before=$(used_blocks)
	run_imgdev -v provision /dev/mapper/thin "$image" --no-map --json --layout "$layout"
	log=$err
	after=$(used_blocks)
	echo "${image##*/} onto a $kind${skip_zeroing:+ (skip_block_zeroing)} volume, $layout layout: pool blocks" \
		"$before before, $after after ($data_blocks data, $(least_blocks "$layout") least)," \
		"$(jfield seconds <<<"$out") s; $(grep -o "zero ranges.*" <<<"$log"); ${SECONDS}s so far" >>"$work/figures"
	assert_rc 0
	assert_eq "$(jfield zeroing <<<"$out")" discard
	assert_eq "$(jfield layout <<<"$out")" "$layout"
	assert_contains "$log" "discard, then read back"
	payload_is /dev/mapper/thin "$img"
	run_imgdev verify /dev/mapper/thin; assert_rc 0; assert_eq "$out" ok
	[ "$after" -ge "$data_blocks" ] && [ "$((after * 100))" -le "$((data_blocks * 105))" ] ||
		{ echo "pool blocks $after: not within 5 % of $data_blocks"; return 1; }
	if [ "$kind" = fresh ] && [ -z "$skip_zeroing" ]; then
		assert_contains "$log" " 0.0 MiB written as zeros"
	fi
	thin_delete
}
skip_zeroing=

dd if=/dev/zero of=$meta bs=4K count=1 conv=fsync status=none
pool_create

expect 'a thin volume discards but cannot write zeroes (the case this is for)' '
	thin_create
	q=/sys/dev/block/$(dmsetup info -c --noheadings -o major,minor --separator : thin)/queue
	[ "$(cat "$q/discard_max_bytes")" -gt 0 ]
	assert_eq "$(cat "$q/write_zeroes_max_bytes")" 0
	assert_eq "$(cat "$q/discard_granularity")" $G
	thin_delete
	assert_eq "$(used_blocks)" 0'

for f in image.raw image.qcow2 image.raw.zst; do
	for kind in fresh used; do
		for layout in virtlet aligned; do
			expect "$f onto a $kind thin volume, $layout layout: byte-exact, verified, by discard, pool blocks within 5 % of the data" "
				thin_case \"\$work/$f\" $kind $layout"
		done
	done
done

# The pool again, its metadata kept, over data blocks that hold random bytes.
dmsetup remove thinpool
head -c "$(blockdev --getsize64 $data)" /dev/urandom | dd of=$data bs=1M iflag=fullblock oflag=direct status=none
skip_zeroing=1
pool_create skip_block_zeroing
expect 'a pool that skips zeroing new blocks, over stale bytes: the edges read back and zeroed' '
	thin_case "$img" fresh
	assert_contains "$log" "MiB written as zeros"
	case $log in *" 0.0 MiB written as zeros"*) echo "nothing rewritten over stale bytes"; exit 1 ;; esac'
dmsetup remove thin 2>/dev/null
dmsetup remove thinpool

expect 'a ubd disk writes zeroes itself: zeroing "write-zeroes", byte-exact' '
	head -c 8M /dev/urandom | dd of=$plain bs=1M oflag=direct status=none
	head -c 3M /dev/urandom >"$work/small"; truncate -s 7M "$work/small"
	q=/sys/block/${plain#/dev/}/queue
	run_imgdev -v provision $plain "$work/small" --no-map --json; assert_rc 0
	if [ "$(cat "$q/write_zeroes_max_bytes")" -gt 0 ]; then
		assert_eq "$(jfield zeroing <<<"$out")" write-zeroes
	else
		echo "# ubd cannot write zeroes here: $(jfield zeroing <<<"$out")"
	fi
	payload_is $plain "$work/small"'

expect 'a loop device over hostfs can neither discard nor write zeroes: zeros written, byte-exact' '
	head -c 8M /dev/urandom >"$work/loopfile"
	loop=$(losetup -f --show "$work/loopfile")
	q=/sys/block/${loop#/dev/}/queue
	run_imgdev -v provision "$loop" "$work/small" --no-map --json; assert_rc 0
	if [ "$(cat "$q/discard_max_bytes")" = 0 ] && [ "$(cat "$q/write_zeroes_max_bytes")" = 0 ]; then
		assert_eq "$(jfield zeroing <<<"$out")" zeros
		assert_contains "$err" "zeros written (the device can neither write zeroes nor discard)"
	else
		echo "# the loop device discards or writes zeroes here: $(jfield zeroing <<<"$out")"
	fi
	payload_is "$loop" "$work/small"
	losetup -d "$loop"'

# The measurements, for the log (docs/TESTING.md has a table of them).
[ ! -f "$work/figures" ] || sed 's/^/# /' "$work/figures"
finish
