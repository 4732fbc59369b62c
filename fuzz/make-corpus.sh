#!/usr/bin/env bash
# Regenerates the seed corpus in fuzz/corpus/ from real imgdev output and
# kernel-shaped text. Needs build/imgdev. The seeds are committed; run this
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
