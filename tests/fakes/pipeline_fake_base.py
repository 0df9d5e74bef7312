"""Shared machinery of the Argo Workflows and Kubeflow Pipelines test fakes.

Standard library only. A fake is a ThreadingHTTPServer on 127.0.0.1 that
speaks one engine's REST wire format (see argo_fake.py, kfp_fake.py and
docs/decisions/0012-pipeline-engines.md). This module holds what both need:

- request recording, so tests can check what a client really sent;
- fault injection (an error status with the engine's error body, a 200
  whose body is not JSON, a slow answer, a dropped connection);
- the control endpoints under /_fake/ that tests use to read the record and
  arm faults. No real server serves /_fake/, and a client never calls it.

Control API (JSON in and out, no authentication):
  GET  /_fake/requests      {"requests":[{method,path,query,headers,body}]}
  POST /_fake/reset         forget requests and faults
  POST /_fake/fault         arm a fault: {"kind": "status"|"garbage"|"slow"|
                            "drop", "status": 500, "message": "...",
                            "delay_ms": 2000, "count": 1 (-1: forever),
                            "method": "GET", "path": "/api/v1/..." (prefix),
                            "body": "raw body for garbage"}
  GET  /_fake/state         the engine's current objects (runs, workflows)
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# grpc-gateway's mapping from gRPC codes to HTTP statuses
# (runtime.HTTPStatusFromCode, grpc-ecosystem/grpc-gateway runtime/errors.go).
GRPC_TO_HTTP = {
    0: 200, 1: 408, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}
# The reverse, for faults given as an HTTP status.
HTTP_TO_GRPC = {500: 13, 503: 14, 504: 4, 429: 8, 404: 5, 400: 3, 401: 16,
                403: 7, 409: 6, 501: 12, 408: 1}

MAX_BODY = 8 * 1024 * 1024


def go_json(obj):
    """JSON as Go's encoding/json writes it: compact, and <, >, & escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))


def rfc3339(ts):
    """Seconds precision, UTC, as metav1.Time and protojson (whole seconds)
    write it: 2026-11-26T09:30:00Z."""
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class Fault:
    def __init__(self, spec):
        self.kind = spec.get("kind", "status")
        if self.kind not in ("status", "garbage", "slow", "drop"):
            raise ValueError("unknown fault kind %r" % self.kind)
        self.status = int(spec.get("status", 500))
        self.message = spec.get("message")
        self.delay_ms = int(spec.get("delay_ms", 2000))
        self.count = int(spec.get("count", 1))
        self.method = spec.get("method")
        self.path = spec.get("path")
        self.body = spec.get("body")

    def matches(self, method, path):
        if self.method and self.method.upper() != method:
            return False
        return not self.path or path.startswith(self.path)


def parse_fault_arg(text):
    """--fault KIND[:key=value,...], e.g. status:status=503,count=2"""
    kind, _, rest = text.partition(":")
    spec = {"kind": kind}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        spec[k] = v
    return Fault(spec)


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the connections of a burst
    # (the client then retries its SYN after a second); Go servers listen
    # with the system's somaxconn.
    request_queue_size = 1024

    def __init__(self, handler, engine, args):
        super().__init__(("127.0.0.1", args.port), handler)
        self.engine = engine
        self.args = args
        self.lock = threading.Lock()
        self.requests = []
        self.faults = [parse_fault_arg(f) for f in (args.fault or [])]

    def take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f.matches(method, path):
                    if f.count > 0:
                        f.count -= 1
                    if f.count == 0:
                        self.faults.remove(f)
                    return f
        return None


class FakeHandler(BaseHTTPRequestHandler):
    """Dispatches requests to the engine object of the server. Subclasses of
    the engine implement route(handler, method, segments, query, body) and
    error_body(code, message, detail) for their wire format."""

    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Go's net/http sets TCP_NODELAY; without it the header and body
        # writes of one answer meet Nagle and delayed ACKs (40 ms each).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.args.verbose:
            sys.stderr.write("%s %s\n" % (self.server.engine.name, fmt % args))

    # Go's net/http writes no Server header; neither do we.
    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    raise ValueError("body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def reply(self, status, body, content_type="application/json",
              extra_headers=None):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def reply_json(self, status, obj, grpc_metadata=True):
        # grpc-gateway forwards the gRPC server's header metadata; every
        # unary answer carries the content type of the gRPC hop.
        extra = {"Grpc-Metadata-Content-Type": "application/grpc"} \
            if grpc_metadata else None
        self.reply(status, go_json(obj), extra_headers=extra)

    def reply_error(self, code, message, detail=None, grpc_metadata=True):
        self.reply_json(GRPC_TO_HTTP.get(code, 500),
                        self.server.engine.error_body(code, message, detail),
                        grpc_metadata=grpc_metadata)

    def dispatch(self, method):
        split = urllib.parse.urlsplit(self.path)
        raw_path = split.path
        try:
            body = self.read_body()
        except ValueError:
            self.reply(413, "request body too large\n", "text/plain")
            self.close_connection = True
            return
        if raw_path.startswith("/_fake/"):
            self.control(method, raw_path, body)
            return
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        record = {
            "method": method,
            "path": raw_path,
            "query": split.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        with self.server.lock:
            self.server.requests.append(record)
        fault = self.server.take_fault(method, raw_path)
        if fault and self.apply_fault(fault):
            return
        # Path parameters are matched on the escaped path and unescaped one
        # segment at a time (grpc-gateway v2's default unescaping mode), so
        # an escaped '/' stays inside its segment.
        segments = [urllib.parse.unquote(s) for s in raw_path.split("/")[1:]]
        self.server.engine.handle(self, method, segments, query, body)

    def apply_fault(self, f):
        """True when the fault answered (or dropped) the request."""
        if f.kind == "slow":
            time.sleep(f.delay_ms / 1000.0)
            return False
        if f.kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if f.kind == "garbage":
            body = f.body if f.body is not None else \
                '{"metadata":{"name":"trunc'
            self.reply(200, body.encode("utf-8"), "application/json")
            return True
        # an error status
        if f.status in (502,):
            # a proxy in front of the server, not the gateway, says this
            self.reply(f.status, "Bad Gateway\n", "text/plain; charset=utf-8")
            return True
        code = HTTP_TO_GRPC.get(f.status, 2)
        self.reply_error(code, f.message or self.server.engine.fault_message(
            code), self.server.engine.fault_detail(code))
        return True

    def control(self, method, path, body):
        srv = self.server
        try:
            if path == "/_fake/requests" and method == "GET":
                with srv.lock:
                    out = {"requests": list(srv.requests)}
                self.reply(200, json.dumps(out))
            elif path == "/_fake/reset" and method == "POST":
                with srv.lock:
                    srv.requests.clear()
                    srv.faults.clear()
                self.reply(200, "{}")
            elif path == "/_fake/fault" and method == "POST":
                f = Fault(json.loads(body.decode("utf-8") or "{}"))
                with srv.lock:
                    srv.faults.append(f)
                self.reply(200, "{}")
            elif path == "/_fake/state" and method == "GET":
                with srv.lock:
                    out = srv.engine.snapshot()
                self.reply(200, json.dumps(out))
            else:
                self.reply(404, '{"error":"no such control endpoint"}')
        except (ValueError, TypeError) as e:
            self.reply(400, json.dumps({"error": str(e)}))


def bearer_ok(handler, token):
    """True when no token is configured or the request carries it."""
    if not token:
        return True
    return handler.headers.get("Authorization", "") == "Bearer " + token


def go_decode_error(body):
    """The message Go's encoding/json gives for a body that is not JSON,
    close enough for a client to show (the code and status are exact)."""
    text = body.decode("utf-8", "replace").lstrip()
    if not text:
        return "unexpected EOF"
    c = text[0]
    if c in "{[\"-0123456789tfn":
        return "unexpected EOF"
    return "invalid character %r looking for beginning of value" % c


class Progress:
    """A run's phase script: each poll (or each step_ms of time) moves it one
    step until the last, terminal, phase."""

    def __init__(self, steps, mode, step_ms):
        self.steps = steps
        self.mode = mode
        self.step_ms = step_ms
        self.index = 0
        self.created = time.monotonic()

    def on_poll(self):
        if self.mode == "polls":
            self.index = min(self.index + 1, len(self.steps) - 1)
        else:
            elapsed = (time.monotonic() - self.created) * 1000.0
            self.index = min(int(elapsed // self.step_ms), len(self.steps) - 1)
        return self.steps[self.index]

    def current(self):
        return self.steps[self.index]


def common_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, default=0,
                   help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--port-file", help="write the chosen port here")
    p.add_argument("--token", help="require Authorization: Bearer TOKEN")
    p.add_argument("--advance", choices=("polls", "time"), default="polls",
                   help="move runs on by status polls or by time")
    p.add_argument("--step-ms", type=int, default=200,
                   help="time per phase step with --advance time")
    p.add_argument("--running-steps", type=int, default=1,
                   help="steps a run stays in its running phase")
    p.add_argument("--fault", action="append",
                   help="arm a fault at start: KIND[:key=value,...]")
    p.add_argument("--verbose", action="store_true")
    return p


def serve(engine, args):
    server = FakeServer(FakeHandler, engine, args)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    sys.stdout.write("%s listening on 127.0.0.1:%d\n" % (engine.name, port))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes generateName


def valid_dns_label(s):
    return bool(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", s))
