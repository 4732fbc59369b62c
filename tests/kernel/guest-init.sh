#!/bin/bash
# guest-init.sh: PID 1 of the User-Mode-Linux guest booted by uml-run.sh. It mounts
# the pseudo filesystems, loads device-mapper modules, runs the requested command and
# leaves its output and exit status in the host result directory, then powers off.
#
# Input: UMLRUN_DIR=<host result dir> on the kernel command line (the kernel hands
# unknown key=value parameters to init as environment variables); that directory
# holds env.sh (exports, UMLRUN_CWD, UMLRUN_CMD array) written by uml-run.sh.

# No "set -e": PID 1 must never exit (that panics the guest); it always powers off.
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "guest-init: $*" >&2; }

power_off() {
    sync
    busybox poweroff -f
    # Only reached if busybox is missing or poweroff failed.
    echo o >/proc/sysrq-trigger 2>/dev/null
    while :; do sleep 60; done
}

fatal() {
    log "FATAL: $*"
    power_off
}

trap power_off EXIT

is_mounted() { grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null; }

mount_fs() { # TYPE DIR [OPTIONS]
    local type=$1 dir=$2 opts=${3:-}
    is_mounted "$dir" && return 0
    mkdir -p "$dir" 2>/dev/null
    mount -t "$type" ${opts:+-o "$opts"} "$type" "$dir" || log "cannot mount $type on $dir"
}

mount_fs proc /proc
mount_fs sysfs /sys
mount_fs devtmpfs /dev
mount_fs devpts /dev/pts
mount_fs tmpfs /dev/shm mode=1777
mount_fs tmpfs /run mode=755
# devtmpfs lacks the /dev/fd links that bash process substitution needs.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for i in 0:stdin 1:stdout 2:stderr; do [ -e /dev/${i#*:} ] || ln -s /proc/self/fd/${i%%:*} /dev/${i#*:}; done

rd=${UMLRUN_DIR:-}
if [ -z "$rd" ] || [ ! -f "$rd/env.sh" ]; then
    fatal "UMLRUN_DIR missing or has no env.sh (UMLRUN_DIR='$rd')"
fi

moddir=/usr/lib/uml/modules/$(uname -r)/kernel/drivers
load_module() { # PATH
    local name
    name=$(basename "$1" .ko)
    name=${name//-/_}
    [ -d "/sys/module/$name" ] && return 0 # built in or already loaded
    busybox insmod "$1"
}

load_module "$moddir/md/dm-mod.ko" || fatal "cannot load dm-mod from $moddir/md"
for m in md/dm-zero md/dm-flakey md/dm-delay md/dm-dust block/loop; do
    if [ ! -e "$moddir/$m.ko" ]; then
        log "optional module $m.ko not found"
    elif ! load_module "$moddir/$m.ko"; then
        log "optional module $m.ko failed to load"
    fi
done
[ -e /dev/mapper/control ] || log "warning: /dev/mapper/control is missing"

# shellcheck source=/dev/null
. "$rd/env.sh" || fatal "cannot read $rd/env.sh"
cd "$UMLRUN_CWD" || fatal "cannot enter working directory $UMLRUN_CWD"

status=0
"${UMLRUN_CMD[@]}" </dev/null >"$rd/output" 2>&1 || status=$?
echo "$status" >"$rd/status.tmp" && mv "$rd/status.tmp" "$rd/status"
log "command exited with status $status"
# EXIT trap syncs and powers off.
exit 0
