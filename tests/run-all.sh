#!/usr/bin/env bash
# Runs every test suite: unit tests in the normal, the sanitizer and the
# thread-sanitizer builds, host tests against both binaries, and the kernel
# tests in user-mode Linux.
# Ends with one line "N passed, N failed" over all suites.
set -uo pipefail
cd "$(dirname "$0")/.."

total_pass=0
total_fail=0
count() { # count NAME STATUS
	if [ "$2" -eq 0 ]; then total_pass=$((total_pass + 1)); echo "== $1: ok"
	elif [ "$2" -eq 77 ]; then echo "== $1: skipped"
	else total_fail=$((total_fail + 1)); echo "== $1: FAILED (status $2)"; fi
}

run_suite() { # run_suite NAME COMMAND...
	echo "== $1"
	"${@:2}"
	count "$1" $?
}

[ -f build/build.ninja ] || meson setup build >/dev/null
[ -f build-asan/build.ninja ] ||
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug >/dev/null
[ -f build-tsan/build.ninja ] ||
	meson setup build-tsan -Db_sanitize=thread -Db_lundef=false --buildtype=debug >/dev/null
run_suite "build" ninja -C build
run_suite "build (sanitizers)" ninja -C build-asan
run_suite "build (thread sanitizer)" ninja -C build-tsan
run_suite "unit" meson test -C build --print-errorlogs
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run_suite "unit (sanitizers)" meson test -C build-asan --print-errorlogs
# The pipeline's threads under ThreadSanitizer: a data race fails the run.
TSAN_OPTIONS=halt_on_error=1:exitcode=66 run_suite "unit (thread sanitizer)" \
	meson test -C build-tsan --print-errorlogs --timeout-multiplier 10

# servers_left NAME: a suite must stop every server it started (nginx, the
# fault proxy; tests/net/servers.sh; the registries and the token front,
# tests/net/registry.sh), also when it failed: any still running fails the
# suite named, and is stopped here.
servers_left() {
	local pids
	pids=$(pgrep -f -- '-p /var/tmp/imgdev-[a-z]+\.[A-Za-z0-9]+/net/|tests/net/faultproxy\.py|docker-registry serve .*/imgdev-registry\.yml|tests/net/token-front\.py' || true)
	[ -z "$pids" ] && return 0
	echo "servers left running after $1:"
	ps -o pid,args -p "$(tr '\n' ',' <<<"$pids" | sed 's/,$//')"
	kill $pids 2>/dev/null
	return 1
}
for t in tests/host/test_*.sh; do
	run_suite "host ${t##*/}" "$t"
	run_suite "host ${t##*/}: no servers left" servers_left "${t##*/}"
	IMGDEV=$PWD/build-asan/imgdev run_suite "host ${t##*/} (sanitizers)" "$t"
	run_suite "host ${t##*/} (sanitizers): no servers left" servers_left "${t##*/} (sanitizers)"
done
# The container-registry harness (tests/net/registry.sh) that the registry
# tests stand on: about 30 s.
run_suite "net registry-selftest.sh" tests/net/registry-selftest.sh
run_suite "net registry-selftest.sh: no servers left" servers_left registry-selftest.sh
# Memory and descriptor hygiene: the unit tests and the header and safety host
# tests under valgrind (leaks and invalid accesses fail the run).
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect"
run_suite "unit (valgrind)" meson test -C build --print-errorlogs --timeout-multiplier 20 --wrapper "$vg"
for t in tests/host/test_header.sh tests/host/test_safety.sh; do
	IMGDEV_WRAP="$vg" run_suite "host ${t##*/} (valgrind)" "$t"
done

for t in tests/kernel/test_*.sh; do
	[ -e "$t" ] || continue
	run_suite "kernel ${t##*/}" "$t"
done

# The demo must work on a fresh machine too, among others' loop devices and mappings.
run_suite "demo" tests/demo-among-others.sh

# A brief fuzzing run of every target (make fuzz runs them longer).
run_suite "fuzz (${FUZZ_SECONDS:-10}s each)" fuzz/run.sh "${FUZZ_SECONDS:-10}"

echo
echo "suites: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
