#!/usr/bin/python3
"""A token-auth front for a container registry, for imgdev's tests (test harness, not product code).

Public registries (Docker Hub, quay.io, ghcr.io) do not take credentials on
the registry itself: the registry answers 401 with a challenge

    WWW-Authenticate: Bearer realm="http://HOST/token",service="...",scope="repository:REPO:pull"

and the client fetches a token from the realm (anonymously, or with Basic
credentials), then repeats the request with "Authorization: Bearer TOKEN".
Debian's registry can only check such tokens if they are signed JWTs from a
token server of its own; this front plays both parts instead, in front of an
open registry on 127.0.0.1:

- GET or HEAD /v2/ and anything under it: 401 with the challenge unless the
  request carries a token this front issued, not expired, that grants pull on
  the repository named in the path (/v2/ itself wants any valid token, and its
  challenge names no scope). A valid token without the grant gets the
  challenge with error="insufficient_scope". Authorised requests go to the
  registry (--upstream) without the Authorization header, and the answer comes
  back as it is: status, headers (Docker-Content-Digest, Content-Length,
  Content-Range, Location, ETag, ...), the body streamed. Range and If-Range
  reach the registry, which answers them (206).
- GET /token?service=S&scope=repository:REPO:pull[,push] (scope repeated or
  space-separated): a token for the scopes it may grant. Anyone gets pull on
  a public repository; a repository whose name starts with --private-prefix
  needs Basic credentials (--user, --password); wrong credentials get 401.
  A wrong service gets 400. The answer is {"token", "access_token",
  "expires_in", "issued_at"}, as the distribution token spec has it.
- Everything else: 404, or 405 for other methods. Pushes go to the registry
  directly (the tests push with skopeo there), never through the front.

Every request is one JSON line in --log: method, path, status, how it was
authorised ("auth": none, bearer, basic, bad), the Range asked for, body bytes
sent, and for /token the scopes asked and granted. The port is written to
--port-file once listening. It exits on SIGTERM or SIGINT, when the process
--watch-pid is gone, or after --lifetime seconds; every socket has a
timeout. Python 3 standard library only.
"""

import argparse
import base64
import datetime
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

CHUNK = 65536
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
# /v2/NAME/manifests/REF, /v2/NAME/blobs/DIGEST, /v2/NAME/tags/list (NAME may hold slashes).
REPO_PATH = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags)(/.*)?$")


class Front:
    """What the handlers share: options, issued tokens, the log."""

    def __init__(self, args):
        self.args = args
        self.tokens = {}    # token -> (set of repositories with pull, expiry)
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.stopping = threading.Event()

    def log(self, rec):
        if not self.args.log:
            return
        rec["time"] = round(time.time(), 3)
        with self.log_lock, open(self.args.log, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def issue(self, repos):
        token = secrets.token_hex(24)
        with self.lock:
            self.tokens[token] = (set(repos), time.monotonic() + self.args.token_ttl)
        return token

    def grants(self, token):
        """The repositories a token grants pull on, or None when it is unknown or expired."""
        with self.lock:
            entry = self.tokens.get(token)
        if entry is None or time.monotonic() > entry[1]:
            return None
        return entry[0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as clients of registries expect
    server_version = "imgdev-token-front"
    timeout = 30.0

    front = None    # set in main()

    def log_message(self, fmt, *args):    # the JSON log instead of stderr
        pass

    def handle(self):
        # skopeo tries https first on a registry it may not verify and falls back
        # to http when that fails: close a TLS handshake at once (read as a
        # request line, it would wait for a newline that may never come).
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":
            self.front.log({"tls_probe": True})
            return
        super().handle()

    # Answers of the front itself, each with a Content-Length (keep-alive).
    def answer(self, status, body, headers=(), ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return len(data) if self.command != "HEAD" else 0

    def realm(self):
        return "http://127.0.0.1:%d/token" % self.server.server_port

    def challenge(self, repo, error=None):
        parts = ['Bearer realm="%s"' % self.realm(), 'service="%s"' % self.front.args.service]
        if repo is not None:
            parts.append('scope="repository:%s:pull"' % repo)
        if error:
            parts.append('error="%s"' % error)
        detail = [{"Type": "repository", "Class": "", "Name": repo, "Action": "pull"}] if repo else None
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                            "detail": detail}]}
        return self.answer(401, body, [("WWW-Authenticate", ",".join(parts))])

    def do_GET(self):
        self.route()

    def do_HEAD(self):
        self.route()

    def refuse_method(self):
        rec = {"method": self.command, "path": self.path, "status": 405}
        rec["sent"] = self.answer(405, {"errors": [{"code": "UNSUPPORTED",
                                                    "message": "the token front forwards GET and HEAD only"}]},
                                  [("Allow", "GET, HEAD")])
        self.front.log(rec)

    do_POST = do_PUT = do_PATCH = do_DELETE = refuse_method

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        rec = {"method": self.command, "path": url.path, "range": self.headers.get("Range")}
        try:
            if url.path == "/token":
                self.token(url, rec)
            elif url.path == "/v2/" or url.path == "/v2" or url.path.startswith("/v2/"):
                self.registry(url, rec)
            else:
                rec["status"] = 404
                rec["sent"] = self.answer(404, {"errors": [{"code": "NOT_FOUND", "message": "not here"}]})
        except (OSError, http.client.HTTPException) as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
            self.close_connection = True
        self.front.log(rec)

    def basic_user(self, rec):
        """Checks Basic credentials: (True, user), (False, None) for none, or None when wrong."""
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("basic "):
            return (False, None)
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        args = self.front.args
        if user == args.user and password == args.password:
            rec["auth"] = "basic"
            return (True, user)
        return None

    def token(self, url, rec):
        args = self.front.args
        q = urllib.parse.parse_qs(url.query)
        scopes = [s for v in q.get("scope", []) for s in v.split()]
        rec["scope"] = scopes
        rec["auth"] = "none"
        if args.token_status != 200:
            rec["status"] = args.token_status
            rec["sent"] = self.answer(args.token_status, {"errors": [{"code": "UNAVAILABLE",
                                                                      "message": "token service failing (--token-status)"}]})
            return
        if q.get("service", [""])[0] != args.service:
            rec["status"] = 400
            rec["sent"] = self.answer(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
            return
        who = self.basic_user(rec)
        if who is None:
            rec["auth"] = "bad"
            rec["status"] = 401
            rec["sent"] = self.answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                                        "message": "invalid username or password"}]},
                                      [("WWW-Authenticate", 'Basic realm="%s"' % args.service)])
            return
        granted = []
        for s in scopes:
            kind, _, rest = s.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or "pull" not in actions.split(",") or not name:
                continue
            if name.startswith(args.private_prefix) and not who[0]:
                continue    # anonymous: no grant on a private repository (the registry says 401)
            granted.append(name)
        rec["granted"] = granted
        token = self.front.issue(granted)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rec["status"] = 200
        rec["sent"] = self.answer(200, {"token": token, "access_token": token,
                                        "expires_in": int(args.token_ttl), "issued_at": now})

    def registry(self, url, rec):
        m = REPO_PATH.match(url.path)
        repo = m.group(1) if m else None
        auth = self.headers.get("Authorization", "")
        grants = None
        if auth.lower().startswith("bearer "):
            grants = self.front.grants(auth[7:].strip())
            rec["auth"] = "bearer" if grants is not None else "bad"
        else:
            rec["auth"] = "none"
        if grants is None:
            rec["status"] = 401
            rec["sent"] = self.challenge(repo)
            return
        if repo is not None and repo not in grants:
            rec["status"] = 401
            rec["sent"] = self.challenge(repo, "insufficient_scope")
            return
        self.forward(rec)

    def forward(self, rec):
        host, port = self.front.args.upstream
        up = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP_BY_HOP and k.lower() != "authorization":
                    up.putheader(k, v)
            up.putheader("Connection", "close")
            up.endheaders()
            resp = up.getresponse()
            rec["status"] = resp.status
            length = resp.getheader("Content-Length")
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            if length is None and self.command != "HEAD" and resp.status not in (204, 304):
                # No length from the registry (a chunked answer): the end of the
                # connection ends the body.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            sent = 0
            if self.command != "HEAD":
                while True:
                    data = resp.read(CHUNK)
                    if not data:
                        break
                    self.wfile.write(data)
                    sent += len(data)
            rec["sent"] = sent
            if length is not None and self.command != "HEAD" and sent != int(length):
                rec["error"] = "upstream sent %d of %s bytes" % (sent, length)
                self.close_connection = True
        finally:
            up.close()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def running(pid):
    """Whether the process exists and is not a zombie (not yet reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def write_file(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the open registry behind")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--pid-file", help="write the process ID here")
    p.add_argument("--log", help="append one JSON line per request here")
    p.add_argument("--service", default="reg-test", help="the service of the challenge and tokens")
    p.add_argument("--user", default="imgdev", help="the user for private repositories")
    p.add_argument("--password", default="imgdev-test-pass")
    p.add_argument("--private-prefix", default="private/",
                   help="repositories whose name starts so need credentials (default private/)")
    p.add_argument("--token-ttl", type=float, default=300.0,
                   help="seconds a token is valid (default 300)")
    p.add_argument("--token-status", type=int, default=200,
                   help="answer /token with this status instead (a failing token service)")
    p.add_argument("--watch-pid", type=int, help="exit when this process is gone")
    p.add_argument("--lifetime", type=float, default=1800.0,
                   help="exit after this many seconds in any case (default 1800)")
    args = p.parse_args()
    host, _, port = args.upstream.rpartition(":")
    args.upstream = (host or "127.0.0.1", int(port))

    front = Front(args)
    Handler.front = front
    srv = Server(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: front.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: front.stopping.set())
    if args.pid_file:
        write_file(args.pid_file, "%d\n" % os.getpid())
    if args.port_file:
        write_file(args.port_file, "%d\n" % srv.server_port)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    end = time.monotonic() + args.lifetime
    while not front.stopping.wait(0.5):
        if time.monotonic() > end or (args.watch_pid and not running(args.watch_pid)):
            break
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
