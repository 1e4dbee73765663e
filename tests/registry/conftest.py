"""Fixtures: every behaviour test runs against LocalRegistry and, when available, the real server.

The real Kubeflow Model Registry server is started by `scripts/model_registry_server.sh start`
and found through $DMC_REGISTRY_URL. With DMC_REQUIRE_REGISTRY_SERVER=1 a missing server FAILS
the kubeflow-parametrized tests instead of skipping them.
"""

from __future__ import annotations

import os
import uuid

import pytest

from dagster_project.registry import open_registry

FAST_RETRIES = dict(retry_attempts=3, retry_initial_wait=0.01, retry_max_wait=0.05, retry_total_s=5)


def server_url() -> str | None:
    url = os.environ.get("DMC_REGISTRY_URL", "").strip()
    if url.startswith(("http://", "https://")):
        return url
    if os.environ.get("DMC_REQUIRE_REGISTRY_SERVER") == "1":
        pytest.fail(
            "DMC_REQUIRE_REGISTRY_SERVER=1 but DMC_REGISTRY_URL is not set: start the server with"
            " `export DMC_REGISTRY_URL=$(scripts/model_registry_server.sh start)`"
        )
    pytest.skip("real Kubeflow Model Registry not configured (set DMC_REGISTRY_URL)")


@pytest.fixture
def unique() -> str:
    """A per-test suffix: the real server cannot delete, so tests never share names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(
    params=["local", pytest.param("kubeflow", marks=pytest.mark.registry_server)],
)
def backend_kind(request) -> str:
    return request.param


@pytest.fixture
def registry_url(backend_kind, tmp_path) -> str:
    if backend_kind == "local":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return server_url()


@pytest.fixture
def make_registry(registry_url):
    """Factory: a fresh backend instance (separate connections) on the same registry."""
    opened = []

    def factory():
        reg = open_registry(registry_url, **({} if registry_url.startswith("sqlite") else FAST_RETRIES))
        opened.append(reg)
        return reg

    yield factory
    for reg in opened:
        reg.close()


@pytest.fixture
def registry(make_registry):
    return make_registry()
