"""The part every loopback stand-in shares: a threaded HTTP server on 127.0.0.1 that a test starts,
reaches by ``url`` and stops (or uses as a context manager)."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


@dataclass
class RecordedRequest:
    method: str
    path: str  # as the stand-in routes it (the CAS: without the endpoint's prefix)
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: Any  # the LoopbackServer whose state the handler reads (``self.server.owner``)


class LoopbackHandler(BaseHTTPRequestHandler):
    """Request plumbing the stand-ins share: quiet, no Nagle delay, every verb to `_dispatch(method)`,
    bodies read whether sent with Content-Length or chunked."""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence default stderr log
        return

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class LoopbackServer:
    """Subclasses set ``handler`` (their request handler class) and call ``_bind(host, port)`` in ``__init__``."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    poll_interval: ClassVar[float] = 0.1
    _lock: threading.Lock  # set by the subclass; guards its state, the request log and the failure switch
    _failure: dict | None = None
    _requests: list[RecordedRequest]  # set by the subclass

    # ---- request log: what the client really sent, for tests to count ----
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._requests.append(RecordedRequest(method, path, status))

    # ---- failure switch: the stand-in answers an error status, as an outage would ----
    def fail(self, status: int = 503, *, retry_after: int | None = None, times: int | None = None,
             path_contains: str | None = None) -> None:
        """Answer ``status`` to the next ``times`` requests (all, if None) until :meth:`recover`."""
        with self._lock:
            self._failure = {"status": status, "retry_after": retry_after, "left": times, "path": path_contains}

    def recover(self) -> None:
        with self._lock:
            self._failure = None

    def _take_failure(self, path: str) -> dict | None:
        """The failure this request gets (and one fewer left), or None."""
        with self._lock:
            f = self._failure
            if f is None or (f["path"] and f["path"] not in path):
                return None
            if f["left"] is not None:
                f["left"] -= 1
                if f["left"] <= 0:
                    self._failure = None
            return f

    def _bind(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self):
        if self._httpd is None:
            httpd = _Server((self._host, self._port), self.handler)
            httpd.owner = self
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": self.poll_interval}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"
