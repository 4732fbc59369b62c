#!/usr/bin/env bash
# Host tests of imgdev's care with disks that are not its own and with bad
# input: a table of bad inputs (exit status, message, no crash, target bytes
# unchanged), foreign signatures refused without --force on files and loop
# devices, newer headers never overwritten, and concurrent provisioners.
. "$(dirname "$0")/../lib.sh"

tmp=$(mktemp -d /var/tmp/imgdev-safety.XXXXXX)
cleanup() {
	detach_loops_under "$tmp"
	chattr -i "$tmp"/* 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

HEX=$(printf a | sha256sum | cut -c1-64)
MAGIC=263dbe52ba576702
root=$([ "$(id -u)" = 0 ] && echo yes || echo no)
sum() { sha256sum "$1" | cut -c1-64; }
img=$tmp/image
head -c 300000 /dev/urandom >"$img"

# refused WHAT TARGET RC MESSAGE -- ARGS: imgdev ARGS exits RC, says MESSAGE,
# does not crash, and TARGET's bytes are unchanged.
refused() {
	local target=$1 want_rc=$2 msg=$3 before=""
	shift 4
	[ -f "$target" ] && before=$(sum "$target")
	run_imgdev "$@"
	assert_rc "$want_rc"
	assert_contains "$err" "$msg"
	case "$err" in *Sanitizer*|*"runtime error"*) echo "sanitizer report: $err"; return 1 ;; esac
	[ -z "$before" ] || assert_eq "$(sum "$target")" "$before" "bytes of $target changed"
}

disk=$tmp/disk
head -c 4M /dev/urandom >"$disk"

expect 'bad device paths: missing, directory, character device' '
	for cmd in "ensure X $HEX" "provision X $img --no-map" "verify X" "header X"; do
		refused "$tmp/none" 1 "$tmp/none: No such file or directory" -- ${cmd/X/$tmp/none}
		refused "$tmp" 1 "is a directory" -- ${cmd/X/$tmp}
		refused /dev/null 1 "is a character device" -- ${cmd/X//dev/null}
	done'

expect 'an empty file and a file shorter than a sector are too small' '
	: >"$tmp/empty"; head -c 100 /dev/urandom >"$tmp/short"
	for f in "$tmp/empty" "$tmp/short"; do
		refused "$f" 8 "too small" -- ensure "$f" "$HEX"
		refused "$f" 8 "too small" -- provision "$f" "$img" --no-map
		refused "$f" 8 "too small" -- header "$f"
	done'

if [ "$root" = yes ]; then
	expect 'an unreadable file, for a user who may not read it' '
		cp "$disk" "$tmp/secret"; chmod 600 "$tmp/secret"; chmod 711 "$tmp"
		before=$(sum "$tmp/secret")
		rc=0; err=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$IMGDEV" ensure "$tmp/secret" "$HEX" 2>&1) || rc=$?
		assert_eq "$rc" 9; assert_contains "$err" "permission denied"
		assert_eq "$(sum "$tmp/secret")" "$before"'

	expect 'an immutable file and a read-only loop device are not written' '
		cp "$disk" "$tmp/immutable"; chattr +i "$tmp/immutable"
		refused "$tmp/immutable" 9 "permission denied" -- ensure "$tmp/immutable" "$HEX"
		refused "$tmp/immutable" 9 "permission denied" -- provision "$tmp/immutable" "$img" --no-map
		chattr -i "$tmp/immutable"
		cp "$disk" "$tmp/rodisk"; l=$(losetup -r -f --show "$tmp/rodisk")
		refused "$tmp/rodisk" 1 "read-only" -- ensure "$l" "$HEX"
		refused "$tmp/rodisk" 1 "read-only" -- provision "$l" "$img" --no-map'
fi

expect 'bad hashes and digests are usage errors' '
	refused "$disk" 2 "64 hex digits" -- ensure "$disk" abcd
	refused "$disk" 2 "64 hex digits" -- ensure "$disk" "${HEX}00"
	refused "$disk" 2 "not a hex digit" -- ensure "$disk" "${HEX%?}x"
	refused "$disk" 2 "unknown hash algorithm" -- ensure "$disk" "sha1:$HEX"
	refused "$disk" 2 "64 hex digits" -- provision "$disk" "$img" --no-map --digest sha256:12'

expect 'bad mapping names: too long, with a slash, without the prefix, only the prefix' '
	long=virtlet-dm-$(printf "%0130d" 0)
	refused "$disk" 1 "at most 127" -- provision "$disk" "$img" --name "$long"
	refused "$disk" 1 "'"'"'/'"'"'" -- provision "$disk" "$img" --name virtlet-dm-a/b
	refused "$disk" 1 "must start with" -- provision "$disk" "$img" --name vm1
	refused "$disk" 1 "nothing after the prefix" -- map "$disk" virtlet-dm- --image-size 1
	refused "$disk" 1 "at most 127" -- unmap "$long"
	refused "$disk" 1 "not a valid mapping name" -- --prefix . unmap ..'

expect 'bad images: missing, empty, a directory, larger than the device' '
	: >"$tmp/emptyimg"; head -c 5M /dev/urandom >"$tmp/bigimg"
	refused "$disk" 7 "$tmp/noimg" -- provision "$disk" "$tmp/noimg" --no-map
	refused "$disk" 7 "empty" -- provision "$disk" "$tmp/emptyimg" --no-map
	refused "$disk" 7 "regular file" -- provision "$disk" "$tmp" --no-map
	refused "$disk" 8 "too small" -- provision "$disk" "$tmp/bigimg" --no-map'

expect 'unknown commands and options' '
	refused "$disk" 2 "unknown command" -- format "$disk"
	refused "$disk" 2 "unknown option \"--frobnicate\"" -- provision "$disk" "$img" --frobnicate
	refused "$disk" 2 "unknown option \"--nope\"" -- --nope header "$disk"
	refused "$disk" 2 "needs a value" -- provision "$disk" "$img" --name
	refused "$disk" 2 "--threads" -- provision "$disk" "$img" --no-map --threads 0'

expect 'garbage and truncated headers: header and verify say so, nothing written' '
	head -c 40 <(printf "$MAGIC" | xxd -r -p; head -c 100 /dev/urandom) >"$tmp/trunc"
	refused "$tmp/trunc" 8 "too small" -- header "$tmp/trunc"
	refused "$tmp/trunc" 8 "too small" -- verify "$tmp/trunc"
	refused "$disk" 4 "no image header" -- verify "$disk"
	cp "$disk" "$tmp/badrec"
	run_imgdev provision "$tmp/badrec" "$img" --no-map; assert_rc 0
	printf "\x01" | dd of="$tmp/badrec" bs=1 seek=300 conv=notrunc status=none
	refused "$tmp/badrec" 3 "damaged" -- verify "$tmp/badrec"
	run_imgdev header --json "$tmp/badrec"; assert_contains "$out" "\"commit\": \"corrupt\""'

expect 'a header of a newer version is never overwritten, whatever the hash' '
	cp "$disk" "$tmp/newer"
	{ printf "${MAGIC}0003$HEX" | xxd -r -p; head -c 470 /dev/zero; } | dd of="$tmp/newer" conv=notrunc status=none
	other=$(printf b | sha256sum | cut -c1-64)
	refused "$tmp/newer" 1 "version 3" -- ensure "$tmp/newer" "$other"
	refused "$tmp/newer" 1 "version 3" -- ensure --force "$tmp/newer" "$other"
	refused "$tmp/newer" 1 "version 3" -- provision "$tmp/newer" "$img" --no-map --force
	refused "$tmp/newer" 1 "version 3" -- --backend loop --run-dir "$tmp/run" map "$tmp/newer" virtlet-dm-newer --image-size 1000'

expect 'ensure and an aligned (version 2) header: its image is refused as Virtlet refuses it, another image written over it' '
	cp "$disk" "$tmp/v2"
	run_imgdev provision "$tmp/v2" "$img" --no-map --layout aligned; assert_rc 0
	refused "$tmp/v2" 1 "aligned layout (metadata version 2); ensure matches only" -- ensure "$tmp/v2" "$(sha "$img")"
	other=$(printf b | sha256sum | cut -c1-64)
	run_imgdev ensure "$tmp/v2" "$other"; assert_rc 0; assert_eq "$out" written
	run_imgdev header --json "$tmp/v2"; assert_eq "$(jfield version <<<"$out")" 1
	assert_eq "$(jfield commit <<<"$out")" none'

expect 'a commit record of a newer version is never overwritten either' '
	cp "$disk" "$tmp/newrec"
	run_imgdev provision "$tmp/newrec" "$img" --no-map; assert_rc 0
	printf "\x00\x07" | dd of="$tmp/newrec" bs=1 seek=72 conv=notrunc status=none
	refused "$tmp/newrec" 1 "commit record has version 7" -- ensure "$tmp/newrec" "$HEX"
	refused "$tmp/newrec" 1 "commit record has version 7" -- provision "$tmp/newrec" "$tmp/bigimg" --no-map
	head -c 1000 /dev/urandom >"$tmp/smallimg"
	refused "$tmp/newrec" 1 "commit record has version 7" -- provision "$tmp/newrec" "$tmp/smallimg" --no-map'

# Foreign signatures, on a file and (as root) through a loop device.
make_sig() { # make_sig KIND FILE
	rm -f "$2"
	case $1 in
	ext4) truncate -s 64M "$2"; mkfs.ext4 -q -F "$2" ;;
	xfs) truncate -s 320M "$2"; mkfs.xfs -q -f "$2" ;;
	swap) truncate -s 64M "$2"; mkswap "$2" >/dev/null 2>&1 ;;
	mbr) truncate -s 64M "$2"; printf "label: dos\n,10M\n" | sfdisk -q "$2" ;;
	gpt) truncate -s 64M "$2"; printf "label: gpt\n,10M\n" | sfdisk -q "$2" ;;
	esac
}
declare -A said=([ext4]="an ext4 filesystem" [xfs]="an xfs filesystem" [swap]="a swap"
	[mbr]="a dos partition table" [gpt]="a gpt partition table")
for kind in ext4 xfs swap mbr gpt; do
	if [ $kind = xfs ] && ! command -v mkfs.xfs >/dev/null; then
		skip "xfs signature" "mkfs.xfs not installed"; continue
	fi
	for via in file loop; do
		[ $via = loop ] && [ "$root" = no ] && continue
		expect "$kind on a $via: refused without --force, bytes unchanged; written with it" '
			f=$tmp/sig-'$kind'; make_sig '$kind' "$f"; t=$f
			if [ '$via' = loop ]; then t=$(losetup -f --show "$f"); fi
			refused "$f" 6 "${said['$kind']}" -- ensure "$t" "$HEX"
			assert_contains "$err" "refusing to overwrite it; use --force"
			refused "$f" 6 "${said['$kind']}" -- provision "$t" "$img" --no-map
			run_imgdev provision "$t" "$img" --no-map --force; assert_rc 0
			cmp <(tail -c +513 "$f" | head -c 300000) "$img"
			[ '$via' = file ] || losetup -d "$t"'
	done
done

expect 'a device that already has our header is not probed: provision replaces the image' '
	cp "$disk" "$tmp/ours"
	run_imgdev ensure "$tmp/ours" "$HEX"; assert_rc 0
	run_imgdev provision "$tmp/ours" "$img" --no-map; assert_rc 0; assert_eq "$out" written'

expect 'concurrent provisioners of different images on one device take turns' '
	dev=$tmp/shared; truncate -s 48M "$dev"
	for i in 1 2 3 4; do head -c $((8 * 1024 * 1024 + i * 4099)) /dev/urandom >"$tmp/img$i"; done
	pids=()
	for i in 1 2 3 4; do "$IMGDEV" provision "$dev" "$tmp/img$i" --no-map >"$tmp/out$i" 2>&1 & pids+=($!); done
	for p in "${pids[@]}"; do wait "$p"; done
	for i in 1 2 3 4; do assert_eq "$(cat "$tmp/out$i")" written; done
	run_imgdev verify "$dev"; assert_rc 0
	run_imgdev header --json "$dev"
	winner=""
	for i in 1 2 3 4; do
		case "$out" in *"\"image_hash\": \"sha256:$(sum "$tmp/img$i")\""*) winner=$i ;; esac
	done
	[ -n "$winner" ] || { echo "header names none of the images: $out"; exit 1; }
	cmp <(tail -c +513 "$dev" | head -c "$(stat -c %s "$tmp/img$winner")") "$tmp/img$winner"'

if [ "$root" = yes ]; then
	expect 'concurrent provisioners through a loop device take turns too' '
		f=$tmp/shared-loop; truncate -s 48M "$f"; l=$(losetup -f --show "$f")
		pids=()
		for i in 1 2 3; do "$IMGDEV" provision "$l" "$tmp/img$i" --no-map >/dev/null 2>"$tmp/err$i" & pids+=($!); done
		for p in "${pids[@]}"; do wait "$p" || { cat "$tmp"/err*; exit 1; }; done
		run_imgdev verify "$l"; assert_rc 0
		losetup -d "$l"'

	expect 'write errors on a 4K-sector device (O_DIRECT, the aligned layout) fail the provision, never commit' '
		mkdir -p "$tmp/small"; mount -t tmpfs -o size=2M tmpfs "$tmp/small"
		truncate -s 16M "$tmp/small/disk"
		l=$(losetup -f --show --sector-size 4096 "$tmp/small/disk")
		head -c 6M /dev/urandom >"$tmp/six"
		run_imgdev provision "$l" "$tmp/six" --no-map
		rc2=$rc; st=$("$IMGDEV" header --json "$l" 2>/dev/null | sed -n "s/.*\"commit\": \"\(.*\)\".*/\1/p")
		losetup -d "$l"; umount "$tmp/small"
		# The loop device passes the backing tmpfs'"'"'s ENOSPC up: "ran out of space while written".
		assert_eq "$rc2" 8
		assert_contains "$err" "write error at payload offset 0 (device offset 1048576)"
		[ "$st" != complete ] || { echo "commit record says complete over lost writes"; exit 1; }'

	expect 'a device shrunk under a complete record is not matched' '
		f=$tmp/shrink; truncate -s 4M "$f"
		head -c 3000000 /dev/urandom >"$tmp/three"
		run_imgdev provision "$f" "$tmp/three" --no-map; assert_rc 0
		truncate -s 1M "$f"
		run_imgdev provision "$f" "$tmp/three" --no-map; assert_rc 8
		assert_contains "$err" "too small"'

	expect 'a device that cannot be probed (its last, partial 4K sector unreadable) is refused with the reason; --force writes' '
		f=$tmp/partial4k; truncate -s $((16 * 1048576 + 1024)) "$f"
		l=$(losetup -f --show --sector-size 4096 "$f")
		before=$(sha256sum "$f")
		run_imgdev provision "$l" "$tmp/img1" --no-map
		if [ "$rc" = 0 ]; then losetup -d "$l"; echo "(this kernel reads the partial sector)"; exit 0; fi
		assert_rc 1; assert_contains "$err" "probing for existing signatures failed (Input/output error)"
		assert_contains "$err" "use --force"
		assert_eq "$(sha256sum "$f")" "$before" "nothing written"
		run_imgdev provision "$l" "$tmp/img1" --no-map --force; assert_rc 0
		losetup -d "$l"'

	expect 'a mounted device is reported as mounted, and not written' '
		f=$tmp/mounted; truncate -s 64M "$f"; mkfs.ext4 -q -F "$f"
		l=$(losetup -f --show "$f"); mkdir -p "$tmp/mnt"; mount "$l" "$tmp/mnt"
		refused "$f" 5 "mounted on $tmp/mnt" -- provision "$l" "$img" --no-map --force
		umount "$tmp/mnt"; losetup -d "$l"'
fi

finish
