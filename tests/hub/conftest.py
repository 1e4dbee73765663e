"""Fixtures: a loopback Hub per test and a huggingface_hub client isolated from the user's setup."""

from __future__ import annotations

import pytest

from tests.fakes import HubServer

WRITE_TOKEN = "hf_loopbackWriteToken0123456789abcdefXYZ"
READ_TOKEN = "hf_loopbackReadToken0123456789abcdefXYZ"


@pytest.fixture
def hub(tmp_path, hf_isolated):
    with HubServer(tmp_path / "hub-state", tokens={WRITE_TOKEN: "write", READ_TOKEN: "read"}) as server:
        yield server


def _set_xet(monkeypatch, enabled: bool) -> None:
    # huggingface_hub reads HF_HUB_DISABLE_XET into a constant at import: patch both.
    from huggingface_hub import constants

    if enabled:
        monkeypatch.delenv("HF_HUB_DISABLE_XET", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", not enabled)


@pytest.fixture
def xet_enabled(monkeypatch):
    """Uploads go through Xet (hf_xet), as they do for users who have it installed."""
    pytest.importorskip("hf_xet")
    _set_xet(monkeypatch, True)
    yield


@pytest.fixture
def lfs_only(monkeypatch):
    """Uploads use the git-lfs protocol (HF_HUB_DISABLE_XET=1), whether or not hf_xet is installed."""
    _set_xet(monkeypatch, False)
    yield
