"""Auth, TLS, retry and unreachable-URL behaviour of the HTTP backend, against real loopback servers."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from dagster_project.registry import (
    RegistryAuthError,
    RegistryUnavailable,
    open_registry,
    resolve_token,
)

from .conftest import FAST_RETRIES

SECRET = "s3cr3t-token-value-never-printed"  # noqa: S105 - test data


class _Status(http.server.BaseHTTPRequestHandler):
    status = 401
    hits: list[str]

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.headers.get("Authorization", ""))
        body = b'{"code":"denied","message":"nope"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def status_server():
    servers = []

    def start(status: int):
        handler = type("H", (_Status,), {"status": status, "hits": []})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}", handler.hits

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch):
    monkeypatch.delenv("DMC_REGISTRY_TOKEN", raising=False)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_is_immediate_and_never_leaks_the_token(status_server, status):
    url, hits = status_server(status)
    with pytest.raises(RegistryAuthError) as err:
        open_registry(url, token=SECRET, **FAST_RETRIES)
    assert len(hits) == 1, "401/403 must not be retried"  # immediate: one request, no retry waits
    assert hits[0] == f"Bearer {SECRET}"  # the token was sent...
    msg = str(err.value)
    assert SECRET not in msg and SECRET not in repr(err.value)  # ...but never shown
    assert str(status) in msg and "token" in msg


def test_token_from_env_and_file(status_server, monkeypatch, tmp_path):
    f = tmp_path / "token"
    f.write_text(SECRET + "\n")
    assert resolve_token(token_file=str(f)) == SECRET
    monkeypatch.setenv("DMC_REGISTRY_TOKEN", "from-env")
    assert resolve_token(token_file=str(f)) == "from-env"
    assert resolve_token("explicit", str(f)) == "explicit"
    monkeypatch.delenv("DMC_REGISTRY_TOKEN")
    url, hits = status_server(401)
    with pytest.raises(RegistryAuthError):
        open_registry(url, token_file=str(f), **FAST_RETRIES)
    assert hits == [f"Bearer {SECRET}"]
    with pytest.raises(RegistryAuthError, match="cannot read registry token file"):
        resolve_token(token_file=str(tmp_path / "missing"))


def test_tls_is_default_for_remote_hosts_and_needs_a_token():
    with pytest.raises(RegistryAuthError, match="TLS") as err:
        open_registry("http://model-registry.example.invalid:8080", **FAST_RETRIES)
    assert "https://model-registry.example.invalid:8080" in str(err.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_url_fails_fast_after_bounded_retries():
    url = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(RegistryUnavailable) as err:
        open_registry(url, retry_attempts=3, retry_initial_wait=0.01, retry_max_wait=0.05)
    assert time.monotonic() - t0 < 30  # a retry bound, wide: ~0.1 s of waits expected
    assert url in str(err.value) and "3 attempt" in str(err.value)


def test_server_errors_are_retried_then_unavailable(status_server):
    url, hits = status_server(503)
    with pytest.raises(RegistryUnavailable, match="503"):
        open_registry(url, retry_attempts=4, retry_initial_wait=0.01, retry_max_wait=0.02)
    assert len(hits) == 4


def test_retry_budget_caps_total_time(status_server):
    url, hits = status_server(502)
    with pytest.raises(RegistryUnavailable):
        open_registry(url, retry_attempts=50, retry_initial_wait=0.2, retry_max_wait=0.2, retry_total_s=1.0)
    # 1 s of budget at 0.2 s per wait allows about 1 + 5 requests; without the cap there would be 50.
    assert 1 <= len(hits) <= 7, len(hits)


def test_unsupported_url():
    from dagster_project.registry import RegistryError

    with pytest.raises(RegistryError, match="unsupported registry URL"):
        open_registry("ftp://x/y")
