"""A loopback HTTP proxy that injects faults on a schedule, for reliability tests and benchmarks.

    with FaultProxy("http://127.0.0.1:8080", plan=["503", "drop", "ok", "slow:2", "lost"]) as proxy:
        open_registry(proxy.url).publish(record)          # sees the faults, in order
    proxy.log                                              # what happened to every request

Each request that reaches the proxy takes the next action of ``plan`` (then ``then``, by default
``"ok"``, for every later request). Faults are bounded: at most ``max_faults`` are injected in
total, whatever the plan says. A ``path_contains`` / ``methods`` filter limits which requests
consume plan entries (others pass untouched). Actions:

``ok``          forward to the upstream and relay its answer.
``<status>``    answer that HTTP status (e.g. ``"503"``, ``"500"``, ``"401"``) without forwarding.
``drop``        close the connection without forwarding and without answering.
``lost``        forward (the upstream applies the request!), then close without answering: the
                client cannot know whether its write happened — the case idempotency is for.
``slow:S``      wait S seconds, then forward and relay (a client with a shorter timeout gives up;
                the upstream still gets the request afterwards).
``hold``        block until :meth:`release` (or ``hold_timeout``), then forward and relay; the
                proxy sets :attr:`held` when a request is being held, so a test can kill the
                client process at exactly that point.
``hold-drop``   like ``hold``, but never forward: close the connection when released.

Standard library only; one thread per connection (keep-alive supported). Never logs bodies or
headers, so tokens passing through it cannot leak into test output.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.fakes.loopback import LoopbackServer

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-length", "host",
}


@dataclass(frozen=True)
class ProxyEvent:
    method: str
    path: str
    action: str
    status: int | None  # what the client got (None: connection closed without an answer)
    upstream_status: int | None  # what the upstream answered (None: not forwarded / failed)


def _parse_action(action: str) -> tuple[str, float]:
    action = action.strip().lower()
    if action.startswith("slow:"):
        return "slow", float(action.split(":", 1)[1])
    if action in ("ok", "drop", "lost", "hold", "hold-drop"):
        return action, 0.0
    if action.isdigit() and 100 <= int(action) <= 599:
        return "status", float(action)
    raise ValueError(f"unknown fault action {action!r}")


class FaultProxy(LoopbackServer):
    """Threaded HTTP proxy on 127.0.0.1 in front of ``upstream`` (``http://host:port``)."""

    poll_interval = 0.05

    def __init__(
        self,
        upstream: str,
        plan: Iterable[str] = (),
        *,
        then: str = "ok",
        max_faults: int = 50,
        path_contains: str | None = None,
        methods: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_timeout: float = 60.0,
        hold_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self._plan = [_parse_action(a) for a in plan]
        self._then = _parse_action(then)
        if max_faults < 0:
            raise ValueError("max_faults must be >= 0")
        self.max_faults = max_faults
        self.path_contains = path_contains
        self.methods = {m.upper() for m in methods} if methods else None
        self.upstream_timeout = upstream_timeout
        self.hold_timeout = hold_timeout
        self._bind(host, port)
        self._lock = threading.Lock()
        self._log: list[tuple[int, ProxyEvent]] = []  # (arrival order, event): kept in arrival order
        self._arrivals = 0
        self._request = threading.local()  # the arrival number of the request this thread handles
        self.faults_injected = 0
        self.held = threading.Event()
        self._release = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        self._release.set()  # held requests must not keep the server's threads alive
        super().stop()

    # ------------------------------------------------------------------ control
    def set_plan(self, plan: Iterable[str], *, then: str | None = None) -> None:
        with self._lock:
            self._plan = [_parse_action(a) for a in plan]
            if then is not None:
                self._then = _parse_action(then)
            self._release.clear()
            self.held.clear()

    def release(self) -> None:
        """Let held requests go on (``hold``: forwarded; ``hold-drop``: closed)."""
        self._release.set()

    @property
    def log(self) -> list[ProxyEvent]:
        with self._lock:
            return [event for _, event in sorted(self._log, key=lambda item: item[0])]

    def count(self, action: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, e in self._log if action is None or e.action == action)

    # ------------------------------------------------------------------ internals
    def _next_action(self, method: str, path: str) -> tuple[str, float]:
        with self._lock:
            # Responses finish out of order on the threaded server; the log follows arrival order.
            self._request.arrival = self._arrivals
            self._arrivals += 1
            eligible = (self.path_contains is None or self.path_contains in path) and (
                self.methods is None or method in self.methods
            )
            if not eligible:
                return "ok", 0.0
            action = self._plan.pop(0) if self._plan else self._then
            if action[0] != "ok":
                if self.faults_injected >= self.max_faults:
                    return "ok", 0.0
                self.faults_injected += 1
            return action

    def _record(self, event: ProxyEvent) -> None:
        with self._lock:
            self._log.append((getattr(self._request, "arrival", len(self._log)), event))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence stderr
        pass

    @property
    def proxy(self) -> FaultProxy:
        return self.server.owner  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _abort(self) -> None:
        """Close the connection without a response (the client sees a disconnect)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        p = self.proxy
        conn = http.client.HTTPConnection(p.upstream_host, p.upstream_port, timeout=p.upstream_timeout)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = f"{p.upstream_host}:{p.upstream_port}"
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body if body or self.command not in ("GET", "HEAD") else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP], data
        finally:
            conn.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        p = self.proxy
        body = self._body()
        kind, arg = p._next_action(self.command, self.path)
        label = {"status": str(int(arg)), "slow": f"slow:{arg:g}"}.get(kind, kind)
        if kind == "status":
            data = b'{"code":"injected","message":"fault injected by FaultProxy"}'
            self._reply(int(arg), [("Content-Type", "application/json"), ("Retry-After", "0")], data)
            p._record(ProxyEvent(self.command, self.path, label, int(arg), None))
            return
        if kind == "drop":
            self._abort()
            p._record(ProxyEvent(self.command, self.path, label, None, None))
            return
        if kind in ("hold", "hold-drop"):
            p.held.set()
            p._release.wait(p.hold_timeout)
            if kind == "hold-drop":
                self._abort()
                p._record(ProxyEvent(self.command, self.path, label, None, None))
                return
        if kind == "slow":
            time.sleep(arg)
        try:
            status, headers, data = self._forward(body)
        except OSError:
            self._abort()
            p._record(ProxyEvent(self.command, self.path, label, None, None))
            return
        if kind == "lost":
            self._abort()
            p._record(ProxyEvent(self.command, self.path, label, None, status))
            return
        try:
            self._reply(status, headers, data)
        except OSError:  # the client went away (e.g. timed out on a slow answer, or was killed)
            self.close_connection = True
            p._record(ProxyEvent(self.command, self.path, label, None, status))
            return
        p._record(ProxyEvent(self.command, self.path, label, status, status))


FaultProxy.handler = _Handler


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.fault_proxy UPSTREAM [--plan 503,drop,ok] [--port N]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Loopback fault-injecting HTTP proxy")
    parser.add_argument("upstream")
    parser.add_argument("--plan", default="")
    parser.add_argument("--then", default="ok")
    parser.add_argument("--max-faults", type=int, default=50)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    proxy = FaultProxy(args.upstream, [a for a in args.plan.split(",") if a], then=args.then,
                       max_faults=args.max_faults, port=args.port).start()
    print(proxy.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()


if __name__ == "__main__":
    main()
