#!/usr/bin/env bash
# Regenerates the seed corpus in fuzz/corpus/ from real imgdev output and
# kernel-shaped text, and small qcow2 images. Needs build/imgdev and qemu-img. The seeds are committed; run this
# only when the formats change.
set -euo pipefail
cd "$(dirname "$0")"
imgdev=../build/imgdev
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
head -c 1M /dev/zero >"$t/disk"
"$imgdev" ensure "$t/disk" "sha256:$(printf a | sha256sum | cut -c1-64)" >/dev/null
head -c 512 "$t/disk" >corpus/header/virtlet-v1
head -c 100000 /dev/urandom >"$t/img"
"$imgdev" provision "$t/disk" "$t/img" --no-map >/dev/null
head -c 512 "$t/disk" >corpus/header/complete
head -c 512 /dev/zero >corpus/header/zeros
printf '98:16 1' >corpus/parse/linear
printf '259:1048575 18446744073709551615' >corpus/parse/linear-big
printf 'MAJOR=7\nMINOR=3\nDEVNAME=loop3\nDEVTYPE=disk\nDISKSEQ=12\n' >corpus/parse/uevent
printf 'MAJOR=98\nMINOR=16\nDEVNAME=ubdb\n' >corpus/parse/uevent-ubd
# qcow2 seeds: small images of each layout the reader handles.
head -c 12000 /dev/urandom >"$t/raw"; truncate -s 40000 "$t/raw"; printf 'end' >>"$t/raw"
mkdir -p corpus/qcow2
qemu-img convert -f raw -O qcow2 -o compat=0.10,cluster_size=512 "$t/raw" corpus/qcow2/v2-512
qemu-img convert -f raw -O qcow2 -o cluster_size=4k "$t/raw" corpus/qcow2/v3-4k
qemu-io -c 'write -z 0 4k' -c 'discard 8k 4k' corpus/qcow2/v3-4k >/dev/null
qemu-img convert -f raw -O qcow2 -c -o cluster_size=4k "$t/raw" corpus/qcow2/zlib-4k
qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd,cluster_size=4k "$t/raw" corpus/qcow2/zstd-4k
qemu-img convert -f raw -O qcow2 -o extended_l2=on,cluster_size=16k "$t/raw" corpus/qcow2/extl2-16k
# oci seeds: the documents of containerDisk layouts (tests/net/containerdisk.sh),
# an index with two platforms, and skopeo's Docker schema 2 copy of its
# amd64 image (a gzip layer: schema 2 has no zstd).
mkdir -p corpus/oci
. ../tests/net/containerdisk.sh
head -c 4096 /dev/urandom >"$t/d.img"
cd_build_index "$t/L" linux/amd64="$t/d.img" linux/arm64="$t/d.img" >/dev/null
cd_build "$t/L" "$t/d.img" --layer-compression zstd --tag z >/dev/null
cp "$t/L/oci-layout" corpus/oci/oci-layout
cp "$t/L/index.json" corpus/oci/layout-index
cat "$(cd_blob "$t/L" "$(cd_manifest_digest "$t/L" latest)")" >corpus/oci/image-index
cd_manifest "$t/L" z >corpus/oci/manifest-zstd
skopeo copy -q --format v2s2 oci:"$t/L":latest oci:"$t/S":d
cat "$(cd_blob "$t/S" "$(cd_manifest_digest "$t/S" d)")" >corpus/oci/manifest-docker
