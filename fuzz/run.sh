#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz/, clang, ASan+UBSan) and runs each
# for SECONDS (default 60) from the seed corpus in fuzz/corpus/TARGET, with a
# scratch corpus under build-fuzz/corpus. Exits non-zero if any target crashed;
# the crashing input is left in build-fuzz/ (crash-*).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! command -v clang >/dev/null; then
	echo "fuzz: clang is not installed" >&2
	exit 1
fi
[ -f build-fuzz/build.ninja ] ||
	CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-fuzz >/dev/null
status=0
for t in header parse qcow2 oci; do
	mkdir -p "build-fuzz/corpus/$t"
	max_len=4096
	[ "$t" = qcow2 ] && max_len=131072	# whole small images
	echo "fuzz: $t for ${seconds}s"
	if ! (cd build-fuzz && UBSAN_OPTIONS=halt_on_error=1 ./fuzz-$t -max_total_time="$seconds" \
		-max_len="$max_len" -rss_limit_mb=2048 -print_final_stats=1 "corpus/$t" "../fuzz/corpus/$t" >"fuzz-$t.log" 2>&1); then
		echo "fuzz: $t FAILED; see build-fuzz/fuzz-$t.log"
		tail -30 "build-fuzz/fuzz-$t.log"
		status=1
	else
		grep -E "stat::number_of_executed_units|cov:" "build-fuzz/fuzz-$t.log" | tail -2
	fi
done
exit $status
