# bench/nginx.sh: the benchmarks' HTTP server, nginx on 127.0.0.1 (sourced by bench/http
# and bench/ab-http, so that both measure against the same server).
#
#   . "$top/bench/nginx.sh"
#   bench_nginx_start "$work/nginx" "$work/www" "$RATE" || die "..."   # sets NGINX_*
#   trap bench_nginx_stop EXIT
#   url=http://127.0.0.1:$NGINX_PORT/FILE (or /rate/FILE)
#
# nginx (Debian nginx-light) with a configuration of its own in DIR: user root, pid, error
# and access logs and every *_temp_path there, sendfile on, one worker per CPU,
# keepalive_requests 100000 (a client's many Range requests keep their connection), on a
# free port of 127.0.0.1, serving WWW; /rate/ serves the same files with `limit_rate RATE`
# (per connection; empty or 0: no limit). Not tests/net/servers.sh: that one is made for
# faults (one worker, small send buffers, TLS, its own log format), not for speed.
# Its access log has one line per request:
#   CONNECTION STATUS BODY_BYTES_SENT "RANGE" REQUEST_TIME
# shellcheck shell=bash

# bench_nginx_start DIR WWW RATE: start nginx as above and check that it answers; sets
# NGINX_DIR, NGINX_PORT, NGINX_PID, NGINX_WORKERS (an array of the workers' PIDs) and
# NGINX_ACCESS_LOG. 0 when serving; 1, with what went wrong on stderr, when not.
bench_nginx_start() {
	local ng=$1 www=$2 rate=${3:-0} i
	# shellcheck disable=SC2034 # NGINX_DIR is for the callers
	NGINX_DIR=$ng NGINX_ACCESS_LOG=$ng/access.log NGINX_PID='' NGINX_WORKERS=()
	mkdir -p "$ng" "$www" || return 1
	NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])') ||
		return 1
	cat >"$ng/nginx.conf" <<EOF
user root;
daemon on;
worker_processes auto;
pid $ng/nginx.pid;
error_log $ng/error.log;
events { worker_connections 256; }
http {
	log_format bench '\$connection \$status \$body_bytes_sent "\$http_range" \$request_time';
	access_log $NGINX_ACCESS_LOG bench;
	client_body_temp_path $ng/client_body;
	proxy_temp_path $ng/proxy;
	fastcgi_temp_path $ng/fastcgi;
	uwsgi_temp_path $ng/uwsgi;
	scgi_temp_path $ng/scgi;
	sendfile on;
	keepalive_requests 100000;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $www;
		location /rate/ {
			alias $www/;
			limit_rate $rate;
		}
	}
}
EOF
	if ! nginx -c "$ng/nginx.conf" -e "$ng/error.log"; then
		echo "bench/nginx.sh: nginx did not start (see $ng/error.log)" >&2
		return 1
	fi
	for ((i = 0; i < 100; i++)); do [ -s "$ng/nginx.pid" ] && break; sleep 0.05; done
	if ! NGINX_PID=$(cat "$ng/nginx.pid" 2>/dev/null); then
		echo "bench/nginx.sh: nginx wrote no pid file" >&2
		return 1
	fi
	echo ok >"$www/ping"
	if ! curl -sf "http://127.0.0.1:$NGINX_PORT/ping" >/dev/null; then
		echo "bench/nginx.sh: nginx does not answer on 127.0.0.1:$NGINX_PORT" >&2
		return 1
	fi
	read -r -a NGINX_WORKERS <<<"$(pgrep -P "$NGINX_PID" | paste -sd ' ')"
	if [ ${#NGINX_WORKERS[@]} -eq 0 ]; then
		echo "bench/nginx.sh: no nginx workers" >&2
		return 1
	fi
}

# bench_nginx_stop: stop the nginx that bench_nginx_start started (QUIT: it finishes what
# it sends; KILL after 5 s); 0 also when none runs.
bench_nginx_stop() {
	[ -n "${NGINX_PID:-}" ] || return 0
	kill -QUIT "$NGINX_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 100; i++)); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$NGINX_PID" 2>/dev/null; then kill -KILL "$NGINX_PID" 2>/dev/null || true; fi
	NGINX_PID=
}

# bench_nginx_ticks: CPU clock ticks the nginx workers used so far (utime + stime).
bench_nginx_ticks() {
	local p f t=0
	for p in "${NGINX_WORKERS[@]}"; do
		read -r -a f <"/proc/$p/stat"	# comm has no spaces: "(nginx)"
		t=$((t + f[13] + f[14]))
	done
	echo "$t"
}

# bench_nginx_served FROM: requests, distinct connections, bytes and non-2xx answers
# nginx logged after byte FROM of its access log.
bench_nginx_served() {
	tail -c +"$(($1 + 1))" "$NGINX_ACCESS_LOG" | awk '
		{ n++; if (!($1 in c)) { c[$1] = 1; nc++ } b += $3; if ($2 !~ /^2/) bad++ }
		END { printf "%d %d %.0f %d\n", n, nc, b, bad }'
}
