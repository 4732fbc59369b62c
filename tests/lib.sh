# Shared helpers for the shell tests (sourced). A test reads as a sentence:
#   expect 'ensure on a fresh file writes the header' '
#       run_imgdev ensure "$disk" "$HASH_A" && [ "$out" = written ]'
# Each file ends with `finish`, which prints "N passed, N failed" and sets the
# exit status. IMGDEV points at the binary under test (default build/imgdev);
# IMGDEV_WRAP, when set, is a command to run it under (e.g. valgrind);
# TEST_VERBOSE=1 prints each case's log when it passes too.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMGDEV=${IMGDEV:-$top/build/imgdev}
passed=0
failed=0
skipped=0
failures=()

# expect DESCRIPTION SCRIPT: run SCRIPT in a subshell with errexit; count it.
expect() {
	local desc=$1 script=$2 log status
	log=$(mktemp)
	# Not inside an `if`: there errexit would be ignored in the subshell.
	(set -e; eval "$script") >"$log" 2>&1
	status=$?
	if [ "$status" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - $desc"
		[ -z "${TEST_VERBOSE:-}" ] || sed 's/^/#   /' "$log"
	else
		failed=$((failed + 1))
		failures+=("$desc")
		echo "not ok - $desc"
		sed 's/^/#   /' "$log"
	fi
	rm -f "$log"
}

skip() {
	skipped=$((skipped + 1))
	echo "ok - $1 # SKIP $2"
}

# run_imgdev ARGS...: run the binary; sets $out, $err and $rc, never fails.
run_imgdev() {
	local o e
	o=$(mktemp) e=$(mktemp)
	rc=0
	# shellcheck disable=SC2086  # IMGDEV_WRAP is a command line
	${IMGDEV_WRAP:-} "$IMGDEV" "$@" >"$o" 2>"$e" || rc=$?
	out=$(cat "$o") err=$(cat "$e")
	rm -f "$o" "$e"
}

# Assertions that say what they saw when they fail.
assert_eq() {
	[ "$1" = "$2" ] || { echo "expected [$2], got [$1]${3:+ ($3)}"; return 1; }
}
assert_contains() {
	case "$1" in *"$2"*) return 0 ;; esac
	echo "expected [$1] to contain [$2]"
	return 1
}
assert_rc() {
	[ "$rc" = "$1" ] || { echo "exit status $rc, expected $1; stdout [$out] stderr [$err]"; return 1; }
}

# strace_wrap TRACE CALLS: an IMGDEV_WRAP that records the binary's CALLS (strace's
# -e trace= list) in TRACE, each fd named by its path (-y). LeakSanitizer cannot run
# under ptrace: leaks are checked elsewhere.
strace_wrap() {
	echo "env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -y -e trace=$2 -o $1"
}
# madvise_trace TRACE: strace_wrap of the madvise calls.
madvise_trace() { strace_wrap "$1" madvise; }
# populates TRACE: how many MADV_POPULATE_READ calls (the image's data
# mapped and faulted in) that trace saw.
populates() { grep -c "MADV_POPULATE_READ\|, 0x16)" "$1" || true; }

# sha FILE: its SHA-256 in hex.
sha() { sha256sum "$1" | cut -c1-64; }
# hex_at FILE OFFSET LENGTH: those bytes as one hex string.
hex_at() { od -An -v -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'; }
# u64_at FILE OFFSET: a big-endian u64 in decimal.
u64_at() { echo $((16#$(hex_at "$1" "$2" 8))); }
# room SIZE: the smallest device that holds an image of SIZE bytes (header sector + payload).
room() { echo $((512 + (($1 + 511) / 512) * 512)); }
# payload_offset DEV: where the payload starts by the header's version (bytes
# 8-9): 1048576 for version 2 (the aligned layout), else 512 (Virtlet's).
payload_offset() {
	case $(od -An -tx1 -j8 -N2 "$1" | tr -d ' ') in
	0002) echo 1048576 ;;
	*) echo 512 ;;
	esac
}
# payload_is DEV IMAGE: the device's payload (from payload_offset) equals the image.
payload_is() {
	cmp -n "$(stat -c %s "$2")" -i "$(payload_offset "$1"):0" "$1" "$2" ||
		{ echo "payload of $1 differs from $2"; return 1; }
}
# room_aligned SIZE [BLOCK]: device bytes an image of SIZE needs in the aligned layout, in
# whole BLOCKs (4096).
room_aligned() { local b=${2:-4096}; echo $((1048576 + ($1 + b - 1) / b * b)); }
# jfield KEY: the value of the first KEY in the JSON on stdin, through jq; strings
# unquoted, other values as JSON text (true, null, 42); nothing when KEY is absent.
jfield() { jq -r --arg k "$1" 'first(.. | objects | select(has($k)) | .[$k]) | tostring'; }
# jget KEY JSON: the same, of JSON given as an argument.
jget() { jfield "$1" <<<"$2"; }

# sector0_hex FILE: the first 512 bytes as one hex string.
sector0_hex() { head -c 512 "$1" | od -An -v -tx1 | tr -d ' \n'; }

finish() {
	echo "${0##*/}: $passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
}

# need_root_and_loop: end the test file as skipped unless it runs as root
# with loop devices to take.
need_root_and_loop() {
	if [ "$(id -u)" != 0 ] || ! losetup -f >/dev/null 2>&1; then
		echo "${0##*/}: 0 passed, 0 failed, 1 skipped (needs root and loop devices)"
		exit 0
	fi
}

# detach_loops_under DIR: detach every loop device backed by a file under DIR.
# Tests run in subshells, so a list of loops they kept would not reach the
# caller's cleanup; the kernel's list does.
detach_loops_under() {
	local name file
	while read -r name file; do
		case "$file" in "$1"/*) losetup -d "$name" 2>/dev/null ;; esac
	done < <(losetup -l -n -O NAME,BACK-FILE 2>/dev/null)
}

# flip_byte FILE OFFSET: invert every bit of the byte at OFFSET, so the byte
# surely changes (writing a fixed value leaves it alone 1 time in 256).
flip_byte() {
	local b
	b=$(od -An -v -tx1 -j "$2" -N 1 "$1" | tr -d ' \n')
	printf "\\x$(printf %02x $((16#$b ^ 0xff)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc,fsync status=none
}

# luks_qcow2 FILE: a 4 MiB qcow2 image encrypted with LUKS. qemu-img times its key
# derivation by CPU usage, which some hosts report too coarsely now and then ("Unable to
# get accurate CPU usage"): a few tries.
luks_qcow2() {
	local try
	for try in 1 2 3 4 5; do
		rm -f "$1"
		qemu-img create -q -f qcow2 --object secret,id=s0,data=abc \
			-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 "$1" 4M \
			2>"$1.err" && { rm -f "$1.err"; return 0; }
	done
	cat "$1.err"; return 1
}
