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
