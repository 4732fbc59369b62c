#!/usr/bin/env bash
# Installs the Debian packages a step needs, only those missing, only as root.
# Usage: tests/deps.sh build|test|bench|demo   (idempotent; a no-op when all present)
set -euo pipefail

build=(meson ninja-build pkg-config gcc libssl-dev libjson-c-dev libcmocka-dev libblkid-dev zlib1g-dev libdeflate-dev libzstd-dev liblzma-dev libcurl4-openssl-dev libarchive-dev)
test=("${build[@]}" qemu-utils gzip xz-utils zstd user-mode-linux busybox-static dmsetup util-linux fdisk e2fsprogs xfsprogs xxd jq strace valgrind clang libclang-rt-14-dev nginx-light openssl python3 nbdkit
	# the container-registry tests (tests/net/registry.sh): the distribution registry,
	# skopeo to push to it, htpasswd for its basic auth, curl for the harness's selftest.
	docker-registry skopeo apache2-utils curl)
# bench/http: nginx-light, nbdkit, curl, and time for /usr/bin/time.
bench=("${test[@]}" qemu-utils hyperfine nginx-light nbdkit curl time)
demo=("${build[@]}" util-linux e2fsprogs jq)

case "${1:-build}" in
build) want=("${build[@]}") ;;
test) want=("${test[@]}") ;;
bench) want=("${bench[@]}") ;;
demo) want=("${demo[@]}") ;;
*) echo "usage: $0 build|test|bench|demo" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing Debian packages: ${missing[*]}; run as root or install them" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
