#!/usr/bin/env bash
# Kernel fault tests, inside user-mode Linux (see test_kernel.sh): slow and
# failing devices under the target, built from dm-delay and dm-flakey over
# /dev/ubdh. Every failure must be a clear error with nothing committed, and
# nothing may hang.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest-lib.sh"

work=$(mktemp -d)
img=$work/image
head -c 24M /dev/urandom >"$img"
hash=$(sha256sum "$img" | cut -c1-64)
disk=/dev/ubdh
devno() { cat "/sys/block/${1#/dev/}/dev"; }
sectors=$(blockdev --getsz $disk)
commit_of() { "$IMGDEV" header --json "$1" | sed -n 's/.*"commit": "\(.*\)".*/\1/p'; }
mk() { echo "$2" | dmsetup create "$1" && dmsetup mknodes "$1"; }

# dm-flakey and dm-delay: guest-init.sh loads them.
need_dm_targets "fault tests" flakey delay

expect 'a slow device (dm-delay) is written to the end, committed and verified' '
	mk slow "0 $sectors delay $(devno $disk) 0 20"
	run_imgdev provision /dev/mapper/slow "$img" --no-map; assert_rc 0; assert_eq "$out" written
	run_imgdev verify /dev/mapper/slow; assert_rc 0
	dmsetup remove slow
	cmp <(tail -c +513 $disk | head -c 25165824) "$img"'

expect 'writes failing from the start (flakey, always down): sector 0 untouched, clear error' '
	dd if=/dev/zero of=$disk bs=1M count=1 conv=fsync status=none
	run_imgdev ensure $disk "sha256:$(printf x | sha256sum | cut -c1-64)"; assert_rc 0
	before=$(head -c 512 $disk | sha256sum)
	mk broken "0 $sectors flakey $(devno $disk) 0 0 60 1 error_writes"
	run_imgdev provision /dev/mapper/broken "$img" --no-map; assert_rc 1
	assert_contains "$err" "cannot write sector 0"
	assert_contains "$err" "Input/output error"
	run_imgdev ensure /dev/mapper/broken "$hash"; assert_rc 1
	assert_contains "$err" "cannot write sector 0"
	dmsetup remove broken
	assert_eq "$(head -c 512 $disk | sha256sum)" "$before"'

# payload_on_disk: the first 4 KiB of the payload on $disk (read past the
# page cache) are the image's: the copy has begun.
payload_on_disk() {
	[ "$(dd if=$disk bs=512 skip=1 count=8 iflag=direct status=none | sha256sum)" = \
		"$(head -c 4096 "$img" | sha256sum)" ]
}

# The device fails once the payload has begun to land (seen on the disk
# itself), not after a fixed time: on a loaded host imgdev may reach it
# late. dm-delay (1 s an I/O) keeps the rest of the copy in flight then.
expect 'writes failing mid-payload (flakey goes down once the payload has begun, under a slow copy): error, state writing' '
	dd if=/dev/zero of=$disk bs=1M count=1 oflag=direct status=none # no payload yet
	mk flaky "0 $sectors flakey $(devno $disk) 0 3600 1"
	mk slowflaky "0 $sectors delay /dev/mapper/flaky 0 1000"
	start=$(date +%s)
	"$IMGDEV" provision /dev/mapper/slowflaky "$img" --no-map >"$work/out" 2>"$work/err" &
	pid=$!
	for i in $(seq 1200); do
		payload_on_disk && break
		sleep 0.05
	done
	dmsetup suspend flaky
	echo "0 $sectors flakey $(devno $disk) 0 0 60 1 error_writes" | dmsetup load flaky
	dmsetup resume flaky
	rc=0; wait $pid || rc=$?
	out=$(cat "$work/out") err=$(cat "$work/err")
	assert_rc 1
	assert_contains "$err" "write error at payload offset"
	[ $(($(date +%s) - start)) -lt 60 ] || { echo "took too long"; exit 1; }
	dmsetup remove slowflaky; dmsetup remove flaky
	assert_eq "$(commit_of $disk)" writing
	run_imgdev verify $disk; assert_rc 4; assert_contains "$err" "did not complete"'

expect 'the same device, healthy again, takes the image' '
	run_imgdev provision $disk "$img" --no-map --digest "sha256:$hash"; assert_rc 0
	run_imgdev verify $disk; assert_rc 0'

dmsetup remove_all 2>/dev/null
rm -rf "$work"
finish
