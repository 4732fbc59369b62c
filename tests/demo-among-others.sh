#!/usr/bin/env bash
# Runs the demo on a host that has other loop devices and other mappings, as
# CI does: a loop device someone attached with `losetup -o 512` over a file
# carrying our header, and an image mapping of another name made by imgdev.
# The demo must use its own mapping and leave the others alone.
set -euo pipefail
cd "$(dirname "$0")/.."
IMGDEV=${IMGDEV:-$PWD/build/imgdev}
work=$(mktemp -d /var/tmp/imgdev-others.XXXXXX)
other=""
cleanup() {
	set +e
	"$IMGDEV" unmap virtlet-dm-bystander >/dev/null 2>&1
	[ -n "$other" ] && losetup -d "$other"
	# Whatever is still attached to our files (an unmap that failed).
	losetup -l -n -O NAME -j "$work/disk2.img" 2>/dev/null | xargs -r -n1 losetup -d
	rm -rf "$work"
}
trap cleanup EXIT

truncate -s 8M "$work/disk.img"
"$IMGDEV" ensure "$work/disk.img" "$(printf other | sha256sum | cut -c1-64)" >/dev/null
other=$(losetup -f --show -o 512 "$work/disk.img")
head -c 1000000 /dev/urandom >"$work/image"
truncate -s 8M "$work/disk2.img"
"$IMGDEV" --backend loop provision "$work/disk2.img" "$work/image" --name virtlet-dm-bystander >/dev/null
demo/run.sh
# The others are still there and untouched.
[ -e "/sys/block/${other#/dev/}/loop/backing_file" ]
"$IMGDEV" list | grep -qx virtlet-dm-bystander
echo "demo among others: the bystanders are intact"
