#!/usr/bin/env bash
# Host tests of provision and verify through the imgdev binary, with --no-map
# (no device-mapper on the host): the sector 0 layout and commit record, the
# payload byte for byte (odd sizes, sparse images, zero runs over random
# bytes), matched/rewritten, text and JSON output, progress, verify, and the
# refusals that must write nothing; on plain files and, as root, on loop
# devices (those cases skip otherwise).
. "$(dirname "$0")/../lib.sh"

tmp=$(mktemp -d /var/tmp/imgdev-prov.XXXXXX)
# Images on tmpfs too, where mapping a hole in would allocate it.
shm=$(mktemp -d /dev/shm/imgdev-prov.XXXXXX 2>/dev/null || true)
cleanup() {
	detach_loops_under "$tmp"
	umount "$tmp/ramfs" 2>/dev/null
	rm -rf "$tmp" ${shm:+"$shm"}
}
trap cleanup EXIT

MAGIC=263dbe52ba576702
RECMAGIC=$(printf IMGDEVCR | od -An -tx1 | tr -d ' \n')

rand() { # rand FILE SIZE: a file of pseudo-random bytes
	head -c "$2" /dev/urandom >"$1"
}
# new_disk NAME SIZE: a device file of random bytes; prints its path. Drawn
# again while blkid finds a signature in them (random bytes carry a 2-byte
# magic such as HFS+'s at byte 1024 now and then, which provision would
# rightly refuse to overwrite).
new_disk() {
	rand "$tmp/$1" "$2"
	while blkid -p "$tmp/$1" >/dev/null 2>&1; do rand "$tmp/$1" "$2"; done
	echo "$tmp/$1"
}
be64() { printf '%016x' "$1"; }
# state DEV: a checksum of the whole device plus its mtime, to see "nothing written".
state() { echo "$(sha "$1") $(stat -c %s.%Y.%y "$1")"; }

# mixed IMAGE: data with zero runs in the middle, a zero 64 KiB block but for
# its last byte, and a zero tail that ends mid-sector (728758 bytes).
mixed() {
	{
		head -c 70000 /dev/urandom; head -c 200000 /dev/zero; printf '\001'
		head -c 196608 /dev/zero; head -c 65536 /dev/urandom
		head -c 65535 /dev/zero; printf '\002'; head -c 131077 /dev/zero
	} >"$1"
}
# holey IMAGE: 13 MiB + 5000 bytes with a whole chunk of data, holes of 4 KiB
# and 60 KiB between runs, runs that start and end mid-page, one across a
# chunk boundary, written zeros, and a short last chunk.
holey() {
	local r
	truncate -s $((13 * 1048576 + 5000)) "$1"
	for r in 0:4194304 4198400:61440 4263936:1000000 5300000:3000 8380416:12288 \
		9437184:3145728 12591104:4096 13635584:4000; do
		head -c "${r#*:}" /dev/urandom |
			dd of="$1" bs=1M seek="${r%:*}" oflag=seek_bytes conv=notrunc status=none
	done
	head -c 200000 /dev/zero | dd of="$1" bs=1M seek=10000000 oflag=seek_bytes conv=notrunc status=none
}
# sparse IMAGE SIZE: a sparse file with a few random writes, some unaligned.
sparse() {
	truncate -s "$2" "$1"
	for off in 0 70001 1048576 3000000 $(($2 - 100)); do
		head -c 4000 /dev/urandom | dd of="$1" bs=1 seek="$off" conv=notrunc status=none
	done
	truncate -s "$2" "$1"
}

expect 'provision --no-map writes magic, version, image hash and a complete commit record in sector 0' '
	rand "$tmp/img1" 200000
	d=$(new_disk d1 1048576)
	t0=$(date +%s)
	run_imgdev provision "$d" "$tmp/img1" --no-map; assert_rc 0
	t1=$(date +%s)
	assert_eq "$out" written; assert_eq "$err" ""
	h=$(sha "$tmp/img1")
	assert_eq "$(hex_at "$d" 0 8)" "$MAGIC" magic
	assert_eq "$(hex_at "$d" 8 2)" 0001 version
	assert_eq "$(hex_at "$d" 10 32)" "$h" "image hash"
	assert_eq "$(hex_at "$d" 42 22)" "$(printf "%044d" 0)" "bytes 42..63"
	assert_eq "$(hex_at "$d" 64 8)" "$RECMAGIC" "record magic"
	assert_eq "$(hex_at "$d" 72 2)" 0001 "record version"
	assert_eq "$(hex_at "$d" 74 2)" 0002 "state complete"
	assert_eq "$(hex_at "$d" 76 4)" 00010000 "block size"
	assert_eq "$(hex_at "$d" 80 8)" "$(be64 512)" "data offset"
	assert_eq "$(hex_at "$d" 88 8)" "$(be64 200000)" "image size"
	assert_eq "$(hex_at "$d" 128 32)" "$h" "target hash"
	ct=$(u64_at "$d" 160)
	[ "$ct" -ge "$t0" ] && [ "$ct" -le "$t1" ] || { echo "commit time $ct not in [$t0, $t1]"; exit 1; }
	assert_eq "$(hex_at "$d" 480 32)" "$(head -c 480 "$d" | tail -c 416 | sha256sum | cut -c1-64)" "record checksum"
	assert_eq "$(stat -c %s "$d")" 1048576 "device size"
	payload_is "$d" "$tmp/img1"'

expect 'provision --json prints one object: written, null mapped_path, hashes, sizes, resumed_at 0, zeroing, layout, seconds' '
	rand "$tmp/img2" 300001
	d=$(new_disk d2 $(room 300001))
	run_imgdev provision "$d" "$tmp/img2" --no-map --json; assert_rc 0; assert_eq "$err" ""
	assert_eq "$(printf "%s\n" "$out" | head -n 1)" "{"
	assert_eq "$(printf "%s\n" "$out" | tail -n 1)" "}"
	assert_eq "$(printf "%s\n" "$out" | grep -c "^ *\"[a-z_]*\":")" 13 "number of keys"
	assert_eq "$(jfield written <<<"$out")" true
	assert_eq "$(jfield mapped_path <<<"$out")" null
	assert_eq "$(jfield image_hash <<<"$out")" "sha256:$(sha "$tmp/img2")"
	assert_eq "$(jfield content_hash <<<"$out")" "sha256:$(hex_at "$d" 96 32)"
	assert_eq "$(jfield image_size <<<"$out")" 300001
	w=$(jfield bytes_written <<<"$out"); z=$(jfield bytes_zeroed <<<"$out")
	[ "$w" -gt 0 ] || { echo "bytes_written $w"; exit 1; }
	assert_eq "$((w + z))" 300001 "bytes_written + bytes_zeroed"
	assert_eq "$(jfield resumed_at <<<"$out")" 0 "resumed_at of a file"
	assert_eq "$(jfield zeroing <<<"$out")" none "zeroing of random bytes"
	assert_eq "$(jfield layout <<<"$out")" virtlet "the default layout on a file"
	assert_eq "$(jfield data_offset <<<"$out")" 512
	assert_eq "$(jfield direct_io <<<"$out")" false "O_DIRECT on a file"
	s=$(jfield seconds <<<"$out")
	[[ $s =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] || { echo "seconds [$s]"; exit 1; }
	payload_is "$d" "$tmp/img2"'

expect 'provision of the same image again says matched and writes nothing' '
	rand "$tmp/img3" 500000
	d=$(new_disk d3 1048576)
	run_imgdev provision "$d" "$tmp/img3" --no-map; assert_eq "$out" written
	before=$(state "$d"); ct=$(hex_at "$d" 160 8)
	sleep 1.1
	run_imgdev provision "$d" "$tmp/img3" --no-map; assert_rc 0
	assert_eq "$out" matched; assert_eq "$err" ""
	assert_eq "$(state "$d")" "$before" "device checksum and mtime"
	assert_eq "$(hex_at "$d" 160 8)" "$ct" "commit time"
	run_imgdev provision "$d" "$tmp/img3" --no-map --json; assert_rc 0
	assert_eq "$(jfield written <<<"$out")" false
	assert_eq "$(jfield bytes_written <<<"$out")" 0
	assert_eq "$(jfield bytes_zeroed <<<"$out")" 0
	assert_eq "$(jfield zeroing <<<"$out")" none
	assert_eq "$(jfield image_hash <<<"$out")" "sha256:$(sha "$tmp/img3")"
	assert_eq "$(jfield content_hash <<<"$out")" "sha256:$(hex_at "$d" 96 32)"
	assert_eq "$(jfield image_size <<<"$out")" 500000
	assert_eq "$(state "$d")" "$before" "device checksum and mtime after --json"'

expect 'provision of another image rewrites header and payload: larger, smaller, same size' '
	rand "$tmp/img4a" 400000; mixed "$tmp/img4b"; rand "$tmp/img4c" 1000; rand "$tmp/img4d" 400000
	d=$(new_disk d4 1048576)
	for i in img4a img4b img4c img4a img4d; do
		run_imgdev provision "$d" "$tmp/$i" --no-map; assert_rc 0; assert_eq "$out" written "$i"
		payload_is "$d" "$tmp/$i"
		assert_eq "$(hex_at "$d" 10 32)" "$(sha "$tmp/$i")" "image hash of $i"
		assert_eq "$(u64_at "$d" 88)" "$(stat -c %s "$tmp/$i")" "image size of $i"
		run_imgdev verify "$d"; assert_rc 0; assert_eq "$out" ok
	done'

expect 'provision --digest records that hash, matches it next time, and a file hash then differs' '
	rand "$tmp/img5" 70000
	dg=$(printf digest5 | sha256sum | cut -c1-64)
	d=$(new_disk d5 1048576)
	run_imgdev provision "$d" "$tmp/img5" --no-map --digest "sha256:$dg" --json; assert_rc 0
	assert_eq "$(jfield image_hash <<<"$out")" "sha256:$dg"
	assert_eq "$(hex_at "$d" 10 32)" "$dg"; assert_eq "$(hex_at "$d" 128 32)" "$dg"
	payload_is "$d" "$tmp/img5"
	before=$(state "$d"); sleep 1.1
	run_imgdev provision "$d" "$tmp/img5" --no-map --digest "sha256:$dg"; assert_rc 0
	assert_eq "$out" matched; assert_eq "$(state "$d")" "$before"
	run_imgdev provision "$d" "$tmp/img5" --no-map; assert_rc 0; assert_eq "$out" written
	assert_eq "$(hex_at "$d" 10 32)" "$(sha "$tmp/img5")"
	run_imgdev verify "$d"; assert_rc 0'

expect 'a header from ensure naming the same image is not matched: provision writes the payload' '
	rand "$tmp/img6" 100000
	d=$(new_disk d6 1048576)
	run_imgdev ensure "$d" "$(sha "$tmp/img6")"; assert_rc 0
	run_imgdev provision "$d" "$tmp/img6" --no-map; assert_rc 0; assert_eq "$out" written
	payload_is "$d" "$tmp/img6"
	assert_eq "$(hex_at "$d" 64 8)" "$RECMAGIC"; assert_eq "$(hex_at "$d" 74 2)" 0002
	run_imgdev verify "$d"; assert_rc 0'

expect 'verify says ok after provision, in text and JSON, and writes nothing' '
	mixed "$tmp/img7"
	d=$(new_disk d7 1048576)
	run_imgdev provision "$d" "$tmp/img7" --no-map
	before=$(state "$d")
	run_imgdev verify "$d"; assert_rc 0; assert_eq "$out" ok; assert_eq "$err" ""
	run_imgdev verify "$d" --json; assert_rc 0
	assert_eq "$(jfield ok <<<"$out")" true
	assert_eq "$(jfield image_hash <<<"$out")" "sha256:$(sha "$tmp/img7")"
	assert_eq "$(jfield content_hash <<<"$out")" "sha256:$(hex_at "$d" 96 32)"
	assert_eq "$(state "$d")" "$before"'

expect 'verify fails with "does not match" (exit 3) after one payload byte flips (first, middle, last)' '
	mixed "$tmp/img8"; n=$(stat -c %s "$tmp/img8")
	d=$(new_disk d8 1048576)
	for off in 0 100000 $((n - 1)); do
		run_imgdev provision "$d" "$tmp/img8" --no-map; assert_rc 0
		b=$(hex_at "$d" $((512 + off)) 1)
		printf "\\x$(printf %02x $((16#$b ^ 0x10)))" |
			dd of="$d" bs=1 seek=$((512 + off)) conv=notrunc status=none
		run_imgdev verify "$d"; assert_rc 3; assert_contains "$err" "does not match"
		run_imgdev verify "$d" --json; assert_rc 3; assert_eq "$(jfield ok <<<"$out")" false
	done'

expect 'verify on a header from ensure fails with "no commit record" (exit 4)' '
	d=$(new_disk d9 65536)
	run_imgdev ensure "$d" "$(printf x | sha256sum | cut -c1-64)"
	run_imgdev verify "$d"; assert_rc 4; assert_contains "$err" "no commit record"
	run_imgdev verify "$d" --json; assert_rc 4; assert_eq "$(jfield ok <<<"$out")" false'

expect 'a commit record with a bad checksum is not trusted: verify fails and provision rewrites' '
	rand "$tmp/img10" 100000
	d=$(new_disk d10 1048576)
	run_imgdev provision "$d" "$tmp/img10" --no-map
	printf "\x01" | dd of="$d" bs=1 seek=300 conv=notrunc status=none
	run_imgdev verify "$d"; assert_rc 3; assert_contains "$err" "damaged"
	run_imgdev provision "$d" "$tmp/img10" --no-map; assert_rc 0; assert_eq "$out" written
	assert_eq "$(hex_at "$d" 300 1)" 00
	run_imgdev verify "$d"; assert_rc 0'

expect 'an image one byte too big for the device fails with "too small" (exit 8) and writes nothing' '
	for n in 1 511 512 513 1000 65537; do
		rand "$tmp/img11" "$n"
		d=$(new_disk d11 $(($(room "$n") - 1)))
		before=$(state "$d")
		run_imgdev provision "$d" "$tmp/img11" --no-map; assert_rc 8
		assert_contains "$err" "too small"; assert_eq "$out" ""
		assert_eq "$(state "$d")" "$before" "device after size $n"
	done
	rand "$tmp/img11" 300000
	d=$(new_disk d11b 1048576)
	run_imgdev provision "$d" "$tmp/img11" --no-map
	rand "$tmp/img11big" 2000000
	before=$(state "$d")
	run_imgdev provision "$d" "$tmp/img11big" --no-map; assert_rc 8; assert_contains "$err" "too small"
	assert_eq "$(state "$d")" "$before" "provisioned device"
	run_imgdev verify "$d"; assert_rc 0'

expect 'odd sizes (1, 511, 512, 513, 64K-1, 64K, 64K+1, 3*64K+777, 4M+1) fit exactly and copy byte for byte' '
	for n in 1 511 512 513 65535 65536 65537 197385 4194305; do
		rand "$tmp/odd" "$n"
		d=$(new_disk odd-dev "$(room "$n")")
		run_imgdev provision "$d" "$tmp/odd" --no-map; assert_rc 0 ; assert_eq "$out" written "size $n"
		payload_is "$d" "$tmp/odd"
		assert_eq "$(u64_at "$d" 88)" "$n" "recorded size"
		assert_eq "$(stat -c %s "$d")" "$(room "$n")" "device size"
		run_imgdev verify "$d"; assert_rc 0
		run_imgdev provision "$d" "$tmp/odd" --no-map; assert_eq "$out" matched "size $n again"
	done'

expect 'zero runs inside data read back as zeros over a random-filled device; bytes_zeroed > 0, by write-zeroes (fallocate), said at -v' '
	mixed "$tmp/img13"; n=$(stat -c %s "$tmp/img13")
	d=$(new_disk d13 "$(room "$n")")
	run_imgdev -v provision "$d" "$tmp/img13" --no-map --json; assert_rc 0
	assert_eq "$(jfield zeroing <<<"$out")" write-zeroes
	assert_contains "$err" "zero ranges ("
	assert_contains "$err" "): write-zeroes (fallocate"
	z=$(jfield bytes_zeroed <<<"$out"); w=$(jfield bytes_written <<<"$out")
	[ "$z" -gt 0 ] || { echo "bytes_zeroed $z"; exit 1; }
	assert_eq "$((w + z))" "$n" "bytes_written + bytes_zeroed"
	payload_is "$d" "$tmp/img13"
	assert_eq "$(hex_at "$d" $((512 + 70000 + 200000 + 1)) 16)" "$(printf "%032d" 0)"
	run_imgdev verify "$d"; assert_rc 0'

expect 'sparse images (holes and a few random writes) copy byte for byte over random bytes' '
	for n in 5242880 5243001; do
		sparse "$tmp/sp" "$n"
		d=$(new_disk sp-dev "$(room "$n")")
		run_imgdev provision "$d" "$tmp/sp" --no-map --json; assert_rc 0
		z=$(jfield bytes_zeroed <<<"$out")
		[ "$z" -gt 0 ] || { echo "bytes_zeroed $z"; exit 1; }
		assert_eq "$(jfield image_hash <<<"$out")" "sha256:$(sha "$tmp/sp")"
		payload_is "$d" "$tmp/sp"
		run_imgdev verify "$d"; assert_rc 0
		run_imgdev provision "$d" "$tmp/sp" --no-map; assert_eq "$out" matched "size $n again"
	done
	truncate -s 3000000 "$tmp/allhole"
	d=$(new_disk hole-dev "$(room 3000000)")
	run_imgdev provision "$d" "$tmp/allhole" --no-map; assert_rc 0
	payload_is "$d" "$tmp/allhole"
	assert_eq "$(hex_at "$d" 10 32)" "$(sha "$tmp/allhole")"
	run_imgdev verify "$d"; assert_rc 0
	run_imgdev provision "$d" "$tmp/allhole" --no-map; assert_eq "$out" matched'

expect '--threads 1 and --threads 3 write the same bytes and the same content hash' '
	mixed "$tmp/img15a"; cat "$tmp/img15a" "$tmp/img15a" "$tmp/img15a" >"$tmp/img15"
	rand "$tmp/img15b" 4096; cat "$tmp/img15b" >>"$tmp/img15"
	d1=$(new_disk d15a 4194304); d2=$(new_disk d15b 4194304)
	run_imgdev provision "$d1" "$tmp/img15" --no-map --threads 1 --json; assert_rc 0
	c1=$(jfield content_hash <<<"$out")
	run_imgdev provision "$d2" "$tmp/img15" --no-map --threads 3 --json; assert_rc 0
	assert_eq "$(jfield content_hash <<<"$out")" "$c1"
	payload_is "$d1" "$tmp/img15"; payload_is "$d2" "$tmp/img15"
	assert_eq "$(head -c 160 "$d1" | sha256sum)" "$(head -c 160 "$d2" | sha256sum)" "sector 0 up to the time"'

expect '--progress=json writes JSON lines on stderr, the last with bytes_done == bytes_total' '
	{ head -c 8M /dev/urandom; head -c 8M /dev/zero; head -c 3333 /dev/urandom; } >"$tmp/img16"
	n=$(stat -c %s "$tmp/img16")
	d=$(new_disk d16 $((20 << 20)))
	run_imgdev provision "$d" "$tmp/img16" --no-map --progress=json; assert_rc 0
	assert_eq "$out" written
	[ -n "$err" ] || { echo "no progress lines"; exit 1; }
	while IFS= read -r line; do
		[[ $line =~ ^\{.*\}$ ]] || { echo "not a JSON line: [$line]"; exit 1; }
		for k in bytes_done bytes_total bytes_per_second; do
			v=$(jfield "$k" <<<"$line")
			[[ $v =~ ^[0-9]+$ ]] || { echo "$k is [$v] in [$line]"; exit 1; }
		done
		assert_eq "$(jfield bytes_total <<<"$line")" "$n" "bytes_total"
		[ "$(jfield bytes_done <<<"$line")" -le "$n" ]
	done <<<"$err"
	last=$(printf "%s\n" "$err" | tail -n 1)
	assert_eq "$(jfield bytes_done <<<"$last")" "$n" "last bytes_done"
	payload_is "$d" "$tmp/img16"'

expect 'stderr is empty on success without --progress, and with --progress when not a terminal' '
	rand "$tmp/img17" 3000000
	d=$(new_disk d17 4194304)
	run_imgdev provision "$d" "$tmp/img17" --no-map; assert_rc 0; assert_eq "$err" ""
	rand "$tmp/img17" 3000000
	run_imgdev provision "$d" "$tmp/img17" --no-map --progress; assert_rc 0
	assert_eq "$out" written; assert_eq "$err" ""
	run_imgdev provision "$d" "$tmp/img17" --no-map --progress --json; assert_rc 0
	assert_eq "$(jfield written <<<"$out")" false; assert_eq "$err" ""
	payload_is "$d" "$tmp/img17"'

expect 'a missing, empty or directory image fails with exit 7 and writes nothing' '
	d=$(new_disk d18 1048576)
	rand "$tmp/img18" 1000; run_imgdev provision "$d" "$tmp/img18" --no-map
	before=$(state "$d")
	run_imgdev provision "$d" "$tmp/no-such-image" --no-map; assert_rc 7
	assert_contains "$err" "$tmp/no-such-image"; assert_eq "$out" ""
	: >"$tmp/empty"
	run_imgdev provision "$d" "$tmp/empty" --no-map; assert_rc 7; assert_contains "$err" "empty"
	mkdir -p "$tmp/imgdir"
	run_imgdev provision "$d" "$tmp/imgdir" --no-map; assert_rc 7; assert_contains "$err" "$tmp/imgdir"
	assert_eq "$(state "$d")" "$before"
	run_imgdev verify "$d"; assert_rc 0'

expect 'usage errors exit 2 and write nothing: bad --digest, no --name, unknown option, missing args' '
	d=$(new_disk d19 1048576); rand "$tmp/img19" 1000
	before=$(state "$d")
	for dg in abc "md5:$(sha "$tmp/img19")" "sha256:$(sha "$tmp/img19" | cut -c1-63)" "sha256:$(sha "$tmp/img19")0" ""; do
		run_imgdev provision "$d" "$tmp/img19" --no-map --digest "$dg"; assert_rc 2
	done
	run_imgdev provision "$d" "$tmp/img19"; assert_rc 2; assert_contains "$err" "--name"
	run_imgdev provision "$d" "$tmp/img19" --no-map --bogus; assert_rc 2; assert_contains "$err" "--bogus"
	run_imgdev provision "$d" --no-map; assert_rc 2
	run_imgdev provision "$d" "$tmp/img19" extra --no-map; assert_rc 2
	run_imgdev provision "$d" "$tmp/img19" --no-map --progress=yaml; assert_rc 2
	run_imgdev verify; assert_rc 2
	run_imgdev verify "$d" --bogus; assert_rc 2
	assert_eq "$(state "$d")" "$before"'

expect 'a regular file as device with the dm backend fails with exit 1 and writes nothing' '
	d=$(new_disk d20 1048576); rand "$tmp/img20" 1000
	before=$(state "$d")
	run_imgdev provision "$d" "$tmp/img20" --name virtlet-dm-test20 --backend dm; assert_rc 1
	case "$err" in *"not a block device"*|*--no-map*) ;; *) echo "stderr [$err]"; exit 1 ;; esac
	assert_eq "$(state "$d")" "$before"'

expect 'provision on a missing device, a directory or a character device fails with exit 1; verify of a blank one with 4' '
	rand "$tmp/img21" 1000
	run_imgdev provision "$tmp/no-such-dev" "$tmp/img21" --no-map; assert_rc 1
	assert_contains "$err" "$tmp/no-such-dev"; [ ! -e "$tmp/no-such-dev" ]
	run_imgdev provision "$tmp" "$tmp/img21" --no-map; assert_rc 1
	run_imgdev provision /dev/null "$tmp/img21" --no-map; assert_rc 1
	run_imgdev verify "$tmp/no-such-dev"; assert_rc 1
	run_imgdev verify "$(new_disk d21 4096)"; assert_rc 4; assert_contains "$err" "no image header"'

expect 'header --json after provision shows a complete commit with the sizes and hashes' '
	mixed "$tmp/img22"; n=$(stat -c %s "$tmp/img22")
	d=$(new_disk d22 1048576)
	run_imgdev provision "$d" "$tmp/img22" --no-map --json; c=$(jfield content_hash <<<"$out")
	run_imgdev header "$d" --json; assert_rc 0
	assert_eq "$(jfield present <<<"$out")" true
	assert_eq "$(jfield commit <<<"$out")" complete
	assert_eq "$(jfield image_hash <<<"$out")" "sha256:$(sha "$tmp/img22")"
	assert_eq "$(jfield image_size <<<"$out")" "$n"
	assert_eq "$(jfield content_hash <<<"$out")" "$c"
	assert_eq "$(jfield data_offset <<<"$out")" 512'

expect '--help names provision and verify; provision --help gives its usage' '
	run_imgdev --help; assert_rc 0
	assert_contains "$out" "provision DEVICE IMAGE --name NAME"; assert_contains "$out" "verify DEVICE"
	run_imgdev provision --help; assert_rc 0
	assert_contains "$out" "provision DEVICE IMAGE"
	for o in --name --digest --no-map --progress --json --threads --no-mmap; do assert_contains "$out" "$o"; done'

expect 'with --digest the image is mapped, or read with --no-mmap: the same payload and content hash, and its holes stay holes (ext4 and tmpfs)' '
	for dir in "$tmp" ${shm:+"$shm"}; do
		img="$dir/holey"; holey "$img"; sync "$img"
		n=$(stat -c %s "$img"); blocks=$(stat -c %b "$img"); dg=$(sha "$img")
		for mode in --no-mmap ""; do
			d=$(new_disk "holey-dev$mode" "$(room "$n")")
			IMGDEV_WRAP=$(madvise_trace "$tmp/trace") \
				run_imgdev provision "$d" "$img" --no-map --json --digest "sha256:$dg" $mode
			assert_rc 0
			if [ -n "$mode" ]; then
				read_hash=$(jfield content_hash <<<"$out")
				assert_eq "$(populates "$tmp/trace")" 0 "no mapping with --no-mmap"
			else	# chunks 0-2 are whole: mapped; the short last one is read
				assert_eq "$(populates "$tmp/trace")" 7 "data runs faulted in, $dir"
			fi
			assert_eq "$(jfield content_hash <<<"$out")" "$read_hash" "content hash ${mode:-mapped}, $dir"
			payload_is "$d" "$img"
			run_imgdev verify "$d"; assert_rc 0
		done
		assert_eq "$(stat -c %b "$img")" "$blocks" "blocks allocated to the image on $dir"
		rm -f "$img"
	done'

# spaced IMAGE: 512 MiB, a MiB of random data at the start of every other MiB.
spaced() {
	local i
	truncate -s 512M "$1"
	for i in $(seq 0 2 511); do
		head -c 1048576 /dev/urandom | dd of="$1" bs=1M seek="$i" conv=notrunc status=none
	done
}

expect 'an image truncated in mid-copy, all data or sparse, cut behind or ahead of the copy: exit 7 (1 when found by its size after the copy), a message naming the image, and the device left "writing"' '
	for shape in random:1:1 random:2:1 spaced:1:384 spaced:2:384; do
		IFS=: read -r kind threads cut_mib <<<"$shape"
		if [ "$kind" = random ]; then rand "$tmp/cut" $((192 * 1048576)); else spaced "$tmp/cut"; fi
		dg=$(sha "$tmp/cut"); d="$tmp/cut-dev"; rm -f "$d"; truncate -s $((513 * 1048576)) "$d"
		rm -f "$tmp/cut.err"	# else the wait below may see the progress of the last round
		# shellcheck disable=SC2086  # IMGDEV_WRAP is a command line
		${IMGDEV_WRAP:-} "$IMGDEV" provision "$d" "$tmp/cut" --no-map --digest "sha256:$dg" \
			--threads "$threads" --progress=json >"$tmp/cut.out" 2>"$tmp/cut.err" &
		pid=$!
		until grep -q bytes_done "$tmp/cut.err" || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
		truncate -s $((cut_mib * 1048576)) "$tmp/cut"
		rc=0; wait "$pid" || rc=$?
		err=$(grep -v bytes_done "$tmp/cut.err" || true)
		assert_contains "$err" "$tmp/cut"
		case "$err" in *"end of file"* | *"was truncated"*) assert_rc 7 ;;
			*"changed size"*) assert_rc 1 ;;
			*) echo "unexpected message: $err"; exit 1 ;; esac
		echo "$shape: exit $rc: $err"
		run_imgdev verify "$d"; assert_rc 4; assert_contains "$err" "writing"
	done'

if [ "$(id -u)" = 0 ] && losetup -f >/dev/null 2>&1; then
	# loopdev NAME SIZE [losetup options]: a loop device over a random file; prints it.
	loopdev() {
		local f l
		f=$(new_disk "$1" "$2")
		l=$(losetup -f --show "${@:3}" "$f") || return 1
		echo "$l"
	}
	# via_dev_at DEV IMAGE OFFSET [BLOCK]: read the payload at OFFSET back through the
	# device with O_DIRECT, in BLOCKs (512).
	via_dev_at() {
		local n b=${4:-512}
		n=$(stat -c %s "$2")
		dd if="$1" iflag=direct bs="$b" skip=$(($3 / b)) count=$(((n + b - 1) / b)) status=none |
			cmp -n "$n" - "$2" || { echo "O_DIRECT read of $1 differs"; return 1; }
	}
	# via_dev DEV IMAGE: the payload (Virtlet's layout), and read back with O_DIRECT too.
	via_dev() {
		payload_is "$1" "$2"
		via_dev_at "$1" "$2" 512
	}

	expect 'provision --no-map on a loop device: layout, payload in the backing file and through the device, then matched' '
		mixed "$tmp/limg1"; n=$(stat -c %s "$tmp/limg1")
		l=$(loopdev lback1 4194304)
		run_imgdev provision "$l" "$tmp/limg1" --no-map; assert_rc 0
		assert_eq "$out" written; assert_eq "$err" ""
		assert_eq "$(hex_at "$tmp/lback1" 0 10)" "${MAGIC}0001"
		assert_eq "$(hex_at "$tmp/lback1" 10 32)" "$(sha "$tmp/limg1")"
		assert_eq "$(hex_at "$tmp/lback1" 64 12)" "${RECMAGIC}00010002"
		assert_eq "$(hex_at "$tmp/lback1" 480 32)" "$(head -c 480 "$tmp/lback1" | tail -c 416 | sha256sum | cut -c1-64)"
		payload_is "$tmp/lback1" "$tmp/limg1"; via_dev "$l" "$tmp/limg1"
		run_imgdev verify "$l"; assert_rc 0; assert_eq "$out" ok
		before=$(sha "$tmp/lback1"); ct=$(hex_at "$tmp/lback1" 160 8); sleep 1.1
		run_imgdev provision "$l" "$tmp/limg1" --no-map; assert_rc 0; assert_eq "$out" matched
		assert_eq "$(sha "$tmp/lback1")" "$before"; assert_eq "$(hex_at "$l" 160 8)" "$ct"
		rand "$tmp/limg1b" 1234567
		run_imgdev provision "$l" "$tmp/limg1b" --no-map; assert_rc 0; assert_eq "$out" written
		via_dev "$l" "$tmp/limg1b"; payload_is "$tmp/lback1" "$tmp/limg1b"
		losetup -d "$l"'

	expect 'odd sizes on a loop device that fits each image exactly copy byte for byte' '
		for n in 1 511 513 65537 197385 4194305; do
			rand "$tmp/lodd" "$n"
			l=$(loopdev lodd-back "$(room "$n")")
			assert_eq "$(blockdev --getsize64 "$l")" "$(room "$n")"
			run_imgdev provision "$l" "$tmp/lodd" --no-map; assert_rc 0; assert_eq "$out" written "size $n"
			via_dev "$l" "$tmp/lodd"; payload_is "$tmp/lodd-back" "$tmp/lodd"
			run_imgdev verify "$l"; assert_rc 0
			losetup -d "$l"
		done'

	expect 'zero runs and holes on a loop device over random bytes read back as zeros; bytes_zeroed > 0' '
		mixed "$tmp/lz"; n=$(stat -c %s "$tmp/lz")
		l=$(loopdev lzback "$(room "$n")")
		run_imgdev provision "$l" "$tmp/lz" --no-map --json; assert_rc 0
		z=$(jfield bytes_zeroed <<<"$out"); [ "$z" -gt 0 ] || { echo "bytes_zeroed $z"; exit 1; }
		via_dev "$l" "$tmp/lz"; payload_is "$tmp/lzback" "$tmp/lz"
		run_imgdev verify "$l"; assert_rc 0
		losetup -d "$l"
		sparse "$tmp/lsp" 6000001
		l=$(loopdev lspback 8388608)
		run_imgdev provision "$l" "$tmp/lsp" --no-map --json; assert_rc 0
		z=$(jfield bytes_zeroed <<<"$out"); [ "$z" -gt 0 ] || { echo "bytes_zeroed $z"; exit 1; }
		via_dev "$l" "$tmp/lsp"; payload_is "$tmp/lspback" "$tmp/lsp"
		run_imgdev verify "$l"; assert_rc 0
		losetup -d "$l"'

	# zero_layout IMAGE: 24 MiB (six 4 MiB chunks) of data with one zero MiB in each
	# of the first four chunks, and [19,21) MiB split by the boundary of the last two.
	# Four writers take the first four chunks; whichever takes a fifth has zeroed,
	# so the device's way of zeroing is known before the split run comes up.
	zero_layout() {
		local z m=1048576
		head -c $((24 * m)) /dev/urandom >"$1"
		for z in 1:1 5:1 9:1 13:1 19:2; do
			head -c $((${z#*:} * m)) /dev/zero |
				dd of="$1" bs=1M seek="${z%:*}" conv=notrunc status=none
		done
	}
	# on_dev TRACE DEV WHAT: "LINE ARGS" for each call on DEV in the trace whose line has
	# WHAT ("pwrite64(", "fallocate(", "BLKZEROOUT,"), in order: ARGS are a pwrite64's
	# offset, or a fallocate's or BLKZEROOUT's offset and length.
	on_dev() {
		grep -n -F "<$2>" "$1" | grep -F "$3" |
			sed -E 's/^([0-9]+):.*pwrite64\(.*, ([0-9]+)(\)| <unfinished).*/\1 \2/;
				s/^([0-9]+):.*fallocate\(.*, ([0-9]+), ([0-9]+)(\)| <unfinished).*/\1 \2 \3/;
				s/^([0-9]+):.*BLKZEROOUT, \[([0-9]+), ([0-9]+)\].*/\1 \2 \3/'
	}

	expect 'on a loop device that zeroes by offload, held zero runs go out after the last data write, merged across chunks, before the commit' '
		zero_layout "$tmp/lh"; n=$(stat -c %s "$tmp/lh")
		l=$(loopdev lhback "$(room "$n")")
		IMGDEV_WRAP=$(strace_wrap "$tmp/ztrace" pwrite64,fallocate,ioctl) run_imgdev provision "$l" "$tmp/lh" --no-map --json
		assert_rc 0; assert_eq "$(jfield bytes_zeroed <<<"$out")" $((6 * 1048576)) bytes_zeroed
		via_dev "$l" "$tmp/lh"
		last_data=$(on_dev "$tmp/ztrace" "$l" "pwrite64(" | awk "\$2 >= 512 { l = \$1 } END { print l + 0 }")
		commit=$(on_dev "$tmp/ztrace" "$l" "pwrite64(" | awk "\$2 == 0 { l = \$1 } END { print l + 0 }")
		on_dev "$tmp/ztrace" "$l" "fallocate(" >"$tmp/zf"
		# [19,21) MiB as one request, from the payload offset 512.
		grep -q " $((19 * 1048576 + 512)) 2097152$" "$tmp/zf" ||
			{ echo "the run split by a chunk boundary was not sent merged:"; cat "$tmp/zf"; exit 1; }
		awk -v d="$last_data" -v c="$commit" "\$1 > d && \$1 < c { held++ } \$1 > c { late++ }
			END { exit !(held >= 1 && !late) }" "$tmp/zf" ||
			{ echo "zeroing not between the last data write (line $last_data) and the commit ($commit):"; cat "$tmp/zf"; exit 1; }
		grep -q " $((19 * 1048576 + 512)) " <(awk -v d="$last_data" "\$1 > d" "$tmp/zf") ||
			{ echo "the merged run was not sent after the data"; exit 1; }
		run_imgdev verify "$l"; assert_rc 0
		losetup -d "$l"'

	# Over a ramfs file, a loop device cannot zero by offload (ramfs has no
	# fallocate): imgdev then zeroes each run as it comes, by sending zeros.
	expect 'a loop device that cannot offload zeroing (over ramfs) gets each zero run written as zeros, as it comes' '
		mkdir "$tmp/ramfs" && mount -t ramfs none "$tmp/ramfs" || { echo "cannot mount ramfs"; exit 1; }
		for img in mixed zero_layout; do
			$img "$tmp/lr"; n=$(stat -c %s "$tmp/lr")
			rand "$tmp/ramfs/back" "$(room "$n")"
			l=$(losetup -f --show "$tmp/ramfs/back")
			assert_eq "$(cat "/sys/block/${l#/dev/}/queue/write_zeroes_max_bytes")" 0 "write-zeroes support"
			IMGDEV_WRAP=$(strace_wrap "$tmp/ztrace" pwrite64,fallocate,ioctl) run_imgdev provision "$l" "$tmp/lr" --no-map --json
			assert_rc 0
			z=$(jfield bytes_zeroed <<<"$out"); [ "$z" -gt 0 ] || { echo "bytes_zeroed $z"; exit 1; }
			via_dev "$l" "$tmp/lr"
			run_imgdev verify "$l"; assert_rc 0
			losetup -d "$l"
		done
		# The last image: its six runs (one per chunk, and [19,21) split in two), none merged.
		assert_eq "$(on_dev "$tmp/ztrace" "$l" "BLKZEROOUT," | wc -l)" 6 "BLKZEROOUT calls"
		umount "$tmp/ramfs"'

	expect 'a loop device with 4096-byte sectors: the aligned layout by default, through O_DIRECT, byte for byte; the Virtlet layout refused' '
		mixed "$tmp/l4k"
		n=$(stat -c %s "$tmp/l4k")
		l=$(loopdev l4kback $(room_aligned "$n") -b 4096)
		before=$(sha "$l")
		run_imgdev provision "$l" "$tmp/l4k" --no-map --layout virtlet; assert_rc 2
		assert_contains "$err" "4096-byte logical sectors" "use the aligned layout"
		assert_eq "$(sha "$l")" "$before" "the device after a refusal"
		run_imgdev -v provision "$l" "$tmp/l4k" --no-map --json; assert_rc 0
		assert_contains "$err" "aligned layout (header version 2), the payload from byte 1048576, the default"
		assert_eq "$(jfield layout <<<"$out")" aligned
		assert_eq "$(jfield data_offset <<<"$out")" 1048576
		assert_eq "$(jfield direct_io <<<"$out")" true "O_DIRECT in 4096-byte blocks"
		assert_eq "$(payload_offset "$l")" 1048576
		payload_is "$l" "$tmp/l4k"; payload_is "$tmp/l4kback" "$tmp/l4k"
		# Nothing but the header before the payload: the first MiB is zeros after byte 512.
		assert_eq "$(head -c 1048576 "$tmp/l4kback" | tail -c +513 | tr -d "\\0" | wc -c)" 0
		dd if="$l" iflag=direct bs=4096 skip=256 count=$(((n + 4095) / 4096)) status=none |
			cmp -n "$n" - "$tmp/l4k" || { echo "O_DIRECT read of $l differs"; exit 1; }
		run_imgdev verify "$l"; assert_rc 0
		run_imgdev provision "$l" "$tmp/l4k" --no-map; assert_rc 0; assert_eq "$out" matched
		run_imgdev provision "$l" "$tmp/l4k" --no-map --layout aligned; assert_rc 0
		assert_eq "$out" matched "asked for the layout it holds"
		run_imgdev header --json "$l"; assert_eq "$(jfield version <<<"$out")" 2
		assert_eq "$(jfield layout <<<"$out")" aligned
		losetup -d "$l"'

	expect 'sectors larger than 4096 bytes (8192, where the kernel takes them): the first sector all zeros after the header, the payload at 1 MiB' '
		mixed "$tmp/l8k"
		n=$(stat -c %s "$tmp/l8k")
		f=$(new_disk l8kback $(room_aligned "$n" 8192))
		head -c "$(stat -c %s "$f")" /dev/urandom | dd of="$f" conv=notrunc status=none
		l=$(losetup -f --show --sector-size 8192 "$f" 2>/dev/null) || { echo "(this kernel takes no 8192-byte sectors)"; exit 0; }
		run_imgdev provision "$l" "$tmp/l8k" --no-map --force --json; rc2=$rc; out2=$out
		losetup -d "$l"
		assert_eq "$rc2" 0; assert_eq "$(jfield layout <<<"$out2")" aligned
		assert_eq "$(head -c 1048576 "$f" | tail -c +513 | tr -d "\\0" | wc -c)" 0 "bytes 512 to 1 MiB"
		payload_is "$f" "$tmp/l8k"'

	expect 'the aligned layout on a 512-byte-sector loop device: written, matched, the Virtlet layout asked for rewrites it, and back' '
		mixed "$tmp/l512a"
		n=$(stat -c %s "$tmp/l512a")
		l=$(loopdev l512aback $(room_aligned "$n"))
		head -c 1048576 /dev/urandom | dd of="$l" oflag=direct bs=64k status=none
		run_imgdev provision "$l" "$tmp/l512a" --no-map --force --layout aligned --json; assert_rc 0
		assert_eq "$(jfield layout <<<"$out")" aligned; assert_eq "$(jfield direct_io <<<"$out")" true
		payload_is "$l" "$tmp/l512a"; via_dev_at "$l" "$tmp/l512a" 1048576
		assert_eq "$(head -c 1048576 "$tmp/l512aback" | tail -c +513 | tr -d "\\0" | wc -c)" 0 "the gap zeroed"
		run_imgdev provision "$l" "$tmp/l512a" --no-map; assert_eq "$out" matched "auto takes either layout"
		run_imgdev -v provision "$l" "$tmp/l512a" --no-map --layout virtlet; assert_rc 0
		assert_eq "$out" written; assert_contains "$err" "holds an image in the aligned layout; writing the virtlet one"
		assert_eq "$(payload_offset "$l")" 512; payload_is "$l" "$tmp/l512a"; via_dev "$l" "$tmp/l512a"
		run_imgdev verify "$l"; assert_rc 0
		run_imgdev provision "$l" "$tmp/l512a" --no-map --layout aligned; assert_eq "$out" written
		payload_is "$l" "$tmp/l512a"; run_imgdev verify "$l"; assert_rc 0
		losetup -d "$l"'

	expect 'verify through a loop device catches a flipped payload byte' '
		rand "$tmp/lv" 300000
		l=$(loopdev lvback 1048576)
		run_imgdev provision "$l" "$tmp/lv" --no-map; assert_rc 0
		run_imgdev verify "$l"; assert_rc 0
		dd if="$l" of="$tmp/sec" bs=512 skip=100 count=1 iflag=direct status=none
		printf "\\x$(printf %02x $((16#$(hex_at "$tmp/sec" 7 1) ^ 1)))" |
			dd of="$tmp/sec" bs=1 seek=7 conv=notrunc status=none
		dd if="$tmp/sec" of="$l" bs=512 seek=100 count=1 oflag=direct conv=notrunc status=none
		run_imgdev verify "$l"; assert_rc 3; assert_contains "$err" "does not match"
		losetup -d "$l"'

	expect 'with --digest on loop devices of 512- and 4096-byte sectors: the mapped image written (O_DIRECT, or buffered) byte for byte' '
		holey "$tmp/lholey"; n=$(stat -c %s "$tmp/lholey"); dg=$(sha "$tmp/lholey")
		for b in 512 4096; do
			# A whole number of sectors: the kernel cannot read a partial last one.
			sz=$((($(room "$n") + b - 1) / b * b))
			[ "$b" = 512 ] || sz=$(room_aligned "$n" "$b")
			l=$(loopdev "lholey-back$b" "$sz" -b "$b")
			run_imgdev provision "$l" "$tmp/lholey" --no-map --digest "sha256:$dg"; assert_rc 0
			assert_eq "$out" written "sector size $b"
			payload_is "$l" "$tmp/lholey"; payload_is "$tmp/lholey-back$b" "$tmp/lholey"
			if [ "$b" = 512 ]; then via_dev "$l" "$tmp/lholey"; else via_dev_at "$l" "$tmp/lholey" 1048576 4096; fi
			run_imgdev verify "$l"; assert_rc 0
			losetup -d "$l"
		done'

	expect 'an image too big for a loop device fails with "too small" and writes nothing' '
		rand "$tmp/lbig" 1048577
		l=$(loopdev lbigback 1049088)
		before=$(sha "$l")
		run_imgdev provision "$l" "$tmp/lbig" --no-map; assert_rc 8; assert_contains "$err" "too small"
		assert_eq "$(sha "$l")" "$before"; assert_eq "$(sha "$tmp/lbigback")" "$before"
		losetup -d "$l"'

	expect 'provision --backend dm on a host without device-mapper fails before writing anything' '
		if [ -e /dev/mapper/control ]; then exit 0; fi
		rand "$tmp/lm" 100000
		l=$(loopdev lmback 1048576)
		before=$(sha "$tmp/lmback")
		run_imgdev provision "$l" "$tmp/lm" --name virtlet-dm-hosttest --backend dm; assert_rc 1
		assert_contains "$err" "device-mapper"
		assert_eq "$(sha "$tmp/lmback")" "$before"
		[ ! -e /dev/mapper/virtlet-dm-hosttest ]
		losetup -d "$l"'
else
	skip 'loop device cases' 'needs root and a free loop device'
fi

finish
