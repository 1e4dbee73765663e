"""The part every loopback stand-in shares: a threaded HTTP server on 127.0.0.1 that a test starts,
reaches by ``url`` and stops (or uses as a context manager)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: Any  # the LoopbackServer whose state the handler reads (``self.server.owner``)


class LoopbackServer:
    """Subclasses set ``handler`` (their request handler class) and call ``_bind(host, port)`` in ``__init__``."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    poll_interval: ClassVar[float] = 0.1

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
