#!/usr/bin/env bash
# Oracle tests of the image formats: provision --no-map of qcow2 (v2 and v3,
# 512 B to 2 MiB clusters, zlib and zstd compressed clusters, zero and
# unmapped clusters, discards, scattered writes, odd virtual sizes, extended
# L2) and of gzip-, xz- and zstd-compressed raw and qcow2 files, each compared
# byte for byte with `qemu-img convert -O raw` over a device pre-filled with
# random bytes, with the image hash (the file as given) and verify checked.
# Then the refusals (backing file, encryption, external data file, corrupt or
# unknown feature bits, qcow v1, truncation, tables and clusters beyond the
# end of the file, an absurd size): exit 7, a message saying why, no sanitizer
# report, and the device unchanged.
. "$(dirname "$0")/../lib.sh"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

tmp=$(mktemp -d /var/tmp/imgdev-images.XXXXXX)
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null ||
	! command -v gzip >/dev/null || ! command -v xz >/dev/null || ! command -v zstd >/dev/null; then
	skip 'image format tests' 'qemu-utils, gzip, xz or zstd missing (tests/deps.sh test)'
	finish
	exit 77
fi

MiB=1048576
u32_at() { echo $((16#$(hex_at "$1" "$2" 4))); }
# put_u64 FILE OFFSET VALUE: write VALUE big-endian at OFFSET (bit 63 may be set).
put_u64() {
	# shellcheck disable=SC2059  # the format is the bytes
	printf "$(printf '%016x' "$3" | sed 's/../\\x&/g')" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# put_rand FILE OFFSET LENGTH: fresh random bytes at OFFSET.
put_rand() {
	head -c "$3" /dev/urandom |
		dd of="$1" bs=64K iflag=fullblock oflag=seek_bytes seek="$2" conv=notrunc status=none
}
put_zero() {
	head -c "$3" /dev/zero |
		dd of="$1" bs=64K iflag=fullblock oflag=seek_bytes seek="$2" conv=notrunc status=none
}

# Stale device contents: one block of noise, never used as image data.
head -c $((16 * MiB)) /dev/urandom >"$tmp/noise"

# new_dev NAME SIZE: a sparse device file whose first 16 MiB are the noise and,
# when it is larger, whose last 2 MiB are the noise's first 2 MiB; prints it.
new_dev() {
	local d=$tmp/$1 n=$2
	rm -f "$d"
	truncate -s "$n" "$d"
	dd if="$tmp/noise" of="$d" bs=64K iflag=count_bytes count=$((n < 16 * MiB ? n : 16 * MiB)) \
		conv=notrunc status=none
	[ "$n" -le $((16 * MiB)) ] || dd if="$tmp/noise" of="$d" bs=64K iflag=count_bytes \
		count=$((2 * MiB)) oflag=seek_bytes seek=$((n - 2 * MiB)) conv=notrunc status=none
	echo "$d"
}
# untouched DEV FROM: the bytes of DEV from FROM on are still new_dev's noise.
untouched() {
	local n x
	n=$(stat -c %s "$1")
	x=$(($2 - (n > 16 * MiB ? n - 2 * MiB : 0)))
	cmp -n $((n - $2)) -i "$2:$x" "$1" "$tmp/noise" || { echo "bytes of $1 from $2 on changed"; return 1; }
}

# base RAW SIZE: random data with zero runs and unaligned edges: across 64 KiB,
# 2 MiB and 4 MiB (chunk) boundaries, a zero hole inside data, a lone byte,
# and data up to the last byte.
base() {
	local f=$1 n=$2
	rm -f "$f"
	truncate -s "$n" "$f"
	put_rand "$f" 0 200000
	put_rand "$f" 300000 800000
	put_zero "$f" 500000 4096
	put_zero "$f" 786432 65536
	put_rand "$f" $((6 * MiB + 4096)) 4096
	put_rand "$f" $((2 * MiB - 1000)) 5000
	put_rand "$f" $((3 * MiB)) 65536
	put_rand "$f" $((4 * MiB - 7)) 14
	put_rand "$f" 5000000 300000
	printf '\377' | dd of="$f" bs=1 seek=9000001 conv=notrunc status=none
	put_rand "$f" $((n - 3000)) 3000
	truncate -s "$n" "$f"
}
BASE=$tmp/base.raw
base "$BASE" $((12 * MiB))

# qio IMAGE CMD...: run qemu-io commands on a qcow2 image, quietly.
qio() {
	local img=$1 c args=()
	shift
	for c in "$@"; do args+=(-c "$c"); done
	qemu-io -f qcow2 "${args[@]}" "$img" >"$tmp/qio.log" 2>&1 ||
		{ echo "qemu-io $* failed:"; cat "$tmp/qio.log"; return 1; }
}
# to_qcow2 OUT OPTIONS [CONVERT FLAGS]: the base image as qcow2.
to_qcow2() {
	rm -f "$1"
	qemu-img convert -f raw -O qcow2 -o "$2" "${@:3}" "$BASE" "$1"
}
# Scattered pattern writes: unaligned, across cluster, L2-table (32 KiB for
# 512 B clusters) and chunk boundaries, over data and holes, the last byte.
scatter() {
	local vs
	vs=$(qemu-img info --output=json "$1"); vs=$(jget virtual-size "$vs")
	qio "$1" 'write -P 0xa1 0 512' 'write -P 0xa2 65535 2' 'write -P 0xa3 1048000 300000' \
		'write -P 0xa4 2097151 1' 'write -P 0xa5 4194300 10' 'write -P 0xa8 32768 512' \
		'write -P 0xa9 8000000 70000' "write -P 0xa7 $((vs - 1)) 1"
	[ "$vs" -lt $((9 * MiB)) ] || qio "$1" 'write -P 0xa6 7340032 2097152'
}
# Zero writes (write -z, or with -u write -z -u), aligned and not.
zeroes() {
	local u=${2:-}
	qio "$1" "write -z $u 0 65536" "write -z $u 1048576 131072" "write -z $u 300000 1000" \
		"write -z $u 3145728 1048576" "write -z $u 4194304 2097152" "write -z $u 9000000 2"
}
discards() {
	qio "$1" 'discard 65536 65536' 'discard 2097152 2097152' 'discard 5000000 100000' \
		'discard 0 512' 'discard 6291456 4194304'
}

# ref IMAGE OUT: the virtual disk according to qemu (and gzip, xz, zstd).
ref() {
	local img=$1 out=$2 inner=$2.inner
	case $(hex_at "$img" 0 6) in
	1f8b*) gzip -dc "$img" >"$inner" ;;
	fd377a585a00) xz -dc "$img" >"$inner" ;;
	28b52ffd*) zstd -qdc "$img" >"$inner" ;;
	*) inner=$img ;;
	esac
	rm -f "$out"
	if [ "$(hex_at "$inner" 0 4)" = 514649fb ]; then
		qemu-img convert -f qcow2 -O raw "$inner" "$out"
	else
		cp --sparse=always "$inner" "$out"
	fi
	[ "$inner" = "$img" ] || rm -f "$inner"
}

# oracle IMAGE [TAG]: provision IMAGE onto a fresh noisy device; the payload
# must be qemu's virtual disk, nothing past it touched, the image hash the
# file's, verify ok, and a second provision "matched". With the hash given
# (--digest), when the clusters are mapped rather than read, the same payload
# and content hash. TAG names its files.
oracle() {
	local img=$1 r=$tmp/ref${2:-}.raw n d h c
	ref "$img" "$r"
	n=$(stat -c %s "$r")
	h=$(sha "$img")
	d=$(new_dev "devm${2:-}" $(($(room "$n") + 65536)))
	run_imgdev provision "$d" "$img" --no-map --json --digest "sha256:$h"
	assert_rc 0; assert_eq "$err" "" "stderr with --digest"
	c=$(jget content_hash "$out")
	cmp -n "$n" -i 512:0 "$d" "$r" || { echo "payload with --digest differs from qemu-img convert -O raw"; return 1; }
	rm -f "$d"
	d=$(new_dev "dev${2:-}" $(($(room "$n") + 65536)))
	run_imgdev provision "$d" "$img" --no-map --json
	assert_rc 0; assert_eq "$err" "" stderr
	assert_eq "$(jget content_hash "$out")" "$c" "content hash, hashing the file against --digest"
	assert_eq "$(jget written "$out")/$(jget image_size "$out")/$(jget image_hash "$out")" \
		"true/$n/sha256:$h" "provision --json written/image_size (qemu's virtual size)/image_hash"
	cmp -n "$n" -i 512:0 "$d" "$r" || { echo "payload differs from qemu-img convert -O raw"; return 1; }
	untouched "$d" "$(room "$n")"
	run_imgdev header --json "$d"; assert_rc 0
	assert_eq "$(jget image_hash "$out")/$(jget image_size "$out")" "sha256:$h/$n" "header image_hash/image_size"
	run_imgdev verify "$d"; assert_rc 0; assert_eq "$out" ok verify
	run_imgdev provision "$d" "$img" --no-map; assert_rc 0; assert_eq "$out" matched "second provision"
	rm -f "$d" "$r"
}
# oracle_all IMAGE...: oracle on each, side by side; says which failed and why.
oracle_all() {
	local i st=0 pids=()
	for i in $(seq $#); do
		(set -e; oracle "${!i}" ".$i") >"$tmp/oracle.$i.log" 2>&1 &
		pids+=($!)
	done
	for i in $(seq $#); do
		wait "${pids[i - 1]}" && continue
		st=1
		echo "${!i##*/}:"; sed 's/^/  /' "$tmp/oracle.$i.log"
	done
	return $st
}
# packed IMAGE KIND: IMAGE compressed with gzip -k, xz -k -T0 -1 (blocks of 3 MiB) or zstd -k; prints the path.
packed() {
	case $2 in
	gz) rm -f "$1.gz"; gzip -k "$1"; echo "$1.gz" ;;
	xz) rm -f "$1.xz"; xz -k -T0 -1 "$1"; echo "$1.xz" ;;
	zst) rm -f "$1.zst"; zstd -q -k "$1"; echo "$1.zst" ;;
	esac
}

# ---- qcow2 -----------------------------------------------------------------

for compat in 0.10 1.1; do
	v=$([ $compat = 0.10 ] && echo v2 || echo v3)
	for cs in 512 65536 2097152; do
		expect "qcow2 $v, $cs-byte clusters, uncompressed and zlib-compressed$([ $v = v3 ] && echo ' and zstd-compressed'), matches qemu-img convert" "
			to_qcow2 \"\$tmp/q-$v-$cs.qcow2\" compat=$compat,cluster_size=$cs
			to_qcow2 \"\$tmp/q-$v-$cs-zlib.qcow2\" compat=$compat,cluster_size=$cs -c
			imgs=(\"\$tmp/q-$v-$cs.qcow2\" \"\$tmp/q-$v-$cs-zlib.qcow2\")
			if [ $v = v3 ]; then
				to_qcow2 \"\$tmp/q-$v-$cs-zstd.qcow2\" compat=$compat,cluster_size=$cs,compression_type=zstd -c
				imgs+=(\"\$tmp/q-$v-$cs-zstd.qcow2\")
			fi
			oracle_all \"\${imgs[@]}\""
	done
done

expect 'with --digest, uncompressed 64 KiB and 2 MiB clusters are mapped (strace), 512-byte and compressed ones read, all as qemu-img reads them' '
	to_qcow2 "$tmp/mm-64k.qcow2" compat=1.1,cluster_size=65536
	to_qcow2 "$tmp/mm-2m.qcow2" compat=1.1,cluster_size=2097152
	to_qcow2 "$tmp/mm-512.qcow2" compat=1.1,cluster_size=512
	to_qcow2 "$tmp/mm-z.qcow2" compat=1.1 -c
	ref "$tmp/mm-64k.qcow2" "$tmp/mm.raw"; n=$(stat -c %s "$tmp/mm.raw")
	for q in 64k:yes 2m:yes 512:no z:no; do
		img="$tmp/mm-${q%:*}.qcow2"; d=$(new_dev mm-dev $(($(room "$n") + 65536)))
		IMGDEV_WRAP=$(madvise_trace "$tmp/trace") \
			run_imgdev provision "$d" "$img" --no-map --digest "sha256:$(sha "$img")"
		assert_rc 0
		p=$(populates "$tmp/trace")
		if [ "${q#*:}" = yes ]; then [ "$p" -gt 0 ] || { echo "$img: not mapped"; exit 1; }
		else assert_eq "$p" 0 "$img: mapped"; fi
		cmp -n "$n" -i 512:0 "$d" "$tmp/mm.raw" || { echo "$img: payload differs from qemu-img convert"; exit 1; }
		run_imgdev verify "$d"; assert_rc 0
	done'

# dontneed_ranges TRACE FILE: "OFFSET LENGTH" of each POSIX_FADV_DONTNEED of FILE.
dontneed_ranges() {
	grep -F "<$2>" "$1" | grep DONTNEED | sed 's/.*>, *\([0-9]*\), *\([0-9]*\),.*/\1 \2/'
}
# drops TRACE FILE: "BYTES WHOLE": how many bytes of FILE the chunk-by-chunk
# POSIX_FADV_DONTNEED calls covered (ranges merged, clipped to the file), and
# how many calls dropped the whole file (offset 0, length 0).
drops() {
	dontneed_ranges "$1" "$2" | sort -n | awk -v size="$(stat -c %s "$2")" '
			$2 == 0 && $1 == 0 { whole++; next }
			{ s = $1; e = $1 + $2; if (e > size) e = size
			  if (s > end) { covered += end - start; start = s; end = e } else if (e > end) end = e }
			END { covered += end - start; printf "%d %d\n", covered, whole }'
}
# resident FILE: bytes of FILE in the page cache.
resident() { fincore -b -n -o RES "$1" | tr -d ' '; }
# unaligned_drops TRACE FILE: how many chunk-by-chunk drops of FILE do not start and
# end on a 2 MiB boundary.
unaligned_drops() {
	dontneed_ranges "$1" "$2" |
		awk '$2 != 0 && ($1 % 2097152 || $2 % 2097152) { n++ } END { print n + 0 }'
}

expect 'the image leaves the page cache chunk by chunk (raw; qcow2 mapped, read, compressed), or at the end when its file is hashed beside; on tmpfs nothing is dropped' '
	[ "$(stat -f -c %T "$tmp")" != tmpfs ] || { echo "$tmp is on tmpfs, whose pages cannot be dropped"; exit 1; }
	seq 1 3000000 | head -c $((12 * MiB)) >"$tmp/pc-text.raw"
	cp "$BASE" "$tmp/pc.raw"
	to_qcow2 "$tmp/pc.qcow2" compat=1.1,cluster_size=65536
	rm -f "$tmp/pc-z.qcow2"; qemu-img convert -f raw -O qcow2 -c "$tmp/pc-text.raw" "$tmp/pc-z.qcow2"
	sync
	for c in pc.raw:digest pc.raw:none pc.qcow2:digest pc.qcow2:read pc-z.qcow2:digest pc.qcow2:none; do
		img=$tmp/${c%:*}; size=$(stat -c %s "$img")
		case ${c#*:} in
		digest) opt=(--digest "sha256:$(sha "$img")") ;;
		read) opt=(--digest "sha256:$(sha "$img")" --no-mmap) ;;
		none) opt=() ;;
		esac
		cat "$img" >/dev/null
		[ "$(resident "$img")" -ge $((size * 9 / 10)) ] || { echo "$c: not cached to begin with"; exit 1; }
		d=$(new_dev pc-dev $((16 * MiB)))
		IMGDEV_WRAP=$(strace_wrap "$tmp/trace" fadvise64) run_imgdev provision "$d" "$img" --no-map "${opt[@]}"
		assert_rc 0
		assert_eq "$(resident "$img")" 0 "$c: bytes left in the page cache"
		read -r covered whole < <(drops "$tmp/trace" "$img")
		assert_eq "$whole" 1 "$c: drops of the whole file"
		if [ "$c" = pc.qcow2:none ]; then
			assert_eq "$covered" 0 "$c: bytes dropped while the file hasher reads them"
		else
			[ "$covered" -ge $((size * 9 / 10)) ] || { echo "$c: chunk drops covered $covered of $size bytes"; exit 1; }
		fi
		# The clusters of a qcow2 chunk are dropped in whole 2 MiB folios.
		[[ $c != *qcow2* ]] || assert_eq "$(unaligned_drops "$tmp/trace" "$img")" 0 "$c: drops not on 2 MiB"
		# Provisioned again: matched. Without --digest the image was hashed to know
		# that, and leaves the cache; with it, the image was not read, so not dropped.
		cat "$img" >/dev/null
		IMGDEV_WRAP=$(strace_wrap "$tmp/trace" fadvise64) run_imgdev provision "$d" "$img" --no-map "${opt[@]}"
		assert_rc 0; assert_eq "$out" matched "$c: again"
		if [ ${#opt[@]} -eq 0 ]; then
			assert_eq "$(resident "$img")" 0 "$c matched: bytes left in the page cache"
		else
			assert_eq "$(drops "$tmp/trace" "$img")" "0 0" "$c matched with --digest: drops"
		fi
	done
	run_imgdev info --json "$tmp/pc-z.qcow2"; assert_rc 0
	assert_eq "$(jget cluster_compression "$out")" zlib "pc-z.qcow2 holds compressed clusters"
	# On tmpfs the pages are the file: nothing to drop, so no call at all.
	shm=$(mktemp -d /dev/shm/imgdev-pc.XXXXXX)
	trap "rm -rf $shm" EXIT
	for f in pc.raw pc.qcow2; do
		cp "$tmp/$f" "$shm/$f"; d=$(new_dev pc-dev $((16 * MiB)))
		IMGDEV_WRAP=$(strace_wrap "$tmp/trace" fadvise64) run_imgdev provision "$d" "$shm/$f" --no-map
		assert_rc 0
		assert_eq "$(drops "$tmp/trace" "$shm/$f")" "0 0" "$f on tmpfs: bytes dropped chunk by chunk, whole-file drops"
	done'

expect 'qcow2 v3 zero clusters (write -z), aligned and partial, over data, 512 B, 64 KiB and 2 MiB clusters' '
	for cs in 512 65536 2097152; do
		to_qcow2 "$tmp/z-$cs.qcow2" compat=1.1,cluster_size=$cs
		zeroes "$tmp/z-$cs.qcow2"
	done
	oracle_all "$tmp"/z-*.qcow2'

expect 'qcow2 v3 unmapped zero clusters (write -z -u), 512 B, 64 KiB and 2 MiB clusters, and over zlib-compressed clusters' '
	for cs in 512 65536 2097152; do
		to_qcow2 "$tmp/zu-$cs.qcow2" compat=1.1,cluster_size=$cs
		zeroes "$tmp/zu-$cs.qcow2" -u
	done
	to_qcow2 "$tmp/zu-c.qcow2" compat=1.1 -c
	zeroes "$tmp/zu-c.qcow2" -u
	oracle_all "$tmp"/zu-*.qcow2'

expect 'qcow2 v2 with write -z (no zero flag in v2) matches qemu' '
	to_qcow2 "$tmp/z2.qcow2" compat=0.10
	zeroes "$tmp/z2.qcow2"
	oracle_all "$tmp/z2.qcow2"'

expect 'qcow2 v2 and v3 with discarded ranges (aligned, partial, over compressed clusters) match qemu' '
	to_qcow2 "$tmp/dc1.qcow2" compat=0.10; discards "$tmp/dc1.qcow2"
	to_qcow2 "$tmp/dc2.qcow2" compat=0.10 -c; discards "$tmp/dc2.qcow2"
	to_qcow2 "$tmp/dc3.qcow2" compat=1.1,cluster_size=512; discards "$tmp/dc3.qcow2"
	to_qcow2 "$tmp/dc4.qcow2" compat=1.1,cluster_size=2M -c; discards "$tmp/dc4.qcow2"
	to_qcow2 "$tmp/dc5.qcow2" compat=1.1 -c; discards "$tmp/dc5.qcow2"
	oracle_all "$tmp"/dc[1-5].qcow2'

expect 'qcow2 v2 and v3 with scattered pattern writes over data, holes and compressed clusters match qemu' '
	to_qcow2 "$tmp/sc1.qcow2" compat=0.10,cluster_size=512
	to_qcow2 "$tmp/sc2.qcow2" compat=0.10,cluster_size=512 -c
	to_qcow2 "$tmp/sc3.qcow2" compat=1.1
	to_qcow2 "$tmp/sc4.qcow2" compat=1.1 -c
	to_qcow2 "$tmp/sc5.qcow2" compat=1.1,cluster_size=2M -c
	to_qcow2 "$tmp/sc6.qcow2" compat=1.1,compression_type=zstd -c
	for i in 1 2 3 4 5 6; do scatter "$tmp/sc$i.qcow2"; done
	oracle_all "$tmp"/sc[1-6].qcow2'

expect 'qcow2 with zero, unmap, discard and pattern writes mixed, 64 KiB clusters, v3' '
	to_qcow2 "$tmp/mix.qcow2" compat=1.1
	scatter "$tmp/mix.qcow2"; zeroes "$tmp/mix.qcow2"; discards "$tmp/mix.qcow2"
	qio "$tmp/mix.qcow2" "write -P 0x33 4194304 8192" "write -z -u 1048000 20000"
	oracle_all "$tmp/mix.qcow2"'

expect 'an odd virtual size (qemu-img create 10000001) with writes into the last partial cluster, each cluster size, v2 and v3' '
	for compat in 0.10 1.1; do
		for cs in 512 65536 2097152; do
			f=$tmp/odd-$compat-$cs.qcow2; rm -f "$f"
			qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs "$f" 10000001
			vs=$(qemu-img info --output=json "$f"); vs=$(jget virtual-size "$vs")
			last=$(((vs - 1) / cs * cs))
			qio "$f" "write -P 0x11 0 70000" "write -P 0x12 4194000 1000" \
				"write -P 0x13 $((vs - 1000)) 1000" "write -P 0x14 $((last - 7)) 9" \
				"write -P 0x15 $((last + 1)) $((vs - last - 2))"
		done
	done
	oracle_all "$tmp"/odd-*.qcow2'

expect 'an empty qcow2 (no cluster allocated) gives all zeros over noise' '
	rm -f "$tmp/empty.qcow2"
	qemu-img create -q -f qcow2 "$tmp/empty.qcow2" 6M
	oracle_all "$tmp/empty.qcow2"'

expect 'a qcow2 over 512 MiB with 64 KiB clusters: data in the second L2 table and across the boundary' '
	f=$tmp/big.qcow2; rm -f "$f"
	qemu-img create -q -f qcow2 "$f" $((600 * MiB))
	qio "$f" "write -P 0x21 0 65536" "write -P 0x22 $((512 * MiB - 1000)) 3000" \
		"write -P 0x23 $((590 * MiB)) 200000" "write -P 0x24 $((600 * MiB - 512)) 512"
	oracle_all "$f"'

expect 'extended L2, 64 KiB and 2 MiB clusters: subcluster writes, write -z and -z -u of a subcluster, discard' '
	for cs in 65536 2097152; do
		sc=$((cs / 32)); f=$tmp/xl2-$cs.qcow2; rm -f "$f"
		qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$cs "$f" $((12 * MiB + 3 * 512))
		qio "$f" "write -P 0x41 $sc $sc" "write -P 0x42 $((3 * sc)) $((2 * sc))" \
			"write -P 0x43 $((cs + 31 * sc)) $sc" "write -P 0x44 $((2 * cs + 100)) 300" \
			"write -P 0x45 $((4 * cs)) $cs" "write -z $((4 * cs + 2 * sc)) $sc" \
			"write -z -u $((4 * cs + 5 * sc)) $sc" "discard $((4 * cs + 9 * sc)) $sc" \
			"write -z $((5 * cs + sc)) $sc" "write -P 0x46 $((12 * MiB)) 1536"
		to_qcow2 "$tmp/xl2b-$cs.qcow2" extended_l2=on,cluster_size=$cs
		qio "$tmp/xl2b-$cs.qcow2" "write -z $sc $sc" "write -P 0x47 $((7 * sc + 5)) 10" \
			"write -z -u $((3 * MiB)) $sc"
		to_qcow2 "$tmp/xl2c-$cs.qcow2" extended_l2=on,cluster_size=$cs -c
		qio "$tmp/xl2c-$cs.qcow2" "write -P 0x48 $((2 * sc)) $sc" "write -z $((5 * MiB)) $sc"
	done
	oracle_all "$tmp"/xl2*.qcow2'

expect 'a qcow2 v3 with the dirty bit set (refcounts stale, data fine) still copies byte for byte' '
	to_qcow2 "$tmp/dirty.qcow2" compat=1.1
	put_u64 "$tmp/dirty.qcow2" 72 $(($(u64_at "$tmp/dirty.qcow2" 72) | 1))
	oracle_all "$tmp/dirty.qcow2"'

expect 'qcow2 features that leave the data alone: a persistent bitmap, grow and shrink, an internal snapshot, refcount_bits=1, preallocation' '
	rm -f "$tmp"/feat-*.qcow2
	qemu-img create -q -f qcow2 "$tmp/feat-bitmap.qcow2" 8M
	qio "$tmp/feat-bitmap.qcow2" "write -P 0x81 0 1M"
	qemu-img bitmap --add "$tmp/feat-bitmap.qcow2" b0
	qio "$tmp/feat-bitmap.qcow2" "write -P 0x82 2M 1M"
	qemu-img create -q -f qcow2 "$tmp/feat-grow.qcow2" 4M
	qio "$tmp/feat-grow.qcow2" "write -P 0x83 3M 1M"
	qemu-img resize -q "$tmp/feat-grow.qcow2" +9M
	qio "$tmp/feat-grow.qcow2" "write -P 0x84 12M 4096"
	qemu-img create -q -f qcow2 "$tmp/feat-shrink.qcow2" 20M
	qio "$tmp/feat-shrink.qcow2" "write -P 0x85 3M 1M" "write -P 0x86 19M 1M"
	qemu-img resize -q --shrink "$tmp/feat-shrink.qcow2" 5M
	qemu-img create -q -f qcow2 "$tmp/feat-snap.qcow2" 8M
	qio "$tmp/feat-snap.qcow2" "write -P 0x87 0 2M"
	qemu-img snapshot -c s1 "$tmp/feat-snap.qcow2"
	qio "$tmp/feat-snap.qcow2" "write -P 0x88 1M 64k" "write -z 0 64k" "discard 512k 64k"
	qemu-img create -q -f qcow2 -o refcount_bits=1,cluster_size=4096 "$tmp/feat-rc1.qcow2" 8M
	qio "$tmp/feat-rc1.qcow2" "write -P 0x89 5000 3M"
	qemu-img create -q -f qcow2 -o preallocation=metadata "$tmp/feat-pmeta.qcow2" 8M
	qio "$tmp/feat-pmeta.qcow2" "write -P 0x8a 5000 30000"
	qemu-img create -q -f qcow2 -o preallocation=full "$tmp/feat-pfull.qcow2" 8M
	qio "$tmp/feat-pfull.qcow2" "write -P 0x8b 5000 30000"
	oracle_all "$tmp"/feat-*.qcow2'

# fits IMAGE SIZE: provision needs room for SIZE (the virtual size, not the
# file's): one byte less is "too small" and writes nothing; exactly enough works.
fits() {
	local d before
	d=$(new_dev fdev $(($(room "$2") - 1)))
	before=$(sha "$d")
	run_imgdev provision "$d" "$1" --no-map
	echo "# ${1##*/} on $(($(room "$2") - 1)) bytes: exit $rc, stderr [$err]"
	assert_rc 8; assert_contains "$err" "too small"; assert_eq "$(sha "$d")" "$before" "device bytes"
	truncate -s "$(room "$2")" "$d"
	run_imgdev provision "$d" "$1" --no-map; assert_rc 0; assert_eq "$out" written
	run_imgdev verify "$d"; assert_rc 0
}

expect 'the device must hold the virtual size, not the file: qcow2, gzip raw and qcow2, zstd from a pipe, xz qcow2' '
	f=$tmp/fit.qcow2; rm -f "$f"
	qemu-img create -q -f qcow2 "$f" $((10 * MiB + 1536))
	qio "$f" "write -P 0x91 0 4096" "write -P 0x92 $((10 * MiB)) 1536"
	fits "$f" $((10 * MiB + 1536))
	head -c 3000001 "$BASE" >"$tmp/fit.raw"
	fits "$(packed "$tmp/fit.raw" gz)" 3000001
	fits "$(packed "$f" gz)" $((10 * MiB + 1536))
	zstd -q -c <"$tmp/fit.raw" >"$tmp/fit-pipe.raw.zst"
	fits "$tmp/fit-pipe.raw.zst" 3000001
	fits "$(packed "$f" xz)" $((10 * MiB + 1536))'

# ---- compressed files --------------------------------------------------------

for k in gz xz zst; do
	expect "$k-compressed raw images (zero runs, odd size, all zeros) provision the raw bytes; the hash is of the $k file" "
		cp --sparse=always \"\$BASE\" \"\$tmp/r-$k.raw\"
		head -c 3000001 \"\$BASE\" >\"\$tmp/r-$k-odd.raw\"
		truncate -s 5000000 \"\$tmp/r-$k-zero.raw\"
		oracle_all \"\$(packed \"\$tmp/r-$k.raw\" $k)\" \"\$(packed \"\$tmp/r-$k-odd.raw\" $k)\" \
			\"\$(packed \"\$tmp/r-$k-zero.raw\" $k)\""

	expect "$k-compressed qcow2 files (v2 512 B zlib, v3 64 KiB with zero/discard/scatter, v3 zstd 2 MiB, extended L2) match qemu" "
		to_qcow2 \"\$tmp/c-$k-a.qcow2\" compat=0.10,cluster_size=512 -c
		to_qcow2 \"\$tmp/c-$k-b.qcow2\" compat=1.1
		scatter \"\$tmp/c-$k-b.qcow2\"; zeroes \"\$tmp/c-$k-b.qcow2\" -u; discards \"\$tmp/c-$k-b.qcow2\"
		to_qcow2 \"\$tmp/c-$k-c.qcow2\" compat=1.1,cluster_size=2M,compression_type=zstd -c
		to_qcow2 \"\$tmp/c-$k-d.qcow2\" extended_l2=on
		qio \"\$tmp/c-$k-d.qcow2\" 'write -z 2048 2048' 'write -P 0x51 10240 2048'
		oracle_all \"\$(packed \"\$tmp/c-$k-a.qcow2\" $k)\" \"\$(packed \"\$tmp/c-$k-b.qcow2\" $k)\" \
			\"\$(packed \"\$tmp/c-$k-c.qcow2\" $k)\" \"\$(packed \"\$tmp/c-$k-d.qcow2\" $k)\""
done

expect 'streams without a size up front: zstd from a pipe, gzip and zstd of concatenated members/frames, xz single-threaded' '
	head -c 2000001 "$BASE" >"$tmp/p1.raw"; tail -c 3333333 "$BASE" >"$tmp/p2.raw"
	zstd -q -c <"$tmp/p1.raw" >"$tmp/pipe.raw.zst"
	{ gzip -c "$tmp/p1.raw"; gzip -c "$tmp/p2.raw"; } >"$tmp/multi.raw.gz"
	{ zstd -q -c "$tmp/p1.raw"; zstd -q -c <"$tmp/p2.raw"; } >"$tmp/multi.raw.zst"
	xz -c -T1 "$tmp/p2.raw" >"$tmp/st.raw.xz"
	to_qcow2 "$tmp/pq.qcow2" compat=1.1; scatter "$tmp/pq.qcow2"; zeroes "$tmp/pq.qcow2"
	gzip -c <"$tmp/pq.qcow2" >"$tmp/pipe.qcow2.gz"
	zstd -q -c <"$tmp/pq.qcow2" >"$tmp/pipe.qcow2.zst"
	oracle_all "$tmp/pipe.raw.zst" "$tmp/multi.raw.gz" "$tmp/multi.raw.zst" "$tmp/st.raw.xz" \
		"$tmp/pipe.qcow2.gz" "$tmp/pipe.qcow2.zst"'

expect 'the format is chosen by content: a qcow2 named .raw, a gzip named .qcow2, a raw named .gz' '
	to_qcow2 "$tmp/named.raw" compat=1.1 -c
	head -c 3000001 "$BASE" >"$tmp/named.gz"
	gzip -c "$tmp/named.gz" >"$tmp/named.qcow2"
	oracle_all "$tmp/named.raw" "$tmp/named.qcow2" "$tmp/named.gz"'

# ---- refusals ---------------------------------------------------------------

# refuse IMAGE REGEX: onto a noisy device holding a committed image,
# provision IMAGE fails cleanly (exit 7, a message matching REGEX, no sanitizer
# report), the device is byte for byte unchanged and still verifies.
refuse() {
	local d
	d=$(new_dev rdev $((16 * MiB)))
	run_imgdev provision "$d" "$GOOD" --no-map; assert_rc 0
	cp "$d" "$d.before"
	run_imgdev provision "$d" "$1" --no-map
	echo "# ${1##*/}: exit $rc, stderr [$err]"
	assert_rc 7; assert_eq "$out" "" stdout
	grep -qiE -- "$2" <<<"$err" || { echo "stderr [$err] does not match /$2/"; return 1; }
	case "$err" in *Sanitizer*|*"runtime error"*) echo "sanitizer report: $err"; return 1 ;; esac
	cmp -s "$d" "$d.before" || {
		changed_mib "$d" "$d.before"
		run_imgdev header "$d"; grep -E "commit|image hash" <<<"$out"
		run_imgdev verify "$d"; echo "verify: exit $rc $err"
		return 1
	}
	run_imgdev verify "$d"; assert_rc 0
	rm -f "$d.before"
}
# changed_mib A B: which MiB of two same-size files differ, and the first byte.
changed_mib() {
	local i n list=""
	n=$(($(stat -c %s "$1") / MiB))
	for i in $(seq 0 $((n - 1))); do
		cmp -s -n $MiB -i $((i * MiB)):$((i * MiB)) "$1" "$2" || list="$list $i"
	done
	echo "device changed: $(cmp "$1" "$2" | sed 's/.*differ: //'); MiB changed:$list"
}
GOOD=$tmp/good.raw
head -c 1000000 /dev/urandom >"$GOOD"
# dataimg IMG: a v3 64 KiB image with data in its first clusters; prints the path.
dataimg() {
	rm -f "$1"
	qemu-img create -q -f qcow2 "$1" 4M
	qio "$1" 'write -P 0x61 0 262144' 'write -P 0x62 3145728 65536'
}
# bigimg IMG: a v3 64 KiB image of 12 MiB with data in each 4 MiB, so a bad
# table entry for 10 MiB is met only after two chunks were copied.
bigimg() {
	rm -f "$1"
	qemu-img create -q -f qcow2 "$1" 12M
	qio "$1" 'write -P 0x63 0 262144' 'write -P 0x64 5M 64k' 'write -P 0x65 10M 128k'
}
l2_of_first() { # the file offset of the L2 table for virtual cluster 0
	echo $(($(u64_at "$1" "$(u64_at "$1" 40)") & 0x00fffffffffffe00))
}

expect 'a qcow2 with a backing file is refused ("backing file") and nothing is written' '
	dataimg "$tmp/bbase.qcow2"
	rm -f "$tmp/over.qcow2"
	qemu-img create -q -f qcow2 -b "$tmp/bbase.qcow2" -F qcow2 "$tmp/over.qcow2"
	refuse "$tmp/over.qcow2" "backing file"'

expect 'an encrypted qcow2 (LUKS, and legacy AES) is refused ("encrypted") and nothing is written' '
	luks_qcow2 "$tmp/enc.qcow2"
	refuse "$tmp/enc.qcow2" "encrypt"
	rm -f "$tmp/aes.qcow2"
	qemu-img create -q -f qcow2 --object secret,id=s0,data=abc \
		-o encrypt.format=aes,encrypt.key-secret=s0 "$tmp/aes.qcow2" 4M
	refuse "$tmp/aes.qcow2" "encrypt"'

expect 'a qcow2 with an external data file is refused ("data file") and nothing is written' '
	rm -f "$tmp/ext.qcow2" "$tmp/ext-data.raw"
	qemu-img create -q -f qcow2 -o data_file="$tmp/ext-data.raw" "$tmp/ext.qcow2" 4M
	refuse "$tmp/ext.qcow2" "data file"'

expect 'the corrupt bit (incompatible bit 1) is refused ("corrupt") and nothing is written' '
	dataimg "$tmp/corrupt.qcow2"
	put_u64 "$tmp/corrupt.qcow2" 72 $(($(u64_at "$tmp/corrupt.qcow2" 72) | 2))
	refuse "$tmp/corrupt.qcow2" "corrupt"'

expect 'an unknown incompatible bit 20 is refused, the message naming bit 20, and nothing is written' '
	dataimg "$tmp/bit20.qcow2"
	put_u64 "$tmp/bit20.qcow2" 72 $(($(u64_at "$tmp/bit20.qcow2" 72) | (1 << 20)))
	refuse "$tmp/bit20.qcow2" "(feature|incompatible).*\b20\b"'

expect 'a qcow version 1 image is refused ("version 1") and nothing is written' '
	rm -f "$tmp/v1.qcow"
	qemu-img create -q -f qcow "$tmp/v1.qcow" 4M
	qemu-io -f qcow -c "write -P 0x71 0 65536" "$tmp/v1.qcow" >/dev/null
	refuse "$tmp/v1.qcow" "version 1"'

expect 'a qcow2 cut in half is refused (beyond the end of the file) and nothing is written' '
	bigimg "$tmp/half.qcow2"
	truncate -s $(($(stat -c %s "$tmp/half.qcow2") / 2)) "$tmp/half.qcow2"
	refuse "$tmp/half.qcow2" "end of the file|truncat"'

expect 'an L1 table offset beyond the end of the file is refused ("L1") and nothing is written' '
	dataimg "$tmp/l1.qcow2"
	put_u64 "$tmp/l1.qcow2" 40 $(((($(stat -c %s "$tmp/l1.qcow2") >> 16) + 16) << 16))
	refuse "$tmp/l1.qcow2" "L1.*(beyond|end of)"'

expect 'an L2 table offset beyond the end of the file (L1 entry patched) is refused ("L2") and nothing is written' '
	rm -f "$tmp/l2.qcow2"
	qemu-img create -q -f qcow2 -o cluster_size=4096 "$tmp/l2.qcow2" 12M
	qio "$tmp/l2.qcow2" "write -P 0x66 0 1M" "write -P 0x67 10M 64k"
	l1=$(u64_at "$tmp/l2.qcow2" 40)
	# 4 KiB clusters: an L2 table maps 2 MiB, so L1 entry 5 is for 10 MiB.
	put_u64 "$tmp/l2.qcow2" $((l1 + 5 * 8)) $(((1 << 63) | (($(stat -c %s "$tmp/l2.qcow2") >> 12) + 16) << 12))
	refuse "$tmp/l2.qcow2" "L2.*(beyond|end of)"'

expect 'a cluster offset beyond the end of the file (L2 entry patched) is refused and nothing is written' '
	bigimg "$tmp/cl.qcow2"
	cb=$(u32_at "$tmp/cl.qcow2" 20); [ "$cb" = 16 ]
	l2=$(l2_of_first "$tmp/cl.qcow2")
	# L2 entry 160 is the cluster at 10 MiB.
	put_u64 "$tmp/cl.qcow2" $((l2 + 160 * 8)) $(((1 << 63) | (($(stat -c %s "$tmp/cl.qcow2") >> cb) + 16) << cb))
	refuse "$tmp/cl.qcow2" "(cluster|data).*(beyond|end of)"'

expect 'a virtual size of 2^60 is refused ("absurd" or "too small") and nothing is written' '
	dataimg "$tmp/huge.qcow2"
	put_u64 "$tmp/huge.qcow2" 24 $((1 << 60))
	refuse "$tmp/huge.qcow2" "absurd|too small"'

# The same images, compressed (reusing those built above).
expect 'header refusals hold inside a gzip, xz or zstd file: backing file, bit 20, absurd size, L1 beyond the end' '
	for k in gz xz zst; do
		refuse "$(packed "$tmp/over.qcow2" $k)" "backing file"
		refuse "$(packed "$tmp/bit20.qcow2" $k)" "(feature|incompatible).*\b20\b"
		refuse "$(packed "$tmp/huge.qcow2" $k)" "absurd|too small"
		refuse "$(packed "$tmp/l1.qcow2" $k)" "L1.*(beyond|end of)"
	done'

expect 'table refusals hold inside a gzip, xz or zstd file: L2 table and cluster beyond the end, nothing written' '
	for k in gz xz zst; do
		refuse "$(packed "$tmp/l2.qcow2" $k)" "L2.*(beyond|end of)"
		refuse "$(packed "$tmp/cl.qcow2" $k)" "(cluster|data).*(beyond|end of)"
	done'

expect 'a gzip, xz or zstd file cut short is refused ("ends", "corrupt") and nothing is written' '
	for k in gz xz zst; do
		f=$(packed "$tmp/r-$k.raw" $k)
		head -c $(($(stat -c %s "$f") / 2)) "$f" >"$tmp/cut.$k"
		refuse "$tmp/cut.$k" "end|truncat|corrupt"
		f=$(packed "$tmp/c-$k-b.qcow2" $k)
		head -c $(($(stat -c %s "$f") * 3 / 4)) "$f" >"$tmp/cutq.$k"
		refuse "$tmp/cutq.$k" "end|truncat|corrupt"
	done'

# A stream corrupt in its middle may be found only while copying (xz and zstd
# decode as they write): then the old image is gone, but nothing may claim
# the new one.
expect 'a gzip, xz or zstd file corrupt in the middle fails with exit 7 and leaves no header claiming the image' '
	for k in gz xz zst; do
		f=$(packed "$tmp/r-$k.raw" $k); cp "$f" "$tmp/bad.$k"
		n=$(stat -c %s "$f")
		flip_byte "$tmp/bad.$k" $((n * 3 / 4))
		d=$(new_dev cdev $((16 * MiB)))
		run_imgdev provision "$d" "$tmp/bad.$k" --no-map
		echo "# bad.$k: exit $rc, stderr [$err]"
		assert_rc 7; assert_contains "$err" corrupt
		case "$err" in *Sanitizer*|*"runtime error"*) exit 1 ;; esac
		run_imgdev verify "$d"; assert_rc 4
		[ "$(hex_at "$d" 10 32)" != "$(sha "$tmp/bad.$k")" ] || { echo "header names bad.$k"; exit 1; }
	done'

finish
