# A container registry on 127.0.0.1 for the tests of images pulled from
# registries (sourced).
#
#   . tests/net/registry.sh
#   REG_ROOT=$tmp/reg              # where the instances live (else a temp dir of their own)
#   reg_start open                 # sets REG_HOST (127.0.0.1:PORT), REG_PID, REG_LOG, REG_STORAGE
#   trap 'reg_stop; rm -rf "$tmp"' EXIT
#   reg_push "$oci" latest vm/disk:latest        # an OCI layout (tests/net/containerdisk.sh)
#   ... docker://$REG_HOST/vm/disk:latest ...
#   reg_log_blob_gets vm/disk                    # blob GETs the registry answered
#   reg_proxy_start cut --fault cut --after 4M   # the fault proxy in front: REG_PROXY
#
# The registry is Debian's docker-registry (the distribution registry, 2.8),
# each instance with a configuration of its own: storage, log and config in a
# directory under REG_ROOT, listening on 127.0.0.1 only, on a free port, log
# level info (its access log has a line per request, blob GETs included).
# Modes:
#   open      no authentication
#   htpasswd  Basic authentication against a bcrypt file ($REG_USER, $REG_PASS)
#   token     the registry open on a port of its own (REG_REGISTRY), and
#             tests/net/token-front.py in front of it (REG_HOST): the Bearer
#             challenge and token endpoint public registries use. Repositories
#             starting with $REG_PRIVATE_PREFIX need $REG_USER/$REG_PASS at the
#             token endpoint; others get anonymous tokens. The front forwards
#             GET and HEAD only: pushes go to REG_REGISTRY (reg_push does so).
# Instances of different modes may run at once; the REG_* variables are the
# last one started's, or the one reg_use MODE names. Every process's PID is kept
# under $REG_ROOT/pids, so that reg_stop (from the test's EXIT trap) stops what
# any subshell started, as long as REG_ROOT was set before (a REG_ROOT made by
# reg_start in a subshell stays unknown to the trap); a watchdog stops them when
# the test's shell is gone without its trap, and the front also exits by itself.
# The functions hold up under errexit, which the cases of lib.sh run with.
#
# Registry facts the tests rely on (docker-registry 2.8.2, filesystem storage):
# manifests and blobs answer HEAD; blob GETs honour Range and If-Range (206
# with Content-Range, 416 past the end) and carry Docker-Content-Digest and an
# ETag of the digest, never a redirect; a manifest is served only for an
# Accept that names its media type (an OCI manifest or index is 404
# MANIFEST_UNKNOWN otherwise, a Docker schema 2 manifest 400 MANIFEST_INVALID,
# also for */*); the registry does not check a blob's digest when it serves
# it, so a blob corrupted in REG_STORAGE (reg_corrupt_blob) is served
# corrupted; blobs are shared by the repositories that link them.

reg_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The PID helpers and free ports of the HTTP harness (net_pid_running, net__alive,
# net__kill, net__kill_pid, net_free_ports).
declare -F net__kill >/dev/null || . "$reg_here/servers.sh"

REG_BIN=${REG_BIN:-$(command -v docker-registry 2>/dev/null || echo /usr/bin/docker-registry)}
REG_USER=${REG_USER:-imgdev}
REG_PASS=${REG_PASS:-imgdev-test-pass}
REG_SERVICE=${REG_SERVICE:-reg-test}
REG_PRIVATE_PREFIX=${REG_PRIVATE_PREFIX:-private/}
# REG_FRONT_OPTS: more options for token-front.py (e.g. --token-ttl 2), set before reg_start token.
REG_FRONT_OPTS=${REG_FRONT_OPTS:-}
export REG_USER REG_PASS REG_SERVICE REG_PRIVATE_PREFIX

# reg_have: whether the registry, skopeo, htpasswd and curl are installed (tests skip without).
reg_have() {
	[ -x "$REG_BIN" ] && command -v skopeo >/dev/null && command -v htpasswd >/dev/null &&
		command -v curl >/dev/null
}

# reg__root: REG_ROOT and its pids/, made (a temp dir of its own, removed by
# reg_stop) when unset.
reg__root() {
	if [ -z "${REG_ROOT:-}" ]; then
		REG_ROOT=$(mktemp -d /var/tmp/imgdev-reg.XXXXXX) || return 1
		REG_ROOT_OWNED=1
	fi
	mkdir -p "$REG_ROOT/pids" && REG_ROOT=$(cd "$REG_ROOT" && pwd) && export REG_ROOT
}

# reg__word PIDFILE: what the command line of the process it names must hold,
# so that a reused PID is never taken for ours.
reg__word() {
	case ${1##*/} in
	*-registry.pid) echo imgdev-registry.yml ;;
	*-front.pid) echo token-front.py ;;
	watchdog.pid) echo reg-watchdog ;;
	esac
}

# reg__conf DIR PORT MODE: the registry's configuration.
reg__conf() {
	cat <<-EOF
		version: 0.1
		log:
		  level: info
		  formatter: text
		  accesslog:
		    disabled: false
		storage:
		  filesystem:
		    rootdirectory: $1/storage
		  delete:
		    enabled: true
		  maintenance:
		    uploadpurging:
		      enabled: false
		http:
		  addr: 127.0.0.1:$2
		  secret: imgdev-test-secret
		health:
		  storagedriver:
		    enabled: false
	EOF
	[ "$3" = htpasswd ] && printf '%s\n' "auth:" "  htpasswd:" "    realm: $REG_SERVICE" \
		"    path: $1/htpasswd"
	return 0
}

# reg__code URL [curl options]: the HTTP status of a GET (000 when nothing answered).
reg__code() { curl -q -s -o /dev/null --max-time 5 -w '%{http_code}' "$@" || true; }

# reg__registry DIR NAME MODE: start a registry for the instance NAME in DIR and
# wait until /v2/ answers (200 open, 401 with htpasswd); sets REG_REGISTRY and REG_PID.
reg__registry() {
	local dir=$1 pidfile=$REG_ROOT/pids/$2-registry.pid port code
	for _ in 1 2 3 4 5; do	# another process may take a free port before the registry binds it
		port=$(net_free_ports 1)
		reg__conf "$dir" "$port" "$3" >"$dir/imgdev-registry.yml"
		"$REG_BIN" serve "$dir/imgdev-registry.yml" </dev/null >>"$dir/registry.log" 2>&1 &
		echo $! >"$pidfile"
		for _ in $(seq 100); do
			code=$(reg__code "http://127.0.0.1:$port/v2/")
			case $code in 200 | 401)
				REG_REGISTRY=127.0.0.1:$port REG_PID=$(cat "$pidfile")
				return 0 ;;
			esac
			net__alive "$pidfile" imgdev-registry.yml >/dev/null || break
			sleep 0.1
		done
		net__kill "$pidfile" imgdev-registry.yml
		grep -q "address already in use" "$dir/registry.log" || break
	done
	echo "reg: the registry did not start; $dir/registry.log says:" >&2
	tail -n 20 "$dir/registry.log" >&2
	return 1
}

# reg__front DIR NAME: start the token front before REG_REGISTRY and wait until
# it answers /v2/ with 401; sets REG_HOST, REG_FRONT_PID and REG_FRONT_LOG.
reg__front() {
	local dir=$1 pidfile=$REG_ROOT/pids/$2-front.pid
	rm -f "$dir/front.port"
	# shellcheck disable=SC2086  # REG_FRONT_OPTS is a list of options
	"$NET_PYTHON" "$reg_here/token-front.py" --upstream "$REG_REGISTRY" \
		--port-file "$dir/front.port" --pid-file "$pidfile" --log "$dir/front.log" \
		--watch-pid "$$" --service "$REG_SERVICE" --user "$REG_USER" --password "$REG_PASS" \
		--private-prefix "$REG_PRIVATE_PREFIX" $REG_FRONT_OPTS </dev/null >>"$dir/front.out" 2>&1 &
	for _ in $(seq 100); do
		[ -s "$dir/front.port" ] && break
		sleep 0.05
	done
	if [ -s "$dir/front.port" ]; then
		REG_HOST=127.0.0.1:$(cat "$dir/front.port") REG_FRONT_PID=$(cat "$pidfile")
		REG_FRONT_LOG=$dir/front.log
		[ "$(reg__code "http://$REG_HOST/v2/")" = 401 ] && return 0
	fi
	echo "reg: the token front did not start:" >&2
	cat "$dir/front.out" >&2
	net__kill "$pidfile" token-front.py
	return 1
}

# reg__watchdog: a detached process that stops every instance under REG_ROOT
# once the test's shell ($$) is gone, should it die without running its trap.
# It keeps the PIDs it has seen, so that it stops them even when REG_ROOT went first.
reg__watchdog() {
	local script
	net__alive "$REG_ROOT/pids/watchdog.pid" reg-watchdog >/dev/null && return 0
	script=$(declare -f net_pid_running net__alive net__kill_pid reg__word)'
		echo $$ >"$2/pids/watchdog.pid"
		declare -A seen
		while :; do	# the PIDs first: the shell may be gone already
			for f in "$2"/pids/*-registry.pid "$2"/pids/*-front.pid; do
				[ -e "$f" ] && p=$(net__alive "$f" "$(reg__word "$f")") && seen[$p]=$(reg__word "$f")
			done
			net_pid_running "$1" && [ -d "$2/pids" ] || break
			sleep 1
		done
		for p in "${!seen[@]}"; do
			tr "\0" " " 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "${seen[$p]}" && net__kill_pid "$p"
		done
		rm -f "$2/pids/watchdog.pid"'
	setsid -f bash -c "$script" reg-watchdog "$$" "$REG_ROOT" </dev/null >/dev/null 2>&1
}

# reg__save DIR: the instance's variables, for reg_use.
reg__save() {
	local v
	for v in REG_MODE REG_DIR REG_HOST REG_REGISTRY REG_PID REG_LOG REG_STORAGE \
		REG_FRONT_PID REG_FRONT_LOG REG_REALM; do
		printf '%s=%q\n' "$v" "${!v:-}"
	done >"$1/env"
}

# reg_use MODE: make the REG_* variables those of the MODE instance started before.
reg_use() {
	[ -s "${REG_ROOT:-/nonexistent}/$1/env" ] || { echo "reg: no $1 registry under ${REG_ROOT:-?}" >&2; return 1; }
	# shellcheck disable=SC1090  # written by reg__save
	. "$REG_ROOT/$1/env"
	export REG_MODE REG_DIR REG_HOST REG_REGISTRY REG_PID REG_LOG REG_STORAGE \
		REG_FRONT_PID REG_FRONT_LOG REG_REALM
}

# reg__running MODE: that instance's processes are all alive.
reg__running() {
	net__alive "$REG_ROOT/pids/$1-registry.pid" imgdev-registry.yml >/dev/null || return 1
	[ "$1" != token ] || net__alive "$REG_ROOT/pids/$1-front.pid" token-front.py >/dev/null
}

# reg_start [open|htpasswd|token]: start that instance (default open) under
# $REG_ROOT/MODE and export REG_MODE, REG_HOST (what clients talk to, HOST:PORT),
# REG_REGISTRY (the registry itself; REG_HOST but in token mode), REG_PID (the
# registry's), REG_LOG (its log), REG_STORAGE (its storage root), REG_DIR, and
# in token mode REG_FRONT_PID, REG_FRONT_LOG (JSON lines) and REG_REALM. Started
# already: only reg_use. 0 when serving; 1 with the log on stderr.
reg_start() {
	local mode=${1:-open} dir
	case $mode in open | htpasswd | token) ;; *)
		echo "usage: reg_start [open|htpasswd|token]" >&2; return 1 ;;
	esac
	reg_have || { echo "reg: needs docker-registry, skopeo, htpasswd (apache2-utils) and curl" >&2; return 1; }
	reg__root || return 1
	if reg__running "$mode" && reg_use "$mode"; then return 0; fi
	reg_stop "$mode"
	dir=$REG_ROOT/$mode
	rm -rf "$dir" && mkdir -p "$dir/storage" || return 1
	REG_MODE=$mode REG_DIR=$dir REG_LOG=$dir/registry.log REG_STORAGE=$dir/storage
	REG_FRONT_PID='' REG_FRONT_LOG='' REG_REALM=''
	if [ "$mode" = htpasswd ]; then
		htpasswd -Bbc "$dir/htpasswd" "$REG_USER" "$REG_PASS" 2>/dev/null ||
			{ echo "reg: htpasswd failed" >&2; return 1; }
	fi
	reg__registry "$dir" "$mode" "$mode" || return 1
	REG_HOST=$REG_REGISTRY
	if [ "$mode" = token ]; then
		reg__front "$dir" "$mode" || { reg_stop "$mode"; return 1; }
		REG_REALM=http://$REG_HOST/token
	fi
	reg__watchdog
	reg__save "$dir"
	reg_use "$mode"
}

# reg_stop [MODE]: stop that instance, or every one and the watchdog, by PID
# (twice is fine; 0 also when none ran). A REG_ROOT that reg_start made goes
# too; one the test set stays (the logs, for a post-mortem).
reg_stop() {
	local f
	[ -n "${REG_ROOT:-}" ] && [ -d "$REG_ROOT/pids" ] || return 0
	if [ -n "${1:-}" ]; then
		for f in "$REG_ROOT/pids/$1-front.pid" "$REG_ROOT/pids/$1-registry.pid"; do
			[ -e "$f" ] && net__kill "$f" "$(reg__word "$f")"
		done
		return 0
	fi
	net__kill "$REG_ROOT/pids/watchdog.pid" reg-watchdog
	for f in "$REG_ROOT"/proxy/pids/proxy-*.pid; do
		[ -e "$f" ] && net__kill "$f" faultproxy
	done
	for f in "$REG_ROOT"/pids/*-front.pid "$REG_ROOT"/pids/*-registry.pid; do
		[ -e "$f" ] && net__kill "$f" "$(reg__word "$f")"
	done
	if [ "${REG_ROOT_OWNED:-}" = 1 ]; then
		rm -rf "$REG_ROOT"
		unset REG_ROOT REG_ROOT_OWNED
	fi
	return 0
}

# reg_log_settle: wait (up to 10 s) until the registry has logged a request made
# now, so that the requests answered before it are in REG_LOG (it logs a request
# once its handler is done, a moment after the client has the answer).
reg_log_settle() {
	local mark
	mark=settle-$(date +%s%N)-$RANDOM
	reg__code "http://$REG_REGISTRY/v2/?$mark" >/dev/null
	for _ in $(seq 100); do
		grep -q -- "?$mark HTTP/" "$REG_LOG" && return 0
		sleep 0.1
	done
	echo "reg: the registry did not log the request $mark" >&2
	return 1
}

# reg_log_requests [REPO]: the requests the registry answered (of REPO's paths
# only, when given), from its access log: "METHOD PATH STATUS BYTES" a line.
reg_log_requests() {
	reg_log_settle || return 1
	awk -v p="/v2/${1:-}${1:+/}" '$6 ~ /^"[A-Z]+$/ && index($7, p) == 1 {
		print substr($6, 2), $7, $9, $10 }' "$REG_LOG"
}

# reg_log_blob_gets REPO [DIGEST]: how many GETs of REPO's blobs (or of that
# blob) the registry answered, any status; HEADs and uploads are not counted.
reg_log_blob_gets() {
	reg_log_requests "$1" | awk -v p="/v2/$1/blobs/${2:-sha256:}" \
		'$1 == "GET" && index($2, p) == 1 && (length($2) == length(p) || p ~ /:$/) { n++ }
		END { print n + 0 }'
}
# reg_log_manifest_gets REPO: how many GETs of REPO's manifests (by tag or digest).
reg_log_manifest_gets() {
	reg_log_requests "$1" | awk -v p="/v2/$1/manifests/" '$1 == "GET" && index($2, p) == 1 { n++ }
		END { print n + 0 }'
}

# reg_creds: USER:PASSWORD, for skopeo's --creds and curl's -u.
reg_creds() { echo "$REG_USER:$REG_PASS"; }

# reg_push OCIDIR TAG REPO:TAG [skopeo copy options]: push the image (or index,
# every platform: --all) OCIDIR's TAG names to the registry (REG_REGISTRY, past
# the token front), with the credentials in htpasswd mode. Digests are kept
# (--preserve-digests: skopeo fails rather than change a manifest) unless the
# options ask for another format (-f/--format, e.g. --format v2s2 for Docker
# schema 2 media types). skopeo's output is shown only when it fails.
reg_push() {
	local opts=(--all --dest-tls-verify=false) a out
	[ $# -ge 3 ] || { echo "usage: reg_push OCIDIR TAG REPO:TAG [skopeo options]" >&2; return 1; }
	opts+=(--preserve-digests)
	for a in "${@:4}"; do
		case $a in -f | --format | --format=* | -f=*) unset 'opts[2]' ;; esac
	done
	[ "$REG_MODE" = htpasswd ] && opts+=(--dest-creds "$(reg_creds)")
	out=$(skopeo copy -q "${opts[@]}" "${@:4}" "oci:$1:$2" "docker://$REG_REGISTRY/$3" 2>&1) ||
		{ echo "reg: skopeo could not push $1:$2 to $REG_REGISTRY/$3: $out" >&2; return 1; }
}

# reg_blob_file DIGEST: where the registry keeps that blob's bytes in REG_STORAGE.
reg_blob_file() {
	local h=${1#sha256:}
	echo "$REG_STORAGE/docker/registry/v2/blobs/sha256/${h:0:2}/$h/data"
}

# reg_corrupt_blob DIGEST [OFFSET]: invert the byte at OFFSET (default: the
# middle) of that blob in the registry's storage; its size stays.
reg_corrupt_blob() {
	local f b off
	f=$(reg_blob_file "$1")
	[ -f "$f" ] || { echo "reg: no blob $1 in $REG_STORAGE" >&2; return 1; }
	off=${2:-$(($(stat -c %s "$f") / 2))}
	b=$(od -An -v -tx1 -j "$off" -N 1 "$f" | tr -d ' \n')
	[ -n "$b" ] || { echo "reg: offset $off is past the end of $f" >&2; return 1; }
	# shellcheck disable=SC2059  # the byte, as an escape in the format
	printf "\\x$(printf %02x $((16#$b ^ 0xff)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# reg_auth_file FILE [HOST]: an auth file in the "auths" format of podman, skopeo
# and the kubelet, holding REG_USER:REG_PASS for HOST (default REG_HOST).
reg_auth_file() {
	jq -n --arg h "${2:-$REG_HOST}" --arg a "$(printf %s "$(reg_creds)" | base64 -w0)" \
		'{auths: {($h): {auth: $a}}}' >"$1"
}

# reg_front_log: the token front's log, one JSON object a line (see token-front.py).
reg_front_log() { cat "$REG_FRONT_LOG" 2>/dev/null; }

# reg_proxy_start NAME [faultproxy.py options]: the fault proxy of the HTTP tests
# (tests/net/faultproxy.py, through servers.sh's net_proxy_start) in front of
# REG_HOST, its files under $REG_ROOT/proxy; sets REG_PROXY (127.0.0.1:PORT, for
# docker://$REG_PROXY/REPO) and REG_PROXY_LOG. In token mode the challenge still
# names the front's own realm. reg_stop stops it; so does reg_proxy_stop NAME.
reg_proxy_start() {
	local NET_DIR=$REG_ROOT/proxy NET_HTTP_PORT=${REG_HOST#*:} NET_PROXY NET_PROXY_LOG
	mkdir -p "$NET_DIR/pids" && net_proxy_start "$@" || return 1
	REG_PROXY=${NET_PROXY#http://} REG_PROXY_LOG=$NET_PROXY_LOG
	export REG_PROXY REG_PROXY_LOG
}
reg_proxy_stop() { local NET_DIR=$REG_ROOT/proxy; net_proxy_stop "$1"; }
# reg_proxy_log NAME: that proxy's log (net_proxy_count and the others read it too
# with NET_DIR=$REG_ROOT/proxy).
reg_proxy_log() { local NET_DIR=$REG_ROOT/proxy; net_proxy_log "$1"; }
