#!/usr/bin/env bash
# Host side of the kernel tests: makes the disk files, boots user-mode Linux
# once with them as /dev/ubdb../dev/ubdo, and runs every guest_*.sh inside it
# (guest-suites.sh). Skips (77) when user-mode Linux is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export IMGDEV=${IMGDEV:-$top/build/imgdev}

if ! command -v linux.uml >/dev/null; then
	echo "test_kernel.sh: 0 passed, 0 failed, 1 skipped (user-mode-linux not installed)"
	exit 77
fi
disks=$(mktemp -d /var/tmp/imgdev-kdisks.XXXXXX)
trap 'rm -rf "$disks"' EXIT
args=()
# b..e: guest_dm.sh; f, g: guest_provision.sh; h: guest_faults.sh;
# i (data), j (log): guest_powercut.sh; k (pool metadata), l (pool data),
# m (a plain disk): guest_thin.sh; n (pool metadata), o (pool data):
# guest_powercut.sh's thin volume
for d in b:64M c:32M d:16M e:32M f:64M g:64M h:64M i:8M j:64M k:4M l:32M m:8M n:4M o:16M; do
	head -c 1M /dev/urandom >"$disks/${d%%:*}"
	truncate -s "${d#*:}" "$disks/${d%%:*}"
	args+=(--disk "$disks/${d%%:*}")
done
# The guest's time limit: every suite in one boot takes about 3 minutes
# (make soak's power cuts much longer: it sets UML_TIMEOUT).
UML_PASSENV="IMGDEV LOG_REPLAY POWERCUT_CHECK POWERCUT_SEEDS POWERCUT_KILLS POWERCUT_KILL_SEED LAYOUTS ${UML_PASSENV:-}" \
	"$here/uml-run.sh" --mem 384M --timeout "${UML_TIMEOUT:-600}" "${args[@]}" -- "$here/guest-suites.sh" "$@"
