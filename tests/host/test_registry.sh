#!/usr/bin/env bash
# Host tests of libimgdev's registry client (src/lib/registry.h) against a
# real registry (Debian's docker-registry, tests/net/registry.sh) in its
# three modes: open, htpasswd (Basic) and token (a Bearer challenge and a
# token endpoint, tests/net/token-front.py). The library is reached through
# the test tool tests/tools/registry-get. Manifests by tag and by digest,
# an image index, blobs byte for byte against the OCI layouts pushed
# (tests/net/containerdisk.sh); anonymous and credentialed tokens, a token
# that expires; the refusals with their exit statuses and messages
# (credentials missing or wrong, an unknown tag or repository, bytes that
# are not what their digest says, a malformed auth file, bad references);
# and no credential ever in what it prints. About 15 s.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../net/registry.sh"
. "$(dirname "$0")/../net/containerdisk.sh"

GET=$(dirname "$IMGDEV")/tests/registry-get
if ! reg_have || ! command -v jq >/dev/null || ! command -v zstd >/dev/null; then
	echo "${0##*/}: 0 passed, 0 failed, 1 skipped (needs docker-registry, skopeo, apache2-utils, curl, jq, zstd: tests/deps.sh test)"
	exit 77
fi
tmp=$(mktemp -d /var/tmp/imgdev-regc.XXXXXX)
REG_ROOT=$tmp/reg
trap 'reg_stop; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1,localhost
# Tokens live 3 s: long enough for every run but the one that waits them out.
REG_FRONT_OPTS="--token-ttl 3"
# Everything registry-get printed, for the check that no credential is in it.
all=$tmp/all-output

# get MODE ARGS...: registry-get ARGS against the MODE registry; its stdout
# in $tmp/out and $out (the first line: $digest), stderr in $err, status $rc.
get() {
	reg_use "$1" >/dev/null
	shift
	rc=0
	"$GET" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	out=$(cat "$tmp/out") err=$(cat "$tmp/err") digest=$(head -n 1 "$tmp/out")
	cat "$tmp/out" "$tmp/err" >>"$all"
}
# auth FILE MODE [PASSWORD]: an auth file for that registry's host (the right password by default).
auth() {
	reg_use "$2" >/dev/null
	jq -n --arg h "$REG_HOST" --arg a "$(printf %s "$REG_USER:${3:-$REG_PASS}" | base64 -w0)" \
		'{auths: {($h): {auth: $a}}}' >"$1"
}
# absent GREP-ARGS...: nothing registry-get printed matches (else the lines that do).
absent() {
	if grep "$@" "$all"; then echo "found in the output: grep $*"; return 1; fi
}
# body: the manifest registry-get printed, without its digest line.
body() { tail -n +2 "$tmp/out"; }
# tokens: how many token requests the token front has answered.
tokens() { reg_use token >/dev/null; reg_front_log | jq -s '[.[] | select(.path == "/token")] | length'; }

head -c 1500000 /dev/urandom >"$tmp/a.img"
head -c 700001 /dev/urandom >"$tmp/b.img"
head -c 100000 /dev/urandom >"$tmp/c.img"
o=$tmp/oci
cd_build "$o/disk" "$tmp/a.img" >/dev/null
cd_build_index "$o/idx" linux/amd64="$tmp/a.img" linux/arm64="$tmp/b.img" --layer-compression zstd >/dev/null
cd_build "$o/bad" "$tmp/c.img" --disk-name bad.img >/dev/null
for m in open htpasswd token; do
	reg_start "$m" >/dev/null || exit 1
	reg_push "$o/disk" latest vm/disk:latest
	reg_push "$o/disk" latest "${REG_PRIVATE_PREFIX}disk:latest"
	reg_push "$o/idx" latest vm/index:latest
	auth "$tmp/auth-$m.json" "$m"
done
D=$(cd_manifest_digest "$o/disk")
LAYER=$(cd_layer_digests "$o/disk")
CONFIG=$(cd_config_digest "$o/disk")
size() { stat -c %s "$(cd_blob "$o/disk" "$1")"; }

expect 'a manifest by tag and by digest, in each mode: the bytes pushed, their digest cd_manifest_digest' '
	for m in open htpasswd token; do
		reg_use $m
		get $m --auth-file "$tmp/auth-$m.json" "docker://$REG_HOST/vm/disk:latest" manifest
		assert_rc 0
		assert_eq "$digest" "$D" "$m by tag"
		body | cmp - "$(cd_blob "$o/disk" "$D")"
		get $m --auth-file "$tmp/auth-$m.json" "docker://$REG_HOST/vm/disk@$D" manifest
		assert_rc 0
		assert_eq "$digest" "$D" "$m by digest"
		body | cmp - "$(cd_blob "$o/disk" "$D")"
	done'

expect 'a blob, layer and config, in each mode: the layout'"'"'s blob file byte for byte' '
	for m in open htpasswd token; do
		reg_use $m
		for b in "$LAYER" "$CONFIG"; do
			get $m --auth-file "$tmp/auth-$m.json" "docker://$REG_HOST/vm/disk:latest" blob "$b" "$(size "$b")"
			assert_rc 0
			cmp "$tmp/out" "$(cd_blob "$o/disk" "$b")"
		done
	done
	reg_use open
	assert_eq "$(reg_log_blob_gets vm/disk "$LAYER")" 1 "one GET of the layer from the open registry"'

expect 'an image index by tag: the index itself, with its digest' '
	reg_use token
	get token "docker://$REG_HOST/vm/index:latest" manifest
	assert_rc 0
	assert_eq "$digest" "$(cd_manifest_digest "$o/idx")"
	assert_eq "$(body | jq -r .mediaType)" application/vnd.oci.image.index.v1+json
	body | cmp - "$(cd_blob "$o/idx" "$digest")"'

expect 'token mode: a public repository is pulled with an anonymous token, asked for pull on it' '
	reg_use token
	n=$(tokens)
	get token "docker://$REG_HOST/vm/disk:latest" manifest
	assert_rc 0
	assert_eq "$digest" "$D"
	assert_eq "$(tokens)" $((n + 1)) "one token"
	last=$(reg_front_log | jq -c "select(.path == \"/token\")" | tail -n 1)
	assert_eq "$(jq -r .auth <<<"$last")" none
	assert_eq "$(jq -c .scope <<<"$last")" "[\"repository:vm/disk:pull\"]"
	assert_eq "$(jq -c .granted <<<"$last")" "[\"vm/disk\"]"'

expect 'token mode: a private repository without credentials is refused (9) with the registry'"'"'s 401 UNAUTHORIZED; with them it is pulled' '
	reg_use token
	get token "docker://$REG_HOST/${REG_PRIVATE_PREFIX}disk:latest" manifest
	assert_rc 9
	assert_contains "$err" "docker://$REG_HOST/${REG_PRIVATE_PREFIX}disk:latest: manifest: 401 UNAUTHORIZED"
	get token --auth-file "$tmp/auth-token.json" "docker://$REG_HOST/${REG_PRIVATE_PREFIX}disk:latest" manifest
	assert_rc 0
	assert_eq "$digest" "$D"
	assert_eq "$(reg_front_log | jq -r "select(.path == \"/token\") | .auth" | tail -n 1)" basic'

expect 'htpasswd mode: without an auth file, or with one for another host, refused (9) saying what to give' '
	reg_use htpasswd
	get htpasswd "docker://$REG_HOST/vm/disk:latest" manifest
	assert_rc 9
	assert_contains "$err" "docker://$REG_HOST/vm/disk:latest: /v2/: 401: the registry needs credentials: give --auth-file"
	jq -n "{auths: {\"other.example:5000\": {auth: \"$(printf u:p | base64)\"}}}" >"$tmp/other.json"
	get htpasswd --auth-file "$tmp/other.json" "docker://$REG_HOST/vm/disk:latest" manifest
	assert_rc 9
	assert_contains "$err" "$tmp/other.json has none for $REG_HOST"'

expect 'a wrong password is refused (9): by the registry (htpasswd), by the token endpoint (token)' '
	auth "$tmp/wrong-h.json" htpasswd not-the-password
	get htpasswd --auth-file "$tmp/wrong-h.json" "docker://$REG_HOST/vm/disk:latest" manifest
	assert_rc 9
	assert_contains "$err" "/v2/: 401"
	auth "$tmp/wrong-t.json" token not-the-password
	get token --auth-file "$tmp/wrong-t.json" "docker://$REG_HOST/${REG_PRIVATE_PREFIX}disk:latest" manifest
	assert_rc 9
	assert_contains "$err" "with the auth file'"'"'s credentials: 401 UNAUTHORIZED: invalid username or password"'

expect 'an auth file with username and password fields, keyed https://HOST/NAMESPACE, is taken (the longest key that matches)' '
	reg_use htpasswd
	jq -n --arg h "$REG_HOST" --arg u "$REG_USER" --arg p "$REG_PASS" --arg w "$(printf u:wrong | base64)" \
		"{auths: {(\$h): {auth: \$w}, (\"https://\" + \$h + \"/vm\"): {username: \$u, password: \$p},
			(\$h + \"/v\"): {auth: \$w}}}" >"$tmp/long.json"
	get htpasswd --auth-file "$tmp/long.json" "docker://$REG_HOST/vm/disk:latest" manifest
	assert_rc 0
	assert_eq "$digest" "$D"'

expect 'an unknown tag or repository is 7, with the registry'"'"'s MANIFEST_UNKNOWN' '
	for m in open token; do
		reg_use $m
		get $m "docker://$REG_HOST/vm/disk:nope" manifest
		assert_rc 7
		assert_eq "$err" "registry-get: docker://$REG_HOST/vm/disk:nope: manifest: 404 MANIFEST_UNKNOWN: manifest unknown"
		get $m "docker://$REG_HOST/vm/nothere:latest" manifest
		assert_rc 7
		assert_contains "$err" "docker://$REG_HOST/vm/nothere:latest: manifest: 404 MANIFEST_UNKNOWN"
	done
	reg_use open
	get open "docker://$REG_HOST/vm/disk:latest" blob "sha256:$(printf %064d 0)" 10
	assert_rc 7
	assert_contains "$err" "docker://$REG_HOST/vm/disk:latest: blob sha256:$(printf %064d 0): "'

expect 'a manifest the registry lacks by digest is 7; bytes that do not hash to their digest are 10, by digest and by tag (Docker-Content-Digest)' '
	reg_use open
	get open "docker://$REG_HOST/vm/disk@sha256:$(printf %064d 1)" manifest
	assert_rc 7
	reg_push "$o/bad" latest vm/bad:latest
	bd=$(cd_manifest_digest "$o/bad")
	f=$(reg_blob_file "$bd")
	off=$(grep -bo "\"digest\":\"sha256:" "$f" | head -n 1 | cut -d: -f1)
	reg_corrupt_blob "$bd" $((off + 20))
	get open "docker://$REG_HOST/vm/bad@$bd" manifest
	assert_rc 10
	assert_contains "$err" "docker://$REG_HOST/vm/bad@$bd: manifest: digest $bd expected, the content hashes to sha256:"
	get open "docker://$REG_HOST/vm/bad:latest" manifest
	assert_rc 10
	assert_contains "$err" "docker://$REG_HOST/vm/bad:latest: manifest: the registry sends Docker-Content-Digest $bd, the bytes hash to sha256:"'

expect 'a blob of another size than its descriptor says is refused (10)' '
	reg_use open
	get open "docker://$REG_HOST/vm/disk:latest" blob "$CONFIG" 99
	assert_rc 10
	assert_contains "$err" "blob $CONFIG: $(size "$CONFIG") bytes, the descriptor says 99"'

expect 'token mode: a token that expired is fetched anew once, for a manifest and for a blob' '
	reg_use token
	n=$(tokens)
	get token --sleep 4 "docker://$REG_HOST/vm/disk:latest" manifest
	assert_rc 0
	assert_eq "$digest" "$D"
	assert_eq "$(tokens)" $((n + 2)) "a token for /v2/, a new one for the manifest"
	get token --sleep 4 "docker://$REG_HOST/vm/disk:latest" blob "$CONFIG" "$(size "$CONFIG")"
	assert_rc 0
	cmp "$tmp/out" "$(cd_blob "$o/disk" "$CONFIG")"
	assert_eq "$(tokens)" $((n + 4))'

expect 'the scheme: https first, plain http for a loopback registry (127.0.0.1, localhost), logged' '
	reg_use open
	for h in "$REG_HOST" "localhost:${REG_HOST#*:}"; do
		get open -v "docker://$h/vm/disk:latest" manifest
		assert_rc 0
		assert_contains "$err" "no https ("
		assert_contains "$err" "plain http, as for a loopback registry"
		assert_contains "$err" "registry at http://$h (anonymous)"
	done
	reg_use token
	get token -v --auth-file "$tmp/auth-token.json" "docker://$REG_HOST/vm/disk:latest" manifest
	assert_contains "$err" "registry at http://$REG_HOST (Bearer token)"
	assert_eq "$(reg_front_log | jq -s "[.[] | select(.tls_probe)] | length > 0")" true "the front saw the https try"'

expect 'a malformed or unreadable auth file is refused, naming the file and what is wrong, never its contents' '
	reg_use open
	printf "{\"auths\": {\"%s\": {\"auth\": \"c2VjcmV0LXdvcmQ\"" "$REG_HOST" >"$tmp/a1.json"
	printf "{\"auths\": [\"secret-word\"]}" >"$tmp/a2.json"
	printf "{\"auths\": {\"%s\": {\"auth\": \"secret-word!\"}}}" "$REG_HOST" >"$tmp/a3.json"
	printf "{\"auths\": {\"%s\": {\"auth\": \"%s\"}}}" "$REG_HOST" "$(printf secret-word | base64)" >"$tmp/a4.json"
	printf "{\"auths\": {\"%s\": {\"username\": \"secret-word\"}}}" "$REG_HOST" >"$tmp/a5.json"
	i=0
	for why in "is not JSON" "has no \"auths\" object" "auth is not base64 of user:password" \
		"auth is not base64 of user:password" "needs both username and password"; do
		i=$((i + 1))
		get open --auth-file "$tmp/a$i.json" "docker://$REG_HOST/vm/disk:latest" manifest
		assert_rc 1
		assert_contains "$err" "$tmp/a$i.json: "
		assert_contains "$err" "$why"
		case $err in *secret-word* | *c2VjcmV0*) echo "a$i: the contents shown: $err"; exit 1 ;; esac
	done
	get open --auth-file "$tmp/none.json" "docker://$REG_HOST/vm/disk:latest" manifest
	assert_rc 1
	assert_contains "$err" "$tmp/none.json: cannot read the auth file: No such file or directory"'

expect 'bad references are refused, saying what is wrong' '
	h=127.0.0.1:5000 n=0
	while IFS="|" read -r ref why; do
		get open "$ref" manifest
		assert_rc 1
		assert_contains "$err" "registry-get: $ref: "
		assert_contains "$err" "$why"
		n=$((n + 1))
	done <<-EOF
		docker://|no host
		docker:///vm/disk|no host
		docker://$h|no repository
		docker://$h/|no repository after the host
		docker://$h/Vm/disk|uppercase in the repository "Vm/disk"
		docker://$h/vm//disk|is not lowercase components
		docker://$h/vm/disk-|is not lowercase components
		docker://$h/vm/disk:-bad|the tag "-bad" is not
		docker://$h/vm/disk:a/b|"vm/disk:a/b" is not lowercase components
		docker://$h/vm/disk@sha256:abc|the digest is not sha256: and 64 lowercase hex digits
		docker://$h/vm/disk@sha256:$(printf %064d 0 | tr 0 A)|the digest is not sha256: and 64 lowercase hex digits
		docker://$h/vm/disk@sha512:$(printf %0128d 0)|the digest is not sha256
		docker://$h/vm/disk:v1@sha256:$(printf %064d 0)|both a tag and a digest
		docker://bad_host!/vm/disk|is not HOST[:PORT]
	EOF
	assert_eq $n 14 "references tried"'

expect 'no output, log included, ever holds the password or its base64 form' '
	reg_use token
	get token -v --auth-file "$tmp/auth-token.json" "docker://$REG_HOST/${REG_PRIVATE_PREFIX}disk:latest" manifest
	assert_rc 0
	reg_use htpasswd
	get htpasswd -v --auth-file "$tmp/auth-htpasswd.json" "docker://$REG_HOST/vm/disk:nope" manifest
	b64=$(printf %s "$REG_USER:$REG_PASS" | base64 -w0)
	[ -s "$all" ]
	absent -F -e "$REG_PASS" -e "$b64"
	# The front'"'"'s tokens are 48 hex digits (digests have 64).
	absent -E "(^|[^0-9a-f])[0-9a-f]{48}([^0-9a-f]|$)"'

finish
