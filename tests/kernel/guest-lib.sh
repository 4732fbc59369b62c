# Helpers for the guest suites (sourced after tests/lib.sh, inside the
# user-mode Linux guest): the device-mapper modules a suite needs beyond
# those guest-init.sh loads, and the skip when they or a test tool are not
# there.

dm_moddir=/usr/lib/uml/modules/$(uname -r)/kernel/drivers/md

# load_dm_modules MODULE...: insmod each module (a path under drivers/md
# without .ko: dm-log-writes, persistent-data/dm-persistent-data), in the
# order given (the order modules.dep gives), unless loaded or built in. A
# module that will not load is left to need_dm_targets to notice.
load_dm_modules() {
	local m name
	for m; do
		name=${m##*/}
		[ -d "/sys/module/${name//-/_}" ] || busybox insmod "$dm_moddir/$m.ko" 2>/dev/null || true
	done
}

# has_dm_target TARGET: the kernel has that device-mapper target.
has_dm_target() { dmsetup targets | grep -q "^$1 "; }

# need_dm_targets WHAT TARGET...: end the suite as skipped (WHAT: what is
# skipped) unless the kernel has every TARGET.
need_dm_targets() {
	local what=$1 t
	shift
	for t; do
		has_dm_target "$t" && continue
		skip "$what" "dm target $t not loaded"
		finish
		exit
	done
}

# need_tool WHAT PATH: end the suite as skipped unless the test tool PATH
# (built with the tests) is there.
need_tool() {
	[ -x "$2" ] && return
	skip "$1" "no $2 (build the tests)"
	finish
	exit
}
