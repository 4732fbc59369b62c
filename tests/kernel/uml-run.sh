#!/bin/bash
# uml-run.sh: run one command inside a User-Mode-Linux guest that has a real
# device-mapper (the host kernel has none), with the host root as its filesystem.
# Prints the command's output and exits with its status; 125 if the guest failed.
#
# Usage: uml-run.sh [--disk FILE]... [--mem SIZE] [--timeout SECONDS] -- COMMAND [ARGS...]
#
#   --disk FILE   attach FILE as the next block device: /dev/ubdb, /dev/ubdc, ...
#   --mem SIZE    guest memory, as for UML's mem= (default 256M)
#   --timeout S   kill the guest after S seconds (default 300)
#
# The command runs as root in the caller's working directory with stdin from
# /dev/null. Environment passed in: IMGDEV_*, PATH (plus the sbin directories),
# HOME, LANG, LC_ALL, TZ, and any names listed in UML_PASSENV (space separated).
# Other knobs: UML_KEEP=1 keeps the work directory, UML_WORKDIR_BASE (default
# /var/tmp) is where it is created, UML_MEMDIR overrides where UML keeps its RAM
# file, UML_KERNEL overrides the kernel binary (default linux.uml), UML_VERBOSE=1
# reports the guest's wall time on stderr.
set -euo pipefail

prog=uml-run.sh
die() { echo "$prog: $*" >&2; exit 125; }
usage() {
    echo "usage: $prog [--disk FILE]... [--mem SIZE] [--timeout SECONDS] -- COMMAND [ARGS...]" >&2
    exit 125
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
guest_init=$here/guest-init.sh
kernel=${UML_KERNEL:-linux.uml}

disks=()
mem=256M
timeout_s=300
while [ $# -gt 0 ]; do
    case $1 in
    --disk) [ $# -ge 2 ] || usage; disks+=("$2"); shift 2 ;;
    --disk=*) disks+=("${1#*=}"); shift ;;
    --mem) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
    --mem=*) mem=${1#*=}; shift ;;
    --timeout) [ $# -ge 2 ] || usage; timeout_s=$2; shift 2 ;;
    --timeout=*) timeout_s=${1#*=}; shift ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) echo "$prog: unknown option '$1' (forgot '--' before the command?)" >&2; usage ;;
    esac
done
[ $# -gt 0 ] || usage

[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive whole number of seconds, got '$timeout_s'"
[[ $mem =~ ^([1-9][0-9]*)([kKmMgG]?)$ ]] || die "--mem wants a size like 256M, got '$mem'"
case ${BASH_REMATCH[2]} in
'') mem_bytes=${BASH_REMATCH[1]} ;;
k | K) mem_bytes=$((BASH_REMATCH[1] << 10)) ;;
m | M) mem_bytes=$((BASH_REMATCH[1] << 20)) ;;
g | G) mem_bytes=$((BASH_REMATCH[1] << 30)) ;;
esac

command -v "$kernel" >/dev/null || die "'$kernel' not found (apt-get install user-mode-linux busybox-static)"
command -v busybox >/dev/null || die "busybox not found; the guest needs it for insmod and poweroff"
[ -x "$guest_init" ] || die "$guest_init is missing or not executable"

# Paths go on the kernel command line, which is split on blanks; ubd also splits on , and :.
no_blanks() { [[ $1 != *[[:space:]]* ]] || die "$2 must not contain whitespace: '$1'"; }
no_blanks "$guest_init" "the harness path"

ubd_args=()
letters=(b c d e f g h i j k l m n o p)
[ ${#disks[@]} -le ${#letters[@]} ] || die "at most ${#letters[@]} --disk options"
for i in "${!disks[@]}"; do
    d=${disks[$i]}
    [ -f "$d" ] || [ -b "$d" ] || die "--disk $d: no such file"
    d=$(realpath "$d")
    no_blanks "$d" "--disk path"
    [[ $d != *[,:]* ]] || die "--disk path must not contain ',' or ':': $d"
    ubd_args+=("ubd${letters[$i]}=$d")
done

cwd=$(pwd -P)
case $cwd/ in
/proc/* | /sys/* | /dev/* | /run/*) die "working directory $cwd is hidden inside the guest" ;;
esac

# Work directory: shared with the guest through hostfs, so it must not lie under a
# directory the guest mounts over.
base=${UML_WORKDIR_BASE:-/var/tmp}
mkdir -p "$base"
base=$(cd "$base" && pwd -P)
case $base/ in
/proc/* | /sys/* | /dev/* | /run/*) die "UML_WORKDIR_BASE=$base is hidden inside the guest" ;;
esac
rd=$(mktemp -d "$base/uml-run.XXXXXX")
no_blanks "$rd" "the work directory"

pgid=''
timer_pid=''
# shellcheck disable=SC2317 # invoked from the EXIT trap
cleanup() {
    if [ -n "$timer_pid" ]; then kill "$timer_pid" 2>/dev/null || true; fi
    if [ -n "$pgid" ]; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
    if [ "${UML_KEEP:-0}" = 1 ]; then
        echo "$prog: kept work directory $rd" >&2
    else
        rm -rf "$rd"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Where UML keeps its RAM: it maps a file created in $TMPDIR. Prefer tmpfs
# (/dev/shm) when it has room for the whole guest memory, else the work directory.
memdir=${UML_MEMDIR:-}
if [ -z "$memdir" ]; then
    memdir=$rd
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        shm_free=$(df -P -k /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
        if [ -n "$shm_free" ] && [ "$((shm_free * 1024))" -ge "$((mem_bytes + (64 << 20)))" ]; then
            memdir=/dev/shm
        fi
    fi
fi

# What the guest runs: environment, working directory, command.
{
    passenv=(HOME LANG LC_ALL TZ)
    read -r -a extra <<<"${UML_PASSENV:-}"
    passenv+=("${extra[@]}")
    while IFS= read -r name; do passenv+=("$name"); done < <(compgen -e IMGDEV_ || true)
    for name in "${passenv[@]}"; do
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        [ -n "${!name+set}" ] || continue
        printf 'export %s=%q\n' "$name" "${!name}"
    done
    guest_path=${PATH:-}
    for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
        [[ :$guest_path: == *:$dir:* ]] || guest_path=${guest_path:+$guest_path:}$dir
    done
    printf 'export PATH=%q\n' "$guest_path"
    printf 'UMLRUN_CWD=%q\n' "$cwd"
    printf 'UMLRUN_CMD=('
    printf '%q ' "$@"
    printf ')\n'
} >"$rd/env.sh"

mkdir "$rd/uml"
umid=umlrun-$$-${rd##*.}

# UML 6.1 cannot hand the host a whole XSAVE area on CPUs with AVX-512 or AMX
# (see uml-xstate-shim.c); the shim, preloaded into the UML process only, does.
shim=$rd/uml-xstate-shim.so
cc -shared -fPIC -O2 -o "$shim" "$here/uml-xstate-shim.c" -ldl -lpthread ||
    die "cannot build $here/uml-xstate-shim.c"

# The UML process gets stdin from /dev/null and its own session (no terminal to
# touch; the whole process tree can be killed by group id). The console goes to
# console.log through fd 1: con=null silences the other consoles, ssl=null the
# serial lines (the default would allocate ptys).
start=$(date +%s.%N)
(
    ulimit -c 0
    cd "$rd"
    export TMPDIR=$memdir TMP=$memdir TEMP=$memdir
    LD_PRELOAD=$shim exec setsid "$kernel" \
        mem="$mem" umid="$umid" uml_dir="$rd/uml/" \
        rootfstype=hostfs rootflags=/ rw \
        con=null con0=null,fd:1 ssl=null \
        "${ubd_args[@]}" \
        init="$guest_init" UMLRUN_DIR="$rd"
) </dev/null >"$rd/console.log" 2>&1 &
uml_pid=$!
pgid=$uml_pid # setsid made the kernel process a session and group leader

sleep "$timeout_s" &
timer_pid=$!
finished=
wait -n -p finished "$uml_pid" "$timer_pid" || true
timed_out=0
if [ "$finished" = "$timer_pid" ]; then
    timed_out=1
    kill -KILL -- "-$pgid" 2>/dev/null || true
else
    kill "$timer_pid" 2>/dev/null || true
fi
wait "$uml_pid" 2>/dev/null || true
wait "$timer_pid" 2>/dev/null || true
timer_pid=
# Stray processes of the guest (there should be none after a clean power-off).
kill -KILL -- "-$pgid" 2>/dev/null || true
pgid=
elapsed=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')

[ -f "$rd/output" ] && cat "$rd/output"

if [ -f "$rd/status" ]; then
    status=$(cat "$rd/status")
    [[ $status =~ ^[0-9]+$ ]] || die "garbled status file: '$status'"
    [ "${UML_VERBOSE:-0}" = 1 ] && echo "$prog: guest ran ${elapsed}s, status $status" >&2
    exit "$status"
fi

if [ "$timed_out" = 1 ]; then
    echo "$prog: TIMEOUT: guest still running after ${timeout_s}s; killed it" >&2
else
    echo "$prog: guest ended after ${elapsed}s without leaving an exit status (crash, panic or setup failure)" >&2
fi
echo "$prog: last lines of the UML console log:" >&2
tail -n 40 "$rd/console.log" | sed 's/^/  | /' >&2
exit 125
