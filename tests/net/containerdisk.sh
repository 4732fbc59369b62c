# OCI image layouts of KubeVirt containerDisks, for the registry tests (sourced).
#
#   . tests/net/containerdisk.sh
#   cd_build "$tmp/oci" disk.img --layer-compression zstd      # oci:$tmp/oci:latest
#   cd_build "$tmp/oci" other.img --tag v2                     # a second tag, same layout
#   reg_push "$tmp/oci" latest vm/disk:latest                  # tests/net/registry.sh
#   cd_manifest_digest "$tmp/oci" latest                       # sha256:… (what imgdev names)
#
# A layout is what the OCI image spec's image-layout.md says: `oci-layout`,
# `index.json` (each tag a descriptor with the annotation
# org.opencontainers.image.ref.name) and `blobs/sha256/HEX`, each blob named
# by the SHA-256 of its bytes. An image is a manifest
# (application/vnd.oci.image.manifest.v1+json) naming a config (with
# `rootfs.diff_ids`, the digests of the uncompressed tars) and its layers; an
# image index (application/vnd.oci.image.index.v1+json) names one manifest
# per platform. A containerDisk is an image whose layer holds the disk as
# `disk/NAME`, owned by 107:107 (KubeVirt's qemu user) with mode 0440, as
# `ADD --chown=107:107 disk.img /disk/` makes it; the `disk/` entry itself is
# root's, 0755.
#
# Only standard tools: GNU tar (entries appended one by one, each with the
# owner and mode it must have, so nothing is chown'ed), gzip, zstd,
# sha256sum and jq. The builds are reproducible (fixed mtimes, gzip -n, no
# PIDs in pax headers): the same disk and options give the same digests.
#
# Options every builder takes (after its positional arguments or among them):
#   --layer-compression none|gzip|zstd   the layers' compression (default gzip)
#   --disk-name NAME      the disk's name under disk/ (default: the file's basename)
#   --platform OS/ARCH[/VARIANT]   the config's platform (default linux/amd64)
#   --tag TAG             the tag in index.json (default latest); building another
#                         tag into the same OUTDIR keeps the others
#   --tar-format gnu|posix|ustar   GNU tar's --format (default gnu)
#
# The functions hold up under errexit and return 1 with a message on stderr.

CD_MTIME=${CD_MTIME:-1700000000}	# 2023-11-14T22:13:20Z, every entry's mtime
# The whited-out decoy of cd_build_whiteout, and what it holds (not a disk).
CD_DECOY_NAME=${CD_DECOY_NAME:-stale.img}

# cd__opts ARGS...: parse the common options into cd_compression, cd_disk_name,
# cd_platform, cd_tag, cd_tar_format, cd_disk_layer, cd_whiteout; the
# positional arguments go to the array cd_args.
cd__opts() {
	cd_compression=gzip cd_disk_name='' cd_platform=linux/amd64 cd_tag=latest
	cd_tar_format=gnu cd_disk_layer=2 cd_whiteout=explicit
	cd_args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--layer-compression) cd_compression=$2 ;;
		--disk-name) cd_disk_name=$2 ;;
		--platform) cd_platform=$2 ;;
		--tag) cd_tag=$2 ;;
		--tar-format) cd_tar_format=$2 ;;
		--disk-layer) cd_disk_layer=$2 ;;	# cd_build_whiteout only
		--whiteout) cd_whiteout=$2 ;;	# cd_build_whiteout only
		--*) echo "containerdisk: unknown option $1" >&2; return 1 ;;
		*) cd_args+=("$1"); shift; continue ;;
		esac
		[ $# -ge 2 ] || { echo "containerdisk: $1 needs a value" >&2; return 1; }
		shift 2
	done
	case $cd_compression in none | gzip | zstd) ;; *)
		echo "containerdisk: --layer-compression none|gzip|zstd, not $cd_compression" >&2
		return 1 ;;
	esac
	cd__valid_platform "$cd_platform"
}

# cd__valid_platform OS/ARCH[/VARIANT]: whether it is spelled so (else a message).
cd__valid_platform() {
	[[ $1 =~ ^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$ ]] ||
		{ echo "containerdisk: a platform is OS/ARCH[/VARIANT], not $1" >&2; return 1; }
}

# cd__init OUT: the layout's skeleton (kept if there; another tag may be added).
cd__init() {
	mkdir -p "$1/blobs/sha256" || return 1
	[ -s "$1/oci-layout" ] || echo '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
	[ -s "$1/index.json" ] ||
		echo '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}' \
			>"$1/index.json"
}

# cd__blob OUT FILE: move FILE into the layout under its digest; prints "DIGEST SIZE".
cd__blob() {
	local hex size
	hex=$(sha256sum "$2" | cut -c1-64) && size=$(stat -c %s "$2") &&
		mv -f "$2" "$1/blobs/sha256/$hex" && echo "sha256:$hex $size"
}

# cd__json_blob OUT JSON: JSON as a blob, compact (the bytes hashed are the bytes
# stored); prints "DIGEST SIZE".
cd__json_blob() {
	local f
	f=$(mktemp "$1/blobs/.json.XXXXXX") && jq -c . <<<"$2" | tr -d '\n' >"$f" && cd__blob "$1" "$f"
}

# cd__desc MEDIATYPE DIGEST SIZE: a descriptor.
cd__desc() { jq -cn --arg m "$1" --arg d "$2" --argjson s "$3" '{mediaType: $m, digest: $d, size: $s}'; }

# cd__platform OS/ARCH[/VARIANT]: the platform object of an index or config.
cd__platform() {
	local IFS=/ p
	read -r -a p <<<"$1"
	jq -cn --arg o "${p[0]}" --arg a "${p[1]}" --arg v "${p[2]:-}" \
		'{architecture: $a, os: $o} + (if $v == "" then {} else {variant: $v} end)'
}

# A layer is built as an uncompressed tar, entry by entry, in a staging
# directory that holds only what the entries point at (the disk as a symlink
# that tar follows: a large disk is never copied).
# cd__tar TAR STAGE OWNER MODE PATH [tar options]: append the entry PATH (in
# STAGE) owned by OWNER (uid = gid) with MODE; every entry has the same mtime.
cd__tar() {
	local opts=(--format="$cd_tar_format" --mtime="@$CD_MTIME" --numeric-owner --no-recursion
		--owner="$3" --group="$3" --mode="$4")
	# shellcheck disable=SC2054  # the commas are the option's
	[ "$cd_tar_format" = posix ] &&
		opts+=(--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
	tar -rf "$1" -C "$2" "${opts[@]}" "${@:6}" "$5"
}
# cd__tar_dir TAR STAGE PATH: a directory entry PATH/, root's, 0755.
cd__tar_dir() { mkdir -p "$2/$3" && cd__tar "$1" "$2" 0 0755 "$3/"; }
# cd__tar_file TAR STAGE PATH SRC OWNER MODE: a regular file PATH holding SRC's
# bytes (a symlink to SRC that tar follows), owned by OWNER with MODE.
cd__tar_file() {
	mkdir -p "$(dirname "$2/$3")" && ln -sfn "$(realpath "$4")" "$2/$3" &&
		cd__tar "$1" "$2" "$5" "$6" "$3" --dereference
}
# cd__tar_empty TAR STAGE PATH: an empty regular file (a whiteout), root's, 0644.
cd__tar_empty() { mkdir -p "$(dirname "$2/$3")" && : >"$2/$3" && cd__tar "$1" "$2" 0 0644 "$3"; }

# cd__layer OUT TAR: compress TAR as cd_compression says into a blob; prints
# the layer's descriptor, then its diff_id (the uncompressed tar's digest) on a
# second line. TAR is consumed.
cd__layer() {
	local diff blob media=application/vnd.oci.image.layer.v1.tar d
	diff=sha256:$(sha256sum "$2" | cut -c1-64) || return 1
	blob=$(mktemp "$1/blobs/.layer.XXXXXX") || return 1
	case $cd_compression in
	none) mv -f "$2" "$blob" ;;
	gzip) gzip -n -c "$2" >"$blob" && media+=+gzip ;;
	zstd) zstd -q -c "$2" >"$blob" && media+=+zstd ;;
	esac || return 1
	rm -f "$2"
	d=$(cd__blob "$1" "$blob") || return 1
	cd__desc "$media" ${d% *} ${d#* }
	echo "$diff"
}

# cd__image OUT PLATFORM TAR...: an image (config + manifest) of these layers,
# in order, each TAR made into a layer; prints the manifest's descriptor.
cd__image() {
	local out=$1 platform=$2 t l layers=() diffs=() config c m
	shift 2
	for t in "$@"; do
		l=$(cd__layer "$out" "$t") || return 1
		layers+=("$(head -n 1 <<<"$l")") diffs+=("$(tail -n 1 <<<"$l")")
	done
	config=$(jq -cn --argjson p "$(cd__platform "$platform")" --args '$p + {
		config: {}, rootfs: {type: "layers", diff_ids: $ARGS.positional}}' "${diffs[@]}") &&
	c=$(cd__json_blob "$out" "$config") &&
	m=$(jq -cn --argjson c "$(cd__desc application/vnd.oci.image.config.v1+json ${c% *} ${c#* })" \
		--jsonargs '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: $c, layers: $ARGS.positional}' "${layers[@]}") &&
	m=$(cd__json_blob "$out" "$m") &&
	cd__desc application/vnd.oci.image.manifest.v1+json ${m% *} ${m#* }
}

# cd__tag OUT DESC: DESC in index.json under cd_tag, replacing what had that tag.
cd__tag() {
	local f=$1/index.json
	jq -c --argjson d "$2" --arg t "$cd_tag" '.manifests |= (map(select(
		.annotations["org.opencontainers.image.ref.name"] != $t)) +
		[$d + {annotations: {"org.opencontainers.image.ref.name": $t}}])' "$f" >"$f.new" &&
		mv -f "$f.new" "$f"
}

# cd__stage OUT: a fresh staging directory for one image's tars (removed by the
# caller with cd__unstage).
cd__stage() { mktemp -d "$1/blobs/.stage.XXXXXX"; }
cd__unstage() { rm -rf "$1"; }

# cd__disk_layer TAR STAGE DISK NAME: the entries of a containerDisk's layer:
# disk/ and disk/NAME (107:107, 0440).
cd__disk_layer() {
	cd__tar_dir "$1" "$2" disk && cd__tar_file "$1" "$2" "disk/$4" "$3" 107 0440
}

# cd_build OUTDIR DISKFILE [options]: a containerDisk: one layer holding
# disk/NAME. See the top for the options.
cd_build() {
	local s desc
	cd__opts "$@" || return 1
	[ ${#cd_args[@]} -eq 2 ] || { echo "usage: cd_build OUTDIR DISKFILE [options]" >&2; return 1; }
	set -- "${cd_args[@]}"
	[ -f "$2" ] || { echo "containerdisk: no disk file $2" >&2; return 1; }
	cd__init "$1" && s=$(cd__stage "$1") || return 1
	cd__disk_layer "$s/l1.tar" "$s/1" "$2" "${cd_disk_name:-$(basename "$2")}" &&
		desc=$(cd__image "$1" "$cd_platform" "$s/l1.tar") && cd__tag "$1" "$desc"
	local rc=$?
	cd__unstage "$s"
	return $rc
}

# cd_build_whiteout OUTDIR DISKFILE [options] [--disk-layer 1|2] [--whiteout explicit|opaque]:
# a disk in two layers, as an image rebuilt on top of an older one leaves it.
# Layer 1 holds disk/ and the decoy disk/$CD_DECOY_NAME (1 MiB of "S", not the
# disk); layer 2 removes it with disk/.wh.$CD_DECOY_NAME (explicit, the
# default) or disk/.wh..wh..opq (opaque: every lower child of disk/). The real
# disk/NAME is in layer 2 (the default) or, with --disk-layer 1, in layer 1
# beside the decoy; there an opaque whiteout hides it too, leaving no disk.
# The whiteout comes before its siblings, as the spec asks writers to put it.
cd_build_whiteout() {
	local s desc name rc wh
	cd__opts "$@" || return 1
	[ ${#cd_args[@]} -eq 2 ] || { echo "usage: cd_build_whiteout OUTDIR DISKFILE [options]" >&2; return 1; }
	set -- "${cd_args[@]}"
	[ -f "$2" ] || { echo "containerdisk: no disk file $2" >&2; return 1; }
	name=${cd_disk_name:-$(basename "$2")}
	[ "$name" != "$CD_DECOY_NAME" ] || { echo "containerdisk: the disk is named like the decoy" >&2; return 1; }
	case $cd_disk_layer/$cd_whiteout in [12]/explicit | [12]/opaque) ;; *)
		echo "containerdisk: --disk-layer 1|2 and --whiteout explicit|opaque" >&2; return 1 ;;
	esac
	[ "$cd_whiteout" = opaque ] && wh=.wh..wh..opq || wh=.wh.$CD_DECOY_NAME
	cd__init "$1" && s=$(cd__stage "$1") || return 1
	{
		head -c 1M /dev/zero | tr '\0' S >"$s/decoy"
		cd__tar_dir "$s/l1.tar" "$s/1" disk &&
		cd__tar_file "$s/l1.tar" "$s/1" "disk/$CD_DECOY_NAME" "$s/decoy" 107 0440 &&
		if [ "$cd_disk_layer" = 1 ]; then
			cd__tar_file "$s/l1.tar" "$s/1" "disk/$name" "$2" 107 0440
		fi &&
		cd__tar_dir "$s/l2.tar" "$s/2" disk &&
		cd__tar_empty "$s/l2.tar" "$s/2" "disk/$wh" &&
		if [ "$cd_disk_layer" = 2 ]; then
			cd__tar_file "$s/l2.tar" "$s/2" "disk/$name" "$2" 107 0440
		fi &&
		desc=$(cd__image "$1" "$cd_platform" "$s/l1.tar" "$s/l2.tar") && cd__tag "$1" "$desc"
	}
	rc=$?
	cd__unstage "$s"
	return $rc
}

# cd_build_index OUTDIR [options] OS/ARCH[/VARIANT]=DISKFILE...: an image index
# with one containerDisk per platform (e.g. linux/amd64=a.img linux/arm64=b.img),
# each its own manifest and config; the tag names the index. --platform is not
# used; --disk-name names every disk (default: each file's basename).
cd_build_index() {
	local s out arg platform disk descs=() d i=0 idx rc=0
	cd__opts "$@" || return 1
	[ ${#cd_args[@]} -ge 2 ] || { echo "usage: cd_build_index OUTDIR [options] OS/ARCH=DISK..." >&2; return 1; }
	out=${cd_args[0]}
	cd__init "$out" && s=$(cd__stage "$out") || return 1
	for arg in "${cd_args[@]:1}"; do
		platform=${arg%%=*} disk=${arg#*=} i=$((i + 1))
		[[ $arg == *=* && -f $disk ]] || { echo "containerdisk: OS/ARCH=DISKFILE, not $arg" >&2; rc=1; break; }
		cd__valid_platform "$platform" || { rc=1; break; }
		cd__disk_layer "$s/l$i.tar" "$s/$i" "$disk" "${cd_disk_name:-$(basename "$disk")}" &&
			d=$(cd__image "$out" "$platform" "$s/l$i.tar") &&
			descs+=("$(jq -c --argjson p "$(cd__platform "$platform")" '. + {platform: $p}' <<<"$d")") ||
			{ rc=1; break; }
	done
	[ $rc = 0 ] &&
		idx=$(jq -cn --jsonargs '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
			manifests: $ARGS.positional}' "${descs[@]}") &&
		idx=$(cd__json_blob "$out" "$idx") &&
		cd__tag "$out" "$(cd__desc application/vnd.oci.image.index.v1+json ${idx% *} ${idx#* })" || rc=1
	cd__unstage "$s"
	return $rc
}

# cd_build_nodisk OUTDIR [options]: an image with no disk: its layer holds an
# empty disk/ and etc/imgdev-test (a few bytes of text), nothing else.
cd_build_nodisk() {
	local s desc rc
	cd__opts "$@" || return 1
	[ ${#cd_args[@]} -eq 1 ] || { echo "usage: cd_build_nodisk OUTDIR [options]" >&2; return 1; }
	set -- "${cd_args[@]}"
	cd__init "$1" && s=$(cd__stage "$1") || return 1
	echo "no disk in this image" >"$s/text"
	cd__tar_dir "$s/l1.tar" "$s/1" disk && cd__tar_dir "$s/l1.tar" "$s/1" etc &&
		cd__tar_file "$s/l1.tar" "$s/1" etc/imgdev-test "$s/text" 0 0644 &&
		desc=$(cd__image "$1" "$cd_platform" "$s/l1.tar") && cd__tag "$1" "$desc"
	rc=$?
	cd__unstage "$s"
	return $rc
}

# cd_build_twodisks OUTDIR DISK1 DISK2 [options]: two disks under disk/ in one
# layer (disk/NAME1 from --disk-name or DISK1's basename, disk/NAME2 DISK2's
# basename): a containerDisk that does not say which disk it is.
cd_build_twodisks() {
	local s desc rc n1 n2
	cd__opts "$@" || return 1
	[ ${#cd_args[@]} -eq 3 ] || { echo "usage: cd_build_twodisks OUTDIR DISK1 DISK2 [options]" >&2; return 1; }
	set -- "${cd_args[@]}"
	[ -f "$2" ] && [ -f "$3" ] || { echo "containerdisk: no disk file $2 or $3" >&2; return 1; }
	n1=${cd_disk_name:-$(basename "$2")} n2=$(basename "$3")
	[ "$n1" != "$n2" ] || { echo "containerdisk: two disks named $n1" >&2; return 1; }
	cd__init "$1" && s=$(cd__stage "$1") || return 1
	cd__disk_layer "$s/l1.tar" "$s/1" "$2" "$n1" &&
		cd__tar_file "$s/l1.tar" "$s/1" "disk/$n2" "$3" 107 0440 &&
		desc=$(cd__image "$1" "$cd_platform" "$s/l1.tar") && cd__tag "$1" "$desc"
	rc=$?
	cd__unstage "$s"
	return $rc
}

# cd_build_notar OUTDIR [options]: an image whose one layer is not a tar at
# all (64 KiB of random bytes, compressed as --layer-compression says), named
# by its true digest: only reading it can tell.
cd_build_notar() {
	local s desc rc
	cd__opts "$@" || return 1
	[ ${#cd_args[@]} -eq 1 ] || { echo "usage: cd_build_notar OUTDIR [options]" >&2; return 1; }
	set -- "${cd_args[@]}"
	cd__init "$1" && s=$(cd__stage "$1") || return 1
	head -c 65536 /dev/urandom >"$s/l1.tar" &&
		desc=$(cd__image "$1" "$cd_platform" "$s/l1.tar") && cd__tag "$1" "$desc"
	rc=$?
	cd__unstage "$s"
	return $rc
}

# cd_build_cut OUTDIR DISKFILE [options]: a containerDisk whose layer's tar
# ends halfway through the disk's data (its header claims the whole disk),
# the cut layer named by its true digest.
cd_build_cut() {
	local s desc rc size
	cd__opts "$@" || return 1
	[ ${#cd_args[@]} -eq 2 ] || { echo "usage: cd_build_cut OUTDIR DISKFILE [options]" >&2; return 1; }
	set -- "${cd_args[@]}"
	[ -f "$2" ] || { echo "containerdisk: no disk file $2" >&2; return 1; }
	cd__init "$1" && s=$(cd__stage "$1") || return 1
	size=$(stat -c %s "$2")
	cd__disk_layer "$s/l1.tar" "$s/1" "$2" "${cd_disk_name:-$(basename "$2")}" &&
		truncate -s $((1536 + size / 2)) "$s/l1.tar" &&
		desc=$(cd__image "$1" "$cd_platform" "$s/l1.tar") && cd__tag "$1" "$desc"
	rc=$?
	cd__unstage "$s"
	return $rc
}

# Reading a layout back.
# cd_desc OUTDIR [TAG]: the descriptor index.json has for TAG (default latest).
cd_desc() {
	jq -ce --arg t "${2:-latest}" 'first(.manifests[] |
		select(.annotations["org.opencontainers.image.ref.name"] == $t))' "$1/index.json" ||
		{ echo "containerdisk: no tag ${2:-latest} in $1" >&2; return 1; }
}
# cd_manifest_digest OUTDIR [TAG]: the digest TAG names: a manifest's, or an index's.
cd_manifest_digest() { cd_desc "$@" | jq -r .digest; }
# cd_blob OUTDIR DIGEST: the path of that blob.
cd_blob() { echo "$1/blobs/sha256/${2#sha256:}"; }
# cd_manifest OUTDIR [TAG]: the manifest (or index) TAG names, as stored.
cd_manifest() { local d; d=$(cd_manifest_digest "$@") && cat "$(cd_blob "$1" "$d")"; }
# cd_platform_digest OUTDIR TAG OS/ARCH: the digest of that platform's manifest in
# the index TAG names.
cd_platform_digest() {
	local IFS=/ p
	read -r -a p <<<"$3"
	cd_manifest "$1" "$2" | jq -re --arg o "${p[0]}" --arg a "${p[1]}" \
		'first(.manifests[] | select(.platform.os == $o and .platform.architecture == $a)) | .digest'
}
# cd_layer_digests OUTDIR [TAG]: the layers' digests of TAG's manifest, in order.
cd_layer_digests() { cd_manifest "$@" | jq -r '.layers[].digest'; }
# cd_config_digest OUTDIR [TAG]: the digest of TAG's config.
cd_config_digest() { cd_manifest "$@" | jq -r '.config.digest'; }
