#!/usr/bin/python3
"""A fault-injecting HTTP proxy for imgdev's tests (test harness, not product code).

It sits between imgdev and the tests' nginx on 127.0.0.1 and breaks the
responses on purpose, the way networks and servers break them: it cuts a body
after N bytes (a FIN), resets the connection (an RST, SO_LINGER 0), stalls
(stops sending and keeps the connection open), announces a Content-Length
longer than the body, strips Range and If-Range from requests so that the
upstream answers 200 with the whole file, and serves a different file (a
modified copy, another ETag) from the Nth GET on, as a file replaced on the
server between a cut and its resume. Faults combine: --fault cut with
--ignore-range or --change-suffix.

One request per connection: every request goes upstream with
"Connection: close" and every response comes back with it, so a client never
reuses a connection and each request is one line in the log. Requests may use
the origin form (GET /x.img, as to a server: point the client at the proxy's
URL) or the absolute form (GET http://host/x.img, as to http_proxy).

The log (--log) has one JSON object a line: {"event": "request", ...} when a
request arrives and {"event": "done", ...} when its connection is finished,
with the bytes of body forwarded ("sent"), the fault applied and any error.
The port is written to --port-file (and printed) once the proxy listens.

Nothing here can hang a test: every socket has a timeout (--timeout), a stall
ends when the client goes away or after --stall-seconds, the proxy exits on
SIGTERM or SIGINT, when the process --watch-pid is gone, or after --lifetime
seconds. Python 3 standard library only.
"""

import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

HEAD_LIMIT = 65536
CHUNK = 65536
# The proxy's receive buffer on the upstream socket, small so that nginx's
# access log ($body_bytes_sent, what it pushed into its socket) stays close to
# what the client got when a connection is cut.
UPSTREAM_RCVBUF = 131072


def parse_size(text):
    """A byte count with an optional K, M or G suffix (powers of 1024)."""
    text = text.strip()
    mult = 1
    if text and text[-1] in "kKmMgG":
        mult = 1024 ** ("kmg".index(text[-1].lower()) + 1)
        text = text[:-1]
    value = int(text) * mult
    if value < 0:
        raise argparse.ArgumentTypeError("negative size")
    return value


class Proxy:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.requests = 0       # every request, in order of arrival
        self.gets = 0           # GET requests, for --change-from
        self.faulted = 0        # responses a fault was applied to
        self.stopping = threading.Event()
        self.log_file = open(args.log, "a", buffering=1) if args.log else None

    def log(self, record):
        line = json.dumps(record, sort_keys=True)
        with self.lock:
            if self.log_file:
                self.log_file.write(line + "\n")
        if self.args.verbose:
            print(line, file=sys.stderr, flush=True)

    def take_fault(self):
        """Whether the next response with a body long enough gets the fault."""
        with self.lock:
            if self.args.times and self.faulted >= self.args.times:
                return False
            self.faulted += 1
            return True


def read_head(sock, timeout):
    """The bytes up to and including the blank line, and what came after it."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_LIMIT:
            raise ValueError("head longer than %d bytes" % HEAD_LIMIT)
        chunk = sock.recv(CHUNK)
        if not chunk:
            if data:
                raise ValueError("connection closed inside the head")
            return None, b""
        data += chunk
        if data[:1] == b"\x16":
            # A TLS handshake, not HTTP: skopeo tries https first on a registry it
            # may not verify, and falls back to http once the connection closes.
            return None, b""
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def split_head(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return first, headers


def header(headers, name):
    for n, v in headers:
        if n.lower() == name.lower():
            return v
    return None


def without(headers, *names):
    drop = {n.lower() for n in names}
    return [(n, v) for n, v in headers if n.lower() not in drop]


def join_head(first, headers):
    text = first + "\r\n" + "".join("%s: %s\r\n" % hv for hv in headers) + "\r\n"
    return text.encode("latin-1")


def close_gently(sock):
    """A FIN, not an RST: shut down writing, drain briefly, then close."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.2)
        while sock.recv(CHUNK):
            pass
    except OSError:
        pass
    sock.close()


def reset(sock):
    """Close with an RST (SO_LINGER on with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def stall(proxy, client):
    """Send nothing more; keep the connection until the client leaves or time is up."""
    deadline = time.monotonic() + proxy.args.stall_seconds
    while not proxy.stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return "stall ended after %gs" % proxy.args.stall_seconds
        ready, _, _ = select.select([client], [], [], min(left, 0.2))
        if ready:
            try:
                if not client.recv(CHUNK):
                    return None     # the client closed: what a stall waits for
            except OSError:
                return None
    return "stopped"


def handle(proxy, client, peer):
    args = proxy.args
    rec = {"event": "done", "peer": "%s:%d" % peer, "sent": 0, "fault": None}
    upstream = None
    how_to_close = close_gently
    try:
        head, rest = read_head(client, args.timeout)
        if head is None:
            return
        first, headers = split_head(head)
        method, target, version = (first.split(" ") + ["", ""])[:3]
        if target.startswith("http://") or target.startswith("https://"):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        with proxy.lock:
            proxy.requests += 1
            rec["n"] = proxy.requests
            if method == "GET":
                proxy.gets += 1
                get_n = proxy.gets
            else:
                get_n = 0
        path = target
        if args.change_suffix and get_n >= args.change_from:
            path = target.split("?", 1)[0] + args.change_suffix
        rec.update(method=method, path=target, upstream_path=path,
                   range=header(headers, "Range"), if_range=header(headers, "If-Range"))
        proxy.log(dict(rec, event="request"))

        out = without(headers, "Connection", "Keep-Alive", "Proxy-Connection")
        if args.ignore_range:
            rec["range_stripped"] = header(out, "Range") is not None
            out = without(out, "Range", "If-Range")
        out.append(("Connection", "close"))

        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_RCVBUF)
        upstream.settimeout(args.connect_timeout)
        upstream.connect(args.upstream)
        upstream.settimeout(args.timeout)
        upstream.sendall(join_head("%s %s %s" % (method, path, version or "HTTP/1.1"), out))
        length = header(headers, "Content-Length")
        if length:      # a request body (tests send none, but do not drop one)
            todo = int(length) - len(rest)
            upstream.sendall(rest)
            while todo > 0:
                chunk = client.recv(min(CHUNK, todo))
                if not chunk:
                    break
                upstream.sendall(chunk)
                todo -= len(chunk)

        rhead, body = read_head(upstream, args.timeout)
        if rhead is None:
            raise ValueError("upstream closed without an answer")
        status_line, rheaders = split_head(rhead)
        status = int(status_line.split(" ")[1])
        clen = header(rheaders, "Content-Length")
        clen = int(clen) if clen is not None else None
        rec.update(status=status, length=clen, etag=header(rheaders, "ETag"),
                   content_range=header(rheaders, "Content-Range"))
        has_body = method != "HEAD" and status >= 200 and status not in (204, 304)

        # Which fault, if any, this response gets.
        fault = None
        if args.fault and has_body and method == "GET":
            if args.fault == "lie":
                if clen is not None and proxy.take_fault():
                    fault = "lie"
            elif (clen is None or clen > args.after) and proxy.take_fault():
                fault = args.fault
        rec["fault"] = fault

        rheaders = without(rheaders, "Connection", "Keep-Alive")
        if fault == "lie":
            rheaders = without(rheaders, "Content-Length")
            rheaders.append(("Content-Length", str(clen + args.extra)))
            rec["announced"] = clen + args.extra
        rheaders.append(("Connection", "close"))
        client.settimeout(args.timeout)
        client.sendall(join_head(status_line, rheaders))
        if not has_body:
            return

        limit = args.after if fault in ("cut", "stall", "reset") else None
        todo = clen
        while todo is None or todo > 0:
            if body:
                chunk, body = body, b""
            else:
                chunk = upstream.recv(CHUNK if todo is None else min(CHUNK, todo))
                if not chunk:
                    break
            if todo is not None:
                chunk = chunk[:todo]
                todo -= len(chunk)
            if limit is not None and rec["sent"] + len(chunk) >= limit:
                chunk = chunk[:limit - rec["sent"]]
                client.sendall(chunk)
                rec["sent"] += len(chunk)
                break
            client.sendall(chunk)
            rec["sent"] += len(chunk)
        if todo is not None and todo > 0 and limit is None:
            rec["error"] = "upstream ended %d bytes short" % todo

        if fault == "stall":
            upstream.close()    # nginx finishes (and logs) this request now
            upstream = None
            rec["error"] = stall(proxy, client)
        elif fault == "reset":
            how_to_close = reset
    except (OSError, ValueError) as e:
        rec["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if upstream is not None:
            upstream.close()
        how_to_close(client)
        if "n" in rec:
            proxy.log(rec)


def running(pid):
    """Whether the process exists and is not a zombie (not yet reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the HTTP server behind")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--pid-file", help="write the process ID here")
    p.add_argument("--log", help="append one JSON line per request event here")
    p.add_argument("--fault", choices=["cut", "stall", "reset", "lie"],
                   help="cut: close (FIN) after --after body bytes; stall: stop sending "
                   "after --after bytes and keep the connection open; reset: RST after "
                   "--after bytes; lie: announce --extra more bytes than the body, send "
                   "the body, close")
    p.add_argument("--after", type=parse_size, default=parse_size("1M"),
                   help="body bytes forwarded before the fault (default 1M); a body "
                   "not longer passes unharmed and does not count against --times")
    p.add_argument("--times", type=int, default=1,
                   help="how many responses get the fault (default 1; 0: every one)")
    p.add_argument("--extra", type=parse_size, default=parse_size("1M"),
                   help="for --fault lie: bytes announced beyond the body (default 1M)")
    p.add_argument("--ignore-range", action="store_true",
                   help="strip Range and If-Range from every request (the upstream "
                   "answers 200 with the whole file)")
    p.add_argument("--change-suffix", metavar="SUFFIX",
                   help="from GET number --change-from on, forward PATH as PATH+SUFFIX "
                   "(a modified copy: a file changed on the server)")
    p.add_argument("--change-from", type=int, default=2,
                   help="the first GET (counting from 1) sent to the changed file (default 2)")
    p.add_argument("--timeout", type=float, default=20.0,
                   help="seconds any socket may wait (default 20)")
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--stall-seconds", type=float, default=60.0,
                   help="a stall ends (the connection closed) after this (default 60)")
    p.add_argument("--watch-pid", type=int, help="exit when this process is gone")
    p.add_argument("--lifetime", type=float, default=1800.0,
                   help="exit after this many seconds in any case (default 1800)")
    p.add_argument("--verbose", action="store_true", help="log to stderr as well")
    args = p.parse_args()
    host, _, port = args.upstream.rpartition(":")
    args.upstream = (host or "127.0.0.1", int(port))

    proxy = Proxy(args)
    signal.signal(signal.SIGTERM, lambda *_: proxy.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: proxy.stopping.set())
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(64)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.pid_file + ".tmp", args.pid_file)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)

    end = time.monotonic() + args.lifetime
    last_watch = 0.0
    while not proxy.stopping.is_set():
        now = time.monotonic()
        if now > end:
            break
        if args.watch_pid and now - last_watch >= 1.0:
            last_watch = now
            if not running(args.watch_pid):
                break
        try:
            client, peer = srv.accept()
        except socket.timeout:
            continue
        except OSError:
            if proxy.stopping.is_set():
                break
            raise
        threading.Thread(target=handle, args=(proxy, client, peer), daemon=True).start()
    srv.close()
    proxy.stopping.set()    # stalls end; other handlers die with the process
    return 0


if __name__ == "__main__":
    sys.exit(main())
