# Servers on 127.0.0.1 for the tests of images fetched over HTTP(S) (sourced).
#
#   . tests/net/servers.sh
#   net_start "$tmp/net"            # nginx: http, https, an untrusted https
#   trap 'net_stop; rm -rf "$tmp"' EXIT
#   cp image "$NET_WWW/"; url=$NET_HTTP/image
#   net_proxy_start cut1 --fault cut --after 4M    # sets NET_PROXY
#   ... "$NET_PROXY/image" ...; net_proxy_stop cut1
#   net_log_settle; net_log_gets /image; net_log_bytes /image
#
# One nginx (Debian nginx-light) with a configuration of its own in the
# directory given to net_start: its PID file, logs, temp paths, certificates
# and the served directory ($NET_WWW) are all there. Everything listens on
# 127.0.0.1 only, on free ports. Each server process's PID is kept in a file
# under $NET_DIR/pids, so that net_stop (from the test's EXIT trap) stops
# whatever was started, also from the subshells that tests run in; a watchdog
# stops them too when the test's shell is gone (killed without its trap).
# net_start and net_stop may be called again: they do nothing when already done.
# The functions hold up under errexit, which the cases of lib.sh run with.
#
# Locations, the same on NET_HTTP and NET_HTTPS unless said:
#   /FILE            the file in $NET_WWW (ETag, Last-Modified, Range as nginx does)
#   /slow/FILE       the same at $NET_SLOW_RATE (limit_rate; set before net_start,
#                    default 2m; nginx sends the first second's worth at once, and
#                    counts in whole seconds: N bytes take N/rate - 1 s, give or take 1)
#   /rate/R/FILE     the same at rate R (limit_rate R: digits, then k or m), so that one
#                    server has several rates
#   /auth/FILE       the same, but 401 without "Authorization: Bearer $NET_BEARER"
#   /redirect/FILE   302 to /FILE
#   /loop/FILE       302 to /loop2/FILE, which redirects back: a redirect loop
#   /401/ /403/ /410/ /500/ /503/   that status, whatever follows
#   /to-http/FILE    (https only) 302 to $NET_HTTP/FILE, a downgrade
#   /to-https/FILE   (http only) 302 to $NET_HTTPS/FILE
# NET_UNTRUSTED serves $NET_WWW over https with a self-signed certificate (for
# 127.0.0.1, but not from $NET_CA). The access log ($NET_ACCESS_LOG) has one
# line per request of every server:
#   METHOD URI STATUS BODY_BYTES_SENT "RANGE" "IF_RANGE"
# (nginx writes "-" for an absent header and \x22 for a quote in one).

net_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NET_PYTHON=${NET_PYTHON:-/usr/bin/python3}
NET_SLOW_RATE=${NET_SLOW_RATE:-2m}
NET_BEARER=${NET_BEARER:-imgdev-test-token}

# NET_NGINX: the nginx binary (default: nginx on PATH, else /usr/sbin/nginx).
NET_NGINX=${NET_NGINX:-$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)}
# net_have_nginx: whether nginx is installed (tests skip without it).
net_have_nginx() { [ -x "$NET_NGINX" ]; }

# net_free_ports N: N distinct free TCP ports on 127.0.0.1, one a line.
net_free_ports() {
	"$NET_PYTHON" - "$1" <<-'EOF'
		import socket, sys
		socks = []
		for _ in range(int(sys.argv[1])):
		    s = socket.socket()
		    s.bind(("127.0.0.1", 0))
		    socks.append(s)
		print("\n".join(str(s.getsockname()[1]) for s in socks))
	EOF
}

# net_pid_running PID: that process exists and is not a zombie (an orphan's
# exit is reaped by PID 1, which may take its time).
net_pid_running() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# net__alive PIDFILE WORD: the PID in PIDFILE, if that process runs and its
# command line has WORD (so a reused PID is never taken for ours).
net__alive() {
	local pid
	[ -s "$1" ] || return 1
	read -r pid <"$1" || return 1
	[[ $pid =~ ^[0-9]+$ ]] && net_pid_running "$pid" || return 1
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
	echo "$pid"
}

# net__kill PIDFILE WORD: stop the process in PIDFILE if it is ours
# (net__alive) and remove PIDFILE.
net__kill() {
	local pid
	pid=$(net__alive "$1" "$2") && net__kill_pid "$pid"
	rm -f "$1"
}

# net__kill_pid PID: stop it (TERM, then KILL after 5 s); an nginx master's
# workers go with it, by their PIDs too.
net__kill_pid() {
	local pid=$1 kids i
	kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		net_pid_running "$pid" || break
		sleep 0.05
	done
	if net_pid_running "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		for i in $kids; do kill -KILL "$i" 2>/dev/null || true; done
	fi
	return 0
}

# net__certs DIR: a CA, a server certificate it signed for IP 127.0.0.1 and a
# self-signed one for the same address that the CA did not sign (made once).
net__certs() {
	local d=$1 key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
	[ -s "$d/untrusted.pem" ] && return 0
	mkdir -p "$d"
	openssl req -x509 "${key[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" -days 30 \
		-subj "/CN=imgdev test CA" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null &&
	openssl req "${key[@]}" -keyout "$d/server.key" -out "$d/server.csr" \
		-subj "/CN=127.0.0.1" 2>/dev/null &&
	printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$d/server.ext" &&
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 30 \
		-extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null &&
	openssl req -x509 "${key[@]}" -keyout "$d/untrusted.key" -out "$d/untrusted.pem" -days 30 \
		-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null ||
		{ echo "net: could not make the test certificates in $d" >&2; return 1; }
}

# net__locations WWW: the locations both plain and TLS servers have.
net__locations() {
	cat <<-EOF
		location / { }
		location ^~ /slow/ { alias $1/; limit_rate $NET_SLOW_RATE; }
		location ~ ^/rate/(?<net_rate>[0-9]+[km]?)/(?<net_file>.+)\$ {
			alias $1/\$net_file;
			limit_rate \$net_rate;
		}
		location ^~ /auth/ {
			alias $1/;
			if (\$http_authorization != "Bearer $NET_BEARER") { return 401; }
		}
		location ^~ /401/ { add_header WWW-Authenticate 'Bearer realm="imgdev-test"' always; return 401; }
		location ^~ /403/ { return 403; }
		location ^~ /410/ { return 410; }
		location ^~ /500/ { return 500; }
		location ^~ /503/ { return 503; }
		location ~ ^/redirect/(.*)\$ { return 302 /\$1; }
		location ~ ^/loop/(.*)\$ { return 302 /loop2/\$1; }
		location ~ ^/loop2/(.*)\$ { return 302 /loop/\$1; }
	EOF
}

# net__conf: the nginx configuration for the ports in NET_*_PORT.
net__conf() {
	local d=$NET_DIR t=$NET_DIR/tls
	cat <<-EOF
		user root;
		worker_processes 1;
		daemon on;
		pid $d/nginx.pid;
		lock_file $d/nginx.lock;
		error_log $d/error.log notice;
		events { worker_connections 256; }
		http {
			log_format imgdev '\$request_method \$uri \$status \$body_bytes_sent "\$http_range" "\$http_if_range"';
			access_log $d/access.log imgdev;
			client_body_temp_path $d/temp/body;
			proxy_temp_path $d/temp/proxy;
			fastcgi_temp_path $d/temp/fastcgi;
			uwsgi_temp_path $d/temp/uwsgi;
			scgi_temp_path $d/temp/scgi;
			types { }
			default_type application/octet-stream;
			sendfile on;
			server_tokens off;
			keepalive_timeout 5s;
			send_timeout 10s;
			client_header_timeout 10s;
			# A small send buffer: a cut connection's logged bytes stay near what was received.
			server {
				listen 127.0.0.1:$NET_HTTP_PORT sndbuf=256k;
				root $NET_WWW;
				$(net__locations "$NET_WWW")
				location ~ ^/to-https/(.*)\$ { return 302 https://127.0.0.1:$NET_HTTPS_PORT/\$1; }
				location = /nginx-status { stub_status; access_log off; }
			}
			server {
				listen 127.0.0.1:$NET_HTTPS_PORT ssl sndbuf=256k;
				ssl_certificate $t/server.pem;
				ssl_certificate_key $t/server.key;
				root $NET_WWW;
				$(net__locations "$NET_WWW")
				location ~ ^/to-http/(.*)\$ { return 302 http://127.0.0.1:$NET_HTTP_PORT/\$1; }
			}
			server {
				listen 127.0.0.1:$NET_UNTRUSTED_PORT ssl;
				ssl_certificate $t/untrusted.pem;
				ssl_certificate_key $t/untrusted.key;
				root $NET_WWW;
			}
		}
	EOF
}

# net__exports: the variables tests use, for the ports in NET_*_PORT.
net__exports() {
	NET_HTTP=http://127.0.0.1:$NET_HTTP_PORT
	NET_HTTPS=https://127.0.0.1:$NET_HTTPS_PORT
	NET_UNTRUSTED=https://127.0.0.1:$NET_UNTRUSTED_PORT
	NET_CA=$NET_DIR/tls/ca.pem
	NET_WWW=$NET_DIR/www
	NET_ACCESS_LOG=$NET_DIR/access.log
	export NET_DIR NET_WWW NET_CA NET_ACCESS_LOG NET_HTTP NET_HTTPS NET_UNTRUSTED \
		NET_HTTP_PORT NET_HTTPS_PORT NET_UNTRUSTED_PORT NET_BEARER NET_SLOW_RATE
}

# net__watchdog: a detached process that stops the servers once the test's
# shell ($$) is gone, should it die without running its trap (SIGKILL). It
# reads nginx's PID at the start, so that it stops nginx even when the
# directory went first. (Proxies also watch that shell themselves.)
net__watchdog() {
	local script
	script=$(declare -f net_pid_running net__alive net__kill net__kill_pid)'
		echo $$ >"$2/pids/watchdog.pid"
		nginx=$(net__alive "$2/pids/nginx.pid" nginx)
		while net_pid_running "$1" && [ -d "$2/pids" ]; do sleep 1; done
		for f in "$2"/pids/proxy-*.pid; do [ -e "$f" ] && net__kill "$f" faultproxy; done
		if [ -n "$nginx" ] && tr "\0" " " 2>/dev/null <"/proc/$nginx/cmdline" |
			grep -q -- "-p $2/"; then
			net__kill_pid "$nginx"
		fi
		rm -f "$2/pids/watchdog.pid" "$2/pids/nginx.pid"'
	setsid -f bash -c "$script" net-watchdog "$$" "$NET_DIR" </dev/null >/dev/null 2>&1
}

# net_start DIR: start nginx serving DIR/www over http, https and untrusted
# https, with its files under DIR; sets and exports NET_DIR, NET_WWW,
# NET_HTTP, NET_HTTPS, NET_UNTRUSTED, NET_CA (for --ca-file), NET_ACCESS_LOG,
# NET_*_PORT and NET_BEARER. Call it from the test's own shell, not $(...).
# 0 when serving, 1 (with the error log on stderr) when nginx would not start.
net_start() {
	local dir try nginx ports i
	dir=$(mkdir -p "$1" && cd "$1" && pwd) || return 1
	if [ "${NET_DIR:-}" = "$dir" ] && net__alive "$dir/pids/nginx.pid" nginx >/dev/null; then
		return 0
	fi
	NET_DIR=$dir
	mkdir -p "$dir/www" "$dir/temp" "$dir/pids" "$dir/tls"
	net__certs "$dir/tls" || return 1
	nginx=$NET_NGINX
	for _ in 1 2 3 4 5; do	# another process may take a free port before nginx binds it
		mapfile -t ports < <(net_free_ports 3)
		NET_HTTP_PORT=${ports[0]} NET_HTTPS_PORT=${ports[1]} NET_UNTRUSTED_PORT=${ports[2]}
		net__exports
		net__conf >"$dir/nginx.conf"
		rm -f "$dir/nginx.pid"
		if "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
			</dev/null >>"$dir/error.log" 2>&1; then
			for i in $(seq 50); do
				[ -s "$dir/nginx.pid" ] && break
				sleep 0.1
			done
			cp "$dir/nginx.pid" "$dir/pids/nginx.pid" 2>/dev/null
			if net__alive "$dir/pids/nginx.pid" nginx >/dev/null &&
				net__listening "$NET_HTTP_PORT" && net__listening "$NET_HTTPS_PORT" &&
				net__listening "$NET_UNTRUSTED_PORT"; then
				[ -s "$dir/pids/watchdog.pid" ] || net__watchdog
				return 0
			fi
			net__kill "$dir/pids/nginx.pid" nginx
		fi
		grep -q "Address already in use" "$dir/error.log" || break
	done
	echo "net: nginx did not start; $dir/error.log says:" >&2
	tail -n 20 "$dir/error.log" >&2
	return 1
}

# net__listening PORT: something accepts connections on 127.0.0.1:PORT.
net__listening() {
	local i
	for i in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# net_stop: stop every proxy and nginx started under NET_DIR, by PID, and the
# watchdog; the files stay (logs for a post-mortem). 0 also when none ran.
net_stop() {
	[ -n "${NET_DIR:-}" ] && [ -d "$NET_DIR/pids" ] || return 0
	net__kill "$NET_DIR/pids/watchdog.pid" net-watchdog
	net_proxy_stop_all
	net__kill "$NET_DIR/pids/nginx.pid" nginx
}

# net_status: the nginx stub_status page (active connections and counters).
net_status() {
	local reply
	reply=$(exec 3<>"/dev/tcp/127.0.0.1/$NET_HTTP_PORT" &&
		printf 'GET /nginx-status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
		timeout 5 cat <&3) || return 1
	printf '%s\n' "${reply#*$'\r\n\r\n'}"
}

# net_log_settle: wait (up to 10 s) until nginx has no connection but the one
# asking, so that every finished request is in the access log.
net_log_settle() {
	local i active
	for i in $(seq 100); do
		active=$(net_status | sed -n 's/^Active connections: *\([0-9]*\).*/\1/p' || true)
		[ "$active" = 1 ] && return 0
		sleep 0.1
	done
	echo "net: nginx still has $active connections" >&2
	return 1
}

# net_log_lines URI: the access-log lines of requests for URI (the path as
# served, e.g. /x.img or /slow/x.img).
net_log_lines() { awk -v u="$1" '$2 == u' "$NET_ACCESS_LOG"; }
# net_log_gets URI: how many GET requests for URI the servers answered, any status.
net_log_gets() { awk -v u="$1" '$1 == "GET" && $2 == u { n++ } END { print n + 0 }' "$NET_ACCESS_LOG"; }
# net_log_bytes URI: the body bytes nginx sent for URI, all requests together.
net_log_bytes() { awk -v u="$1" '$2 == u { n += $4 } END { printf "%d\n", n }' "$NET_ACCESS_LOG"; }
# net_log_ranges URI: the Range header of each request for URI, one a line ("-": none).
net_log_ranges() { awk -v u="$1" '$2 == u { r = $5; gsub(/"/, "", r); print r }' "$NET_ACCESS_LOG"; }
# net_log_if_ranges URI: the If-Range header of each request for URI ("-": none).
net_log_if_ranges() {
	awk -v u="$1" '$2 == u {
		s = $0; for (i = 0; i < 5; i++) sub(/^[^ ]+ /, "", s)
		sub(/^"/, "", s); sub(/"$/, "", s); gsub(/\\x22/, "\"", s); print s }' "$NET_ACCESS_LOG"
}
# net_log_statuses URI: the status of each request for URI, one a line.
net_log_statuses() { awk -v u="$1" '$2 == u { print $3 }' "$NET_ACCESS_LOG"; }

# net_proxy_start NAME [faultproxy.py options]: start a fault-injecting proxy
# in front of NET_HTTP (see tests/net/faultproxy.py --help), logging to
# $NET_DIR/proxy-NAME.log; sets NET_PROXY (its base URL, http://127.0.0.1:PORT)
# and NET_PROXY_LOG. A proxy of that NAME already running is stopped first.
net_proxy_start() {
	local name=$1 base i
	shift
	base=$NET_DIR/proxy-$name
	net_proxy_stop "$name"
	rm -f "$base.port" "$base.log"
	setsid -f "$NET_PYTHON" "$net_here/faultproxy.py" --upstream "127.0.0.1:$NET_HTTP_PORT" \
		--port-file "$base.port" --pid-file "$NET_DIR/pids/proxy-$name.pid" \
		--log "$base.log" --watch-pid "$$" "$@" </dev/null >"$base.out" 2>&1
	for i in $(seq 100); do
		[ -s "$base.port" ] && break
		sleep 0.05
	done
	if [ ! -s "$base.port" ]; then
		echo "net: the proxy $name did not start:" >&2
		cat "$base.out" >&2
		net_proxy_stop "$name"
		return 1
	fi
	NET_PROXY=http://127.0.0.1:$(cat "$base.port")
	NET_PROXY_LOG=$base.log
}

# net_proxy_url NAME: that proxy's base URL.
net_proxy_url() { echo "http://127.0.0.1:$(cat "$NET_DIR/proxy-$1.port")"; }
# net_proxy_stop NAME: stop that proxy (by its PID). net_proxy_stop_all: every one.
net_proxy_stop() { net__kill "$NET_DIR/pids/proxy-$1.pid" faultproxy; }
net_proxy_stop_all() {
	local f
	for f in "$NET_DIR"/pids/proxy-*.pid; do
		[ -e "$f" ] && net__kill "$f" faultproxy
	done
	return 0
}

# net_proxy_log NAME: its log, one JSON object a line.
net_proxy_log() { cat "$NET_DIR/proxy-$1.log" 2>/dev/null; }
# net_proxy_settle NAME: wait (up to 10 s) until every request it took is done.
net_proxy_settle() {
	local i
	for i in $(seq 100); do
		[ "$(net_proxy_count "$1" request)" = "$(net_proxy_count "$1" done)" ] && return 0
		sleep 0.1
	done
	echo "net: the proxy $1 still has requests in flight" >&2
	return 1
}
# net_proxy_count NAME [EVENT]: how many log lines of EVENT (default done).
net_proxy_count() { net_proxy_log "$1" | jq -s --arg e "${2:-done}" 'map(select(.event == $e)) | length'; }
# net_proxy_faults NAME: how many responses it broke.
net_proxy_faults() { net_proxy_log "$1" | jq -s 'map(select(.event == "done" and .fault != null)) | length'; }
# net_proxy_sent NAME: the body bytes it forwarded to clients, all requests together.
net_proxy_sent() { net_proxy_log "$1" | jq -s 'map(select(.event == "done") | .sent) | add // 0'; }
# net_proxy_field NAME FIELD: FIELD of each finished request, in order, one a line.
net_proxy_field() { net_proxy_log "$1" | jq -r --arg f "$2" 'select(.event == "done") | .[$f] | tostring'; }
