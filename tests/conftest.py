"""Shared fixtures: the demo model (built once per machine, cached by content hash) and an
isolated project state (artifacts, registry, Dagster home) per test."""

import contextlib
import os
from pathlib import Path

import pytest

# The CI skip policy (tests/skip_policy.py); pytester runs the policy's own test.
pytest_plugins = ["tests.skip_policy", "pytester"]

# Nothing may reach the Hugging Face Hub from tests; loopback servers opt back in explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Quiet in tests: progress reaches the Dagster event log (where tests assert it), not bars or
# llmcompressor's own console lines on the terminal.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The real demo model (trained on first use, a few minutes; then cached)."""
    from dagster_project.demo.model import build_demo_model

    return Path(build_demo_model().path)


@pytest.fixture
def project_state(tmp_path, monkeypatch) -> Path:
    """Fresh artifact root, local registry and DAGSTER_HOME for one test; the model cache is shared."""
    var = tmp_path / "var"
    monkeypatch.setenv("DMC_VAR_DIR", str(var))
    monkeypatch.delenv("DMC_ARTIFACT_ROOT", raising=False)
    monkeypatch.delenv("DMC_REGISTRY_DB", raising=False)
    monkeypatch.delenv("DMC_REGISTRY_URL", raising=False)
    home = var / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((Path(__file__).parent.parent / "deploy" / "dagster.local.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return var


@pytest.fixture
def dagster_instance(project_state):
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def hf_isolated(tmp_path, monkeypatch):
    """No ambient token, a private cache, and client requests allowed even under HF_HUB_OFFLINE=1."""
    from huggingface_hub import constants

    from tests.fakes import hub_client_online

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    # hf_xet keeps a shard cache per CAS endpoint (and dedups uploads against it) under
    # HF_XET_CACHE, read when its process-wide session is created: a private one, a fresh session.
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))
    with contextlib.suppress(ImportError):
        from huggingface_hub.utils import _xet

        monkeypatch.setattr(_xet, "_GLOBAL_XET_HOLDER", _xet.XetSessionHolder())
    with hub_client_online():
        yield tmp_path / "hf-cache"
