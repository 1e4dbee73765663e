"""Tiny loopback HTTP servers standing in for what sits in front of a registry in the field:
a proxy's HTML page, a 502 from a route with no backend, an empty body, a wrong URL (404)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from contextlib import contextmanager

# path -> (status, content type, body, extra headers); "*" is the fallback
Routes = dict[str, tuple[int, str, bytes, dict[str, str]]]

HTML_LOGIN = (200, "text/html; charset=utf-8",
              b"<!DOCTYPE html><html><head><title>Log in to OpenShift</title></head><body>form</body></html>", {})
BAD_GATEWAY = (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1>The server returned an invalid response.</body></html>", {})
EMPTY_200 = (200, "", b"", {})
NOT_FOUND = (404, "text/plain; charset=utf-8", b"404 page not found\n", {})

KINDS: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
    "html-page": HTML_LOGIN,
    "502-page": BAD_GATEWAY,
    "empty-body": EMPTY_200,
    "404-everywhere": NOT_FOUND,
}


@contextmanager
def serve(routes: Routes | Callable[[str], tuple[int, str, bytes, dict[str, str]]]):
    """Yield (base URL, list of requested paths)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            if callable(routes):
                status, ctype, body, extra = routes(self.path)
            else:
                path = self.path.split("?")[0]
                status, ctype, body, extra = routes.get(path) or routes["*"]
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PATCH = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()
