#!/usr/bin/env bash
# Kernel fault tests, inside user-mode Linux (see test_kernel.sh): slow and
# failing devices under the target, built from dm-delay and dm-flakey over
# /dev/ubdh. Every failure must be a clear error with nothing committed, and
# nothing may hang.
. "$(dirname "$0")/../lib.sh"

work=$(mktemp -d)
img=$work/image
head -c 24M /dev/urandom >"$img"
hash=$(sha256sum "$img" | cut -c1-64)
disk=/dev/ubdh
devno() { cat "/sys/block/${1#/dev/}/dev"; }
sectors=$(blockdev --getsz $disk)
commit_of() { "$IMGDEV" header --json "$1" | sed -n 's/.*"commit": "\(.*\)".*/\1/p'; }
mk() { echo "$2" | dmsetup create "$1" && dmsetup mknodes "$1"; }
has_target() { dmsetup targets | grep -q "^$1 "; }

if ! has_target flakey || ! has_target delay; then
	skip "fault tests" "dm-flakey or dm-delay not loaded"
	finish; exit
fi

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

expect 'writes failing mid-payload (flakey goes down under a slow copy): error, state writing' '
	mk flaky "0 $sectors flakey $(devno $disk) 0 2 60 1 error_writes"
	mk slowflaky "0 $sectors delay /dev/mapper/flaky 0 400"
	start=$(date +%s)
	run_imgdev provision /dev/mapper/slowflaky "$img" --no-map; assert_rc 1
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
