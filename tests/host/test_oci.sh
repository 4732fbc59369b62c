#!/usr/bin/env bash
# Host tests of what libimgdev reads of OCI image layouts on disk (oci:DIR[:TAG]),
# held against skopeo's and jq's reading of the same files: containerDisk
# layouts tests/net/containerdisk.sh builds (uncompressed, gzip and zstd
# layers, a disk over two layers with a whiteout, an index with two
# platforms) and skopeo's copies of them (OCI, and Docker schema 2). The
# library is reached through the test tool tests/tools/oci-resolve; for each
# layout the manifest it names and its layers, in order, with their media
# types and sizes, must be skopeo's; and every refusal says why: an unknown
# tag (listing the tags), no tag with two images, a platform the index lacks
# (listing those it has), a manifest blob changed on disk, no oci-layout.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../net/containerdisk.sh"

RESOLVE=$(dirname "$IMGDEV")/tests/oci-resolve
if ! command -v skopeo >/dev/null || ! command -v jq >/dev/null || ! command -v zstd >/dev/null; then
	echo "${0##*/}: 0 passed, 0 failed, 1 skipped (needs skopeo, jq, zstd: tests/deps.sh test)"
	exit 0
fi
tmp=$(mktemp -d /var/tmp/imgdev-oci.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
head -c 3000000 /dev/urandom >"$tmp/a.img"
head -c 1000001 /dev/urandom >"$tmp/b.img"
o=$tmp/oci

# resolve SPEC [PLATFORM]: oci-resolve's output in $out, its stderr in $err, $rc.
resolve() {
	local e=$tmp/resolve.err
	rc=0
	out=$("$RESOLVE" "$@" 2>"$e") || rc=$?
	err=$(cat "$e")
}
# skopeo_view SPEC [skopeo options]: the manifest skopeo reads at oci:SPEC
# (an index resolved for the platform the options name), as oci-resolve
# prints it: "manifest DIGEST", then "layer TYPE DIGEST SIZE" lines.
skopeo_view() {
	local spec=$1 m
	shift
	skopeo "$@" copy -q "oci:$spec" "dir:$tmp/view" >/dev/null
	m=$tmp/view/manifest.json
	echo "manifest sha256:$(sha256sum "$m" | cut -c1-64)"
	jq -r '.layers[] | "layer \(.mediaType) \(.digest) \(.size)"' "$m"
	rm -rf "$tmp/view"
}
# same_as_skopeo SPEC [PLATFORM]: oci-resolve and skopeo agree on SPEC.
same_as_skopeo() {
	local opts=()
	[ -z "${2:-}" ] || opts=(--override-os "${2%%/*}" --override-arch "${2#*/}")
	resolve "$@"
	assert_rc 0
	assert_eq "$(grep -v '^top ' <<<"$out")" "$(skopeo_view "$1" "${opts[@]}")" "$* as skopeo reads it"
}

for z in none gzip zstd; do cd_build "$o/raw-$z" "$tmp/a.img" --layer-compression "$z" >/dev/null; done
cd_build_whiteout "$o/wh" "$tmp/a.img" >/dev/null
cd_build_index "$o/idx" linux/amd64="$tmp/a.img" linux/arm64="$tmp/b.img" >/dev/null
cd_build "$o/idx" "$tmp/b.img" --tag solo >/dev/null

expect 'a containerDisk layout with an uncompressed, a gzip or a zstd layer: the manifest and its layer as skopeo reads them' '
	for z in none gzip zstd; do
		same_as_skopeo "$o/raw-$z:latest"
		assert_eq "$(grep ^manifest <<<"$out")" "manifest $(cd_manifest_digest "$o/raw-$z")"
		case $z in none) t=tar ;; gzip) t=tar+gzip ;; zstd) t=tar+zstd ;; esac
		assert_contains "$out" "layer application/vnd.oci.image.layer.v1.$t sha256:"
	done'

expect 'a disk over two layers with a whiteout: both layers, lowest first, as skopeo reads them' '
	same_as_skopeo "$o/wh:latest"
	assert_eq "$(grep -c ^layer <<<"$out")" 2
	assert_eq "$(grep ^layer <<<"$out" | cut -d" " -f3)" "$(cd_layer_digests "$o/wh")"'

expect 'an image index with two platforms: each platform its own manifest, the host'"'"'s by default, as skopeo reads them' '
	same_as_skopeo "$o/idx:latest" linux/arm64
	assert_eq "$(grep ^manifest <<<"$out")" "manifest $(cd_platform_digest "$o/idx" latest linux/arm64)"
	assert_contains "$out" "top application/vnd.oci.image.index.v1+json $(cd_manifest_digest "$o/idx")"
	same_as_skopeo "$o/idx:latest" linux/amd64
	assert_eq "$(grep ^manifest <<<"$out")" "manifest $(cd_platform_digest "$o/idx" latest linux/amd64)"
	if [ "$(uname -m)" = x86_64 ]; then
		resolve "$o/idx:latest"; assert_rc 0
		assert_eq "$(grep ^manifest <<<"$out")" "manifest $(cd_platform_digest "$o/idx" latest linux/amd64)"
	fi'

# jq_view DIR TAG: the manifest TAG names in DIR's index.json, as oci-resolve prints it.
jq_view() {
	echo "manifest $(cd_manifest_digest "$1" "$2")"
	cd_manifest "$1" "$2" | jq -r '.layers[] | "layer \(.mediaType) \(.digest) \(.size)"'
}

# skopeo 1.9 writes a Docker schema 2 manifest into an OCI layout but does not
# find it there again by its tag ("no descriptor found for reference"): that
# copy is held against jq's reading of index.json instead.
expect 'layouts skopeo wrote (an OCI copy, a Docker schema 2 copy) read as skopeo (or jq) reads them' '
	skopeo copy -q "oci:$o/raw-zstd:latest" "oci:$tmp/copy:c1"
	skopeo copy -q --format v2s2 "oci:$o/raw-gzip:latest" "oci:$tmp/copy:c2"
	same_as_skopeo "$tmp/copy:c1"
	resolve "$tmp/copy:c2"; assert_rc 0
	assert_eq "$(grep -v "^top " <<<"$out")" "$(jq_view "$tmp/copy" c2)"
	assert_contains "$out" "top application/vnd.docker.distribution.manifest.v2+json sha256:"
	assert_contains "$out" "layer application/vnd.docker.image.rootfs.diff.tar.gzip sha256:"'

expect 'an unknown tag, no tag among two images, a platform the index lacks: refused, saying what there is' '
	resolve "$o/idx:nope"; assert_rc 1
	assert_contains "$err" "no image tagged \"nope\" (tags: latest, solo)"
	resolve "$o/idx"; assert_rc 1
	assert_contains "$err" "2 images in the layout: name one by its tag (latest, solo)"
	resolve "$o/idx:latest" linux/s390x; assert_rc 1
	assert_contains "$err" "no manifest for linux/s390x; the index has linux/amd64, linux/arm64"
	resolve "$o/raw-gzip"; assert_rc 0'

expect 'a manifest blob changed on disk, a layout without oci-layout: refused, saying why' '
	cp -a "$o/raw-gzip" "$tmp/bad"
	m=$(cd_blob "$tmp/bad" "$(cd_manifest_digest "$tmp/bad")")
	chmod u+w "$m"; sed -i "s/tar+gzip/tar+zstd/" "$m"
	resolve "$tmp/bad:latest"; assert_rc 1
	assert_contains "$err" "digest $(cd_manifest_digest "$tmp/bad") expected, the content hashes to sha256:"
	rm "$tmp/bad/oci-layout"
	resolve "$tmp/bad:latest"; assert_rc 1
	assert_contains "$err" "not an OCI image layout (no oci-layout file)"
	resolve "$tmp/nothing-here:latest"; assert_rc 1
	assert_contains "$err" "not an OCI image layout"'

finish
