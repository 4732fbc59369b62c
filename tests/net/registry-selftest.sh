#!/usr/bin/env bash
# A check of the container-registry harness itself, not of imgdev: the OCI
# layouts tests/net/containerdisk.sh builds (against the image spec: blob
# names, diff_ids, media types, the disk's tar entry), and the registries of
# tests/net/registry.sh in each mode (open, htpasswd, token) as skopeo and
# curl see them: every layout pushed and read back with its digests, the
# Basic and Bearer refusals, the token flow walked by hand, the access-log
# counters, a corrupted blob served corrupted, the fault proxy in front, and
# every process stopped. tests/run-all.sh runs it (about 30 s).
# Needs docker-registry, skopeo, apache2-utils, curl, python3, jq, zstd.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/containerdisk.sh"

if ! reg_have; then
	echo "${0##*/}: 0 passed, 0 failed, 1 skipped (needs docker-registry, skopeo, apache2-utils, curl)"
	exit 0
fi
tmp=$(mktemp -d /var/tmp/imgdev-regself.XXXXXX)
REG_ROOT=$tmp/reg
cleanup() { reg_stop; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1

c() { curl -q -s -S --max-time 20 "$@"; }
# code URL [curl options]: the HTTP status curl got.
code() { c -o /dev/null -w '%{http_code}' "$@"; }
# hdr FILE NAME: the value of header NAME in a curl -D dump (the last response's).
hdr() { tr -d '\r' <"$1" | awk -v n="$(tr A-Z a-z <<<"$2")" -F': ' 'tolower($1) == n { v = $2 } END { print v }'; }
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
sk() { skopeo "$@"; }
# inspect_digest REF [skopeo options]: the SHA-256 of the manifest skopeo reads at docker://REF.
inspect_digest() {
	local ref=$1
	shift
	echo "sha256:$(sk inspect --raw --tls-verify=false "$@" "docker://$ref" | sha256sum | cut -c1-64)"
}
# dir_ok DIR DIGEST: a skopeo dir: copy holds the manifest DIGEST names, byte for
# byte, and every blob it names under its digest.
dir_ok() {
	local d
	assert_eq "sha256:$(sha256sum "$1/manifest.json" | cut -c1-64)" "$2" "manifest in $1"
	for d in $(jq -r '.config.digest, .layers[].digest' "$1/manifest.json"); do
		assert_eq "sha256:$(sha256sum "$1/${d#sha256:}" | cut -c1-64)" "$d" "blob in $1"
	done
}
# procs: processes of this test's registries still running (their configs and
# the front live under $tmp), one PID a line.
procs() { pgrep -f -- "$tmp/reg/|token-front\.py.*$tmp/|reg-watchdog [0-9]+ $tmp/" || true; }

t0=$(date +%s.%N)
# The disks: small random files, each recognisable.
head -c 3M /dev/urandom >"$tmp/a.img"
head -c 2M /dev/urandom >"$tmp/b.img"
head -c 1M /dev/urandom >"$tmp/c.img"
o=$tmp/oci
for z in none gzip zstd; do cd_build "$o/raw-$z" "$tmp/a.img" --layer-compression "$z" --disk-name disk.img; done
cd_build "$o/raw-posix" "$tmp/a.img" --tar-format posix --tag v1
cd_build "$o/raw-posix" "$tmp/b.img" --tar-format posix --tag v2
cd_build_whiteout "$o/wh" "$tmp/a.img"
cd_build_whiteout "$o/wh" "$tmp/a.img" --disk-layer 1 --tag lower
cd_build_whiteout "$o/wh" "$tmp/a.img" --whiteout opaque --tag opaque
cd_build_index "$o/index" linux/amd64="$tmp/a.img" linux/arm64="$tmp/b.img" --layer-compression zstd
cd_build_nodisk "$o/nodisk"
cd_build_twodisks "$o/two" "$tmp/a.img" "$tmp/b.img"
cd_build "$o/corrupt" "$tmp/c.img"
# layouts: every "DIR TAG" built above.
layouts=("raw-none latest" "raw-gzip latest" "raw-zstd latest" "raw-posix v1" "raw-posix v2"
	"wh latest" "wh lower" "wh opaque" "index latest" "nodisk latest" "two latest" "corrupt latest")

# layer_cat DIR DIGEST MANIFEST: that layer's tar, uncompressed as its media type says.
layer_cat() {
	local f
	f=$(cd_blob "$1" "$2")
	case $(jq -r --arg d "$2" '.layers[] | select(.digest == $d) | .mediaType' <<<"$3") in
	*+gzip) gzip -dc "$f" ;; *+zstd) zstd -dc "$f" ;; *) cat "$f" ;;
	esac
}
# layer_list DIR DIGEST MANIFEST: "MODE UID/GID SIZE PATH" of each entry of that layer.
layer_list() { layer_cat "$@" | tar -tvf - --numeric-owner | awk '{ print $1, $2, $3, $NF }'; }
# manifests_of DIR TAG: the manifests TAG names (each platform's for an index).
manifests_of() {
	local m
	m=$(cd_manifest "$1" "$2")
	if jq -e '.manifests' <<<"$m" >/dev/null; then jq -r '.manifests[].digest' <<<"$m"
	else cd_manifest_digest "$1" "$2"; fi
}

expect 'layouts: oci-layout 1.0.0, index.json tags each image by org.opencontainers.image.ref.name, every blob named by its SHA-256' '
	for l in "${layouts[@]}"; do
		set -- $l
		assert_eq "$(jq -r .imageLayoutVersion "$o/$1/oci-layout")" 1.0.0
		cd_desc "$o/$1" "$2" >/dev/null
		for b in "$o/$1"/blobs/sha256/*; do
			assert_eq "$(sha256sum "$b" | cut -c1-64)" "${b##*/}" "$1"
		done
	done
	[ -z "$(ls -A "$o/raw-none/blobs" | grep -v "^sha256$")" ]
	assert_eq "$(jq -r "[.manifests[].annotations[\"org.opencontainers.image.ref.name\"]] | join(\" \")" "$o/wh/index.json")" "latest lower opaque"'

expect 'manifests: OCI media types, descriptors whose size and digest are the blobs'\'', config diff_ids the uncompressed tars'\'' digests' '
	for l in "${layouts[@]}"; do
		set -- $l
		for m in $(manifests_of "$o/$1" "$2"); do
			man=$(cat "$(cd_blob "$o/$1" "$m")")
			assert_eq "$(jq -r .mediaType <<<"$man")" application/vnd.oci.image.manifest.v1+json
			assert_eq "$(jq -r .schemaVersion <<<"$man")" 2
			assert_eq "$(jq -r .config.mediaType <<<"$man")" application/vnd.oci.image.config.v1+json
			cfg=$(cat "$(cd_blob "$o/$1" "$(jq -r .config.digest <<<"$man")")")
			assert_eq "$(jq -r .rootfs.type <<<"$cfg")" layers
			i=0
			for d in $(jq -r ".config.digest, .layers[].digest" <<<"$man"); do
				assert_eq "$(stat -c %s "$(cd_blob "$o/$1" "$d")")" \
					"$(jq -r --arg d "$d" "[.config, .layers[]] | map(select(.digest == \$d))[0].size" <<<"$man")"
			done
			for d in $(jq -r ".layers[].digest" <<<"$man"); do
				f=$(cd_blob "$o/$1" "$d")
				mt=$(jq -r --arg d "$d" ".layers[] | select(.digest == \$d) | .mediaType" <<<"$man")
				case $mt in *+gzip) u=$(gzip -dc "$f" | sha256sum) ;; *+zstd) u=$(zstd -dc "$f" | sha256sum) ;;
				*) u=$(sha256sum <"$f") ;; esac
				assert_eq "sha256:${u:0:64}" "$(jq -r ".rootfs.diff_ids[$i]" <<<"$cfg")" "$1 layer $i"
				i=$((i + 1))
			done
			assert_eq "$(jq ".rootfs.diff_ids | length" <<<"$cfg")" "$i"
		done
	done
	for z in none:tar gzip:tar+gzip zstd:tar+zstd; do
		assert_eq "$(cd_manifest "$o/raw-${z%%:*}" | jq -r ".layers[0].mediaType")" \
			"application/vnd.oci.image.layer.v1.${z#*:}"
	done'

expect 'the disk layer: disk/ root 0755, disk/NAME 107:107 0440 holding the disk byte for byte (none, gzip, zstd; gnu and posix tar)' '
	for l in "raw-none latest" "raw-gzip latest" "raw-zstd latest" "raw-posix v1"; do
		set -- $l
		man=$(cd_manifest "$o/$1" "$2"); d=$(jq -r ".layers[0].digest" <<<"$man")
		n=disk.img; [ "$1" = raw-posix ] && n=a.img
		assert_eq "$(layer_list "$o/$1" "$d" "$man" | tr "\n" ";")" \
			"drwxr-xr-x 0/0 0 disk/;-r--r----- 107/107 3145728 disk/$n;" "$1"
		f=$(cd_blob "$o/$1" "$d")
		layer_cat "$o/$1" "$d" "$man" | tar -xOf - "disk/$n" | cmp - "$tmp/a.img"
	done
	man=$(cd_manifest "$o/raw-posix" v2)
	tar -xOf "$(cd_blob "$o/raw-posix" "$(jq -r ".layers[0].digest" <<<"$man")")" disk/b.img | cmp - "$tmp/b.img"'

expect 'whiteout: the decoy in layer 1, its .wh. file (or .wh..wh..opq) in layer 2 before the disk, or the disk in layer 1 (--disk-layer 1)' '
	for t in latest lower opaque; do
		man=$(cd_manifest "$o/wh" "$t"); assert_eq "$(jq ".layers | length" <<<"$man")" 2
		eval "$(jq -r "\"l1=\" + .layers[0].digest, \"l2=\" + .layers[1].digest" <<<"$man")"
		e1=$(layer_list "$o/wh" "$l1" "$man" | awk "{ print \$NF }" | tr "\n" " ")
		e2=$(layer_list "$o/wh" "$l2" "$man" | awk "{ print \$NF }" | tr "\n" " ")
		case $t in
		latest) assert_eq "$e1" "disk/ disk/stale.img "; assert_eq "$e2" "disk/ disk/.wh.stale.img disk/a.img " ;;
		lower) assert_eq "$e1" "disk/ disk/stale.img disk/a.img "; assert_eq "$e2" "disk/ disk/.wh.stale.img " ;;
		opaque) assert_eq "$e2" "disk/ disk/.wh..wh..opq disk/a.img " ;;
		esac
	done
	man=$(cd_manifest "$o/wh")
	l2=$(cd_blob "$o/wh" "$(jq -r ".layers[1].digest" <<<"$man")")
	assert_eq "$(gzip -dc "$l2" | tar -xOf - disk/.wh.stale.img | wc -c)" 0
	gzip -dc "$l2" | tar -xOf - disk/a.img | cmp - "$tmp/a.img"'

expect 'index: an OCI image index with linux/amd64 and linux/arm64, each manifest its own config (that platform) and disk' '
	idx=$(cd_manifest "$o/index")
	assert_eq "$(jq -r .mediaType <<<"$idx")" application/vnd.oci.image.index.v1+json
	assert_eq "$(jq -r "[.manifests[].platform | .os + \"/\" + .architecture] | join(\" \")" <<<"$idx")" \
		"linux/amd64 linux/arm64"
	assert_eq "$(cd_desc "$o/index" | jq -r .mediaType)" application/vnd.oci.image.index.v1+json
	for p in amd64:a arm64:b; do
		m=$(cat "$(cd_blob "$o/index" "$(cd_platform_digest "$o/index" latest "linux/${p%:*}")")")
		cfg=$(cat "$(cd_blob "$o/index" "$(jq -r .config.digest <<<"$m")")")
		assert_eq "$(jq -r ".os + \"/\" + .architecture" <<<"$cfg")" "linux/${p%:*}"
		zstd -dc "$(cd_blob "$o/index" "$(jq -r ".layers[0].digest" <<<"$m")")" |
			tar -xOf - "disk/${p#*:}.img" | cmp - "$tmp/${p#*:}.img"
	done'

expect 'no disk: nothing regular under disk/; two disks: both under disk/ in one layer' '
	man=$(cd_manifest "$o/nodisk")
	assert_eq "$(layer_list "$o/nodisk" "$(jq -r ".layers[0].digest" <<<"$man")" "$man" | awk "{ print \$1, \$NF }" | tr "\n" ";")" \
		"drwxr-xr-x disk/;drwxr-xr-x etc/;-rw-r--r-- etc/imgdev-test;"
	man=$(cd_manifest "$o/two")
	assert_eq "$(layer_list "$o/two" "$(jq -r ".layers[0].digest" <<<"$man")" "$man" | awk "{ print \$1, \$2, \$NF }" | tr "\n" ";")" \
		"drwxr-xr-x 0/0 disk/;-r--r----- 107/107 disk/a.img;-r--r----- 107/107 disk/b.img;"'

expect 'builds are reproducible: the same disk and options give the same digests; another tag keeps the first' '
	cd_build "$tmp/again" "$tmp/a.img" --layer-compression zstd --disk-name disk.img
	assert_eq "$(cd_manifest_digest "$tmp/again")" "$(cd_manifest_digest "$o/raw-zstd")"
	cd_build_index "$tmp/again-idx" linux/amd64="$tmp/a.img" linux/arm64="$tmp/b.img" --layer-compression zstd
	assert_eq "$(cd_manifest_digest "$tmp/again-idx")" "$(cd_manifest_digest "$o/index")"
	assert_eq "$(cd_manifest_digest "$o/raw-posix" v1)" "$(cd_manifest_digest "$o/raw-posix" v1)"
	[ "$(cd_manifest_digest "$o/raw-posix" v1)" != "$(cd_manifest_digest "$o/raw-posix" v2)" ]
	! cd_build "$tmp/bad" "$tmp/a.img" --layer-compression xz 2>/dev/null
	! cd_build "$tmp/bad" "$tmp/nothing.img" 2>/dev/null'

# --- open ---------------------------------------------------------------------
reg_start open || exit 1
expect 'open: /v2/ answers 200 {} on 127.0.0.1 only; REG_PID is the registry, REG_STORAGE and REG_LOG its own' '
	assert_eq "$(c "http://$REG_HOST/v2/")" "{}"
	c -D "$tmp/h" -o /dev/null "http://$REG_HOST/v2/"
	assert_eq "$(hdr "$tmp/h" Docker-Distribution-Api-Version)" registry/2.0
	assert_eq "$(ss -ltn "sport = :${REG_HOST#*:}" | awk "NR > 1 { print \$4 }")" "$REG_HOST"
	tr "\0" " " <"/proc/$REG_PID/cmdline" | grep -q "docker-registry serve $REG_DIR/imgdev-registry.yml"
	grep -q "rootdirectory: $REG_STORAGE" "$REG_DIR/imgdev-registry.yml"
	grep -q "level=info" "$REG_LOG"
	reg_start open; assert_eq "$REG_PID" "$(cat "$REG_ROOT/pids/open-registry.pid")"'

expect 'open: every layout pushes with skopeo; skopeo inspect --raw reads back the manifest (or index) with the layout'\''s digest' '
	for l in "${layouts[@]}"; do
		set -- $l
		reg_push "$o/$1" "$2" "lay/$1:$2"
		assert_eq "$(inspect_digest "$REG_HOST/lay/$1:$2")" "$(cd_manifest_digest "$o/$1" "$2")" "$1:$2"
	done
	for p in amd64 arm64; do
		d=$(cd_platform_digest "$o/index" latest "linux/$p")
		assert_eq "$(inspect_digest "$REG_HOST/lay/index@$d")" "$d"
	done'

expect 'open: skopeo copy docker://… dir: gets every manifest and blob back with its digest (each platform of the index)' '
	for l in "raw-none latest" "raw-gzip latest" "raw-zstd latest" "wh lower" "two latest"; do
		set -- $l
		sk copy -q --src-tls-verify=false "docker://$REG_HOST/lay/$1:$2" "dir:$tmp/dir-$1-$2"
		dir_ok "$tmp/dir-$1-$2" "$(cd_manifest_digest "$o/$1" "$2")"
		cmp "$tmp/dir-$1-$2/manifest.json" "$(cd_blob "$o/$1" "$(cd_manifest_digest "$o/$1" "$2")")"
	done
	for p in amd64 arm64; do
		sk --override-os linux --override-arch "$p" copy -q --src-tls-verify=false \
			"docker://$REG_HOST/lay/index:latest" "dir:$tmp/dir-index-$p"
		dir_ok "$tmp/dir-index-$p" "$(cd_platform_digest "$o/index" latest "linux/$p")"
	done'

expect 'open: the registry as imgdev will meet it: HEAD, Range (206), Docker-Content-Digest; OCI manifests only for an Accept that names them' '
	m=$(cd_manifest_digest "$o/raw-gzip"); l=$(cd_layer_digests "$o/raw-gzip"); f=$(cd_blob "$o/raw-gzip" "$l")
	R=http://$REG_HOST/v2/lay/raw-gzip
	c -I -D "$tmp/h" -o /dev/null -H "$ACCEPT" "$R/manifests/latest"
	assert_eq "$(hdr "$tmp/h" Docker-Content-Digest)" "$m"
	assert_eq "$(hdr "$tmp/h" Content-Type)" application/vnd.oci.image.manifest.v1+json
	assert_eq "$(code -H "$ACCEPT" "$R/manifests/$m")" 200
	# No Accept for OCI: 404 MANIFEST_UNKNOWN, an image index too.
	c -D "$tmp/h" -o "$tmp/body" "$R/manifests/latest"; assert_eq "$(hdr "$tmp/h" Content-Type)" "application/json; charset=utf-8"
	assert_eq "$(jq -r ".errors[0].code" "$tmp/body")" MANIFEST_UNKNOWN
	assert_eq "$(code "http://$REG_HOST/v2/lay/index/manifests/latest")" 404
	assert_eq "$(code -H "Accept: application/vnd.oci.image.index.v1+json" "http://$REG_HOST/v2/lay/index/manifests/latest")" 200
	c -I -D "$tmp/h" -o /dev/null "$R/blobs/$l"
	assert_eq "$(hdr "$tmp/h" Content-Length)" "$(stat -c %s "$f")"
	assert_eq "$(hdr "$tmp/h" Docker-Content-Digest)" "$l"; assert_eq "$(hdr "$tmp/h" Accept-Ranges)" bytes
	c -D "$tmp/h" -o "$tmp/part" -r 1000-1999 "$R/blobs/$l"
	grep -q "^HTTP/1.1 206" "$tmp/h"
	assert_eq "$(hdr "$tmp/h" Content-Range)" "bytes 1000-1999/$(stat -c %s "$f")"
	cmp "$tmp/part" <(tail -c +1001 "$f" | head -c 1000)
	c -o "$tmp/whole" "$R/blobs/$l"; cmp "$tmp/whole" "$f"
	c -o "$tmp/body" "$R/blobs/sha256:$(printf %064d 0)" -w "%{http_code}" | grep -q 404
	assert_eq "$(jq -r ".errors[0].code" "$tmp/body")" BLOB_UNKNOWN
	assert_eq "$(code -H "$ACCEPT" "http://$REG_HOST/v2/nothing/here/manifests/latest")" 404'

expect 'open: reg_log_blob_gets counts the GETs of a repository'\''s blobs (and of one blob), not HEADs, manifests or other repositories' '
	l=$(cd_layer_digests "$o/raw-zstd"); cfg=$(cd_config_digest "$o/raw-zstd")
	assert_eq "$(reg_log_blob_gets lay/raw-zstd)" 2 "the dir: copy above: config and layer"
	inspect_digest "$REG_HOST/lay/raw-zstd:latest" >/dev/null
	c -I -o /dev/null "http://$REG_HOST/v2/lay/raw-zstd/blobs/$l"
	assert_eq "$(reg_log_blob_gets lay/raw-zstd)" 2
	for i in 1 2 3; do c -o /dev/null -r 0-9 "http://$REG_HOST/v2/lay/raw-zstd/blobs/$l"; done
	assert_eq "$(reg_log_blob_gets lay/raw-zstd "$l")" 4
	assert_eq "$(reg_log_blob_gets lay/raw-zstd "$cfg")" 1
	assert_eq "$(reg_log_blob_gets lay/raw-zstd)" 5
	assert_eq "$(reg_log_blob_gets lay/raw)" 0 "a prefix of another name"
	assert_eq "$(reg_log_blob_gets lay/nodisk)" 0
	[ "$(reg_log_manifest_gets lay/raw-zstd)" -ge 2 ]
	reg_log_requests lay/raw-zstd | grep -q "^HEAD /v2/lay/raw-zstd/blobs/$l 200 0$"'

expect 'open: a corrupted blob in REG_STORAGE is served corrupted (same size and Docker-Content-Digest); skopeo refuses it' '
	l=$(cd_layer_digests "$o/corrupt"); f=$(reg_blob_file "$l")
	cmp "$f" "$(cd_blob "$o/corrupt" "$l")"
	reg_corrupt_blob "$l"
	! cmp -s "$f" "$(cd_blob "$o/corrupt" "$l")"
	c -D "$tmp/h" -o "$tmp/bad" "http://$REG_HOST/v2/lay/corrupt/blobs/$l"
	grep -q "^HTTP/1.1 200" "$tmp/h"
	assert_eq "$(stat -c %s "$tmp/bad")" "$(stat -c %s "$(cd_blob "$o/corrupt" "$l")")"
	assert_eq "$(hdr "$tmp/h" Docker-Content-Digest)" "$l"
	[ "sha256:$(sha256sum "$tmp/bad" | cut -c1-64)" != "$l" ]
	assert_eq "$(cmp -l "$tmp/bad" "$(cd_blob "$o/corrupt" "$l")" | wc -l)" 1
	rc=0; sk copy -q --src-tls-verify=false "docker://$REG_HOST/lay/corrupt:latest" "dir:$tmp/dir-corrupt" 2>"$tmp/e" || rc=$?
	cat "$tmp/e"; [ "$rc" -ne 0 ]; grep -qi "digest" "$tmp/e"'

expect 'open: reg_proxy_start puts the fault proxy in front: skopeo reads through it; a blob cut after 1 MiB resumes by Range and If-Range' '
	reg_proxy_start cut --fault cut --after 1M
	assert_eq "$(inspect_digest "$REG_PROXY/lay/raw-gzip:latest")" "$(cd_manifest_digest "$o/raw-gzip")"
	l=$(cd_layer_digests "$o/raw-gzip"); f=$(cd_blob "$o/raw-gzip" "$l")
	rc=0; c -D "$tmp/h" -o "$tmp/cut" "http://$REG_PROXY/v2/lay/raw-gzip/blobs/$l" 2>/dev/null || rc=$?
	assert_eq "$rc" 18; assert_eq "$(stat -c %s "$tmp/cut")" 1048576
	assert_eq "$(hdr "$tmp/h" Docker-Content-Digest)" "$l"
	c -D "$tmp/h" -o "$tmp/rest" -r 1048576- -H "If-Range: $(hdr "$tmp/h" Etag)" "http://$REG_PROXY/v2/lay/raw-gzip/blobs/$l"
	grep -q "^HTTP/1.1 206" "$tmp/h"; cat "$tmp/cut" "$tmp/rest" | cmp - "$f"
	reg_proxy_log cut | jq -r "select(.event == \"done\" and .range != null) | .range" | grep -qx "bytes=1048576-"
	reg_proxy_stop cut; [ -z "$(ls "$REG_ROOT/proxy/pids")" ]'

expect 'open: reg_push --format v2s2 converts to Docker schema 2 media types; served only for an Accept that names it' '
	reg_push "$o/raw-gzip" latest lay/v2s2:latest --format v2s2
	m=$(sk inspect --raw --tls-verify=false "docker://$REG_HOST/lay/v2s2:latest")
	assert_eq "$(jq -r .mediaType <<<"$m")" application/vnd.docker.distribution.manifest.v2+json
	assert_eq "$(jq -r .config.mediaType <<<"$m")" application/vnd.docker.container.image.v1+json
	assert_eq "$(jq -r ".layers[0].mediaType" <<<"$m")" application/vnd.docker.image.rootfs.diff.tar.gzip
	assert_eq "$(jq -r ".layers[0].digest" <<<"$m")" "$(cd_layer_digests "$o/raw-gzip")"
	# Without an Accept naming its type (none, empty, */*), the registry tries to
	# convert it to schema 1 and fails: 400 MANIFEST_INVALID.
	D=application/vnd.docker.distribution.manifest.v2+json
	assert_eq "$(code -H "Accept: $D" "http://$REG_HOST/v2/lay/v2s2/manifests/latest")" 200
	for a in "Accept:" "Accept;" "Accept: */*"; do
		assert_eq "$(c -o "$tmp/body" -H "$a" -w "%{http_code}" "http://$REG_HOST/v2/lay/v2s2/manifests/latest")" 400 "$a"
		assert_eq "$(jq -r ".errors[0].code" "$tmp/body")" MANIFEST_INVALID "$a"
	done
	assert_eq "$(code -H "Accept: $D" "http://$REG_HOST/v2/lay/raw-gzip/manifests/latest")" 404 "OCI for Docker only"'

# --- htpasswd -------------------------------------------------------------------
reg_start htpasswd || exit 1
expect 'htpasswd: 401 with a Basic challenge without credentials or with a wrong password; 200 with REG_USER:REG_PASS' '
	c -D "$tmp/h" -o "$tmp/body" "http://$REG_HOST/v2/"
	grep -q "^HTTP/1.1 401" "$tmp/h"
	assert_eq "$(hdr "$tmp/h" WWW-Authenticate)" "Basic realm=\"$REG_SERVICE\""
	assert_eq "$(jq -r ".errors[0].code" "$tmp/body")" UNAUTHORIZED
	assert_eq "$(code -u "$REG_USER:wrong" "http://$REG_HOST/v2/")" 401
	assert_eq "$(code -u "$(reg_creds)" "http://$REG_HOST/v2/")" 200
	grep -q "^$REG_USER:\$2y\\$" "$REG_DIR/htpasswd"'

expect 'htpasswd: reg_push uses the credentials; skopeo without them is refused, with --creds or an auths file it reads the image' '
	reg_push "$o/raw-gzip" latest vm/raw:latest
	reg_push "$o/index" latest vm/index:latest
	rc=0; sk inspect --raw --tls-verify=false --no-creds "docker://$REG_HOST/vm/raw:latest" 2>"$tmp/e" || rc=$?
	[ "$rc" -ne 0 ]; grep -qi "unauthorized\|authentication required" "$tmp/e"
	rc=0; sk copy -q --dest-tls-verify=false --dest-no-creds "oci:$o/raw-zstd:latest" "docker://$REG_HOST/vm/zstd:latest" 2>/dev/null || rc=$?
	[ "$rc" -ne 0 ]
	assert_eq "$(inspect_digest "$REG_HOST/vm/raw:latest" --creds "$(reg_creds)")" "$(cd_manifest_digest "$o/raw-gzip")"
	reg_auth_file "$tmp/auth.json"
	assert_eq "$(jq -r --arg h "$REG_HOST" ".auths[\$h].auth" "$tmp/auth.json" | base64 -d)" "$(reg_creds)"
	assert_eq "$(inspect_digest "$REG_HOST/vm/index:latest" --authfile "$tmp/auth.json")" "$(cd_manifest_digest "$o/index")"
	sk copy -q --src-tls-verify=false --src-creds "$(reg_creds)" "docker://$REG_HOST/vm/raw:latest" "dir:$tmp/dir-htp"
	dir_ok "$tmp/dir-htp" "$(cd_manifest_digest "$o/raw-gzip")"
	assert_eq "$(reg_log_blob_gets vm/raw)" 2'

# --- token ----------------------------------------------------------------------
reg_start token || exit 1
for l in "raw-gzip latest" "index latest"; do
	set -- $l
	reg_push "$o/$1" "$2" "pub/$1:$2" && reg_push "$o/$1" "$2" "${REG_PRIVATE_PREFIX}$1:$2" || exit 1
done
# challenge_param FILE NAME: a parameter of the Bearer challenge in a curl -D dump.
challenge_param() { hdr "$1" WWW-Authenticate | sed -n "s/.*[ ,]$2=\"\\([^\"]*\\)\".*/\\1/p"; }

expect 'token: without a token /v2/ is 401 with a Bearer challenge (realm, service, no scope), a manifest or blob 401 with its scope' '
	[ "$REG_HOST" != "$REG_REGISTRY" ]
	c -D "$tmp/h" -o "$tmp/body" "http://$REG_HOST/v2/"
	grep -q "^HTTP/1.1 401" "$tmp/h"
	assert_eq "$(hdr "$tmp/h" WWW-Authenticate)" "Bearer realm=\"$REG_REALM\",service=\"$REG_SERVICE\""
	assert_eq "$(hdr "$tmp/h" Docker-Distribution-Api-Version)" registry/2.0
	c -D "$tmp/h" -o "$tmp/body" -H "$ACCEPT" "http://$REG_HOST/v2/pub/raw-gzip/manifests/latest"
	grep -q "^HTTP/1.1 401" "$tmp/h"
	assert_eq "$(hdr "$tmp/h" WWW-Authenticate)" \
		"Bearer realm=\"http://$REG_HOST/token\",service=\"reg-test\",scope=\"repository:pub/raw-gzip:pull\""
	assert_eq "$(jq -r ".errors[0].code" "$tmp/body")" UNAUTHORIZED
	c -D "$tmp/h" -o /dev/null "http://$REG_HOST/v2/pub/raw-gzip/blobs/$(cd_layer_digests "$o/raw-gzip")"
	assert_eq "$(challenge_param "$tmp/h" scope)" repository:pub/raw-gzip:pull
	assert_eq "$(code -H "Authorization: Bearer not-a-token" "http://$REG_HOST/v2/")" 401
	assert_eq "$(code -u "$(reg_creds)" "http://$REG_HOST/v2/")" 401 "Basic on the registry itself"
	assert_eq "$(code -X POST "http://$REG_HOST/v2/pub/raw-gzip/blobs/uploads/")" 405'

expect 'token: the flow by hand with curl: challenge, anonymous token, manifest by tag and digest, blob whole and by Range' '
	R=http://$REG_HOST/v2/pub/raw-gzip
	c -D "$tmp/h" -o /dev/null -H "$ACCEPT" "$R/manifests/latest"
	realm=$(challenge_param "$tmp/h" realm) service=$(challenge_param "$tmp/h" service) scope=$(challenge_param "$tmp/h" scope)
	c -o "$tmp/tok" -G --data-urlencode "service=$service" --data-urlencode "scope=$scope" "$realm"
	t=$(jq -r .token "$tmp/tok"); [ -n "$t" ]; assert_eq "$(jq -r .access_token "$tmp/tok")" "$t"
	[ "$(jq -r .expires_in "$tmp/tok")" -gt 0 ]
	A="Authorization: Bearer $t"
	c -D "$tmp/h" -o "$tmp/m" -H "$A" -H "$ACCEPT" "$R/manifests/latest"
	m=$(cd_manifest_digest "$o/raw-gzip")
	assert_eq "sha256:$(sha256sum "$tmp/m" | cut -c1-64)" "$m"
	assert_eq "$(hdr "$tmp/h" Docker-Content-Digest)" "$m"
	assert_eq "$(hdr "$tmp/h" Content-Length)" "$(stat -c %s "$tmp/m")"
	assert_eq "$(code -H "$A" -H "$ACCEPT" "$R/manifests/$m")" 200
	c -I -D "$tmp/h" -o /dev/null -H "$A" -H "$ACCEPT" "$R/manifests/latest"
	assert_eq "$(hdr "$tmp/h" Docker-Content-Digest)" "$m"
	l=$(jq -r ".layers[0].digest" "$tmp/m"); f=$(cd_blob "$o/raw-gzip" "$l")
	c -D "$tmp/h" -o "$tmp/blob" -H "$A" "$R/blobs/$l"; cmp "$tmp/blob" "$f"
	assert_eq "$(hdr "$tmp/h" Docker-Content-Digest)" "$l"; assert_eq "$(hdr "$tmp/h" Content-Length)" "$(stat -c %s "$f")"
	c -D "$tmp/h" -o "$tmp/part" -H "$A" -r 4096- "$R/blobs/$l"
	grep -q "^HTTP/1.1 206" "$tmp/h"; cmp "$tmp/part" <(tail -c +4097 "$f")
	assert_eq "$(hdr "$tmp/h" Content-Range)" "bytes 4096-$(($(stat -c %s "$f") - 1))/$(stat -c %s "$f")"
	assert_eq "$(code -H "$A" -H "$ACCEPT" "http://$REG_HOST/v2/")" 200
	# That token is for pub/raw-gzip only.
	c -D "$tmp/h" -o /dev/null -H "$A" -H "$ACCEPT" "http://$REG_HOST/v2/pub/index/manifests/latest"
	grep -q "^HTTP/1.1 401" "$tmp/h"; assert_eq "$(challenge_param "$tmp/h" error)" insufficient_scope
	assert_eq "$(reg_log_blob_gets pub/raw-gzip)" 2'

expect 'token: a private repository: an anonymous token grants nothing, wrong credentials 401 at the realm, REG_USER:REG_PASS a token that reads it' '
	P=${REG_PRIVATE_PREFIX}raw-gzip; tok() { c -G --data-urlencode service=reg-test --data-urlencode "scope=repository:$P:pull" "$@" "$REG_REALM"; }
	t=$(tok | jq -r .token)
	c -D "$tmp/h" -o /dev/null -H "Authorization: Bearer $t" -H "$ACCEPT" "http://$REG_HOST/v2/$P/manifests/latest"
	grep -q "^HTTP/1.1 401" "$tmp/h"; assert_eq "$(challenge_param "$tmp/h" error)" insufficient_scope
	assert_eq "$(code -u "$REG_USER:wrong" -G --data-urlencode service=reg-test --data-urlencode "scope=repository:$P:pull" "$REG_REALM")" 401
	assert_eq "$(code -G --data-urlencode service=other --data-urlencode "scope=repository:$P:pull" "$REG_REALM")" 400
	t=$(tok -u "$(reg_creds)" | jq -r .token)
	c -o "$tmp/m" -H "Authorization: Bearer $t" -H "$ACCEPT" "http://$REG_HOST/v2/$P/manifests/latest"
	assert_eq "sha256:$(sha256sum "$tmp/m" | cut -c1-64)" "$(cd_manifest_digest "$o/raw-gzip")"'

expect 'token: skopeo pulls through the front, anonymously from a public repository and with --creds from a private one' '
	assert_eq "$(inspect_digest "$REG_HOST/pub/index:latest")" "$(cd_manifest_digest "$o/index")"
	sk copy -q --src-tls-verify=false "docker://$REG_HOST/pub/raw-gzip:latest" "dir:$tmp/dir-tok"
	dir_ok "$tmp/dir-tok" "$(cd_manifest_digest "$o/raw-gzip")"
	rc=0; sk inspect --raw --tls-verify=false "docker://$REG_HOST/${REG_PRIVATE_PREFIX}index:latest" 2>"$tmp/e" || rc=$?
	[ "$rc" -ne 0 ]; grep -qi "unauthorized\|denied" "$tmp/e"
	sk --override-arch arm64 copy -q --src-tls-verify=false --src-creds "$(reg_creds)" \
		"docker://$REG_HOST/${REG_PRIVATE_PREFIX}index:latest" "dir:$tmp/dir-tok-arm"
	dir_ok "$tmp/dir-tok-arm" "$(cd_platform_digest "$o/index" latest linux/arm64)"
	# The front logged each request with how it was let in.
	reg_front_log | jq -e -s "map(select(.path == \"/token\" and .auth == \"basic\")) | length > 0" >/dev/null
	reg_front_log | jq -e -s "map(select(.auth == \"bearer\" and .status == 200 and (.path | contains(\"/blobs/\")))) | length >= 2" >/dev/null'

expect 'token-front.py --token-ttl: an expired token is refused with the challenge again; --token-status makes the realm fail' '
	"$NET_PYTHON" "$reg_here/token-front.py" --upstream "$REG_REGISTRY" --port-file "$tmp/f2.port" \
		--pid-file "$REG_ROOT/pids/ttl-front.pid" --watch-pid $$ --token-ttl 0.5 >/dev/null 2>&1 &
	for i in $(seq 50); do [ -s "$tmp/f2.port" ] && break; sleep 0.1; done
	F=127.0.0.1:$(cat "$tmp/f2.port")
	t=$(c "http://$F/token?service=reg-test&scope=repository:pub/raw-gzip:pull" | jq -r .token)
	assert_eq "$(code -H "Authorization: Bearer $t" -H "$ACCEPT" "http://$F/v2/pub/raw-gzip/manifests/latest")" 200
	sleep 0.7
	assert_eq "$(code -H "Authorization: Bearer $t" -H "$ACCEPT" "http://$F/v2/pub/raw-gzip/manifests/latest")" 401
	net__kill "$REG_ROOT/pids/ttl-front.pid" token-front.py
	"$NET_PYTHON" "$reg_here/token-front.py" --upstream "$REG_REGISTRY" --port-file "$tmp/f3.port" \
		--pid-file "$REG_ROOT/pids/status-front.pid" --watch-pid $$ --token-status 503 >/dev/null 2>&1 &
	for i in $(seq 50); do [ -s "$tmp/f3.port" ] && break; sleep 0.1; done
	assert_eq "$(code "http://127.0.0.1:$(cat "$tmp/f3.port")/token?service=reg-test")" 503
	net__kill "$REG_ROOT/pids/status-front.pid" token-front.py'

# --- stopping -------------------------------------------------------------------
expect 'reg_stop MODE stops that instance only; reg_use switches between the others' '
	reg_use open; open_pid=$REG_PID
	reg_use token; tok_pid=$REG_PID front_pid=$REG_FRONT_PID
	reg_stop token
	! net_pid_running "$tok_pid"; ! net_pid_running "$front_pid"
	net_pid_running "$open_pid"
	reg_use open; assert_eq "$(code "http://$REG_HOST/v2/")" 200
	reg_start token; assert_eq "$(code "http://$REG_HOST/v2/")" 401; [ "$REG_PID" != "$tok_pid" ]'

expect 'reg_stop stops every registry, front and the watchdog by PID (twice is fine); nothing is left listening' '
	pids=$(procs); [ -n "$pids" ]
	ports=$(for m in open htpasswd token; do (reg_use $m; echo "${REG_HOST#*:} ${REG_REGISTRY#*:}"); done)
	reg_stop; reg_stop
	for i in $(seq 50); do [ -z "$(procs)" ] && break; sleep 0.1; done
	assert_eq "$(procs)" "" "still running"
	for p in $ports; do ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; done'

expect 'a registry whose test shell died without its trap is stopped by the watchdog (and the front by itself)' '
	bash -c ". $reg_here/registry.sh; REG_ROOT=$tmp/orphan; reg_start token >/dev/null; \
		cat \$REG_ROOT/pids/token-registry.pid \$REG_ROOT/pids/token-front.pid" >"$tmp/orphan.pids"
	assert_eq "$(wc -l <"$tmp/orphan.pids")" 2
	for i in $(seq 50); do
		alive=0; for p in $(cat "$tmp/orphan.pids"); do net_pid_running "$p" && alive=1; done
		[ "$alive" = 0 ] && break; sleep 0.1
	done
	assert_eq "$alive" 0'

expect 'each mode starts and stops again from nothing, with a REG_ROOT of its own that reg_stop removes' '
	unset REG_ROOT
	for m in open htpasswd token; do
		reg_start "$m"; root=$REG_ROOT pid=$REG_PID
		[ "$(code "http://$REG_HOST/v2/")" != 000 ]
		reg_stop; ! net_pid_running "$pid"; [ ! -e "$root" ]
	done'

t1=$(date +%s.%N)
echo "# registry-selftest took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
finish
