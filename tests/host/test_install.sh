#!/usr/bin/env bash
# Host test of packaging: `make install DESTDIR=… PREFIX=/usr` into a fresh
# tree holds the command, the library with its SONAME and only the public
# symbols, the header, the pkg-config file and the man page; the example in
# examples/ builds against that tree through pkg-config and runs.
. "$(dirname "$0")/../lib.sh"

tmp=$(mktemp -d /var/tmp/imgdev-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
libdir=$(cd "$top" && meson introspect build --buildoptions 2>/dev/null |
	python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"))')

expect 'make install DESTDIR PREFIX=/usr installs every file' '
	make -C "$top" --no-print-directory install BUILD="$tmp/build" PREFIX=/usr DESTDIR="$root" >"$tmp/install.log" 2>&1 ||
		{ tail -20 "$tmp/install.log"; exit 1; }
	for f in usr/sbin/imgdev usr/include/imgdev.h "usr/$libdir/libimgdev.so.0.1.0" \
		"usr/$libdir/libimgdev.so.0" "usr/$libdir/libimgdev.so" \
		"usr/$libdir/pkgconfig/libimgdev.pc" usr/share/man/man8/imgdev.8; do
		[ -e "$root/$f" ] || { echo "missing $f"; find "$root" -type f; exit 1; }
	done'

expect 'the library has a SONAME and exports only the public API' '
	lib=$root/usr/$libdir/libimgdev.so.0.1.0
	assert_contains "$(readelf -d "$lib")" "Library soname: [libimgdev.so.0]"
	syms=$(nm -D --defined-only "$lib" | awk "\$2 == \"T\" {print \$3}" | sed "s/@.*//")
	[ -n "$syms" ]
	bad=$(echo "$syms" | grep -v "^imgdev_" || true)
	assert_eq "$bad" ""
	assert_contains "$syms" imgdev_provision'

expect 'the installed command runs and prints its version' '
	out=$(LD_LIBRARY_PATH=$root/usr/$libdir "$root/usr/sbin/imgdev" --version)
	assert_eq "$out" "imgdev 0.1.0"
	man -l "$root/usr/share/man/man8/imgdev.8" 2>/dev/null | grep -q "provision"'

expect 'the example builds against the installed tree through pkg-config and runs' '
	export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$root/usr/$libdir/pkgconfig
	cc -Wall -Wextra -Werror "$top/examples/imgdev-header.c" $(pkg-config --cflags --libs libimgdev) -o "$tmp/example"
	head -c 100000 /dev/urandom >"$tmp/img"; truncate -s 1M "$tmp/disk"
	LD_LIBRARY_PATH=$root/usr/$libdir "$root/usr/sbin/imgdev" provision "$tmp/disk" "$tmp/img" --no-map >/dev/null
	out=$(LD_LIBRARY_PATH=$root/usr/$libdir "$tmp/example" "$tmp/disk")
	assert_contains "$out" "version 1, image sha256:$(sha256sum "$tmp/img" | cut -c1-64), payload at byte 512, committed"
	rc=0; err=$(LD_LIBRARY_PATH=$root/usr/$libdir "$tmp/example" "$tmp/nope" 2>&1) || rc=$?
	assert_eq "$rc" 1; assert_contains "$err" "No such file"'

finish
