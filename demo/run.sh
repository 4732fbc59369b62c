#!/usr/bin/env bash
# The demo: imgdev's whole job on this machine, step by step, on a sparse
# file behind a loop device — build a sample image, provision it, map it,
# list, show the header, verify, provision again (matched), mount the mapping
# read-only and read a file from inside the image. Cleans up on any exit.
# Run as root: make demo.
set -euo pipefail
cd "$(dirname "$0")/.."
IMGDEV=${IMGDEV:-$PWD/build/imgdev}
NAME=virtlet-dm-demo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it attaches a loop device and mounts the image)" >&2
	exit 1
fi
work=$(mktemp -d /var/tmp/imgdev-demo.XXXXXX)
disk_loop=""
cleanup() {
	set +e
	mountpoint -q "$work/mnt" && umount "$work/mnt"
	"$IMGDEV" unmap "$NAME" >/dev/null 2>&1
	[ -n "$disk_loop" ] && losetup -d "$disk_loop"
	rm -rf "$work"
	echo
	echo "demo: cleaned up (mapping, loop device, files)"
}
trap cleanup EXIT

step "Make a sample VM image: a 24 MiB ext4 filesystem holding one file"
mkdir -p "$work/root/etc"
echo "Hello from inside the image, provisioned by imgdev $("$IMGDEV" --version | cut -d' ' -f2)." >"$work/root/etc/motd"
show mkfs.ext4 -q -L demo-root -d "$work/root" "$work/image.raw" 24M
echo "image: $(stat -c %s "$work/image.raw") bytes, sha256 $(sha256sum "$work/image.raw" | cut -c1-16)…"

step "Make the \"disk\": a sparse 64 MiB file behind a loop device"
truncate -s 64M "$work/disk.img"
disk_loop=$(losetup -f --show "$work/disk.img")
echo "disk: $disk_loop"

step "Provision: write the image after a header sector, commit it, map it"
printf '$ %s\n' "$IMGDEV provision $disk_loop $work/image.raw --name $NAME --progress --json"
"$IMGDEV" provision "$disk_loop" "$work/image.raw" --name "$NAME" --progress --json | tee "$work/provision.json"
# The path to boot from is what provision printed; nothing else on the host is assumed.
path=$(jq -er .mapped_path "$work/provision.json")

step "List the image mappings (device-mapper if the kernel has it, else loop); ours by name"
show "$IMGDEV" list
"$IMGDEV" list --json | jq -e --arg name "$NAME" '.[] | select(.name == $name)'

step "Show the header in sector 0 of the disk"
show "$IMGDEV" header "$disk_loop"

step "Verify: re-read the payload and check it against the commit record"
show "$IMGDEV" verify "$disk_loop"

step "Provision again: the header matches, so nothing is copied"
show "$IMGDEV" provision "$disk_loop" "$work/image.raw" --name "$NAME" --json

step "Mount the mapped device read-only and read the file inside the image"
listed=$("$IMGDEV" list --json | jq -er --arg name "$NAME" '.[] | select(.name == $name) | .path')
[ "$listed" = "$path" ] || { echo "demo: list says $NAME is at $listed, provision said $path" >&2; exit 1; }
mkdir -p "$work/mnt"
show mount -o ro "$path" "$work/mnt"
show cat "$work/mnt/etc/motd"
umount "$work/mnt"

step "Unmap"
show "$IMGDEV" unmap "$NAME"
echo
echo "demo: every step worked"
