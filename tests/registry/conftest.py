"""Fixtures: every behaviour test runs against every backend, each on a real server.

    local                     LocalRegistry (SQLite), always
    v1alpha3-upstream         Kubeflow Model Registry v0.3.14, UNMODIFIED (REST v1alpha3, as every GA
                              RHOAI release serves): $DMC_REGISTRY_URL
    v1-approx-renamed-routes  an APPROXIMATION of a v1 server: the same v0.3.14 with its routes renamed
                              to /api/model_registry/v1 (no v1 server is served by the Go proxy):
                              $DMC_REGISTRY_URL_V1_APPROX
    mlflow                    a real `mlflow server` (SQLite backend store): $DMC_MLFLOW_URL

`scripts/run_tests.sh` starts all three servers. With DMC_REQUIRE_REGISTRY_SERVER=1 a missing
server FAILS the tests that need it instead of skipping them.
"""

from __future__ import annotations

import os
import uuid

import pytest

from dagster_project.registry import open_registry

FAST_RETRIES = dict(retry_attempts=3, retry_initial_wait=0.01, retry_max_wait=0.05, retry_total_s=5)

SERVER_ENV = {
    "v1alpha3-upstream": "DMC_REGISTRY_URL",
    "v1-approx-renamed-routes": "DMC_REGISTRY_URL_V1_APPROX",
    "mlflow": "DMC_MLFLOW_URL",
}
KUBEFLOW_KINDS = ("v1alpha3-upstream", "v1-approx-renamed-routes")
START_HINT = {
    "DMC_REGISTRY_URL": "export DMC_REGISTRY_URL=$(scripts/model_registry_server.sh start)",
    "DMC_REGISTRY_URL_V1_APPROX": "export DMC_REGISTRY_URL_V1_APPROX=$(DMC_MR_FLAVOR=v1-approx scripts/model_registry_server.sh start)",
    "DMC_MLFLOW_URL": "export DMC_MLFLOW_URL=$(scripts/mlflow_server.sh start)",
}


def server_url(kind: str = "v1alpha3-upstream") -> str:
    env = SERVER_ENV[kind]
    url = os.environ.get(env, "").strip()
    if url.startswith(("http://", "https://", "mlflow+http://", "mlflow+https://")):
        return url
    if os.environ.get("DMC_REQUIRE_REGISTRY_SERVER") == "1":
        pytest.fail(f"DMC_REQUIRE_REGISTRY_SERVER=1 but {env} is not set: {START_HINT[env]}")
    pytest.skip(f"{kind} registry server not configured (set {env}: {START_HINT[env]})")


@pytest.fixture
def unique() -> str:
    """A per-test suffix: the real servers keep everything, so tests never share names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(
    params=[
        "local",
        pytest.param("v1alpha3-upstream", marks=pytest.mark.registry_server),
        pytest.param("v1-approx-renamed-routes", marks=pytest.mark.registry_server),
        pytest.param("mlflow", marks=pytest.mark.registry_server),
    ],
)
def backend_kind(request) -> str:
    return request.param


@pytest.fixture(params=[pytest.param(k, marks=pytest.mark.registry_server) for k in KUBEFLOW_KINDS])
def kubeflow_url(request) -> str:
    """The real Kubeflow server, once per API version."""
    return server_url(request.param)


@pytest.fixture
def registry_url(backend_kind, tmp_path) -> str:
    if backend_kind == "local":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return server_url(backend_kind)


def open_fast(url: str):
    return open_registry(url, **({} if url.startswith("sqlite") else FAST_RETRIES))


@pytest.fixture
def make_registry(registry_url):
    """Factory: a fresh backend instance (separate connections) on the same registry."""
    opened = []

    def factory():
        reg = open_fast(registry_url)
        opened.append(reg)
        return reg

    yield factory
    for reg in opened:
        reg.close()


@pytest.fixture
def registry(make_registry):
    return make_registry()
