#!/usr/bin/env bash
# Runs inside the guest: each guest_*.sh (or those named as arguments) in
# turn; exits non-zero if any failed.
here=$(cd "$(dirname "$0")" && pwd)
status=0
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("$here"/guest_*.sh)
for s in "${suites[@]}"; do
	echo "# ${s##*/}"
	case $s in */*) ;; *) s=$here/$s ;; esac
	"$s" || status=1
done
exit $status
