#!/usr/bin/env bash
# Power cuts, proven by replay (issue 15, part 3), inside user-mode Linux (see
# test_kernel.sh): imgdev runs through a dm-log-writes target over the
# device; the log is then replayed onto copies of the device's starting
# state: every write lost, right after each flush and FUA, and POWERCUT_SEEDS
# seeded random losses of the writes since the last flush (log-replay's
# --drop-seed), with the crash invariant judged at each state by
# tests/tools/powercut-check.c (one process for all the states of a log: the
# guest pays ~40 ms a process). The runs: image B provisioned over a
# committed image A to completion, plainly and with --digest, in each layout
# of LAYOUTS, and once more through a slow disk; POWERCUT_KILLS such
# provisions killed (SIGKILL) at random moments; B over A on a dm-thin
# volume; and `ensure` over A, over a Virtlet header, and of A over A.
# Disks: /dev/ubdi (8 MiB, the data disk), /dev/ubdj (64 MiB, the log),
# /dev/ubdn (4 MiB, thin-pool metadata), /dev/ubdo (16 MiB, thin-pool data).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/guest-lib.sh"

# Random drop subsets tried per stretch of writes between two flushes, and
# killed runs; a soak (make soak) raises both.
K=${POWERCUT_SEEDS:-256}
KILLS=${POWERCUT_KILLS:-12}
# The killed runs' delays: reproducible from the seed (printed), a new one
# each run unless given.
KILL_SEED=${POWERCUT_KILL_SEED:-$((($$ * 7919 + $(date +%s)) % 32768))}
LOG_REPLAY=${LOG_REPLAY:-$(dirname "$IMGDEV")/tests/log-replay}
POWERCUT_CHECK=${POWERCUT_CHECK:-$(dirname "$IMGDEV")/tests/powercut-check}
disk=/dev/ubdi
logdev=/dev/ubdj
meta=/dev/ubdn
pooldata=/dev/ubdo

load_dm_modules dm-log-writes
need_dm_targets "power-cut replay" log-writes
need_tool "power-cut replay" "$LOG_REPLAY"
need_tool "power-cut replay" "$POWERCUT_CHECK"
# The thin volume's runs only where dm-thin loads.
load_dm_modules dm-bufio persistent-data/dm-persistent-data dm-bio-prison dm-thin-pool

# The layouts B over A is run in: both where provision takes --layout (the
# payload at byte 512, Virtlet's, and at 1 MiB), else the only one there is.
if [ -z "${LAYOUTS:-}" ]; then
	LAYOUTS=default
	"$IMGDEV" provision --help 2>&1 | grep -q -- --layout && LAYOUTS="virtlet aligned"
fi
read -r -a layouts <<<"$LAYOUTS"
# layout_args LAYOUT: provision's option for it.
layout_args() { [ "$1" = default ] || echo "--layout $1"; }

# A tmpfs: starting states, the state being judged, images.
work=$(mktemp -d /dev/shm/powercut.XXXXXX)
trap 'dmsetup remove lw 2>/dev/null; dmsetup remove pcslow 2>/dev/null; dmsetup remove pcthin 2>/dev/null; dmsetup remove pcpool 2>/dev/null
	rm -rf "$work"' EXIT
# A: 6 MiB of random bytes. B: 5 MiB + 777 bytes: data, a zero run and a
# hole over A's data, data. Both fit the 8 MiB disk with the payload at 1 MiB.
imgA=$work/A
head -c 6M /dev/urandom >"$imgA"
imgB=$work/B
head -c 2M /dev/urandom >"$imgB"
head -c 1M /dev/zero >>"$imgB"
truncate -s 4M "$imgB"
head -c $((1024 * 1024 + 777)) /dev/urandom >>"$imgB"
hashA=$(sha "$imgA")
hashB=$(sha "$imgB")
# What ensure names: images that are never written.
hashC=$(printf C | sha256sum | cut -c1-64)
hashD=$(printf D | sha256sum | cut -c1-64)
hashV=$(printf V | sha256sum | cut -c1-64)
zeros=$(printf '%064d' 0)
sectors=$(blockdev --getsz $disk)
: >"$work/totals"

# The log-writes target passes discards but not write-zeroes, so imgdev
# zeroes B's zero runs there by discard, read back (issue 15, part 1). The
# data disk (ubd) zeroes what it is told to discard (the host file's hole),
# and a dm-thin volume unmaps the whole blocks a discard covers (imgdev
# discards only whole discard_granularity blocks, 64 KiB there, checked
# below), which then read as zeros whether the pool zeroes new blocks or
# not. So the replay zeroes discarded ranges too. A discard lost in a power
# cut leaves the old bytes, as a dropped one does in the replay: on dm-thin
# the unmapping is metadata that only a commit (a flush, or the pool's
# periodic commit) makes durable, and until then the old mapping, with the
# old data, is what survives (the pool never hands out a block freed in the
# transaction that is still open, so those data are intact; a write lost to
# a block the volume had not mapped leaves it unmapped: zeros, the old bytes
# of the replay's copy too). What the replay does not model: a periodic
# commit that lands inside one multi-block discard, keeping part of it. That
# state comes before the flush that precedes the commit record, so sector 0
# still says writing there, which no loss inside the payload changes. That
# the replay's model is the device's is checked after each run: the whole
# log replayed equals what the device holds (--actual).
DISCARD_ZERO=--discard-zero

# check_state DEV: the crash invariant on DEV itself (a starting state),
# through the imgdev command: a header naming
# an image has a complete record, the payload, from the header's data
# offset, is that image (A or B) byte for byte and verify passes; a header
# naming none has a writing record and verify exits 4. Sets $kind.
check_state() {
	local json name=$zeros commit=none off=512 vrc=0 img=
	json=$("$IMGDEV" header --json "$1")
	[[ $json =~ \"image_hash\":\ \"sha256:([0-9a-f]{64})\" ]] && name=${BASH_REMATCH[1]}
	[[ $json =~ \"commit\":\ \"([a-z]+)\" ]] && commit=${BASH_REMATCH[1]}
	[[ $json =~ \"data_offset\":\ ([0-9]+) ]] && off=${BASH_REMATCH[1]}
	"$IMGDEV" verify "$1" >/dev/null 2>&1 || vrc=$?
	case $name in
	"$zeros") kind=writing ;;
	"$hashA") kind=A img=$imgA ;;
	"$hashB") kind=B img=$imgB ;;
	*) kind=unknown; echo "$1: header names neither A nor B ($name)"; return 1 ;;
	esac
	if [ $kind = writing ]; then
		[ "$commit" = writing ] || { echo "$1: no image named, record '$commit'"; return 1; }
		[ $vrc = 4 ] || { echo "$1: record writing, verify exited $vrc, not 4"; return 1; }
		return 0
	fi
	[ "$commit" = complete ] || { echo "$1: names $kind, record '$commit'"; return 1; }
	cmp -s -n "$(stat -c %s "$img")" -i "$off:0" "$1" "$img" ||
		{ echo "$1: header names $kind over a payload (at byte $off) that is not $kind"; return 1; }
	[ $vrc = 0 ] || { echo "$1: names $kind, verify exited $vrc"; return 1; }
}

# lw_create DEV: a log-writes target "lw" over DEV, logging to a cleared log.
lw_create() {
	dd if=/dev/zero of=$logdev bs=1M count=1 conv=fsync status=none
	dmsetup create lw --table "0 $(blockdev --getsz "$1") log-writes $1 $logdev"
	dmsetup mknodes lw
}
# lw_remove: remove it (only then is the log complete), the log listed in
# $work/list. What went through the target bypassed the page cache of the
# device under it ($dev): dropped, so that what is read there next is the
# device's.
lw_remove() {
	dmsetup remove --retry lw
	blockdev --flushbufs "$dev"
	"$LOG_REPLAY" $logdev --list >"$work/list"
}

# judge_log KIND LABEL START [--ensure]: every state of the log over START,
# judged by powercut-check, with the device (DEV in $dev) after the run as
# --actual; its counts go to $work/totals under KIND and, with LABEL, to
# $work/summaries. Fails on a bad state.
judge_log() {
	local runkind=$1 label=$2 start=$3 rc=0
	shift 3
	dd if="$dev" of="$work/actual" bs=1M count="$(($(stat -c %s "$start") >> 20))" iflag=direct status=none
	"$POWERCUT_CHECK" $logdev "$start" "$work/state" --seeds "$K" $DISCARD_ZERO \
		--image "A:$hashA:$imgA" --image "B:$hashB:$imgB" --actual "$work/actual" "$@" \
		>"$work/check.out" 2>&1 || rc=$?
	counts=$(grep '^counts ' "$work/check.out") || true
	echo "$runkind ${counts#counts }" >>"$work/totals"
	echo "# $label: $(grep -c . "$work/list") log entries; ${counts#counts }; ${SECONDS}s so far" >>"$work/summaries"
	[ "$rc" = 0 ] || { cat "$work/check.out"; return 1; }
}
# count NAME: that count of the last judge_log (0 if absent).
count() { [[ " $counts " =~ \ $1=([0-9]+)\  ]] && echo "${BASH_REMATCH[1]}" || echo 0; }

# sanity: what a complete run of B over A must have shown, so that it cannot
# pass without testing anything.
sanity() {
	[ "$(count points)" -ge 3 ] || { echo "fewer than 3 flush points"; return 1; }
	[ "$(count new)" -ge 3 ] || { echo "fewer than 3 new states from subsets"; return 1; }
	[ "$(count writing)" -ge 1 ] || { echo "no state in writing"; return 1; }
	[ "$(count B)" -ge 1 ] || { echo "no state with B committed"; return 1; }
	[[ " $counts " == *" final=B "* ]] || { echo "the device does not hold B committed"; return 1; }
}

# summary: the counts of the runs the last test made (judge_log), for the log.
summary() {
	[ -s "$work/summaries" ] && cat "$work/summaries"
	: >"$work/summaries"
}

# start_state LAYOUT: the data disk holding A committed in LAYOUT, as
# $work/start-LAYOUT (made the first time, written back onto the disk after).
start_state() {
	start=$work/start-$1
	if [ ! -f "$start" ]; then
		run_imgdev provision $disk "$imgA" --no-map $(layout_args "$1"); assert_rc 0
		check_state $disk; assert_eq $kind A
		head -c "$(blockdev --getsize64 $disk)" $disk >"$start"
	else
		dd if="$start" of=$disk bs=1M conv=fsync status=none
	fi
}

# complete_run KIND LABEL START ARGS...: provision B with ARGS through
# log-writes over $dev (holding START) to completion; every state judged.
complete_run() {
	local runkind=$1 label=$2 start=$3 t0 t1
	shift 3
	lw_create "${under:-$dev}"
	# Timed as the killed runs start it: the command alone.
	t0=$EPOCHREALTIME rc=0
	"$IMGDEV" provision /dev/mapper/lw "$imgB" --no-map "$@" >"$work/out" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	echo $(((${t1/./} - ${t0/./}) / 1000)) >"$work/ms"
	lw_remove
	out=$(cat "$work/out")
	assert_rc 0; assert_eq "$out" written
	judge_log "$runkind" "$label: $(cat "$work/ms") ms" "$start"
	sanity
}

dev=$disk
for L in "${layouts[@]}"; do
	expect "a committed image A on the data disk ($L layout) is the starting state" '
		start_state '"$L"
done

for L in "${layouts[@]}"; do
	expect "provision B over A ($L), cut at every flush and in random subsets: the invariant holds" '
		start_state '"$L"'
		complete_run complete "B over A ('"$L"')" "$start" $(layout_args '"$L"')'
	summary
	expect "provision B over A ($L) with --digest, cut the same way: the invariant holds" '
		start_state '"$L"'
		complete_run complete "B over A ('"$L"'), --digest" "$start" --digest "sha256:$hashB" $(layout_args '"$L"')'
	summary
done

# The judge can fail: the last log (B over A, complete) replayed with
# discards keeping the old bytes ends with B named over A's bytes, a state
# the device never had; and judged as ensure's, its writing record is a
# sector 0 that is neither the old nor the new one.
expect 'the judge finds the bad states it is shown: discards replayed as no-ops, a provision judged as an ensure' '
	start=$work/start-'"${layouts[-1]}"' rc=0
	"$POWERCUT_CHECK" $logdev "$start" "$work/state" --seeds 0 --image "B:$hashB:$imgB" \
		--actual "$work/actual" >"$work/check.out" 2>&1 || rc=$?
	assert_eq $rc 1
	assert_contains "$(cat "$work/check.out")" "header names B over a payload that is not B"
	assert_contains "$(cat "$work/check.out")" "bad actual: the device after the run differs from the complete replay"
	rc=0
	"$POWERCUT_CHECK" $logdev "$start" "$work/state" --seeds 0 $DISCARD_ZERO --ensure \
		--image "B:$hashB:$imgB" >"$work/check.out" 2>&1 || rc=$?
	assert_eq $rc 1
	assert_contains "$(cat "$work/check.out")" "sector 0 is neither the old one nor the new one"'

# Killed runs: B over A, killed with SIGKILL after a random delay between 0
# and 1.2 times what a complete run took, one delay in each of KILLS equal
# slices of that span, through the layouts in turn and every other round of
# them with --digest. In the guest imgdev takes some 150 ms to start and
# then writes for a few tens of ms, which few kills would hit: a dm-delay
# target (KILL_IO_MS, 60 ms, an I/O) between log-writes and the disk
# stretches the writes (each of the dozen or so I/Os imgdev waits for in
# turn), so that some kills land before the first payload write, some in the
# copy, some after the commit. The delay only changes when each I/O
# completes; the log above it records what was sent and what was flushed,
# as over the disk alone. What the kill left (the log holds the writes the
# device had been told, those not flushed logged when the target is
# removed) is judged like a complete run's log; where it landed is read
# from the log: no write ("none"), the "writing" record only ("record"),
# payload writes too ("copy"), the commit record written ("commit"), or
# imgdev done before the kill ("finished").
KILL_IO_MS=${POWERCUT_KILL_IO_MS:-60}
if has_dm_target delay; then
	dmsetup create pcslow --table "0 $sectors delay $disk 0 $KILL_IO_MS"
	dmsetup mknodes pcslow
	under=/dev/mapper/pcslow
fi
slow="dm-delay, $KILL_IO_MS ms an I/O"
[ -n "${under:-}" ] || slow="no dm-delay here: the disk itself"
expect "provision B over A through a slow disk ($slow), to completion: the kills' span, and the invariant" '
	start_state '"${layouts[0]}"'
	complete_run complete "B over A through the slow disk ('"${layouts[0]}"')" "$start" $(layout_args '"${layouts[0]}"')
	cp "$work/ms" "$work/ms-slow"'
summary
span=$(cat "$work/ms-slow" 2>/dev/null || echo 1000)
span=$((span * 12 / 10))
RANDOM=$KILL_SEED
delays=()
for k in $(seq 0 $((KILLS - 1))); do
	delays+=($(((k * 1000 + RANDOM % 1000) * span / (KILLS * 1000))))
done
echo "# killed runs: POWERCUT_KILL_SEED=$KILL_SEED, $KILLS delays over 0..${span} ms: ${delays[*]}"

# landed RC: where the kill of a provision that exited RC landed, from $work/list.
landed() {
	[ "$1" = 0 ] && { echo finished; return; }
	awk '$2 !~ /MARK/ && $4 > 0 { if ($3 == 0) h++; else p++ }
		END { print (h + p == 0 ? "none" : h >= 2 ? "commit" : p > 0 ? "copy" : "record") }' "$work/list"
}

for k in $(seq 0 $((KILLS - 1))); do
	L=${layouts[$((k % ${#layouts[@]}))]}
	digest=
	[ $((k / ${#layouts[@]} % 2)) = 1 ] && digest="--digest sha256:$hashB"
	ms=${delays[$k]}
	expect "provision B over A ($L${digest:+, --digest}) killed after $ms ms: the invariant holds in every state it left" '
		start_state '"$L"'
		lw_create "${under:-$dev}"
		"$IMGDEV" provision /dev/mapper/lw "$imgB" --no-map '"$digest"' $(layout_args '"$L"') >"$work/out" 2>&1 &
		pid=$!
		sleep '"$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"'
		kill -KILL $pid 2>/dev/null || true
		rc=0; wait $pid || rc=$?
		lw_remove
		where=$(landed $rc)
		echo "$where" >>"$work/landings"
		judge_log killed "killed after '"$ms"' ms ('"$L${digest:+, --digest}"'): exit $rc, landed: $where" "$start"'
	summary
done
if [ "$KILLS" -gt 0 ]; then
	echo "# kills landed: $(sort "$work/landings" 2>/dev/null | uniq -c | awk '{ printf "%s%s %s", s, $1, $2; s = ", " }')"
	expect 'some kills landed before the commit (the killed runs tested something)' '
		grep -qvx -e finished -e commit "$work/landings"'
fi
[ -z "${under:-}" ] || dmsetup remove pcslow
under=

# Over a thin volume: a dm-thin pool (64 KiB blocks) over ubdn and ubdo, a
# fresh volume the size of the data disk for each run, A committed on it,
# then B provisioned through log-writes over the volume.
thin_fresh() {
	dmsetup remove pcthin 2>/dev/null || true
	dmsetup message pcpool 0 "delete 0" 2>/dev/null || true
	dmsetup message pcpool 0 "create_thin 0"
	dmsetup create pcthin --table "0 $sectors thin /dev/mapper/pcpool 0"
	dmsetup mknodes pcthin
}
if has_dm_target thin-pool; then
	dd if=/dev/zero of=$meta bs=4K count=1 conv=fsync status=none
	dmsetup create pcpool --table "0 $(blockdev --getsz $pooldata) thin-pool $meta $pooldata 128 0"
	dmsetup mknodes pcpool
	dev=/dev/mapper/pcthin
	for L in "${layouts[@]}"; do
		expect "over a thin volume: provision B over A ($L), cut at every flush and in random subsets: the invariant holds" '
			thin_fresh
			run_imgdev provision $dev "$imgA" --no-map $(layout_args '"$L"'); assert_rc 0
			check_state $dev; assert_eq $kind A
			head -c $((sectors * 512)) $dev >"$work/start-thin"
			complete_run thin "thin: B over A ('"$L"')" "$work/start-thin" $(layout_args '"$L"')
			# Discards of whole 64 KiB blocks only, which dm-thin unmaps.
			awk '\''$2 ~ /DISCARD/ { n++; if ($3 % 128 || $4 % 128) bad++ } END { exit !(n > 0 && !bad) }'\'' "$work/list" ||
				{ echo "discards that are not whole 64 KiB blocks, or none:"; grep DISCARD "$work/list"; exit 1; }'
		summary
	done
	dmsetup remove pcthin
	dmsetup remove pcpool
	dev=$disk
else
	skip "power cuts over a thin volume" "dm target thin-pool not loaded"
fi

# ensure names an image without writing it: its log over A, and over a
# Virtlet header (no record), replayed the same way, where sector 0 must be
# the old one or the new one, nothing else may change, and a complete
# record names only A, which was written.
ensure_run() { # ensure_run LABEL START HASH OUT
	lw_create $dev
	run_imgdev ensure /dev/mapper/lw "sha256:$3"
	lw_remove
	assert_rc 0; assert_eq "$out" "$4"
	judge_log ensure "$1" "$2" --ensure
}
for L in "${layouts[@]}"; do
	expect "ensure another image over A ($L): sector 0 old or new, never a mix, no complete record for an unwritten image" '
		start_state '"$L"'
		ensure_run "ensure C over A ('"$L"')" "$start" $hashC written
		[ "$(count old_header)" -ge 1 ] && [ "$(count new_header)" -ge 1 ] || { echo "old and new states not both seen"; exit 1; }
		json=$("$IMGDEV" header --json $dev)
		assert_contains "$json" "\"image_hash\": \"sha256:$hashC\""
		assert_contains "$json" "\"commit\": \"none\""'
	summary
done
expect 'ensure over a Virtlet header without record: sector 0 old or new, never a mix' '
	start_state '"${layouts[0]}"'
	run_imgdev ensure $dev "sha256:$hashV"; assert_rc 0
	head -c $((sectors * 512)) $dev >"$work/start-vheader"
	ensure_run "ensure D over a Virtlet header" "$work/start-vheader" $hashD written
	[ "$(count old_header)" -ge 1 ] && [ "$(count new_header)" -ge 1 ] || { echo "old and new states not both seen"; exit 1; }
	assert_contains "$("$IMGDEV" header --json $dev)" "\"image_hash\": \"sha256:$hashD\""'
summary
expect 'ensure of the image A already named: matched, nothing written' '
	start_state '"${layouts[0]}"'
	ensure_run "ensure A over A" "$start" $hashA matched
	awk '\''$2 !~ /MARK/ && $4 > 0 { exit 1 }'\'' "$work/list" || { echo "ensure wrote:"; cat "$work/list"; exit 1; }'
summary

# The counts of every run kind, and of all of them.
awk '{ k = $1; runs[k]++; for (i = 2; i <= NF; i++) { split($i, kv, "="); n[k, kv[1]] += kv[2] } }
	END {
		for (k in runs) {
			printf "# %s: %d runs, %d points, %d subsets, %d new states, %d checked, %d bad\n",
				k, runs[k], n[k, "points"], n[k, "subsets"], n[k, "new"], n[k, "checked"], n[k, "bad"]
			tp += n[k, "points"]; ts += n[k, "subsets"]; tn += n[k, "new"]; tc += n[k, "checked"]; tr += runs[k]
		}
		printf "# all: %d runs, %d points and %d subsets tried, %d states checked (%d new from subsets)\n", tr, tp, ts, tc, tn
	}' "$work/totals"
echo "# K=$K, KILLS=$KILLS, LAYOUTS=$LAYOUTS; ${SECONDS}s"
finish
