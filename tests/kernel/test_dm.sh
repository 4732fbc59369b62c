#!/usr/bin/env bash
# Host side of the device-mapper kernel tests: makes the disk files, boots
# user-mode Linux once with them as /dev/ubdb../dev/ubde, and runs
# guest_dm.sh inside it. Skips (77) when user-mode Linux is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export IMGDEV=${IMGDEV:-$top/build/imgdev}

if ! command -v linux.uml >/dev/null; then
	echo "test_dm.sh: 0 passed, 0 failed, 1 skipped (user-mode-linux not installed)"
	exit 77
fi
disks=$(mktemp -d /var/tmp/imgdev-kdisks.XXXXXX)
trap 'rm -rf "$disks"' EXIT
args=()
for d in b:64M c:32M d:16M e:32M; do
	head -c 1M /dev/urandom >"$disks/${d%%:*}"
	truncate -s "${d#*:}" "$disks/${d%%:*}"
	args+=(--disk "$disks/${d%%:*}")
done
UML_PASSENV="IMGDEV ${UML_PASSENV:-}" "$here/uml-run.sh" "${args[@]}" -- "$here/guest_dm.sh"
