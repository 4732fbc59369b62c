#!/usr/bin/env bash
# Host tests of provision's crash safety: provisions of two big images (random
# data, zero runs, holes) killed with SIGKILL at random moments, alternating so
# the device holds one image while the other is written. After each kill,
# whenever sector 0 names an image (and the commit record says complete) the
# payload must be that image byte for byte, verify must agree, and a provision
# run to completion must succeed. On a plain file and, as root, on a loop
# device (skipped otherwise); and fetched over HTTP from a local nginx
# (tests/net/servers.sh), with and without --digest, at a bounded rate so the
# kills land in mid-download; and there, for a raw image with its digest, a
# rerun after each kill fetches only the bytes after the record's resume
# point. CRASH_ITER and CRASH_SECONDS bound each run.
. "$(dirname "$0")/../lib.sh"
NET_SLOW_RATE=200m
. "$(dirname "$0")/../net/servers.sh"

tmp=$(mktemp -d /var/tmp/imgdev-crash.XXXXXX)
cleanup() {
	net_stop
	detach_loops_under "$tmp"
	rm -rf "$tmp"
}
trap cleanup EXIT

CRASH_ITER=${CRASH_ITER:-30}		# kills per device
CRASH_SECONDS=${CRASH_SECONDS:-22}	# and at most this long per device
ZERO64=$(printf "%064d" 0)
MiB=1048576


# Image A: 96 MiB of 6 MiB random / 2 MiB written zeros. Image B: 16 MiB
# random, a 16 MiB hole, 32 MiB + 12345 bytes random (an odd size). B is
# smaller so that some kills land after its commit, most before.
for i in $(seq 12); do head -c $((6 * MiB)) /dev/urandom; head -c $((2 * MiB)) /dev/zero; done >"$tmp/A"
head -c $((16 * MiB)) /dev/urandom >"$tmp/B"
truncate -s $((32 * MiB)) "$tmp/B"
head -c $((32 * MiB + 12345)) /dev/urandom >>"$tmp/B"
HASH_A=$(sha "$tmp/A") HASH_B=$(sha "$tmp/B")
DEV_SIZE=$(room $((96 * MiB)))

# check_state DEV: the invariant, on whatever a kill left behind. Prints what
# it saw: "complete A", "complete B", "writing", "none" or "other".
check_state() {
	local dev=$1 commit hash raw x="" vrc=0 want
	run_imgdev header "$dev" --json
	[ "$rc" = 0 ] || { echo "header failed: $err" >&2; return 1; }
	raw=$(hex_at "$dev" 10 32)
	if [ "$(jfield present <<<"$out")" != true ]; then
		echo none
		return 0
	fi
	commit=$(jfield commit <<<"$out") hash=$(jfield image_hash <<<"$out")
	[ "$hash" = "sha256:$raw" ] || { echo "header --json says $hash, sector 0 has $raw" >&2; return 1; }
	# Sector 0 naming an image means the payload is that image, whatever the
	# record says (Virtlet reads only the header, not the record).
	case "$raw" in
	"$HASH_A") x=A ;;
	"$HASH_B") x=B ;;
	"$ZERO64") ;;
	*) echo "sector 0 names an unknown image $raw (commit $commit)" >&2; return 1 ;;
	esac
	if [ -n "$x" ]; then
		payload_is "$dev" "$tmp/$x" >&2 ||
			{ echo "sector 0 names image $x (commit $commit) but the payload differs" >&2; return 1; }
		[ "$(jfield image_size <<<"$out")" = "$(stat -c %s "$tmp/$x")" ] ||
			{ echo "image $x recorded with size $(jfield image_size <<<"$out")" >&2; return 1; }
	fi
	"$IMGDEV" verify "$dev" >/dev/null 2>&1 || vrc=$?
	if [ "$commit" = complete ]; then
		[ -n "$x" ] || { echo "complete record with an all-zero image hash" >&2; return 1; }
		[ "$vrc" = 0 ] || { echo "verify failed ($vrc) on a complete image $x" >&2; return 1; }
		echo "complete $x"
	else
		case "$commit" in writing | none) want=4 ;; corrupt) want=3 ;; *) want=1 ;; esac
		[ "$vrc" = "$want" ] || { echo "verify exit $vrc on a record in state [$commit]" >&2; return 1; }
		[ "$commit" = writing ] && echo writing || echo other
	fi
}

# image_arg X ROUND: what provision is given for image X: the file, or with
# CRASH_URL set, its URL under it (and, every other round, its digest).
image_arg() {
	if [ -z "${CRASH_URL:-}" ]; then
		echo "$tmp/$1"
	elif (($2 % 4 < 2)); then
		echo "$CRASH_URL/$1 --digest sha256:$(sha "$tmp/$1")"
	else
		echo "$CRASH_URL/$1"
	fi
}

# full_run_ms DEV X ROUND: provisions image X onto DEV to completion (over
# the other image) and prints how many milliseconds that took.
full_run_ms() {
	local t0
	t0=$(date +%s%N)
	# shellcheck disable=SC2046 # image_arg's words are meant to split
	"$IMGDEV" provision "$1" $(image_arg "$2" "$3") --no-map >/dev/null 2>"$tmp/err" ||
		{ echo "calibration: provision $2 failed: $(cat "$tmp/err")" >&2; return 1; }
	echo $((($(date +%s%N) - t0) / 1000000))
}

# crash_run DEV: provisions killed at random moments; checks after each. The
# moments are drawn from 0 to 1.25 times a full run of that image on this
# device, timed first: a fixed window lets a fast machine finish every run.
crash_run() {
	local dev=$1 i x pid st seen killed=0 writing=0 done_ok=0 size ms
	local deadline topt
	local -A full
	size=$(stat -L -c %s "$dev")
	full[A]=$(full_run_ms "$dev" A 0) && full[B]=$(full_run_ms "$dev" B 0) || return 1
	echo "a full run takes ${full[A]} ms (A), ${full[B]} ms (B)"
	deadline=$((SECONDS + CRASH_SECONDS))
	# Past the deadline (up to twice as long) while too few kills caught a write:
	# on a slow build (sanitizers) much of a run comes before its first write.
	for ((i = 0; i < CRASH_ITER && (SECONDS < deadline ||
		(writing < 4 && SECONDS < deadline + CRASH_SECONDS)); i++)); do
		((i % 2)) && x=A || x=B
		topt=(); ((i % 4 == 1)) && topt=(--threads 1)
		# shellcheck disable=SC2046 # image_arg's words are meant to split
		"$IMGDEV" provision "$dev" $(image_arg "$x" "$i") --no-map "${topt[@]}" >"$tmp/out" 2>"$tmp/err" &
		pid=$!
		ms=$((RANDOM % (full[$x] * 5 / 4 + 1)))
		sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
		kill -9 "$pid" 2>/dev/null || true
		st=0; { wait "$pid"; } 2>/dev/null || st=$?
		if [ "$st" = 137 ]; then
			killed=$((killed + 1))
		else
			[ "$st" = 0 ] || { echo "round $i: provision $x exited $st: $(cat "$tmp/err")"; return 1; }
		fi
		seen=$(check_state "$dev") || { echo "round $i: after provision $x (status $st)"; return 1; }
		echo "round $i: provision $x, status $st, device: $seen"
		[ "$seen" = writing ] && writing=$((writing + 1))
		if [ "$st" = 0 ] && [ "$seen" != "complete $x" ]; then
			echo "round $i: provision $x finished but the device holds [$seen]"; return 1
		fi
		if ((i % 4 == 3)); then	# now let one run to the end
			# shellcheck disable=SC2046
			run_imgdev provision "$dev" $(image_arg "$x" "$i") --no-map
			[ "$rc" = 0 ] || { echo "round $i: provision $x to completion: exit $rc: $err"; return 1; }
			case "$out" in written|matched) ;; *) echo "round $i: stdout [$out]"; return 1 ;; esac
			run_imgdev verify "$dev"
			[ "$rc" = 0 ] && [ "$out" = ok ] || { echo "round $i: verify after completion: $rc $err"; return 1; }
			payload_is "$dev" "$tmp/$x" || { echo "round $i: payload is not $x after completion"; return 1; }
			done_ok=$((done_ok + 1))
		fi
		[ "$(stat -L -c %s "$dev")" = "$size" ] || { echo "device size changed"; return 1; }
	done
	echo "$i rounds, $killed killed, $writing caught mid-write, $done_ok completions"
	# A run that never caught a write in progress tested nothing.
	[ "$killed" -ge 3 ] && [ "$writing" -ge 3 ] && [ "$done_ok" -ge 1 ] ||
		{ echo "too few interrupted writes to mean anything"; return 1; }
	# Afterwards both images go on and verify, whatever the kills left.
	for x in A B A; do
		run_imgdev provision "$dev" "$tmp/$x" --no-map; assert_rc 0
		run_imgdev verify "$dev"; assert_rc 0; assert_eq "$out" ok
		payload_is "$dev" "$tmp/$x"
		assert_eq "$(hex_at "$dev" 10 32)" "$(sha "$tmp/$x")"
	done
}

# resume_run DEV: rounds of a download of A (its digest given) at 40 MB/s
# (about 2.5 s) killed at a random moment between 1.2 and 2.4 s, over B,
# until three reruns resumed (at most 12 rounds): after each kill the
# invariant; then a rerun (from another name of the same file, so that its
# requests stand apart in the log) must match if the kill came after the
# commit, else resume at the record's resume point, if any, and fetch
# exactly the bytes after it (all of A without one).
resume_run() {
	local dev=$1 i at st out_json bytes seen resumed=0 size ms
	size=$(stat -c %s "$tmp/A")
	for ((i = 0; i < 12 && resumed < 3; i++)); do
		run_imgdev provision "$dev" "$tmp/B" --no-map; assert_rc 0
		"$IMGDEV" provision "$dev" "$NET_HTTP/rate/40m/A" --digest "sha256:$HASH_A" --no-map \
			>/dev/null 2>"$tmp/err" &
		pid=$!
		ms=$((1200 + RANDOM % 1200))
		sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
		kill -9 "$pid" 2>/dev/null || true
		st=0; { wait "$pid"; } 2>/dev/null || st=$?
		seen=$(check_state "$dev") || { echo "round $i: after the kill (status $st)"; return 1; }
		run_imgdev header "$dev" --json
		at=$(jq -r ".resume_at // 0" <<<"$out")
		ln -f "$tmp/A" "$NET_WWW/A$i"
		run_imgdev provision "$dev" "$NET_HTTP/A$i" --digest "sha256:$HASH_A" --no-map --json
		[ "$rc" = 0 ] || { echo "round $i: the rerun exited $rc: $err"; return 1; }
		out_json=$out
		net_log_settle
		bytes=$(net_log_bytes "/A$i")
		echo "round $i: killed (status $st, device: $seen), resume point $at; the rerun fetched $bytes bytes"
		if [ "$seen" = "complete A" ]; then
			assert_eq "$(jfield written <<<"$out_json")" false "round $i: A was there: matched"
			assert_eq "$bytes" 0 "round $i: matched, nothing fetched"
		else
			assert_eq "$(jfield resumed_at <<<"$out_json")" "$at" "round $i: where the rerun resumed"
			assert_eq "$bytes" $((size - at)) "round $i: bytes the rerun fetched"
			[ "$at" = 0 ] || resumed=$((resumed + 1))
		fi
		payload_is "$dev" "$tmp/A" || { echo "round $i: the payload is not A"; return 1; }
		run_imgdev verify "$dev"; assert_rc 0
	done
	echo "$resumed of $i reruns resumed"
	[ "$resumed" -ge 2 ] || { echo "too few resumed reruns to mean anything"; return 1; }
}

# with_state DEV STATE: rewrite the record state (74-75) and its checksum (480-511).
with_state() {
	printf "\\x00\\x$(printf %02x "$2")" | dd of="$1" bs=1 seek=74 conv=notrunc status=none
	head -c 480 "$1" | tail -c 416 | sha256sum | cut -c1-64 | xxd -r -p |
		dd of="$1" bs=1 seek=480 conv=notrunc status=none
}

expect 'a record left in state "writing" is never matched or verified, even naming the image' '
	head -c $((3 * MiB + 7)) /dev/urandom >"$tmp/s"
	head -c $((4 * MiB)) /dev/urandom >"$tmp/sdev"
	run_imgdev provision "$tmp/sdev" "$tmp/s" --no-map; assert_rc 0
	with_state "$tmp/sdev" 1
	run_imgdev header "$tmp/sdev" --json; assert_eq "$(jfield commit <<<"$out")" writing
	run_imgdev verify "$tmp/sdev"; assert_rc 4
	run_imgdev provision "$tmp/sdev" "$tmp/s" --no-map; assert_rc 0; assert_eq "$out" written
	assert_eq "$(hex_at "$tmp/sdev" 74 2)" 0002
	run_imgdev verify "$tmp/sdev"; assert_rc 0'

expect 'provisions of two images killed at random moments on a file never leave a header naming a payload it does not hold' '
	head -c "$DEV_SIZE" /dev/urandom >"$tmp/dev"
	crash_run "$tmp/dev"'

if [ "$(id -u)" = 0 ] && losetup -f >/dev/null 2>&1; then
	expect 'provisions killed at random moments on a loop device never leave a header naming a payload it does not hold' '
		head -c "$DEV_SIZE" /dev/urandom >"$tmp/back"
		l=$(losetup -f --show "$tmp/back")
		crash_run "$l"
		losetup -d "$l"
		payload_is "$tmp/back" "$tmp/A"
		assert_eq "$(hex_at "$tmp/back" 10 32)" "$HASH_A"'
else
	skip 'crash cases on a loop device' 'needs root and a free loop device'
fi

if net_have_nginx; then
	# One server for both cases, started here: one started in a case's
	# subshell is known to that subshell only, and net_stop in the EXIT trap
	# would not stop it.
	net_start "$tmp/net" || { echo "${0##*/}: nginx would not start"; exit 1; }
	ln "$tmp/A" "$NET_WWW/A"; ln "$tmp/B" "$NET_WWW/B"
	expect 'provisions from a URL killed at random moments of the download never leave a header naming a payload it does not hold' '
		head -c "$DEV_SIZE" /dev/urandom >"$tmp/hdev"
		CRASH_URL=$NET_HTTP/slow crash_run "$tmp/hdev"'
	expect 'raw downloads with a digest killed at random moments: the invariant holds, and a rerun fetches only what the resume point says is missing' '
		head -c "$DEV_SIZE" /dev/urandom >"$tmp/rdev"
		resume_run "$tmp/rdev"'
else
	skip 'crash cases over HTTP' 'needs nginx (tests/deps.sh test installs it)'
fi

finish
