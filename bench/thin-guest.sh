#!/usr/bin/env bash
# bench/thin-guest.sh WORKDIR: the guest half of bench/thin, run inside user-mode Linux
# (tests/kernel/uml-run.sh) with /dev/ubdb (pool metadata) and /dev/ubdc (pool data).
# Not meant to be run by hand: bench/thin writes WORKDIR/params.sh (the image, its size,
# the contenders, RUNS, IMGDEV) and reads back what this leaves in WORKDIR:
#   runs.csv     one line per timed run (and per process-start measurement)
#   guest.txt    "key value" facts of the guest (kernel, pool, imgdev's block hashing,
#                each contender's byte-exactness)
#   logs/        each contender's untimed warm-up: its stdout and stderr (imgdev with -v)
# Every run gets a thin volume of its own (a new thin id), deleted afterwards, so each
# starts from the state its case names: "fresh" (never written: unmapped, reads as
# zeros) or "used" (every block written with random bytes first, untimed).
set -euo pipefail

WORKDIR=$1
# shellcheck source=/dev/null
. "$WORKDIR/params.sh"	# IMGDEV IMG SIZE RUNS ORDER POOL_FEATURES PROVISION_ARGS
meta=/dev/ubdb
data=/dev/ubdc
pool=thinbench-pool
vol=thinbench-vol
dev=/dev/mapper/$vol
moddir=/usr/lib/uml/modules/$(uname -r)/kernel/drivers/md
csv=$WORKDIR/runs.csv
mkdir -p "$WORKDIR/logs"
# Progress to a file on hostfs, which bench/thin follows while the guest runs (uml-run.sh
# hands back the guest's output only once it has powered off).
exec 2>>"$WORKDIR/progress.log"

say() { printf '%s\n' "$*" >&2; }
die() { say "thin-guest: $*"; exit 1; }

# dm-thin and what it needs, in modules.dep's order (uml-run.sh loads only dm-mod).
load_thin() {
	local m name
	for m in dm-bufio persistent-data/dm-persistent-data dm-bio-prison dm-thin-pool; do
		name=${m##*/}
		[ -d "/sys/module/${name//-/_}" ] || busybox insmod "$moddir/$m.ko"
	done
	dmsetup targets | grep -q '^thin-pool ' || die "dm-thin-pool did not load"
}

# The pool: 64 KiB blocks (128 sectors), low-water mark 0, zeroing of new blocks on
# unless POOL_FEATURES says skip_block_zeroing. The first 4 KiB of metadata zeroed, so
# the pool formats it afresh.
pool_create() {
	local feat
	read -r -a feat <<<"${POOL_FEATURES:-}"
	dd if=/dev/zero of=$meta bs=4K count=1 oflag=direct status=none
	dmsetup create $pool --table "0 $(blockdev --getsz $data) thin-pool $meta $data 128 0 ${#feat[@]} ${feat[*]}"
	dmsetup mknodes $pool	# no udev in the guest: make /dev/mapper/NAME ourselves
}
pool_used() { dmsetup status $pool | awk '{ split($6, a, "/"); print a[1] }'; }
# The volume's mapped 64 KiB blocks: its status is "0 LEN thin MAPPED_SECTORS HIGHEST".
vol_blocks() { dmsetup status $vol | awk '{ print int(($4 + 127) / 128) }'; }

thin_id=0
# vol_create SECTORS: a new thin volume of that size, under a thin id never used before,
# so no run sees another's mappings (the pool reuses the data blocks, though: with
# skip_block_zeroing a fresh volume shows their old bytes).
vol_create() {
	thin_id=$((thin_id + 1))
	dmsetup message $pool 0 "create_thin $thin_id"
	dmsetup create $vol --table "0 $1 thin /dev/mapper/$pool $thin_id"
	dmsetup mknodes $vol
}
vol_delete() {
	dmsetup remove $vol
	dmsetup message $pool 0 "delete $thin_id"
}
# fill: every block of the volume written with random bytes (the "used" case).
fill() {
	dd if=/dev/urandom of=$dev bs=1M iflag=fullblock,count_bytes count="$(blockdev --getsize64 "$dev")" \
		oflag=direct status=none
	[ "$(vol_blocks)" -ge "$(( ($(blockdev --getsz "$dev") + 127) / 128 ))" ] || die "fill left unmapped blocks"
}

# Contenders: TOOL:CASE. TOOL imgdev (no --layout), imgdev-virtlet, imgdev-aligned
# (--layout), qemu (-n, zeros written), qemu-tiz (-n --target-is-zero); CASE fresh|used.
tool_of() { echo "${1%%:*}"; }
case_of() { echo "${1##*:}"; }
is_imgdev() { [[ $1 == imgdev* ]]; }
# sectors_for TOOL: the volume each gets, exactly the room it needs, so on a used volume
# nothing outside the payload and header stays allocated: imgdev's header and payload at
# 512 (one sector more), or at 1 MiB for the aligned layout; qemu-img's image at 0.
sectors_for() {
	case $1 in
	imgdev | imgdev-virtlet) echo $(( (SIZE + 511) / 512 + 1 )) ;;
	imgdev-aligned) echo $(( (SIZE + 511) / 512 + 2048 )) ;;
	*) echo $(( (SIZE + 511) / 512 )) ;;
	esac
}
# set_cmd TOOL: cmd=(the command timed). imgdev ends durable by itself (fdatasync before
# and after the commit record); qemu-img with -t none writes O_DIRECT and calls fdatasync
# on the device at the end (checked with strace), so every contender ends durable.
set_cmd() {
	local more=()
	read -r -a more <<<"${PROVISION_ARGS:-}"	# the caller's extra imgdev options
	case $1 in
	imgdev) cmd=("$IMGDEV" provision "$dev" "$IMG" --no-map --json "${more[@]}") ;;
	imgdev-virtlet) cmd=("$IMGDEV" provision "$dev" "$IMG" --no-map --json --layout virtlet "${more[@]}") ;;
	imgdev-aligned) cmd=("$IMGDEV" provision "$dev" "$IMG" --no-map --json --layout aligned "${more[@]}") ;;
	qemu) cmd=(qemu-img convert -n -t none -f raw -O raw "$IMG" "$dev") ;;
	qemu-tiz) cmd=(qemu-img convert -n --target-is-zero -t none -f raw -O raw "$IMG" "$dev") ;;
	esac
}

# prepare CONTENDER: its volume, in its state, and the same start for every contender:
# nothing dirty, nothing of the image or the volume in the guest's page cache (imgdev drops
# the image's pages as it goes, qemu-img does not; without this qemu-img's later runs
# would read the image from memory and imgdev's through hostfs).
prepare() {
	vol_create "$(sectors_for "$(tool_of "$1")")"
	[ "$(case_of "$1")" = used ] && fill
	sync
	blockdev --flushbufs $dev
	echo 3 >/proc/sys/vm/drop_caches
}

# offset_of TOOL: where the payload starts on the device: imgdev's header says
# (data_offset); qemu-img writes the image at byte 0.
offset_of() {
	if is_imgdev "$1"; then
		"$IMGDEV" header --json "$dev" | sed -n 's/.*"data_offset": \([0-9]*\).*/\1/p'
	else
		echo 0
	fi
}
# check CONTENDER OUT: the run did its job; imgdev's JSON says it wrote the image.
check_out() {
	is_imgdev "$(tool_of "$1")" || return 0
	grep -q '"written": true' "$2" || die "$1: imgdev did not say written: $(cat "$2")"
}
# exact CONTENDER: whether the payload on the volume is the image, byte for byte
# (untimed), noted in guest.txt. imgdev must be; qemu-img --target-is-zero is not on a
# pool that skips zeroing new blocks (a fresh volume then shows what the pool's data
# disk held), which the report says rather than stopping.
exact() {
	local off verdict=yes
	off=$(offset_of "$(tool_of "$1")")
	[ -n "$off" ] || die "$1: no data_offset in the header"
	cmp -n "$SIZE" -i "$off:0" "$dev" "$IMG" >&2 || verdict=no
	echo "exact $1 $verdict $off" >>"$WORKDIR/guest.txt"
	[ $verdict = yes ] || ! is_imgdev "$(tool_of "$1")" || die "$1: the payload at $off differs from the image"
}

TIMEFORMAT='%3R %3U %3S'
# measure CONTENDER REP POS: one timed run, appended to the CSV. REP 0 is the warm-up:
# untimed in the results, imgdev with -v, and the byte-exactness check.
measure() {
	local c=$1 tool out=$WORKDIR/out err=$WORKDIR/err tf=$WORKDIR/time rc=0 t before after base
	local zeroing='' isec='' cmd
	tool=$(tool_of "$c")
	base=$(pool_used)
	prepare "$c"
	before=$(vol_blocks)
	set_cmd "$tool"
	[ "$2" = 0 ] && is_imgdev "$tool" && cmd=("${cmd[0]}" -v "${cmd[@]:1}")
	{ time "${cmd[@]}" >"$out" 2>"$err"; } 2>"$tf" || rc=$?
	[ "$rc" = 0 ] || { cat "$out" "$err" >&2; die "$c failed (exit $rc): ${cmd[*]}"; }
	check_out "$c" "$out"
	after=$(vol_blocks)
	read -r -a t <"$tf"
	if is_imgdev "$tool"; then
		zeroing=$(sed -n 's/.*"zeroing": "\([a-z-]*\)".*/\1/p' "$out")
		isec=$(sed -n 's/.*"seconds": \([0-9.e-]*\).*/\1/p' "$out")
	fi
	if [ "$2" = 0 ]; then
		cp "$out" "$WORKDIR/logs/${c/:/-}.out"
		cp "$err" "$WORKDIR/logs/${c/:/-}.err"
		exact "$c"
	fi
	echo "$tool,$(case_of "$c"),$2,$3,${t[0]},${t[1]},${t[2]},$before,$after,$(( $(pool_used) - base )),$zeroing,$isec" >>"$csv"
	printf '  rep %d/%d  %-16s %-6s %8.3f s  %6d blocks (%d before)\n' "$2" "$RUNS" "$tool" \
		"$(case_of "$c")" "${t[0]}" "$after" "$before" >&2
	vol_delete
}

# startup REP: what starting a process costs in the guest (its system calls go through
# ptrace to the host: /bin/true alone takes tens of ms), once per repetition beside the
# contenders, so a slow phase of the host touches these as it touches them.
startup() {
	local name t
	for name in start-true start-imgdev start-qemu; do
		case $name in
		start-true) { time /bin/true; } 2>"$WORKDIR/time" ;;
		start-imgdev) { time "$IMGDEV" --version >/dev/null; } 2>"$WORKDIR/time" ;;
		start-qemu) { time qemu-img --version >/dev/null; } 2>"$WORKDIR/time" ;;
		esac
		read -r -a t <"$WORKDIR/time"
		echo "$name,none,$1,0,${t[0]},${t[1]},${t[2]},,,,," >>"$csv"
	done
}

load_thin
pool_create
{
	echo "guest_kernel $(uname -r)"
	echo "guest_cpus $(nproc)"
	echo "guest_mem_kib $(awk '/^MemTotal/ { print $2 }' /proc/meminfo)"
	echo "pool_blocks $(dmsetup status $pool | awk '{ split($6, a, "/"); print a[2] }')"
	echo "pool_table $(dmsetup table $pool)"
	vol_create 2048
	q=/sys/dev/block/$(dmsetup info -c --noheadings -o major,minor --separator : $vol)/queue
	echo "vol_queue discard_max_bytes=$(cat "$q/discard_max_bytes") write_zeroes_max_bytes=$(cat "$q/write_zeroes_max_bytes") discard_granularity=$(cat "$q/discard_granularity")"
	vol_delete
} >"$WORKDIR/guest.txt"
echo "contender,volume,rep,position,real_s,user_s,sys_s,blocks_before,blocks,pool_delta,zeroing,imgdev_s" >"$csv"

# shellcheck disable=SC2153 # ORDER comes from params.sh
read -r -a order <<<"$ORDER"
n=${#order[@]}
say "thin-guest: warm-up (untimed; byte-exactness checked; imgdev with -v)"
for ((i = 0; i < n; i++)); do measure "${order[$i]}" 0 $((i + 1)); done
sed -n 's/^imgdev: provision: info: block hashing: /block_hashing /p' "$WORKDIR"/logs/imgdev*.err | head -1 >>"$WORKDIR/guest.txt"
say "thin-guest: $RUNS repetitions of $n contenders, round-robin, rotated each repetition"
for ((rep = 1; rep <= RUNS; rep++)); do
	startup "$rep"
	for ((i = 0; i < n; i++)); do
		measure "${order[$(((i + rep - 1) % n))]}" "$rep" $((i + 1))
	done
done
dmsetup remove $pool
say "thin-guest: done"
