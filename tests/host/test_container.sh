#!/usr/bin/env bash
# Host tests of provision and info of container images (KubeVirt
# containerDisks): oci:DIR[:TAG], OCI image layouts that
# tests/net/containerdisk.sh builds. Each disk (raw, qcow2, xz-compressed raw,
# in uncompressed, gzip and zstd layers; over two layers with whiteouts;
# one per platform of an index) must give the device the payload a
# provision of the same disk file gives, with the platform manifest's digest
# as the image hash; a device that holds it matches with no layer there to
# read; and every refusal (no such tag or platform, no disk, two disks, a
# layer that is not a tar or is cut short, a blob or a manifest that is not
# its digest) says why, with its exit status, committing nothing, a device
# that held an image untouched when the refusal comes before the first write.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../net/containerdisk.sh"

if ! command -v jq >/dev/null || ! command -v zstd >/dev/null || ! command -v qemu-img >/dev/null ||
	! command -v xz >/dev/null; then
	echo "${0##*/}: 0 passed, 0 failed, 1 skipped (needs jq, zstd, xz, qemu-img: tests/deps.sh test)"
	exit 0
fi
tmp=$(mktemp -d /var/tmp/imgdev-container.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
o=$tmp/oci

# A VM-shaped disk: data, written zeros and a hole; its qcow2 and its xz.
img=$tmp/vm.raw
head -c 3000000 /dev/urandom >"$img"
head -c 1048576 /dev/zero >>"$img"
head -c 700001 /dev/urandom >>"$img"
truncate -s 12M "$img"
qemu-img convert -q -f raw -O qcow2 "$img" "$tmp/vm.qcow2"
xz -T1 -c "$img" >"$tmp/vm.raw.xz"
head -c 2000000 /dev/urandom >"$tmp/other.raw"
DEV_SIZE=$((16 << 20))

# fresh_dev NAME: a zeroed regular file of DEV_SIZE as a device; prints its path.
fresh_dev() { rm -f "$tmp/$1"; truncate -s "$DEV_SIZE" "$tmp/$1"; echo "$tmp/$1"; }
# provision DEV IMAGE [options]: provision without mapping, --json; out/err/rc.
provision() { run_imgdev provision "$1" "$2" --no-map --json "${@:3}"; }
# reference FILE: the content hash a provision of the disk file itself gives.
reference() {
	local d
	d=$(fresh_dev ref.img)
	run_imgdev provision "$d" "$1" --no-map --json
	[ "$rc" = 0 ] || { echo "reference provision of $1: $err"; return 1; }
	jget content_hash "$out"
}
# header_hash DEV: the image hash sector 0 names.
header_hash() { "$IMGDEV" header "$1" --json | jfield image_hash; }

for z in none gzip zstd; do cd_build "$o/raw-$z" "$img" --layer-compression "$z" >/dev/null; done
cd_build "$o/qcow2-gzip" "$tmp/vm.qcow2" >/dev/null
cd_build "$o/qcow2-none" "$tmp/vm.qcow2" --layer-compression none >/dev/null
cd_build "$o/xz-none" "$tmp/vm.raw.xz" --layer-compression none >/dev/null

expect 'raw, qcow2 and xz disks in uncompressed, gzip and zstd layers: the payload of the disk file, named by the manifest digest' '
	want=$(reference "$img")
	for l in raw-none raw-gzip raw-zstd qcow2-gzip qcow2-none xz-none; do
		d=$(fresh_dev "$l.img")
		provision "$d" "oci:$o/$l:latest"
		assert_rc 0
		assert_eq "$(jget written "$out")" true "$l"
		assert_eq "$(jget content_hash "$out")" "$want" "$l: content hash"
		assert_eq "$(jget image_hash "$out")" "$(cd_manifest_digest "$o/$l")" "$l: identity"
		assert_eq "$(header_hash "$d")" "$(cd_manifest_digest "$o/$l")" "$l: header"
		assert_eq "$(jget image_size "$out")" "$(stat -c %s "$img")" "$l: size"
		case $l in
		raw-*) assert_eq "$(jget disk_path "$out")" disk/vm.raw ;;
		qcow2-*) assert_eq "$(jget disk_path "$out")" disk/vm.qcow2 ;;
		xz-*) assert_eq "$(jget disk_path "$out")" disk/vm.raw.xz ;;
		esac
		payload_is "$d" "$img"
		run_imgdev verify "$d"; assert_rc 0
	done'

expect 'a qcow2 in an uncompressed layer is read at offsets in its blob, with no temporary file; in a gzip layer through one' '
	d=$(fresh_dev q.img)
	run_imgdev -v provision "$d" "oci:$o/qcow2-none" --no-map
	assert_rc 0
	assert_contains "$err" "a qcow2 in an uncompressed layer: read at offsets in its blob"
	case $err in *"temporary file"*) echo "a temporary file was used: $err"; false ;; esac
	payload_is "$d" "$img"
	d=$(fresh_dev q2.img)
	run_imgdev -v provision "$d" "oci:$o/qcow2-gzip" --no-map
	assert_rc 0
	assert_contains "$err" "read through a temporary file"
	payload_is "$d" "$img"'

expect 'a device that holds the image matches by the manifest digest, its layers not there to read' '
	d=$(fresh_dev m.img)
	cp -a "$o/raw-gzip" "$tmp/m"
	provision "$d" "oci:$tmp/m"; assert_rc 0
	before=$(sha "$d")
	for l in $(cd_layer_digests "$tmp/m"); do rm "$(cd_blob "$tmp/m" "$l")"; done
	provision "$d" "oci:$tmp/m:latest"
	assert_rc 0
	assert_eq "$(jget written "$out")" false
	assert_eq "$(jget image_hash "$out")" "$(cd_manifest_digest "$tmp/m")"
	assert_eq "$(jget disk_path "$out")" "" "no disk_path: no layer read"
	assert_eq "$(sha "$d")" "$before"
	# Without the device holding it, the missing layer is an error before any write.
	d2=$(fresh_dev m2.img)
	provision "$d2" "oci:$tmp/m"
	assert_rc 7
	assert_contains "$err" "layer 1 ($(cd_layer_digests "$tmp/m"))"
	cmp -n "$DEV_SIZE" "$d2" /dev/zero'

expect 'a disk over two layers: whited out explicitly or by an opaque directory, the right one written' '
	want=$(reference "$img")
	for w in explicit opaque; do
		cd_build_whiteout "$o/wh-$w" "$img" --whiteout "$w" --layer-compression zstd >/dev/null
		d=$(fresh_dev "wh-$w.img")
		provision "$d" "oci:$o/wh-$w"
		assert_rc 0
		assert_eq "$(jget content_hash "$out")" "$want" "$w"
		payload_is "$d" "$img"
	done
	# The disk below an opaque whiteout is hidden too: no disk.
	cd_build_whiteout "$o/wh-low" "$img" --whiteout opaque --disk-layer 1 >/dev/null
	d=$(fresh_dev wh-low.img)
	provision "$d" "oci:$o/wh-low"
	assert_rc 7
	assert_contains "$err" "no disk: no regular file under disk/ in 2 layers"'

expect 'an image index: the host platform by default, --platform for another, a missing one listed' '
	cd_build_index "$o/idx" linux/amd64="$img" linux/arm64="$tmp/other.raw" >/dev/null
	d=$(fresh_dev idx.img)
	if [ "$(uname -m)" = x86_64 ]; then
		provision "$d" "oci:$o/idx"
		assert_rc 0
		assert_eq "$(jget image_hash "$out")" "$(cd_platform_digest "$o/idx" latest linux/amd64)"
		payload_is "$d" "$img"
	fi
	provision "$d" "oci:$o/idx" --platform linux/arm64
	assert_rc 0
	assert_eq "$(jget image_hash "$out")" "$(cd_platform_digest "$o/idx" latest linux/arm64)"
	payload_is "$d" "$tmp/other.raw"
	before=$(sha "$d")
	provision "$d" "oci:$o/idx" --platform linux/s390x
	assert_rc 7
	assert_contains "$err" "no manifest for linux/s390x; the index has linux/amd64, linux/arm64"
	assert_eq "$(sha "$d")" "$before"
	provision "$d" "oci:$o/idx" --platform linux
	assert_rc 2
	assert_contains "$err" "expected OS/ARCH or OS/ARCH/VARIANT"'

expect 'two disks: refused, both named, until --disk-path picks one; each disk its own identity' '
	cd_build_twodisks "$o/two" "$img" "$tmp/other.raw" --layer-compression gzip >/dev/null
	m=$(cd_manifest_digest "$o/two")
	d=$(fresh_dev two.img)
	provision "$d" "oci:$o/two"
	assert_rc 7
	assert_contains "$err" "two disks: disk/vm.raw (layer 1) and disk/other.raw (layer 1); choose one with --disk-path"
	assert_eq "$(header_hash "$d")" sha256:0000000000000000000000000000000000000000000000000000000000000000
	provision "$d" "oci:$o/two" --disk-path disk/other.raw
	assert_rc 0
	assert_eq "$(jget disk_path "$out")" disk/other.raw
	assert_eq "$(jget image_hash "$out")" "sha256:$(printf "%s disk/other.raw" "$m" | sha256sum | cut -c1-64)"
	payload_is "$d" "$tmp/other.raw"
	# The other disk of the same manifest is not a match: it is written.
	provision "$d" "oci:$o/two" --disk-path ./disk//vm.raw
	assert_rc 0
	assert_eq "$(jget written "$out")" true
	assert_eq "$(jget image_hash "$out")" "sha256:$(printf "%s disk/vm.raw" "$m" | sha256sum | cut -c1-64)"
	payload_is "$d" "$img"
	provision "$d" "oci:$o/two" --disk-path /disk/vm.raw
	assert_rc 0
	assert_eq "$(jget written "$out")" false
	run_imgdev info --json "oci:$o/two" --disk-path disk/vm.raw
	assert_eq "$(jget image_hash "$out")" "$(header_hash "$d")"
	assert_eq "$(jget manifest_digest "$out")" "$m"
	provision "$d" "oci:$o/two" --disk-path disk/none.raw
	assert_rc 7
	assert_contains "$err" "no disk: no regular file disk/none.raw in 1 layer"
	provision "$d" "oci:$o/two" --disk-path ../disk/vm.raw
	assert_rc 1
	assert_contains "$err" "not a path a disk can have"'

expect 'refused before the first write, the device holding an image untouched: no tag, no disk, not a tar, a changed manifest, --digest' '
	d=$(fresh_dev held.img)
	provision "$d" "$img"; assert_rc 0
	before=$(sha "$d")
	provision "$d" "oci:$o/raw-gzip:nope"
	assert_rc 7
	assert_contains "$err" "no image tagged \"nope\" (tags: latest)"
	cd_build_nodisk "$o/nodisk" >/dev/null
	provision "$d" "oci:$o/nodisk"
	assert_rc 7
	assert_contains "$err" "oci:$o/nodisk: no disk: no regular file under disk/ in 1 layer"
	for z in none gzip; do
		cd_build_notar "$o/notar-$z" --layer-compression "$z" >/dev/null
		provision "$d" "oci:$o/notar-$z"
		assert_rc 7
		assert_contains "$err" "layer 1 is not a tar archive"
	done
	cp -a "$o/raw-none" "$tmp/changed"
	m=$(cd_blob "$tmp/changed" "$(cd_manifest_digest "$tmp/changed")")
	chmod u+w "$m"; sed -i "s/\"schemaVersion\":2/\"schemaVersion\":3/" "$m"
	provision "$d" "oci:$tmp/changed"
	assert_rc 10
	assert_contains "$err" "digest $(cd_manifest_digest "$tmp/changed") expected, the content hashes to sha256:"
	provision "$d" "oci:$o/raw-none" --digest "sha256:$(sha "$img")"
	assert_rc 1
	assert_contains "$err" "a container image is named by its manifest"
	provision "$d" "oci:$o/raw-none" --digest-url http://127.0.0.1:9/SHA256SUMS
	assert_rc 2
	assert_contains "$err" "a container image is named by its manifest"
	run_imgdev provision "$d" "oci:$tmp/no-such-dir" --no-map
	assert_rc 7
	assert_contains "$err" "not an OCI image layout"
	assert_eq "$(sha "$d")" "$before"'

expect 'a layer blob that is not its digest, or cut inside the disk: an error, nothing committed' '
	for l in raw-none raw-gzip qcow2-none; do
		cp -a "$o/$l" "$tmp/bad-$l"
		b=$(cd_blob "$tmp/bad-$l" "$(cd_layer_digests "$tmp/bad-$l")")
		chmod u+w "$b"
		flip_byte "$b" 2500000
		d=$(fresh_dev "bad-$l.img")
		provision "$d" "$img"; assert_rc 0
		held=$(sha "$d")
		provision "$d" "oci:$tmp/bad-$l"
		case $l in
		raw-none) # only the digest can tell, once the disk has been written
			assert_rc 10
			assert_contains "$err" "layer 1: digest $(cd_layer_digests "$tmp/bad-$l") expected, the blob hashes to sha256:"
			assert_eq "$(header_hash "$d")" sha256:0000000000000000000000000000000000000000000000000000000000000000
			run_imgdev verify "$d"; assert_rc 4 ;;
		raw-gzip) # gzip fails first; the digest of the blob is what is told
			assert_rc 10
			assert_contains "$err" "layer 1: digest $(cd_layer_digests "$tmp/bad-$l") expected"
			assert_eq "$(header_hash "$d")" sha256:0000000000000000000000000000000000000000000000000000000000000000 ;;
		qcow2-none) # read at offsets in the blob, the rest of it hashed at the end
			assert_rc 10
			assert_contains "$err" "layer 1: digest $(cd_layer_digests "$tmp/bad-$l") expected"
			assert_eq "$(header_hash "$d")" sha256:0000000000000000000000000000000000000000000000000000000000000000 ;;
		esac
	done
	# A byte changed in the layer below the disk'"'"'s (the whited-out decoy): found only
	# by reading the layers to their ends before the commit.
	cd_build_whiteout "$o/low" "$img" --layer-compression none >/dev/null
	low=$(cd_layer_digests "$o/low" | head -1)
	chmod u+w "$(cd_blob "$o/low" "$low")"
	flip_byte "$(cd_blob "$o/low" "$low")" 600000
	d=$(fresh_dev low.img)
	provision "$d" "oci:$o/low"
	assert_rc 10
	assert_contains "$err" "layer 1: digest $low expected"
	assert_eq "$(header_hash "$d")" sha256:0000000000000000000000000000000000000000000000000000000000000000
	cd_build_cut "$o/cut" "$img" --layer-compression zstd >/dev/null
	d=$(fresh_dev cut.img)
	provision "$d" "oci:$o/cut"
	assert_rc 7
	assert_contains "$err" "layer 1 ends inside disk/vm.raw"
	assert_eq "$(header_hash "$d")" sha256:0000000000000000000000000000000000000000000000000000000000000000'

expect 'info: the manifest, the platform, the layers and the disk, then the disk as for a file' '
	run_imgdev info --json "oci:$o/qcow2-gzip"
	assert_rc 0
	assert_eq "$(jget manifest_digest "$out")" "$(cd_manifest_digest "$o/qcow2-gzip")"
	assert_eq "$(jget format "$out")" qcow2
	assert_eq "$(jget virtual_size "$out")" "$(stat -c %s "$img")"
	assert_eq "$(jget disk_path "$out")" disk/vm.qcow2
	assert_eq "$(jget layers "$out")" 1
	assert_eq "$(jget supported "$out")" true
	run_imgdev info --json "oci:$o/idx" --platform linux/arm64
	assert_rc 0
	assert_eq "$(jget platform "$out")" linux/arm64
	assert_eq "$(jget manifest_digest "$out")" "$(cd_platform_digest "$o/idx" latest linux/arm64)"
	run_imgdev info "oci:$o/nodisk"
	assert_rc 7
	assert_contains "$out" "supported:    no"
	assert_contains "$err" "no disk"'

finish
