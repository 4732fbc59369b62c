#!/usr/bin/env bash
# Host tests of images fetched over HTTP(S) and read from standard input,
# against the servers of tests/net/servers.sh (nginx on 127.0.0.1) and the
# fault-injecting proxy tests/net/faultproxy.py: every format over http and
# https gives the payload a local file gives; a pipe on stdin too (qcow2
# spooled); --digest and --digest-url (GNU and BSD SHA256SUMS) right, wrong,
# missing or malformed; matched without a GET of the image; 401, 403, 404,
# 410, 500, a refused connection, an untrusted certificate, a redirect loop
# and an https-to-http redirect, each with its status and message and the
# device untouched; a bearer token from --header-file; and broken transfers
# (cut once and several times, reset, stalled, ranges ignored, a lying
# Content-Length, the file changed between attempts), after each of which
# the payload is byte-exact or nothing is committed, and resuming costs less
# than half the file again. Each case is a function (case_*), named in its
# line of output. Skips only without nginx.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../net/servers.sh"

if ! net_have_nginx; then
	echo "${0##*/}: 0 passed, 0 failed, 1 skipped (needs nginx: tests/deps.sh test installs it)"
	exit 0
fi
tmp=$(mktemp -d /var/tmp/imgdev-http.XXXXXX)
cleanup() {
	net_stop
	detach_loops_under "$tmp"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# libcurl takes proxies from the environment: none here, 127.0.0.1 is direct.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1

net_start "$tmp/net" || { echo "${0##*/}: nginx would not start"; exit 1; }
www=$NET_WWW

# run_net ARGS...: run_imgdev, killed after HTTP_RUN_TIMEOUT seconds (default 90)
# so that a hung fetch fails its case instead of hanging the suite (status 124).
run_net() {
	IMGDEV_WRAP="timeout -k 5 ${HTTP_RUN_TIMEOUT:-90} ${IMGDEV_WRAP:-}" run_imgdev "$@"
}
# status_is RC MESSAGE...: the last run exited RC and its stderr has every MESSAGE
# and no sanitizer report.
status_is() {
	local want=$1 m
	shift
	assert_rc "$want"
	for m in "$@"; do assert_contains "$err" "$m"; done
	no_sanitizer_report
}
no_sanitizer_report() {
	case "$err" in *Sanitizer*|*"runtime error"*) echo "sanitizer report: $err"; return 1 ;; esac
}
# new_dev NAME SIZE: a device file of random bytes (an unwritten range shows); its path.
new_dev() {
	head -c "$2" /dev/urandom >"$tmp/dev-$1"
	echo "$tmp/dev-$1"
}
# holding NAME SIZE: a device that holds a committed image (odd.raw, from its
# file); its path. (Called in $(...), where errexit does not reach: it returns.)
holding() {
	local d
	d=$(new_dev "$1" "$2") || return 1
	run_imgdev provision --no-map "$d" "$www/odd.raw"
	assert_rc 0 >&2 || return 1
	echo "$d"
}
# state DEV: a checksum of the whole device and its times, to see "nothing written".
state() { echo "$(sha "$1") $(stat -c %s.%Y.%y "$1")"; }
# untouched DEV STATE: DEV is as STATE saw it, and its committed image still verifies.
untouched() {
	assert_eq "$(state "$1")" "$2" "device bytes and times"
	run_imgdev verify "$1"
	assert_rc 0
}
# left_writing DEV: no complete record: verify says the last write did not complete.
left_writing() {
	run_imgdev verify "$1"
	assert_rc 4
	assert_contains "$err" writing
}
# holds DEV RAW FILE: DEV's payload is RAW byte for byte, its header names the
# SHA-256 of FILE (the file as published) and RAW's size, and verify agrees.
holds() {
	payload_is "$1" "$2"
	assert_eq "$(hex_at "$1" 10 32)" "$(sha "$3")" "image hash (of $3 as published)"
	assert_eq "$(u64_at "$1" 88)" "$(stat -c %s "$2")" "image size"
	run_imgdev verify "$1"
	assert_rc 0
}
# written_ok DEV RAW FILE: the last run wrote it, said nothing on stderr, and DEV holds it.
written_ok() {
	assert_rc 0
	assert_eq "$out" written
	assert_eq "$err" ""
	holds "$@"
}
# recovered DEV RAW: after a fault, the run succeeded and DEV holds RAW (stderr
# may tell of the retries).
recovered() {
	no_sanitizer_report
	assert_rc 0
	assert_eq "$out" written
	holds "$1" "$2" "$2"
}
# no_complete_record DEV: verify finds no complete record (none, or "writing").
no_complete_record() {
	run_imgdev verify "$1"
	assert_rc 4
}
# not_committed DEV STATE: a failed run committed nothing: DEV is as STATE saw
# it (a failure before the first write), or its record says "writing".
not_committed() {
	if [ "$(state "$1")" = "$2" ]; then
		echo "the device is untouched"
		untouched "$1" "$2"
	else
		left_writing "$1"
	fi
}
# exact_or_nothing DEV RAW: after a fault, either a success and DEV holds RAW,
# or a failure and no complete record (verify: none, or "writing").
exact_or_nothing() {
	no_sanitizer_report
	if [ "$rc" = 0 ]; then
		echo "succeeded: checking the payload"
		assert_eq "$out" written
		holds "$1" "$2" "$2"
	else
		echo "failed with $rc: checking nothing is committed ($err)"
		no_complete_record "$1"
	fi
}
# served_below NAME SIZE: nginx sent less than 1.5 x SIZE bytes for /NAME, all requests.
served_below() {
	local b
	net_log_settle
	b=$(net_log_bytes "/$1")
	echo "nginx sent $b bytes for /$1 (file: $2)"
	[ "$b" -lt $(($2 * 3 / 2)) ] || { echo "served $b bytes, not below 1.5 x $2"; return 1; }
}
# resumed NAME: some request for /NAME asked for a range from byte N > 0 with If-Range.
resumed() {
	net_log_settle
	net_log_lines "/$1"
	paste -d' ' <(net_log_ranges "/$1") <(net_log_if_ranges "/$1") |
		grep -Eq '^bytes=[1-9][0-9]*- .*[^-]' || { echo "no resume with Range and If-Range"; return 1; }
}
# gets NAME: GETs of /NAME in the access log, once every request is logged.
gets() {
	net_log_settle
	net_log_gets "/$1"
}
# run_case FUNCTION DESCRIPTION: one case; its line names the function.
run_case() { expect "$2 [$1]" "$1"; }

# The images, once. vm.raw: 8 MiB of data and zero runs; odd.raw: 3 MiB + 777
# bytes; big.raw: 24 MiB of random bytes, for the faults.
{
	head -c 3M /dev/urandom; head -c 2M /dev/zero; head -c 1M /dev/urandom
	head -c 1536K /dev/zero; head -c 512K /dev/urandom
} >"$www/vm.raw"
head -c $((3 * 1048576 + 777)) /dev/urandom >"$www/odd.raw"
head -c 24M /dev/urandom >"$www/big.raw"
qemu-img convert -q -f raw -O qcow2 "$www/vm.raw" "$www/vm.qcow2"
gzip -1 -c "$www/vm.raw" >"$www/vm.raw.gz"
xz -1 -T1 -c "$www/vm.raw" >"$www/vm.raw.xz"
zstd -q -c "$www/vm.raw" >"$www/vm.raw.zst"
xz -1 -T1 -c "$www/vm.qcow2" >"$www/vm.qcow2.xz"
big=$(stat -c %s "$www/big.raw")
# raw_of FILE: the raw image FILE holds.
raw_of() { case "$1" in odd.*) echo "$www/odd.raw" ;; *) echo "$www/vm.raw" ;; esac; }

case_formats() {
	local f raw dl dh ds
	for f in odd.raw vm.raw vm.qcow2 vm.raw.gz vm.raw.xz vm.raw.zst vm.qcow2.xz; do
		raw=$(raw_of "$f")
		dl=$(new_dev "fmt-local-$f" 16M)
		run_net provision --no-map "$dl" "$www/$f"
		written_ok "$dl" "$raw" "$www/$f"
		dh=$(new_dev "fmt-http-$f" 16M)
		run_net provision --no-map "$dh" "$NET_HTTP/$f"
		written_ok "$dh" "$raw" "$www/$f"
		assert_eq "$(hex_at "$dh" 96 32)" "$(hex_at "$dl" 96 32)" "content hash, $f over http"
		ds=$(new_dev "fmt-https-$f" 16M)
		run_net provision --no-map --ca-file "$NET_CA" "$ds" "$NET_HTTPS/$f"
		written_ok "$ds" "$raw" "$www/$f"
		assert_eq "$(hex_at "$ds" 96 32)" "$(hex_at "$dl" 96 32)" "content hash, $f over https"
		echo "$f: http and https payloads are the local one's"
	done
}

case_json_and_matched() {
	local d
	d=$(new_dev json 16M)
	run_net provision --no-map --json "$d" "$NET_HTTP/vm.raw.zst"
	assert_rc 0
	assert_eq "$(jfield written <<<"$out")" true
	assert_eq "$(jfield image_hash <<<"$out")" "sha256:$(sha "$www/vm.raw.zst")"
	assert_eq "$(jfield image_size <<<"$out")" "$(stat -c %s "$www/vm.raw")"
	holds "$d" "$www/vm.raw" "$www/vm.raw.zst"
	# Without a digest a stream is known only once received: written again,
	# and what it names is the same.
	run_net provision --no-map --json "$d" "$NET_HTTP/vm.raw.zst"
	assert_rc 0
	assert_eq "$(jfield written <<<"$out")" true "the same URL again, without a digest"
	assert_eq "$(jfield image_hash <<<"$out")" "sha256:$(sha "$www/vm.raw.zst")"
	holds "$d" "$www/vm.raw" "$www/vm.raw.zst"
	run_net provision --no-map "$d" "$NET_HTTP/vm.raw.zst" --digest "sha256:$(sha "$www/vm.raw.zst")"
	assert_rc 0
	assert_eq "$out" matched "the same URL with its digest"
}

# Progress of a URL: a raw image's payload of its size; a compressed one's
# file bytes received of the file's size (its payload size is not known).
case_progress() {
	local d last
	d=$(new_dev progress 16M)
	run_net provision --no-map --progress=json "$d" "$NET_HTTP/vm.raw"
	assert_rc 0
	last=$(tail -n 1 <<<"$err")
	assert_eq "$(jq -r .bytes_total <<<"$last")" "$(stat -c %s "$www/vm.raw")" "raw: total"
	assert_eq "$(jq -r .bytes_done <<<"$last")" "$(stat -c %s "$www/vm.raw")" "raw: done"
	# xz: its index, read by ranges, gives the payload's size up front.
	run_net provision --no-map --progress=json "$d" "$NET_HTTP/vm.raw.xz"
	assert_rc 0
	last=$(tail -n 1 <<<"$err")
	assert_eq "$(jq -r .bytes_total <<<"$last")" "$(stat -c %s "$www/vm.raw")" "xz: total"
	# gzip has no index: the file's bytes received, of its size.
	run_net provision --no-map --progress=json "$d" "$NET_HTTP/vm.raw.gz"
	assert_rc 0
	last=$(tail -n 1 <<<"$err")
	assert_eq "$(jq -r .bytes_total <<<"$last")" "$(stat -c %s "$www/vm.raw.gz")" "gzip: total"
	[ "$(jq -r .bytes_done <<<"$last")" -gt 0 ] || { echo "gzip: no bytes done: $last"; return 1; }
	holds "$d" "$www/vm.raw" "$www/vm.raw.gz"
	# From a pipe nothing is known of the total; the last line still comes.
	run_net provision --no-map --progress=json "$d" - <"$www/vm.raw.xz"
	assert_rc 0
	assert_eq "$(tail -n 1 <<<"$err" | jq -r .bytes_total)" null "stdin: total"
	assert_eq "$(tail -n 1 <<<"$err" | jq -r .bytes_done)" "$(stat -c %s "$www/vm.raw")" "stdin: done"
}

case_info() {
	local f filter local_json
	# A file's every field but its name and allocation; of a compressed stream,
	# what a stream tells before it is read through.
	for f in vm.raw vm.qcow2 vm.raw.xz vm.qcow2.xz; do
		case "$f" in
		*.xz) filter='{format, compression, file_size, supported}' ;;
		*) filter='del(.image, .allocated)' ;;
		esac
		run_net info --json "$www/$f"
		assert_rc 0
		local_json=$(jq -S "$filter" <<<"$out")
		run_net info --json "$NET_HTTP/$f"
		assert_rc 0
		assert_eq "$(jfield image <<<"$out")" "$NET_HTTP/$f"
		assert_eq "$(jq -S "$filter" <<<"$out")" "$local_json" "info of $f over http"
		run_net info --json --ca-file "$NET_CA" "$NET_HTTPS/$f"
		assert_rc 0
		assert_eq "$(jq -S "$filter" <<<"$out")" "$local_json" "info of $f over https"
	done
	run_net info "$NET_HTTP/missing.raw"
	status_is 7 "$NET_HTTP/missing.raw: HTTP 404"
	run_net info "$NET_HTTP/403/vm.raw"
	status_is 9 "HTTP 403"
	# A connection reset after the headers, before the first byte: the server's
	# failure (11), not an unsupported image (7).
	ln -f "$www/vm.raw" "$www/info-reset.raw"
	net_proxy_start info-reset --fault reset --after 0 --times 0
	run_net info "$NET_PROXY/info-reset.raw" --retries 0
	net_proxy_stop info-reset
	status_is 11 "$NET_PROXY/info-reset.raw"
}

case_stdin() {
	local f d
	for f in vm.raw vm.raw.gz vm.raw.xz vm.raw.zst odd.raw; do
		d=$(new_dev "stdin-$f" 16M)
		run_net provision --no-map "$d" - < <(cat "$www/$f")
		written_ok "$d" "$(raw_of "$f")" "$www/$f"
	done
}

case_stdin_qcow2() {
	local f d dl
	dl=$(new_dev stdin-qcow2-local 16M)
	run_net provision --no-map "$dl" "$www/vm.qcow2"
	assert_rc 0
	for f in vm.qcow2 vm.qcow2.xz; do
		d=$(new_dev "stdin-$f" 16M)
		run_net provision --no-map "$d" - < <(cat "$www/$f")
		written_ok "$d" "$www/vm.raw" "$www/$f"
		assert_eq "$(hex_at "$d" 96 32)" "$(hex_at "$dl" 96 32)" "content hash of $f from a pipe"
	done
}

case_too_big() {
	local d before
	zstd -q -1 -c "$www/big.raw" >"$tmp/big.raw.zst"
	gzip -1 -c "$www/big.raw" >"$www/big.raw.gz"
	# A stream of unknown size that outgrows the device, from a pipe and over http.
	d=$(holding too-big-pipe $((8 << 20)))
	run_net provision --no-map "$d" - < <(cat "$www/big.raw")
	status_is 8 "too small"
	left_writing "$d"
	d=$(holding too-big-zst $((8 << 20)))
	run_net provision --no-map "$d" - < <(cat "$tmp/big.raw.zst")
	status_is 8 "too small"
	left_writing "$d"
	d=$(holding too-big-gz $((8 << 20)))
	run_net provision --no-map "$d" "$NET_HTTP/big.raw.gz"
	status_is 8 "too small"
	left_writing "$d"
	# A raw image whose size the server says, or an xz one whose index it
	# serves by ranges: refused before the first write.
	d=$(holding too-big-raw $((8 << 20)))
	before=$(state "$d")
	run_net provision --no-map "$d" "$NET_HTTP/big.raw"
	status_is 8 "too small"
	untouched "$d" "$before"
	xz -1 -T1 -c "$www/big.raw" >"$www/big.raw.xz"
	run_net provision --no-map "$d" "$NET_HTTP/big.raw.xz"
	status_is 8 "too small"
	untouched "$d" "$before"
}

case_digest() {
	local d hx wrong before
	hx=$(sha "$www/vm.raw.xz")
	d=$(holding digest-right 16M)
	run_net provision --no-map --digest "sha256:$hx" "$d" "$NET_HTTP/vm.raw.xz"
	written_ok "$d" "$www/vm.raw" "$www/vm.raw.xz"
	run_net provision --no-map --digest "sha256:$hx" "$d" "$NET_HTTP/vm.raw.xz"
	assert_rc 0
	assert_eq "$out" matched
	# The wrong digest: the copy is made, then not committed; both digests named.
	wrong=$(printf wrong | sha256sum | cut -c1-64)
	d=$(holding digest-wrong 16M)
	run_net provision --no-map --digest "sha256:$wrong" "$d" "$NET_HTTP/vm.raw"
	status_is 10 "$wrong" "$(sha "$www/vm.raw")"
	left_writing "$d"
	run_imgdev header --json "$d"
	assert_eq "$(jfield commit <<<"$out")" writing
	# The digest is of the file as published: the raw image's does not match its .xz.
	d=$(holding digest-of-content 16M)
	run_net provision --no-map --digest "sha256:$(sha "$www/vm.raw")" --ca-file "$NET_CA" "$d" \
		"$NET_HTTPS/vm.raw.xz"
	status_is 10 "$(sha "$www/vm.raw")" "$hx"
	left_writing "$d"
	# A qcow2 read through a temporary file (from a pipe) is all received
	# before the first write: a wrong digest leaves the device as it was.
	d=$(holding digest-spooled 16M)
	before=$(state "$d")
	run_net provision --no-map --digest "sha256:$wrong" "$d" - <"$www/vm.qcow2"
	status_is 10 "$wrong" "$(sha "$www/vm.qcow2")"
	untouched "$d" "$before"
}

case_digest_url() {
	local d f sums hx n
	mkdir -p "$www/sums"
	{
		printf '%s  %s\n' "$(sha "$www/odd.raw")" odd.raw
		printf '%s  %s\n' "$(sha "$www/vm.raw.xz")" vm.raw.xz
		printf '%s  %s\n' "$(sha "$www/vm.qcow2")" vm.qcow2
	} >"$www/sums/gnu.SHA256SUMS"
	{
		printf '%s *%s\n' "$(sha "$www/vm.raw")" vm.raw
		printf '%s *%s\n' "$(sha "$www/vm.raw.gz")" vm.raw.gz
	} >"$www/sums/gnu-binary.SHA256SUMS"
	{
		printf 'SHA256 (%s) = %s\n' vm.raw.zst "$(sha "$www/vm.raw.zst")"
		printf 'SHA256 (%s) = %s\n' vm.qcow2.xz "$(sha "$www/vm.qcow2.xz")"
	} >"$www/sums/bsd.SHA256SUMS"
	for f in gnu:vm.raw.xz gnu:vm.qcow2 gnu-binary:vm.raw.gz bsd:vm.raw.zst bsd:vm.qcow2.xz; do
		sums=$NET_HTTP/sums/${f%%:*}.SHA256SUMS
		f=${f#*:}
		d=$(holding "digest-url-$f" 16M)
		run_net provision --no-map --digest-url "$sums" "$d" "$NET_HTTP/$f"
		written_ok "$d" "$www/vm.raw" "$www/$f"
		n=$(gets "$f")
		run_net provision --no-map --digest-url "$sums" "$d" "$NET_HTTP/$f"
		assert_rc 0
		assert_eq "$out" matched "$f with $sums again"
		assert_eq "$(gets "$f")" "$n" "GETs of $f when matched"
	done
	# The line names the image, but with a digest of other bytes: status 10.
	hx=$(printf other | sha256sum | cut -c1-64)
	printf '%s  vm.raw\n' "$hx" >"$www/sums/wrong.SHA256SUMS"
	d=$(holding digest-url-wrong 16M)
	run_net provision --no-map --digest-url "$NET_HTTP/sums/wrong.SHA256SUMS" "$d" "$NET_HTTP/vm.raw"
	status_is 10 "$hx" "$(sha "$www/vm.raw")"
	left_writing "$d"
}

case_digest_url_bad() {
	local d before s hx
	hx=$(sha "$www/vm.raw.xz")
	# No line for vm.raw.xz, only names that contain it.
	{
		printf '%s  %s\n' "$hx" old-vm.raw.xz "$hx" vm.raw.xz.sig "$hx" vm.raw "$hx" xvm.raw.xz
		printf 'SHA256 (%s) = %s\n' vm.raw.xzz "$hx"
	} >"$www/sums/missing.SHA256SUMS"
	echo "this is not a checksum file" >"$www/sums/garbage.SHA256SUMS"
	printf '%s  vm.raw.xz\n' "${hx:0:63}" >"$www/sums/short.SHA256SUMS"
	printf '%s  vm.raw.xz\n' "${hx:0:60}zzzz" >"$www/sums/nothex.SHA256SUMS"
	printf 'SHA256 (vm.raw.xz) = %s\n' "${hx:0:40}" >"$www/sums/short-bsd.SHA256SUMS"
	: >"$www/sums/empty.SHA256SUMS"
	d=$(holding digest-url-bad 16M)
	before=$(state "$d")
	for s in missing garbage short nothex short-bsd empty none; do
		run_net provision --no-map --digest-url "$NET_HTTP/sums/$s.SHA256SUMS" "$d" \
			"$NET_HTTP/vm.raw.xz"
		# A file with no digest for the image: 10; one that is not there: 404, 7.
		[ "$s" = none ] && assert_rc 7 || assert_rc 10
		echo "$s.SHA256SUMS: exit $rc: $err"
		no_sanitizer_report
		case "$err" in *"$s.SHA256SUMS"* | *vm.raw.xz*) ;;
			*) echo "$s.SHA256SUMS: the message names neither the file nor the image"; return 1 ;; esac
		assert_eq "$(state "$d")" "$before" "device after $s.SHA256SUMS"
	done
	untouched "$d" "$before"
}

case_matched_before_fetch() {
	local d hx n
	ln -f "$www/vm.raw.zst" "$www/matched.raw.zst"
	hx=$(sha "$www/matched.raw.zst")
	printf '%s  matched.raw.zst\n' "$hx" >"$www/sums/matched.SHA256SUMS"
	d=$(new_dev matched 16M)
	run_net provision --no-map --digest "sha256:$hx" "$d" "$NET_HTTP/matched.raw.zst"
	written_ok "$d" "$www/vm.raw" "$www/matched.raw.zst"
	n=$(gets matched.raw.zst)
	[ "$n" -ge 1 ] || { echo "no GET of the image for the first provision"; return 1; }
	run_net provision --no-map --digest "sha256:$hx" "$d" "$NET_HTTP/matched.raw.zst"
	assert_rc 0
	assert_eq "$out" matched
	run_net provision --no-map --digest "sha256:$hx" --ca-file "$NET_CA" "$d" "$NET_HTTPS/matched.raw.zst"
	assert_rc 0
	assert_eq "$out" matched
	run_net provision --no-map --digest-url "$NET_HTTP/sums/matched.SHA256SUMS" "$d" \
		"$NET_HTTP/matched.raw.zst"
	assert_rc 0
	assert_eq "$out" matched
	assert_eq "$(gets matched.raw.zst)" "$n" "GETs of the image while matched"
	[ "$(gets sums/matched.SHA256SUMS)" -ge 1 ] || { echo "the SHA256SUMS was not fetched"; return 1; }
}

case_http_errors() {
	local d before t url
	d=$(holding errors 16M)
	before=$(state "$d")
	for t in 401/vm.raw:9:"HTTP 401" 403/vm.raw:9:"HTTP 403" missing.raw:7:"HTTP 404 Not Found" \
		410/vm.raw:7:"HTTP 410"; do
		url=$NET_HTTP/${t%%:*}
		run_net provision --no-map "$d" "$url"
		IFS=: read -r _ code words <<<"$t"
		status_is "$code" "imgdev: provision: $url: $words"
		assert_eq "$(state "$d")" "$before" "device after ${t%%:*}"
	done
	run_net provision --no-map --ca-file "$NET_CA" "$d" "$NET_HTTPS/missing.raw"
	status_is 7 "$NET_HTTPS/missing.raw: HTTP 404"
	# 5xx is retried, then given up.
	run_net provision --no-map --retries 1 "$d" "$NET_HTTP/500/vm.raw"
	status_is 11 "$NET_HTTP/500/vm.raw" "HTTP 500"
	[ "$(gets 500/vm.raw)" -ge 2 ] || { echo "HTTP 500 was not retried"; return 1; }
	run_net provision --no-map --retries 0 "$d" "$NET_HTTP/503/vm.raw"
	status_is 11 "HTTP 503"
	untouched "$d" "$before"
}

case_refused() {
	local d before port
	d=$(holding refused 16M)
	before=$(state "$d")
	port=$(net_free_ports 1)
	run_net provision --no-map --retries 1 "$d" "http://127.0.0.1:$port/vm.raw"
	status_is 11 "http://127.0.0.1:$port/vm.raw"
	untouched "$d" "$before"
}

case_tls() {
	local d before d2
	d=$(holding tls 16M)
	before=$(state "$d")
	# Our CA is not in the system's store; the untrusted server's is in no store.
	run_net provision --no-map --retries 1 "$d" "$NET_HTTPS/vm.raw"
	status_is 11 "$NET_HTTPS/vm.raw"
	grep -Eqi 'tls|certificate' <<<"$err" || { echo "no word of TLS or certificate: $err"; return 1; }
	run_net provision --no-map --retries 1 --ca-file "$NET_CA" "$d" "$NET_UNTRUSTED/vm.raw"
	status_is 11 "$NET_UNTRUSTED/vm.raw"
	grep -Eqi 'tls|certificate' <<<"$err" || { echo "no word of TLS or certificate: $err"; return 1; }
	untouched "$d" "$before"
	d2=$(new_dev tls-insecure 16M)
	run_net provision --no-map --insecure "$d2" "$NET_UNTRUSTED/vm.raw"
	assert_rc 0
	assert_eq "$out" written
	holds "$d2" "$www/vm.raw" "$www/vm.raw"
	run_net provision --no-map --ca-file "$NET_CA" "$d" "$NET_HTTPS/vm.raw.gz"
	written_ok "$d" "$www/vm.raw" "$www/vm.raw.gz"
}

case_redirects() {
	local d before d2
	ln -f "$www/vm.raw" "$www/redir.raw"
	d=$(holding redirects 16M)
	before=$(state "$d")
	run_net provision --no-map --retries 1 "$d" "$NET_HTTP/loop/redir.raw"
	status_is 11 "$NET_HTTP/loop/redir.raw"
	grep -qi redirect <<<"$err" || { echo "no word of redirects: $err"; return 1; }
	run_net provision --no-map --retries 1 --ca-file "$NET_CA" "$d" "$NET_HTTPS/to-http/redir.raw"
	status_is 11 "refused"
	untouched "$d" "$before"
	assert_eq "$(gets redir.raw)" 0 "GETs of the plain-http target"
	d2=$(new_dev redirect-ok 16M)
	run_net provision --no-map "$d2" "$NET_HTTP/redirect/redir.raw"
	written_ok "$d2" "$www/vm.raw" "$www/vm.raw"
}

case_header_file() {
	local d before d2
	printf 'Authorization: Bearer %s\n' "$NET_BEARER" >"$tmp/bearer"
	printf 'Authorization: Bearer wrong-%s\n' "$NET_BEARER" >"$tmp/bearer-wrong"
	d=$(new_dev bearer 16M)
	run_net provision --no-map --header-file "$tmp/bearer" "$d" "$NET_HTTP/auth/vm.raw.gz"
	written_ok "$d" "$www/vm.raw" "$www/vm.raw.gz"
	d=$(new_dev bearer-https 16M)
	run_net provision --no-map --header-file "$tmp/bearer" --ca-file "$NET_CA" "$d" "$NET_HTTPS/auth/vm.qcow2"
	written_ok "$d" "$www/vm.raw" "$www/vm.qcow2"
	d2=$(holding bearer-none 16M)
	before=$(state "$d2")
	run_net provision --no-map "$d2" "$NET_HTTP/auth/vm.raw.gz"
	status_is 9 "$NET_HTTP/auth/vm.raw.gz: HTTP 401"
	run_net provision --no-map --header-file "$tmp/bearer-wrong" "$d2" "$NET_HTTP/auth/vm.raw.gz"
	status_is 9 "HTTP 401"
	untouched "$d2" "$before"
	# The header file's headers go to the URL's origin only: a redirect on
	# the same origin is followed, one to another (here the https port) refused.
	printf 'X-Api-Key: secret-key\n' >"$tmp/apikey"
	d=$(new_dev apikey 16M)
	run_net provision --no-map --header-file "$tmp/apikey" "$d" "$NET_HTTP/redirect/vm.raw.gz"
	written_ok "$d" "$www/vm.raw" "$www/vm.raw.gz"
	run_net provision --no-map --header-file "$tmp/apikey" --ca-file "$NET_CA" "$d2" \
		"$NET_HTTP/to-https/vm.raw.gz"
	status_is 11 "refused" "header file"
	untouched "$d2" "$before"
}

# through_proxy NAME 'PROXY OPTIONS' [imgdev options]: provision /NAME.raw (big.raw,
# or a file of that name already there) through a fault proxy onto a fresh
# 32 MiB device $dev; sets rc, out, err; shows the proxy's log.
through_proxy() {
	local name=$1 popts=$2
	shift 2
	[ -e "$www/$name.raw" ] || ln -f "$www/big.raw" "$www/$name.raw"
	[ -n "${dev:-}" ] || dev=$(new_dev "$name" 32M)
	# shellcheck disable=SC2086  # the proxy's options are words
	net_proxy_start "$name" $popts
	run_net provision --no-map "$@" "$dev" "$NET_PROXY/$name.raw"
	echo "imgdev exit $rc; stdout [$out]; stderr [$err]"
	net_proxy_settle "$name"
	net_proxy_log "$name"
	net_proxy_stop "$name"
}

case_cut_once() {
	through_proxy cut1 "--fault cut --after 5M"
	recovered "$dev" "$www/big.raw"
	assert_eq "$(net_proxy_faults cut1)" 1
	resumed cut1.raw
	served_below cut1.raw "$big"
}

case_cut_several() {
	through_proxy cut3 "--fault cut --after 4M --times 3"
	recovered "$dev" "$www/big.raw"
	assert_eq "$(net_proxy_faults cut3)" 3
	[ "$(gets cut3.raw)" -ge 4 ] || { echo "fewer than 4 GETs"; return 1; }
	resumed cut3.raw
	served_below cut3.raw "$big"
}

case_reset() {
	through_proxy reset "--fault reset --after 3M"
	recovered "$dev" "$www/big.raw"
	resumed reset.raw
	served_below reset.raw "$big"
}

case_stall() {
	local t0 t1
	t0=$(date +%s)
	through_proxy stall "--fault stall --after 3M" --timeout 2
	t1=$(date +%s)
	recovered "$dev" "$www/big.raw"
	[ $((t1 - t0)) -lt 30 ] || { echo "took $((t1 - t0)) s with --timeout 2"; return 1; }
	resumed stall.raw
	served_below stall.raw "$big"
}

case_slow_is_not_stalled() {
	local d t0 t1
	d=$(new_dev slow 16M)
	t0=$(date +%s)
	run_net provision --no-map --timeout 2 "$d" "$NET_HTTP/slow/vm.raw"
	t1=$(date +%s)
	echo "8 MiB at $NET_SLOW_RATE/s in $((t1 - t0)) s"
	written_ok "$d" "$www/vm.raw" "$www/vm.raw"
	assert_eq "$(gets slow/vm.raw)" 1 "one GET: progress, however slow, is no stall"
}

case_ignore_range() {
	through_proxy norange "--fault cut --after 5M --ignore-range"
	recovered "$dev" "$www/big.raw"
	assert_eq "$(net_proxy_field norange range_stripped | grep -c true)" \
		"$(net_proxy_field norange range | grep -vc null)" "ranges asked for and stripped"
	[ "$(net_proxy_field norange range | grep -vc null)" -ge 1 ] ||
		{ echo "no request asked for a range"; return 1; }
	assert_eq "$(net_proxy_field norange status | sort -u)" 200
}

case_lying_length() {
	local n
	for n in lie:1 lie-digest:1 lie-always:0; do
		dev=""
		if [ "${n%:*}" = lie-digest ]; then
			through_proxy "${n%:*}" "--fault lie --extra 1M --times ${n#*:}" \
				--digest "sha256:$(sha "$www/big.raw")"
		else
			through_proxy "${n%:*}" "--fault lie --extra 1M --times ${n#*:}" --retries 2
		fi
		[ "$(net_proxy_faults "${n%:*}")" -ge 1 ] || { echo "${n%:*}: no lie was served"; return 1; }
		[ "$rc" != 2 ] || { echo "${n%:*}: a usage error"; return 1; }
		exact_or_nothing "$dev" "$www/big.raw"
	done
}

case_changed_on_resume() {
	local f
	# chg.raw's copy with other bytes at the start, the middle and the end, and
	# an older mtime: another ETag. A splice of the two is neither file.
	f=$www/chg.raw
	cp "$www/big.raw" "$f"
	cp "$www/big.raw" "$f.changed"
	for off in 1000 $((10 << 20)) $((big - 5)); do flip_byte "$f.changed" "$off"; done
	touch -d "@$(($(stat -c %Y "$f") - 3600))" "$f.changed"
	through_proxy chg "--fault cut --after 5M --change-suffix .changed"
	no_sanitizer_report
	if [ "$rc" = 0 ]; then
		echo "started over: the device must hold the changed file"
		assert_eq "$out" written
		holds "$dev" "$f.changed" "$f.changed"
	else
		echo "failed with $rc"
		no_complete_record "$dev"
	fi
	assert_eq "$(net_proxy_field chg upstream_path | sed -n 2p)" /chg.raw.changed
	# With the first file's digest, the changed one must not be committed.
	dev=""
	ln -f "$f" "$www/chg2.raw"
	ln -f "$f.changed" "$www/chg2.raw.changed"
	through_proxy chg2 "--fault cut --after 5M --change-suffix .changed" --digest "sha256:$(sha "$f")"
	no_sanitizer_report
	[ "$rc" != 0 ] || { echo "committed a changed file under the first one's digest"; return 1; }
	no_complete_record "$dev"
}

case_retries_exhausted() {
	local before
	dev=$(holding retries0 32M)
	before=$(state "$dev")
	through_proxy retries0 "--fault cut --after 12M --times 0" --retries 0
	status_is 11 "$NET_PROXY/retries0.raw"
	not_committed "$dev" "$before"
	assert_eq "$(gets retries0.raw)" 1 "GETs with --retries 0"
	# --retries counts breaks in a row without progress: every answer cut
	# before its first byte fails after 1 + 2 requests...
	dev=$(holding retries2 32M)
	before=$(state "$dev")
	through_proxy retries2 "--fault cut --after 0 --times 0" --retries 2
	status_is 11
	not_committed "$dev" "$before"
	assert_eq "$(gets retries2.raw)" 3 "GETs with --retries 2"
	# ... while answers cut after 5 MiB each bring the 24 MiB file in five breaks.
	dev=$(new_dev retries2p 32M)
	through_proxy retries2 "--fault cut --after 5M --times 0" --retries 2
	status_is 0
	payload_is "$dev" "$www/retries2.raw"
}

# --- Resuming across runs ---

# resume_point DEV: the resume point of DEV's "writing" record (0 if none).
resume_point() { "$IMGDEV" header "$1" --json 2>/dev/null | jq -r '.resume_at // 0'; }
# kill_at_checkpoint DEV URL [imgdev options]: start a provision of URL onto
# DEV and kill -9 it once its record holds a resume point (or after
# KILL_WAIT seconds, default 20); prints the point. The URL should be slow
# (/slow/): the first checkpoint comes after a second and 4 MiB.
kill_at_checkpoint() {
	local dev=$1 url=$2 pid i at=0
	shift 2
	# shellcheck disable=SC2086  # IMGDEV_WRAP is a command line
	${IMGDEV_WRAP:-} "$IMGDEV" provision --no-map "$@" "$dev" "$url" >/dev/null 2>"$tmp/killed.err" &
	pid=$!
	for i in $(seq $((${KILL_WAIT:-20} * 10))); do
		[ "$(resume_point "$dev")" -gt 0 ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	resume_point "$dev" # read after the kill: a checkpoint may have come meanwhile
}
# interrupted NAME: a new device $d where a provision of big.raw (as
# /slow/NAME.raw, with its digest $dg) was killed at its first resume point $at.
interrupted() {
	d=$(new_dev "$1" 32M)
	ln -f "$www/big.raw" "$www/$1.raw"
	dg=sha256:$(sha "$www/big.raw")
	at=$(kill_at_checkpoint "$d" "$NET_HTTP/slow/$1.raw" --digest "$dg")
	echo "$1: killed with a resume point at byte $at of $big"
	[ "$at" -gt 0 ] || { echo "no resume point"; return 1; }
}
# only_range NAME FROM: the log for /NAME has one GET, for the bytes from
# FROM to the end, and nginx sent exactly those.
only_range() {
	net_log_settle
	net_log_lines "/$1"
	assert_eq "$(net_log_gets "/$1")" 1 "GETs of /$1"
	assert_eq "$(net_log_ranges "/$1")" "bytes=$2-" "the range asked for"
	assert_eq "$(net_log_bytes "/$1")" $(($(stat -c %s "$www/$1") - $2)) "bytes sent for /$1"
}

case_resume_across_runs() {
	interrupted res1
	[ $((at % (4 << 20))) = 0 ] && [ "$at" -lt "$big" ] ||
		{ echo "not a whole number of chunks short of the size: $at"; return 1; }
	left_writing "$d"
	assert_eq "$(hex_at "$d" 10 32)" "$(printf '0%.0s' $(seq 64))" "the header names no image"
	# The rerun, from the fast URL of the same file: only the rest is fetched.
	run_net -v provision --no-map --json "$d" "$NET_HTTP/res1.raw" --digest "$dg"
	assert_rc 0
	assert_contains "$err" "resuming an interrupted write at byte $at of $big"
	assert_eq "$(jfield resumed_at <<<"$out")" "$at"
	assert_eq "$(jfield bytes_written <<<"$out")" $((big - at)) "payload bytes written by the rerun"
	holds "$d" "$www/big.raw" "$www/big.raw"
	assert_eq "$(resume_point "$d")" 0 "no resume point in the complete record"
	only_range res1.raw "$at"
}

case_resume_wrong_prefix() {
	interrupted res2
	# A byte the interrupted run wrote is changed: the whole cannot match the digest.
	flip_byte "$d" $((512 + at / 2))
	run_net provision --no-map --json "$d" "$NET_HTTP/res2.raw" --digest "$dg"
	assert_rc 0
	assert_contains "$err" "does not match its digest"
	assert_contains "$err" "after $at bytes re-read from the device"
	assert_contains "$err" "resuming did not give the image: starting over from the first byte"
	assert_eq "$(jfield resumed_at <<<"$out")" 0 "the write that succeeded started from the first byte"
	holds "$d" "$www/big.raw" "$www/big.raw"
	net_log_settle
	net_log_lines /res2.raw
	assert_eq "$(net_log_ranges /res2.raw | tr '\n' ' ')" "bytes=$at- - " "a resumed GET, then the whole file"
}

case_resume_unreadable() {
	local preload=$top/build/tests/eio-preload.so
	interrupted res6
	# The device's bytes before the resume point cannot be read back (a fault
	# injector in front of pread): the copy starts over and writes them.
	IMGDEV_WRAP="env LD_PRELOAD=$preload EIO_FILE=$d EIO_TO=$((512 + at)) ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		run_net provision --no-map --json "$d" "$NET_HTTP/res6.raw" --digest "$dg"
	assert_rc 0
	assert_contains "$err" "read error at device offset"
	assert_contains "$err" "starting over from the first byte"
	assert_eq "$(jfield resumed_at <<<"$out")" 0
	holds "$d" "$www/big.raw" "$www/big.raw"
	assert_eq "$(net_log_ranges /res6.raw | tr '\n' ' ')" "bytes=$at- - " "a resumed GET, then the whole file"
}

# resumed_aligned DEV NAME: interrupt a provision of big.raw (as /slow/NAME.raw)
# onto DEV in the aligned layout, then rerun it without --layout: it resumes,
# the payload at 1 MiB. The rerun's JSON in $resumed_json.
resumed_aligned() {
	ln -f "$www/big.raw" "$www/$2.raw"
	dg=sha256:$(sha "$www/big.raw")
	at=$(kill_at_checkpoint "$1" "$NET_HTTP/slow/$2.raw" --digest "$dg" --layout aligned)
	[ "$at" -gt 0 ] || { echo "no resume point"; return 1; }
	assert_eq "$(payload_offset "$1")" 1048576 "the interrupted write's layout"
	run_net -v provision --no-map --json "$1" "$NET_HTTP/$2.raw" --digest "$dg"
	assert_rc 0
	assert_contains "$err" "aligned layout (header version 2), the payload from byte 1048576, as the interrupted write before it was"
	assert_eq "$(jfield resumed_at <<<"$out")" "$at"
	assert_eq "$(jfield layout <<<"$out")" aligned
	resumed_json=$out
	holds "$1" "$www/big.raw" "$www/big.raw"
	only_range "$2.raw" "$at"
}

case_resume_aligned() {
	# A file (512-byte sectors, where the default would be Virtlet's layout).
	resumed_aligned "$(new_dev res7 34M)" res7
	# A loop device of 4096-byte sectors: the bytes before the point re-read with O_DIRECT.
	truncate -s 34M "$tmp/res8-back"
	l=$(losetup -f --show --sector-size 4096 "$tmp/res8-back")
	resumed_aligned "$l" res8
	assert_eq "$(jfield direct_io <<<"$resumed_json")" true
	losetup -d "$l"
}

case_resume_not_there() {
	# Without a digest, no resume point is recorded (within 5 s: one would be by 3).
	d=$(new_dev resume-nodigest 32M)
	ln -f "$www/big.raw" "$www/res3.raw"
	at=$(KILL_WAIT=5 kill_at_checkpoint "$d" "$NET_HTTP/slow/res3.raw")
	assert_eq "$at" 0 "resume point without a digest"
	# Nor for a compressed image.
	[ -e "$www/big.raw.xz" ] || xz -0 -T1 -c "$www/big.raw" >"$www/big.raw.xz"
	d=$(new_dev resume-xz 32M)
	at=$(KILL_WAIT=5 kill_at_checkpoint "$d" "$NET_HTTP/slow/big.raw.xz" --digest "sha256:$(sha "$www/big.raw.xz")")
	assert_eq "$at" 0 "resume point of an xz image"
	# A resume point for one image is not used for another: odd.raw is written whole.
	interrupted res5
	run_net provision --no-map --json "$d" "$NET_HTTP/odd.raw" --digest "sha256:$(sha "$www/odd.raw")"
	assert_rc 0
	assert_eq "$(jfield resumed_at <<<"$out")" 0
	holds "$d" "$www/odd.raw" "$www/odd.raw"
	assert_eq "$(net_log_ranges /odd.raw | sort -u)" - "odd.raw fetched without a range"
	# A copy that ends not matching its digest leaves no resume point behind
	# (its checkpoints came at 8 MB/s), so a rerun does not build on its bytes.
	d=$(new_dev resume-wrong 32M)
	run_net provision --no-map "$d" "$NET_HTTP/rate/8m/res3.raw" --digest "sha256:$(sha "$www/odd.raw")"
	status_is 10 "does not match its digest"
	left_writing "$d"
	assert_eq "$(resume_point "$d")" 0 "resume point after a digest mismatch"
}

case_resume_range_ignored() {
	interrupted res4
	# The proxy strips the Range: the whole file comes, its first bytes skipped.
	net_proxy_start res4 --ignore-range
	run_net provision --no-map --json "$d" "$NET_PROXY/res4.raw" --digest "$dg"
	net_proxy_settle res4
	net_proxy_log res4
	net_proxy_stop res4
	assert_rc 0
	assert_contains "$err" "the server sent the whole file"
	assert_eq "$(jfield resumed_at <<<"$out")" "$at"
	holds "$d" "$www/big.raw" "$www/big.raw"
	assert_eq "$(net_proxy_field res4 range_stripped | grep -c true)" 1 "the range stripped"
}

run_case case_formats 'every format (raw, qcow2, gzip, xz, zstd raw, xz qcow2) over http and https gives the payload and hashes of the local file'
run_case case_json_and_matched 'provision --json of a URL reports the hash of the file as published; the same URL again is written without a digest, matched with it'
run_case case_progress '--progress=json of a URL: a raw or xz payload of its size, a gzip file received of its size; from a pipe, no total'
run_case case_info 'info of a URL says what info of the file says (raw, qcow2, xz); 404 exits 7, 403 exits 9, a reset after the headers 11'
run_case case_stdin 'raw and compressed raw from a pipe on standard input give the local payload'
run_case case_stdin_qcow2 'qcow2 and xz qcow2 from a pipe are spooled and give the local payload'
run_case case_too_big 'a stream of unknown size that outgrows the device exits 8 and leaves no complete record; a raw URL too big writes nothing'
run_case case_digest '--digest right is written and matched; wrong exits 10 naming both digests, left "writing"; the digest is of the file as published'
run_case case_digest_url '--digest-url with GNU ("  " and " *") and BSD SHA256SUMS: written, then matched without a GET of the image; a wrong line exits 10'
run_case case_digest_url_bad '--digest-url without a line for the image, malformed, empty or missing: an error and the device untouched'
run_case case_matched_before_fetch 'a device whose header names the digest is matched without a GET of the image (--digest, --digest-url)'
run_case case_http_errors '401 and 403 exit 9, 404 and 410 exit 7, 500 and 503 exit 11 after retries: messages name URL and status; device untouched'
run_case case_refused 'a refused connection exits 11 and leaves the device untouched'
run_case case_tls 'an untrusted certificate exits 11 with a word of TLS, device untouched; --insecure and --ca-file are accepted'
run_case case_redirects 'a redirect loop exits 11, an https-to-http redirect is refused (11) without fetching; a plain redirect is followed'
run_case case_header_file '--header-file with a bearer token passes the server check; without it or with a wrong one, 401 exits 9 and nothing is written; its headers follow a redirect on the same origin only'
run_case case_cut_once 'a transfer cut once is resumed with Range and If-Range: byte-exact, below 1.5 x the file served'
run_case case_cut_several 'a transfer cut three times is resumed each time: byte-exact, below 1.5 x the file served'
run_case case_reset 'a connection reset mid-body is resumed: byte-exact, below 1.5 x the file served'
run_case case_stall 'a stalled transfer is abandoned after --timeout 2 and resumed: byte-exact, well within 30 s'
run_case case_slow_is_not_stalled 'a slow transfer that keeps going (limit_rate) is no stall for --timeout 2: one GET, byte-exact'
run_case case_ignore_range 'a server that ignores Range (200, the whole file) after a cut still gives a byte-exact payload'
run_case case_lying_length 'a Content-Length longer than the body (once, with --digest, always): byte-exact or nothing committed'
run_case case_changed_on_resume 'a file changed on the server between attempts is never spliced: the copy starts over or fails; with the old digest it is not committed'
run_case case_retries_exhausted 'breaks in a row beyond --retries (0, 2) exit 11 after 1 and 3 requests and commit nothing; breaks that each bring bytes go on'

run_case case_resume_across_runs 'a raw URL with its digest killed mid-download leaves a resume point; the rerun fetches only the rest (one Range GET) and commits the image'
run_case case_resume_wrong_prefix 'a resumed write over bytes that are not the start of the image fails its digest and starts over from the first byte: the image, committed'
run_case case_resume_unreadable 'a resumed write whose bytes on the device cannot be read back (EIO, injected) starts over from the first byte: the image, committed'
run_case case_resume_aligned 'an interrupted write in the aligned layout (a file, and a 4096-byte-sector loop device) resumes on a rerun without --layout, in that layout: one Range GET, the image committed at 1 MiB'
run_case case_resume_not_there 'no resume point without a digest, for a compressed image, or after a digest mismatch; one left for another image is not used: written whole'
run_case case_resume_range_ignored 'a resumed write from a server that ignores Range skips the bytes it has: the image, committed'

finish
