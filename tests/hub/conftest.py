"""Fixtures: a loopback Hub per test and a huggingface_hub client isolated from the user's setup."""

from __future__ import annotations

import pytest

from dagster_project.testing import HubServer, hub_client_online

WRITE_TOKEN = "hf_loopbackWriteToken0123456789abcdefXYZ"
READ_TOKEN = "hf_loopbackReadToken0123456789abcdefXYZ"


@pytest.fixture
def hf_isolated(tmp_path, monkeypatch):
    """No ambient token, a private cache, and client requests allowed even under HF_HUB_OFFLINE=1."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    with hub_client_online():
        yield tmp_path / "hf-cache"


@pytest.fixture
def hub(tmp_path, hf_isolated):
    with HubServer(tmp_path / "hub-state", tokens={WRITE_TOKEN: "write", READ_TOKEN: "read"}) as server:
        yield server
