"""Fixtures: a loopback Hub, an isolated huggingface_hub client, and a watchlist file per test."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.fakes import HubServer


@pytest.fixture
def hub(tmp_path, hf_isolated):
    with HubServer(tmp_path / "hub-state", page_size=25) as server:
        yield server


@pytest.fixture
def write_watchlist(tmp_path, monkeypatch):
    """write_watchlist(yaml_text) → path, exported as DMC_WATCHLIST_FILE."""

    def write(text: str) -> Path:
        path = tmp_path / "watchlist.yaml"
        path.write_text(text)
        monkeypatch.setenv("DMC_WATCHLIST_FILE", str(path))
        return path

    return write


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never answers (a hung Hub)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join(timeout=2)
    for c in accepted:
        c.close()
    sock.close()


@pytest.fixture
def closed_port():
    """A port nothing listens on (a Hub that is down)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
