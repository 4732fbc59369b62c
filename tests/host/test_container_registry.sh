#!/usr/bin/env bash
# Host tests of provision and info of container images pulled from a real
# registry on loopback (docker://HOST/REPO[:TAG|@DIGEST]): Debian's
# distribution registry open, behind htpasswd, and behind the token front of
# tests/net/token-front.py, as tests/net/registry.sh starts them; images
# pushed with skopeo from the OCI layouts tests/net/containerdisk.sh builds.
# A pulled disk gives the device the payload the disk file gives, named by
# the manifest's digest; a device holding it matches with no blob GET in the
# registry's log; refusals (unknown tag or repository, no credentials, wrong
# ones, a corrupted blob in the registry's storage, a platform missing) say
# what the registry said, with their exit statuses, nothing committed; and
# the fault proxy between imgdev and the registry cuts blob transfers that
# must resume without splicing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../net/containerdisk.sh"
. "$(dirname "$0")/../net/registry.sh"

if ! reg_have || ! command -v jq >/dev/null || ! command -v zstd >/dev/null ||
	! command -v qemu-img >/dev/null; then
	echo "${0##*/}: 0 passed, 0 failed, 1 skipped (needs docker-registry, skopeo, apache2-utils, curl, jq, zstd, qemu-img: tests/deps.sh test)"
	exit 0
fi
tmp=$(mktemp -d /var/tmp/imgdev-creg.XXXXXX)
REG_ROOT=$tmp/reg
trap 'reg_stop; rm -rf "$tmp"' EXIT
o=$tmp/oci
ZERO=sha256:0000000000000000000000000000000000000000000000000000000000000000

img=$tmp/vm.raw
head -c 3000000 /dev/urandom >"$img"
head -c 1048576 /dev/zero >>"$img"
head -c 900001 /dev/urandom >>"$img"
truncate -s 10M "$img"
qemu-img convert -q -f raw -O qcow2 "$img" "$tmp/vm.qcow2"
head -c 2000000 /dev/urandom >"$tmp/other.raw"
DEV_SIZE=$((16 << 20))

fresh_dev() { rm -f "$tmp/$1"; truncate -s "$DEV_SIZE" "$tmp/$1"; echo "$tmp/$1"; }
provision() { run_imgdev provision "$1" "$2" --no-map --json "${@:3}"; }
header_hash() { "$IMGDEV" header "$1" --json | jfield image_hash; }
# no_credentials: neither the password nor its base64 form in out or err.
no_credentials() {
	local b64
	b64=$(printf %s "$(reg_creds)" | base64 -w0)
	case "$out$err" in *"$REG_PASS"* | *"$b64"*) echo "credentials in the output"; return 1 ;; esac
}

cd_build "$o/raw" "$img" >/dev/null
cd_build "$o/qcow2" "$tmp/vm.qcow2" --layer-compression zstd >/dev/null
cd_build "$o/qcow2-tar" "$tmp/vm.qcow2" --layer-compression none >/dev/null
cd_build_index "$o/idx" linux/amd64="$img" linux/arm64="$tmp/other.raw" >/dev/null
cd_build_twodisks "$o/two" "$img" "$tmp/other.raw" >/dev/null
for m in open htpasswd token; do
	reg_start "$m" >/dev/null || exit 1
	reg_push "$o/raw" latest vm/raw:latest
	reg_push "$o/qcow2" latest vm/qcow2:v1
	reg_push "$o/idx" latest vm/idx:latest
	reg_push "$o/raw" latest private/vm:latest
done
reg_use open
reg_push "$o/two" latest vm/two:latest
reg_push "$o/qcow2-tar" latest vm/qcow2-tar:latest
reg_push "$o/raw" latest vm/v2s2:latest --format v2s2
xz -T1 -c "$img" >"$tmp/vm.raw.xz"
cd_build "$o/xz" "$tmp/vm.raw.xz" --layer-compression none >/dev/null
reg_push "$o/xz" latest vm/xz:latest
reg_push "$o/raw" latest vm/corrupt:latest
reg_auth_file "$tmp/auth.json" 2>/dev/null || true

expect 'pulled from an open registry by tag and by digest: the payload of the disk file, matched with no blob GET' '
	reg_use open
	d=$(fresh_dev open.img)
	provision "$d" "docker://$REG_HOST/vm/raw:latest"
	assert_rc 0
	assert_eq "$(jget image_hash "$out")" "$(cd_manifest_digest "$o/raw")"
	assert_eq "$(header_hash "$d")" "$(cd_manifest_digest "$o/raw")"
	payload_is "$d" "$img"
	gets=$(reg_log_blob_gets vm/raw)
	[ "$gets" -ge 1 ]
	provision "$d" "docker://$REG_HOST/vm/raw:latest"
	assert_rc 0
	assert_eq "$(jget written "$out")" false
	provision "$d" "docker://$REG_HOST/vm/raw@$(cd_manifest_digest "$o/raw")"
	assert_rc 0
	assert_eq "$(jget written "$out")" false
	assert_eq "$(reg_log_blob_gets vm/raw)" "$gets" "no blob fetched for a match"
	d=$(fresh_dev qcow2.img)
	provision "$d" "docker://$REG_HOST/vm/qcow2:v1"
	assert_rc 0
	payload_is "$d" "$img"'

expect 'a qcow2 in an uncompressed layer: read with Range requests on the blob, no temporary file, the whole blob checked' '
	reg_use open
	reg_proxy_start ranges
	d=$(fresh_dev qt.img)
	run_imgdev -v provision "$d" "docker://$REG_PROXY/vm/qcow2-tar:latest" --no-map --json
	assert_rc 0
	assert_contains "$err" "a qcow2 in an uncompressed layer: read at offsets in its blob"
	case $err in *"temporary file"*) echo "a temporary file was used"; false ;; esac
	payload_is "$d" "$img"
	l=$(cd_layer_digests "$o/qcow2-tar")
	n=$(reg_proxy_log ranges | jq -r "select(.event == \"done\" and .range != null) | .path" | grep -c "/blobs/$l" || true)
	[ "$n" -ge 2 ] || { echo "$n range requests for the blob"; false; }
	reg_proxy_stop ranges
	# A byte changed inside the blob: the digest of all of it is checked before the commit.
	cp "$(reg_blob_file "$l")" "$tmp/qt.saved"
	reg_corrupt_blob "$l" 2500000
	d=$(fresh_dev qt2.img)
	provision "$d" "docker://$REG_HOST/vm/qcow2-tar:latest"
	cp "$tmp/qt.saved" "$(reg_blob_file "$l")"
	assert_rc 10
	assert_contains "$err" "layer 1: digest $l expected"
	assert_eq "$(header_hash "$d")" "$ZERO"'

expect 'Docker schema 2 media types, and an xz disk: pulled, the payload of the disk file' '
	reg_use open
	d=$(fresh_dev v2s2.img)
	provision "$d" "docker://$REG_HOST/vm/v2s2:latest"
	assert_rc 0
	m=$(curl -s -H "Accept: application/vnd.docker.distribution.manifest.v2+json" \
		"http://$REG_HOST/v2/vm/v2s2/manifests/latest")
	assert_eq "$(jq -r .mediaType <<<"$m")" application/vnd.docker.distribution.manifest.v2+json
	assert_eq "$(jget image_hash "$out")" "sha256:$(printf %s "$m" | sha256sum | cut -c1-64)"
	payload_is "$d" "$img"
	d=$(fresh_dev xz.img)
	provision "$d" "docker://$REG_HOST/vm/xz:latest"
	assert_rc 0
	payload_is "$d" "$img"'

expect 'a registry that stalls in mid-blob: the transfer given up after --timeout and resumed, the payload exact' '
	reg_use open
	reg_proxy_start stall --fault stall --after 1M --times 1 --stall-seconds 30
	d=$(fresh_dev stall.img)
	run_imgdev provision "$d" "docker://$REG_PROXY/vm/raw:latest" --no-map --timeout 2
	assert_rc 0
	payload_is "$d" "$img"
	reg_proxy_log stall | jq -r "select(.event == \"done\" and .range != null) | .range" | grep -q "^bytes=[1-9]"
	reg_proxy_stop stall'

expect 'htpasswd: refused without credentials (9), pulled with --auth-file, no credentials printed' '
	reg_use htpasswd
	d=$(fresh_dev ht.img)
	provision "$d" "docker://$REG_HOST/vm/raw:latest"
	assert_rc 9
	no_credentials
	reg_auth_file "$tmp/ht-auth.json"
	provision "$d" "docker://$REG_HOST/vm/raw:latest" --auth-file "$tmp/ht-auth.json"
	assert_rc 0
	no_credentials
	payload_is "$d" "$img"
	jq ".auths[\"$REG_HOST\"].auth = \"$(printf "%s:wrong" "$REG_USER" | base64 -w0)\"" \
		"$tmp/ht-auth.json" >"$tmp/bad-auth.json"
	d=$(fresh_dev ht2.img)
	provision "$d" "docker://$REG_HOST/vm/raw:latest" --auth-file "$tmp/bad-auth.json"
	assert_rc 9
	no_credentials
	cmp -n "$DEV_SIZE" "$d" /dev/zero'

expect 'token front: anonymous pull of a public repository, a private one needs the auth file' '
	reg_use token
	d=$(fresh_dev tok.img)
	provision "$d" "docker://$REG_HOST/vm/raw:latest"
	assert_rc 0
	payload_is "$d" "$img"
	d=$(fresh_dev tok2.img)
	provision "$d" "docker://$REG_HOST/private/vm:latest"
	assert_rc 9
	reg_auth_file "$tmp/tok-auth.json"
	provision "$d" "docker://$REG_HOST/private/vm:latest" --auth-file "$tmp/tok-auth.json"
	assert_rc 0
	no_credentials
	payload_is "$d" "$img"'

expect 'an image index from the registry: the host platform by default, --platform for the other' '
	reg_use token
	d=$(fresh_dev idx.img)
	provision "$d" "docker://$REG_HOST/vm/idx:latest" --platform linux/arm64
	assert_rc 0
	assert_eq "$(jget image_hash "$out")" "$(cd_platform_digest "$o/idx" latest linux/arm64)"
	payload_is "$d" "$tmp/other.raw"
	provision "$d" "docker://$REG_HOST/vm/idx:latest" --platform linux/s390x
	assert_rc 7
	assert_contains "$err" "no manifest for linux/s390x"
	run_imgdev info --json "docker://$REG_HOST/vm/idx:latest" --platform linux/arm64
	assert_rc 0
	assert_eq "$(jget platform "$out")" linux/arm64
	assert_eq "$(jget manifest_digest "$out")" "$(cd_platform_digest "$o/idx" latest linux/arm64)"'

expect 'refused before the first write, the device untouched: unknown tag and repository (7), a bad reference; two disks refused, nothing committed' '
	reg_use open
	d=$(fresh_dev held.img)
	provision "$d" "$img"; assert_rc 0
	before=$(sha "$d")
	provision "$d" "docker://$REG_HOST/vm/raw:nope"
	assert_rc 7
	assert_contains "$err" "MANIFEST_UNKNOWN"
	provision "$d" "docker://$REG_HOST/vm/nothing:latest"
	assert_rc 7
	provision "$d" "docker://$REG_HOST/Vm/raw:latest"
	[ "$rc" != 0 ]
	assert_eq "$(sha "$d")" "$before"
	# A second disk after the first is known only once the first has been read: written, not committed.
	provision "$d" "docker://$REG_HOST/vm/two:latest"
	assert_rc 7
	assert_contains "$err" "two disks: disk/vm.raw (layer 1) and disk/other.raw (layer 1)"
	assert_eq "$(header_hash "$d")" "$ZERO"'

expect 'a blob corrupted in the registry'"'"'s storage: exit 10, nothing committed; the fault proxy'"'"'s cuts resumed, the payload exact' '
	reg_use open
	l=$(cd_layer_digests "$o/raw")
	cp "$(reg_blob_file "$l")" "$tmp/blob.saved"
	reg_corrupt_blob "$l"
	d=$(fresh_dev bad.img)
	provision "$d" "docker://$REG_HOST/vm/corrupt:latest"
	assert_rc 10
	assert_contains "$err" "layer 1: digest $l expected"
	assert_eq "$(header_hash "$d")" "$ZERO"
	cp "$tmp/blob.saved" "$(reg_blob_file "$l")"
	reg_proxy_start cut --fault cut --after 1M --times 3
	d=$(fresh_dev cut.img)
	provision "$d" "docker://$REG_PROXY/vm/raw:latest"
	assert_rc 0
	payload_is "$d" "$img"
	faults=$(reg_proxy_log cut | jq -s "map(select(.event == \"done\" and .fault != null)) | length")
	[ "$faults" -ge 1 ] || { echo "the proxy broke no transfer"; false; }
	reg_proxy_log cut | jq -r "select(.event == \"done\" and .range != null) | .range" | grep -q "^bytes=[1-9]"
	reg_proxy_stop cut'

finish
