#!/usr/bin/env bash
# A check of the network test harness itself with curl, not of imgdev: every
# nginx location (http and https with the test CA, the untrusted server
# refused), the access log and its readers, and each fault of
# tests/net/faultproxy.py as curl sees it. Not run by run-all.sh (imgdev's
# tests use the harness); run it after changing servers.sh or the proxy.
# Needs nginx, openssl, python3, curl and jq.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/servers.sh"

command -v curl >/dev/null || { echo "selftest: needs curl"; exit 1; }
tmp=$(mktemp -d /var/tmp/imgdev-netself.XXXXXX)
cleanup() { net_stop; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1

NET_SLOW_RATE=1m net_start "$tmp/net" || exit 1
net_start "$tmp/net" || exit 1	# again: nothing happens
head -c 8M /dev/urandom >"$NET_WWW/f.img"
head -c 8M /dev/urandom >"$NET_WWW/f.img.changed"
touch -d '2001-01-01' "$NET_WWW/f.img.changed"	# another mtime: another ETag
size=$((8 << 20))
c() { curl -q -s -S "$@"; }
# code URL [curl options]: the HTTP status curl got (redirects not followed).
code() { c -o /dev/null -w '%{http_code}' "$@"; }

expect 'http serves a file byte for byte, with an ETag and ranges (206 for bytes=N-)' '
	c -o "$tmp/got" "$NET_HTTP/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	c -D "$tmp/h" -o "$tmp/part" -r 1000- "$NET_HTTP/f.img"
	grep -q "^HTTP/1.1 206" "$tmp/h"; grep -qi "^ETag: \"" "$tmp/h"
	cmp "$tmp/part" <(tail -c +1001 "$NET_WWW/f.img")'

expect 'If-Range with the ETag gives 206, with another ETag 200 and the whole file' '
	etag=$(c -I "$NET_HTTP/f.img" | sed -n "s/^[Ee][Tt]ag: *//p" | tr -d "\r")
	assert_eq "$(code "$NET_HTTP/f.img" -r 100- -H "If-Range: $etag")" 206
	assert_eq "$(code "$NET_HTTP/f.img" -r 100- -H "If-Range: \"other\"")" 200'

expect 'https with --cacert NET_CA serves the file; without the CA, curl refuses the certificate' '
	c --cacert "$NET_CA" -o "$tmp/got" "$NET_HTTPS/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	rc=0; c -o /dev/null "$NET_HTTPS/f.img" 2>"$tmp/e" || rc=$?; assert_eq "$rc" 60
	openssl x509 -in "$NET_DIR/tls/server.pem" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1"'

expect 'the untrusted server is refused even with NET_CA (curl 60), and served with --insecure' '
	rc=0; c --cacert "$NET_CA" -o /dev/null "$NET_UNTRUSTED/f.img" 2>"$tmp/e" || rc=$?
	assert_eq "$rc" 60; cat "$tmp/e"; grep -qi certificate "$tmp/e"
	c -k -o "$tmp/got" "$NET_UNTRUSTED/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"'

expect 'the status locations answer 401 (with WWW-Authenticate), 403, 410, 500, 503; a missing file 404' '
	for s in 401 403 410 500 503; do
		assert_eq "$(code "$NET_HTTP/$s/f.img")" "$s" "http $s"
		assert_eq "$(code --cacert "$NET_CA" "$NET_HTTPS/$s/f.img")" "$s" "https $s"
	done
	c -I "$NET_HTTP/401/f.img" | grep -qi "^WWW-Authenticate: Bearer"
	assert_eq "$(code "$NET_HTTP/nothing.img")" 404'

expect '/auth/ answers 401 without the bearer token or with a wrong one, and serves the file with it' '
	assert_eq "$(code "$NET_HTTP/auth/f.img")" 401
	assert_eq "$(code "$NET_HTTP/auth/f.img" -H "Authorization: Bearer wrong")" 401
	c -o "$tmp/got" -H "Authorization: Bearer $NET_BEARER" "$NET_HTTP/auth/f.img"
	cmp "$tmp/got" "$NET_WWW/f.img"
	c --cacert "$NET_CA" -o "$tmp/got" -H "Authorization: Bearer $NET_BEARER" "$NET_HTTPS/auth/f.img"
	cmp "$tmp/got" "$NET_WWW/f.img"'

expect 'redirects: /redirect/ reaches the file, /loop/ never ends (curl 47), https /to-http/ points at http' '
	c -L -o "$tmp/got" "$NET_HTTP/redirect/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	rc=0; c -L --max-redirs 20 -o /dev/null "$NET_HTTP/loop/f.img" 2>"$tmp/e" || rc=$?
	assert_eq "$rc" 47; cat "$tmp/e"
	loc=$(c --cacert "$NET_CA" -o /dev/null -w "%{redirect_url}" "$NET_HTTPS/to-http/f.img")
	assert_eq "$loc" "$NET_HTTP/f.img"
	rc=0; c -L --proto-redir =https --cacert "$NET_CA" -o /dev/null "$NET_HTTPS/to-http/f.img" \
		2>"$tmp/e" || rc=$?
	[ "$rc" -ne 0 ]; cat "$tmp/e"
	loc=$(c -o /dev/null -w "%{redirect_url}" "$NET_HTTP/to-https/f.img")
	assert_eq "$loc" "$NET_HTTPS/f.img"'

expect '/slow/ serves the same file at NET_SLOW_RATE (1m here: 4 MiB in 3 to 4 s, nginx lets the first second through at once)' '
	head -c 4M "$NET_WWW/f.img" >"$NET_WWW/four.img"
	t=$(c -o "$tmp/got" -w "%{time_total}" "$NET_HTTP/slow/four.img")
	cmp "$tmp/got" "$NET_WWW/four.img"; echo "4 MiB in $t s"
	awk -v t="$t" "BEGIN { exit !(t > 2.5 && t < 5) }"'

expect 'the access log: GETs, bytes sent, ranges and If-Range per URI' '
	: >"$NET_ACCESS_LOG"
	c -o /dev/null "$NET_HTTP/f.img"; c -o /dev/null -r 5000- "$NET_HTTP/f.img"
	c -o /dev/null -r 100- -H "If-Range: \"x-y\"" "$NET_HTTP/f.img"; c -I -o /dev/null "$NET_HTTP/f.img"
	net_log_settle; cat "$NET_ACCESS_LOG"
	assert_eq "$(net_log_gets /f.img)" 3
	assert_eq "$(net_log_bytes /f.img)" $((size + size - 5000 + size))
	assert_eq "$(net_log_ranges /f.img | tr "\n" " ")" "- bytes=5000- bytes=100- - "
	assert_eq "$(net_log_if_ranges /f.img | sed -n 3p)" "\"x-y\""
	assert_eq "$(net_log_statuses /f.img | tr "\n" " ")" "200 206 200 200 "'

expect 'proxy, no fault: the file byte for byte, one request logged with what it forwarded' '
	net_proxy_start pass
	c -o "$tmp/got" -D "$tmp/h" "$NET_PROXY/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	grep -qi "^Connection: close" "$tmp/h"
	net_proxy_settle pass; net_proxy_log pass
	assert_eq "$(net_proxy_count pass)" 1; assert_eq "$(net_proxy_sent pass)" "$size"
	c -o "$tmp/got" -x "$NET_PROXY" "http://127.0.0.1:$NET_HTTP_PORT/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	net_proxy_stop pass'

expect 'proxy --fault cut: curl 18 after exactly N bytes, once; then a resume gets the rest' '
	net_proxy_start cut --fault cut --after 3000000
	rc=0; c -o "$tmp/got" "$NET_PROXY/f.img" 2>"$tmp/e" || rc=$?
	assert_eq "$rc" 18; cat "$tmp/e"; assert_eq "$(stat -c %s "$tmp/got")" 3000000
	c -C - -o "$tmp/got" "$NET_PROXY/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	net_proxy_settle cut; net_proxy_log cut
	assert_eq "$(net_proxy_faults cut)" 1
	assert_eq "$(net_proxy_field cut range | tr "\n" " ")" "null bytes=3000000- "
	net_proxy_stop cut'

expect 'proxy --fault cut --times 3: three cuts of 1 MiB each, the fourth response whole' '
	net_log_settle; gets=$(net_log_gets /f.img)
	net_proxy_start cut3 --fault cut --after 1M --times 3
	for i in 1 2 3; do
		rc=0; c -C - -o "$tmp/got3" "$NET_PROXY/f.img" 2>/dev/null || rc=$?; assert_eq "$rc" 18 "try $i"
		assert_eq "$(stat -c %s "$tmp/got3")" $((i << 20))
	done
	c -C - -o "$tmp/got3" "$NET_PROXY/f.img"; cmp "$tmp/got3" "$NET_WWW/f.img"
	net_proxy_settle cut3; assert_eq "$(net_proxy_faults cut3)" 3
	net_log_settle
	assert_eq "$(net_log_gets /f.img)" $((gets + 4)) "GETs in the nginx log"
	assert_eq "$(net_log_bytes /f.img)" "$(net_log_bytes /f.img)"
	net_proxy_stop cut3'

expect 'a short body (not longer than --after) passes unharmed and does not use up --times' '
	head -c 1000 "$NET_WWW/f.img" >"$NET_WWW/short.img"
	net_proxy_start short --fault cut --after 4096
	c -o "$tmp/got" "$NET_PROXY/short.img"; cmp "$tmp/got" "$NET_WWW/short.img"
	rc=0; c -o /dev/null "$NET_PROXY/f.img" 2>/dev/null || rc=$?; assert_eq "$rc" 18
	net_proxy_stop short'

expect 'proxy --fault reset: curl sees a reset (56) after at most N bytes' '
	net_proxy_start rst --fault reset --after 2M
	rc=0; c -o "$tmp/got" "$NET_PROXY/f.img" 2>"$tmp/e" || rc=$?
	cat "$tmp/e"; assert_eq "$rc" 56; grep -qi "reset" "$tmp/e"
	[ "$(stat -c %s "$tmp/got")" -le $((2 << 20)) ]
	net_proxy_stop rst'

expect 'proxy --fault stall: curl --max-time 2 gives up (28) with N bytes; the proxy holds the connection till then' '
	net_proxy_start stall --fault stall --after 1M
	t0=$(date +%s.%N)
	rc=0; c --max-time 2 -o "$tmp/got" "$NET_PROXY/f.img" 2>"$tmp/e" || rc=$?
	t1=$(date +%s.%N)
	assert_eq "$rc" 28; assert_eq "$(stat -c %s "$tmp/got")" 1048576
	awk -v a="$t0" -v b="$t1" "BEGIN { exit !(b - a > 1.8 && b - a < 4) }"
	net_proxy_settle stall; net_proxy_log stall
	assert_eq "$(net_proxy_field stall error)" null "the stall ended by the client going away"
	c -C - -o "$tmp/got" "$NET_PROXY/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	net_proxy_stop stall'

expect 'proxy --fault stall --stall-seconds 1: the proxy closes the connection itself' '
	net_proxy_start stall1 --fault stall --after 1M --stall-seconds 1
	rc=0; c --max-time 10 -o /dev/null "$NET_PROXY/f.img" 2>/dev/null || rc=$?; assert_eq "$rc" 18
	net_proxy_settle stall1; net_proxy_field stall1 error | grep -q "stall ended"
	net_proxy_stop stall1'

expect 'proxy --ignore-range: Range and If-Range are stripped, the upstream answers 200 with the whole file' '
	net_proxy_start norange --ignore-range
	c -D "$tmp/h" -o "$tmp/got" -r 5000- -H "If-Range: \"x\"" "$NET_PROXY/f.img"
	grep -q "^HTTP/1.1 200" "$tmp/h"; cmp "$tmp/got" "$NET_WWW/f.img"
	net_proxy_settle norange; net_proxy_log norange
	assert_eq "$(net_proxy_field norange range_stripped)" true
	net_log_settle; assert_eq "$(net_log_ranges /f.img | tail -n 1)" -
	net_proxy_stop norange'

expect 'proxy --fault lie: Content-Length announces 1 MiB more, the whole body comes, curl 18' '
	net_proxy_start lie --fault lie --extra 1M
	rc=0; c -D "$tmp/h" -o "$tmp/got" "$NET_PROXY/f.img" 2>"$tmp/e" || rc=$?
	cat "$tmp/e"; assert_eq "$rc" 18; grep -q "1048576 bytes remaining" "$tmp/e"
	grep -qi "^Content-Length: $((size + 1048576))" "$tmp/h"; cmp "$tmp/got" "$NET_WWW/f.img"
	c -o "$tmp/got" "$NET_PROXY/f.img"; cmp "$tmp/got" "$NET_WWW/f.img"
	net_proxy_stop lie'

expect 'proxy --change-suffix: the 2nd GET gets the changed copy (another ETag): a resume with If-Range gets 200 of it' '
	net_proxy_start chg --fault cut --after 2M --change-suffix .changed
	rc=0; c -D "$tmp/h1" -o "$tmp/got" "$NET_PROXY/f.img" 2>/dev/null || rc=$?; assert_eq "$rc" 18
	cmp -n 2097152 "$tmp/got" "$NET_WWW/f.img"
	etag=$(sed -n "s/^[Ee][Tt]ag: *//p" "$tmp/h1" | tr -d "\r")
	c -D "$tmp/h2" -o "$tmp/rest" -r 2097152- -H "If-Range: $etag" "$NET_PROXY/f.img"
	grep -q "^HTTP/1.1 200" "$tmp/h2"; cmp "$tmp/rest" "$NET_WWW/f.img.changed"
	# curl -C - alone (no If-Range) splices: what a client must not do
	cp "$tmp/got" "$tmp/spliced"; rm -f "$tmp/rest"
	c -C - -o "$tmp/spliced" "$NET_PROXY/f.img"
	! cmp -s "$tmp/spliced" "$NET_WWW/f.img"; ! cmp -s "$tmp/spliced" "$NET_WWW/f.img.changed"
	net_proxy_settle chg; net_proxy_log chg
	assert_eq "$(net_proxy_field chg upstream_path | tr "\n" " ")" "/f.img /f.img.changed /f.img.changed "
	net_log_settle; assert_eq "$(net_log_gets /f.img.changed)" 2
	net_proxy_stop chg'

expect 'proxies stop by PID on SIGTERM at once, net_proxy_stop_all stops every one, nothing listens beyond 127.0.0.1' '
	net_proxy_start a; net_proxy_start b --fault cut
	pa=$(cat "$NET_DIR/pids/proxy-a.pid")
	ss -ltn | awk "NR > 1 { print \$4 }" | grep ":$(cat "$NET_DIR/proxy-a.port")\$" | grep -q "^127.0.0.1:"
	net_proxy_stop a; ! net_pid_running "$pa"
	net_proxy_stop_all; [ -z "$(ls "$NET_DIR"/pids/proxy-* 2>/dev/null)" ]
	for p in $NET_HTTP_PORT $NET_HTTPS_PORT $NET_UNTRUSTED_PORT; do
		assert_eq "$(ss -ltn "sport = :$p" | awk "NR > 1 { print \$4 }")" "127.0.0.1:$p"
	done'

expect 'net_stop stops nginx by PID (twice is fine), and a proxy whose test shell died stops by itself' '
	pid=$(cat "$NET_DIR/pids/nginx.pid")
	bash -c ". $net_here/servers.sh; NET_DIR=$NET_DIR NET_HTTP_PORT=$NET_HTTP_PORT; \
		net_proxy_start orphan >/dev/null; cat \$NET_DIR/pids/proxy-orphan.pid" >"$tmp/orphan.pid"
	sleep 1.5; ! net_pid_running "$(cat "$tmp/orphan.pid")"
	net_stop; net_stop; ! net_pid_running "$pid"
	! (exec 3<>"/dev/tcp/127.0.0.1/$NET_HTTP_PORT") 2>/dev/null
	net_start "$tmp/net"; assert_eq "$(code "$NET_HTTP/f.img")" 200'

finish
