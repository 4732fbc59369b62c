#!/usr/bin/env bash
# Power cuts, proven by replay (issue 15, part 3), inside user-mode Linux (see
# test_kernel.sh): provision image B through dm-log-writes over a device that
# held a committed image A, then replay the log onto copies of the starting
# state at every flush and FUA, and at POWERCUT_SEEDS random losses of the
# writes between two of them, checking the crash invariant at each state.
# Disks: /dev/ubdi (8 MiB, the data disk) and /dev/ubdj (64 MiB, the log).
. "$(dirname "$0")/../lib.sh"

# Random drop subsets per stretch between two flushes; a soak raises it.
K=${POWERCUT_SEEDS:-16}
LOG_REPLAY=${LOG_REPLAY:-$(dirname "$IMGDEV")/tests/log-replay}
disk=/dev/ubdi
logdev=/dev/ubdj
moddir=/usr/lib/uml/modules/$(uname -r)/kernel/drivers/md

if ! dmsetup targets | grep -q '^log-writes '; then
	busybox insmod "$moddir/dm-log-writes.ko" 2>/dev/null
fi
if ! dmsetup targets | grep -q '^log-writes '; then
	skip "power-cut replay" "dm-log-writes not loaded"
	finish; exit
fi
if [ ! -x "$LOG_REPLAY" ]; then
	skip "power-cut replay" "no $LOG_REPLAY (build the tests)"
	finish; exit
fi

# A tmpfs: the guest copies the starting state once per state checked.
work=$(mktemp -d /dev/shm/powercut.XXXXXX)
trap 'dmsetup remove lw 2>/dev/null; rm -rf "$work"' EXIT
imgA=$work/A
head -c 6M /dev/urandom >"$imgA"
# B: 5 MiB + 777 bytes: data, a zero run and a hole over A's data, data.
imgB=$work/B
head -c 2M /dev/urandom >"$imgB"
head -c 1M /dev/zero >>"$imgB"
truncate -s 4M "$imgB"
head -c $((1024 * 1024 + 777)) /dev/urandom >>"$imgB"
hashA=$(sha "$imgA")
hashB=$(sha "$imgB")
sizeA=$(stat -c %s "$imgA")
sizeB=$(stat -c %s "$imgB")
zeros=$(printf '%064d' 0)
start=$work/start
target=$work/target
# The log-writes target passes discards but not write-zeroes, so imgdev
# zeroes B's zero runs there by discard, read back (issue 15, part 1); the
# data disk (ubd) zeroes what it is told to discard, and the read-back found
# zeros, so the replay zeroes discarded ranges too. (A discard dropped by a
# power cut still leaves the old bytes.)
DISCARD_ZERO=--discard-zero

# replay LABEL REPLAY-ARGS...: a copy of the starting state as $target, the
# log replayed onto it; what log-replay printed in $work/replay.out.
replay() {
	local label=$1
	shift
	cp "$start" "$target"
	"$LOG_REPLAY" "$logdev" "$target" "$@" $DISCARD_ZERO >"$work/replay.out" 2>&1 && return
	echo "$label: log-replay failed: $(<"$work/replay.out")" >>"$work/bad"
	return 1
}

# check_state LABEL: judge $target. A header naming an image (bytes 10-41
# not all zero) has a complete record, the payload is that image (A or B)
# byte for byte and verify passes; a header naming none has a record in
# state writing, which verify never matches (4). Appends the state's kind to
# $work/kinds and a failure's description to $work/bad. Few processes: each
# costs ~40 ms in the guest.
check_state() {
	local label=$1 json name commit vrc kind img size why=
	json=$("$IMGDEV" header --json "$target")
	name=$zeros commit=none
	[[ $json =~ \"image_hash\":\ \"sha256:([0-9a-f]{64})\" ]] && name=${BASH_REMATCH[1]}
	[[ $json =~ \"commit\":\ \"([a-z]+)\" ]] && commit=${BASH_REMATCH[1]}
	vrc=0
	"$IMGDEV" verify "$target" >/dev/null 2>&1 || vrc=$?
	case $name in
	"$zeros") kind=writing img= ;;
	"$hashA") kind=A img=$imgA size=$sizeA ;;
	"$hashB") kind=B img=$imgB size=$sizeB ;;
	*) kind=unknown img= why="header names neither A nor B ($name)" ;;
	esac
	if [ "$kind" = writing ]; then
		[ "$commit" = writing ] || why="no image named, record '$commit'"
		[ -n "$why" ] || [ "$vrc" = 4 ] || why="record writing, verify exited $vrc, not 4"
	elif [ -n "$img" ]; then
		[ "$commit" = complete ] || why="names $kind, record '$commit'"
		[ -n "$why" ] || cmp -s -n "$size" -i 512:0 "$target" "$img" ||
			why="header names $kind over a payload that is not $kind"
		[ -n "$why" ] || [ "$vrc" = 0 ] || why="names $kind, verify exited $vrc"
	fi
	echo "$kind" >>"$work/kinds"
	[ -z "$why" ] || echo "$label: $why" >>"$work/bad"
}

# replay_all: the state after every flush/FUA point of the log, and K seeded
# drop subsets of each stretch of writes that ends at the next point (or the
# log's end), --to that point's index. A subset that drops nothing is the
# next point's state, one that drops every write the last point's, one
# already seen the same state: those are counted as tried, not checked again.
replay_all() {
	local points n i p from end seed ios dropped key
	local -A seen=()
	read -r -a points <<<"$("$LOG_REPLAY" "$logdev" --points | tr '\n' ' ')"
	"$LOG_REPLAY" "$logdev" --list >"$work/list"
	n=$(wc -l <"$work/list")
	# The starting state: every write lost.
	replay "start" --to 0 && check_state "start"
	for p in "${points[@]}"; do
		echo point >>"$work/tried"
		replay "point $p" --to $((p + 1)) && check_state "point $p"
	done
	from=-1
	for i in $(seq 0 ${#points[@]}); do
		end=${points[$i]:-$n}
		# Writes and discards in the stretch: what a drop can lose. With
		# fewer than two, every subset is one of the two points' states.
		ios=$(awk -v a="$from" -v b="$end" '$1 > a && $1 < b && $2 !~ /FLUSH|FUA|MARK/ { n++ }
			END { print n + 0 }' "$work/list")
		from=$end
		[ "$ios" -ge 2 ] || continue
		for seed in $(seq 1 "$K"); do
			echo subset >>"$work/tried"
			# Which writes the seed drops, onto whatever $target holds.
			"$LOG_REPLAY" "$logdev" "$target" --to "$end" --drop-seed "$seed" $DISCARD_ZERO \
				>"$work/replay.out" 2>&1 || true
			dropped=$(grep -c '^dropped' "$work/replay.out") || true
			[ "$dropped" -gt 0 ] && [ "$dropped" -lt "$ios" ] || continue
			key="$end $(tr '\n' ' ' <"$work/replay.out")"
			[ -z "${seen[$key]:-}" ] || continue
			seen[$key]=1
			echo checked >>"$work/tried"
			replay "drop-seed $seed to $end" --to "$end" --drop-seed "$seed" &&
				check_state "drop-seed $seed to $end"
		done
	done
}

# logged_run ARGS...: the starting state back on the disk, provision B with
# ARGS through log-writes to completion, the target removed, the log replayed.
logged_run() {
	dd if="$start" of=$disk bs=1M conv=fsync status=none
	dd if=/dev/zero of=$logdev bs=1M count=1 conv=fsync status=none
	dmsetup create lw --table "0 $(blockdev --getsz $disk) log-writes $disk $logdev"
	dmsetup mknodes lw
	run_imgdev provision /dev/mapper/lw "$imgB" --no-map "$@"
	dmsetup remove lw
	assert_rc 0; assert_eq "$out" written
	: >"$work/kinds"; : >"$work/tried"; : >"$work/bad"
	replay_all
}

# summary WHAT: the counts of the last replay, for the log.
summary() {
	echo "# $1: $(grep -c point "$work/tried") points, $(grep -c subset "$work/tried") subsets" \
		"(K=$K, $(grep -c checked "$work/tried") new states); states: $(sort "$work/kinds" | uniq -c | awk '{ printf "%s%s %s", s, $1, $2; s = ", " }');" \
		"$(wc -l <"$work/bad") bad; ${SECONDS}s so far"
}

# judge: fail on a bad state, or when too little was tried to mean anything.
judge() {
	if [ -s "$work/bad" ]; then
		head -n 20 "$work/bad"; echo "$(wc -l <"$work/bad") bad states"; return 1
	fi
	[ "$(grep -c point "$work/tried")" -ge 3 ] || { echo "fewer than 3 flush points"; return 1; }
	[ "$(grep -c checked "$work/tried")" -ge 3 ] || { echo "fewer than 3 new states from subsets"; return 1; }
	grep -qx writing "$work/kinds" || { echo "no state in writing"; return 1; }
	grep -qx B "$work/kinds" || { echo "no state with B committed"; return 1; }
}

expect 'a committed image A on the data disk is the starting state' '
	run_imgdev provision $disk "$imgA" --no-map; assert_rc 0
	head -c "$(blockdev --getsize64 $disk)" $disk >"$start"
	payload_is "$start" "$imgA"'

expect 'provision B over A, cut at every flush and in random subsets: the invariant holds' '
	logged_run
	summary "B over A"
	judge'
summary "B over A"

expect 'provision B over A with --digest, cut the same way: the invariant holds' '
	logged_run --digest "sha256:$hashB"
	summary "B over A, --digest"
	judge'
summary "B over A, --digest"

finish
