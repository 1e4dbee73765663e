"""What a user sees when the registry URL is wrong or something else answers it: one clear line
naming the URL, what came back and the likely cause, in the Python API (a typed exception), in
`dmc` (exit 2, no traceback) and in the Dagster publication step. Also: API version detection
against the real unmodified v1alpha3 server and the v1 approximation."""

from __future__ import annotations

import json
import logging

import pytest

from dagster_project.registry import (
    RegistryEndpointError,
    RegistryError,
    RegistryUnavailable,
    open_registry,
)

from . import loopback
from .conftest import FAST_RETRIES, server_url
from .test_cli import dmc

# kind -> (exception, words the one line must carry besides the URL)
EXPECTED = {
    "html-page": (RegistryEndpointError, ["HTTP 200", "text/html", "Log in to OpenShift", "login page", "token"]),
    "502-page": (RegistryUnavailable, ["502", "Bad Gateway", "down or still starting", "attempt"]),
    "empty-body": (RegistryEndpointError, ["HTTP 200", "empty body", "wrong URL"]),
    "404-everywhere": (RegistryEndpointError, ["404", "/api/model_registry/v1 and /api/model_registry/v1alpha3",
                                               "404 page not found", "wrong URL"]),
}


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch):
    monkeypatch.delenv("DMC_REGISTRY_TOKEN", raising=False)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_python_api_raises_a_typed_one_line_error(kind):
    exc_type, words = EXPECTED[kind]
    with loopback.serve({"*": loopback.KINDS[kind]}) as (url, hits):
        with pytest.raises(exc_type) as err:
            open_registry(url, **FAST_RETRIES)
    msg = str(err.value)
    assert isinstance(err.value, RegistryError)
    assert "\n" not in msg and url in msg, msg
    assert "likely cause" in msg, msg
    for word in words:
        assert word in msg, (word, msg)
    assert hits and hits[0].startswith("/api/model_registry/v1/registered_models")
    if kind == "502-page":
        assert len(hits) == FAST_RETRIES["retry_attempts"], "5xx is retried, bounded"
    elif kind == "404-everywhere":
        assert [h.split("/registered_models")[0] for h in hits] == ["/api/model_registry/v1", "/api/model_registry/v1alpha3"]
    else:
        assert len(hits) == 1, "a page that is not the API is not retried"


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_dmc_exits_2_with_one_line_and_no_traceback(kind):
    _, words = EXPECTED[kind]
    with loopback.serve({"*": loopback.KINDS[kind]}) as (url, _):
        out = dmc("models", "list", "--registry", url,
                  env_extra={"DMC_REGISTRY_RETRY_ATTEMPTS": "2", "DMC_REGISTRY_RETRY_INITIAL_WAIT": "0.01"})
    assert out.returncode == 2, out
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmc: error:"), out.stderr
    assert "Traceback" not in out.stderr and url in lines[0]
    assert words[0] in lines[0]


def test_v1alpha3_only_server_is_detected_and_deprecation_is_logged(caplog):
    """A stand-in that serves v1alpha3 only and marks it deprecated (RFC 9745 / RFC 8594 headers)."""
    body = json.dumps({"items": [], "size": 0, "pageSize": 1, "nextPageToken": ""}).encode()
    deprecated = (200, "application/json", body,
                  {"Deprecation": "@1767225600", "Sunset": "Wed, 30 Jun 2027 00:00:00 GMT"})
    empty = (200, "application/json", body, {})

    def routes(path):
        if path.startswith("/api/model_registry/v1alpha3/registered_models"):
            return deprecated
        return empty if path.startswith("/api/model_registry/v1alpha3/") else loopback.NOT_FOUND

    with loopback.serve(routes) as (url, hits):
        with caplog.at_level(logging.WARNING, logger="dagster_project.registry"):
            reg = open_registry(url, **FAST_RETRIES)
            assert reg.api_prefix == "/api/model_registry/v1alpha3"
            assert reg.list_versions() == []
    assert [h.split("/registered_models")[0] for h in hits[:2]] == ["/api/model_registry/v1", "/api/model_registry/v1alpha3"]
    assert all(h.startswith("/api/model_registry/v1alpha3/") for h in hits[1:]), hits
    warning = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warning and "Sunset: Wed, 30 Jun 2027" in warning[0] and url in warning[0]


@pytest.mark.parametrize("call", ["get", "list_versions"])
def test_html_page_in_the_middle_of_a_session_is_one_clear_line(call):
    """Connected fine, then a proxy starts answering with its login page (token expired); lookups
    read over their own HTTP pool, so both paths are checked."""
    body = json.dumps({"items": [], "size": 0, "pageSize": 1, "nextPageToken": ""}).encode()
    state = {"ok": True}

    def route(path):
        if state["ok"] and path.startswith("/api/model_registry/v1/registered_models"):
            return 200, "application/json", body, {}
        return loopback.HTML_LOGIN

    with loopback.serve(route) as (url, _):
        reg = open_registry(url, **FAST_RETRIES)
        state["ok"] = False
        with pytest.raises(RegistryEndpointError) as err:
            reg.get("some-model", "v-1") if call == "get" else reg.list_versions()
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "not the Model Registry API's JSON" in msg, msg


def test_lookup_behind_a_failing_proxy_retries_then_gives_one_line():
    """Connected fine, then the route answers 503: bounded retries, then RegistryUnavailable."""
    body = json.dumps({"items": [], "size": 0, "pageSize": 1, "nextPageToken": ""}).encode()
    state = {"ok": True}

    def route(path):
        if state["ok"]:
            return 200, "application/json", body, {}
        return 503, "text/plain", b"upstream connect error", {}

    with loopback.serve(route) as (url, hits):
        reg = open_registry(url, **FAST_RETRIES)
        state["ok"] = False
        before = len(hits)
        with pytest.raises(RegistryUnavailable) as err:
            reg.list_versions()
        reg.close()
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "503" in msg and "3 attempt" in msg, msg
    assert len(hits) - before >= 3  # retried, not given up at once


def test_real_servers_are_detected_per_api_version(kubeflow_url):
    reg = open_registry(kubeflow_url, **FAST_RETRIES)
    expected = "v1alpha3" if kubeflow_url == server_url("v1alpha3-upstream") else "v1"
    assert reg.api_version == expected
    assert isinstance(reg.list_versions(base_model="org/none"), list)


def test_dagster_step_fails_with_the_one_line(tmp_path):
    from dagster import Failure

    from dagster_project.assets.publication import publish_or_fail
    from dagster_project.registry import VariantRecord
    from dagster_project.resources.model_registry import ModelRegistryResource

    rec = VariantRecord(model_name="m", version_name="v-1", uri="pvc://c/m")
    with loopback.serve({"*": loopback.HTML_LOGIN}) as (url, _):
        with pytest.raises(Failure) as err:
            publish_or_fail(ModelRegistryResource(url=url), rec)
    desc = err.value.description
    assert "\n" not in desc and url in desc and "Log in to OpenShift" in desc and "likely cause" in desc
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_batched_and_per_version_artifact_reads_agree(kubeflow_url, unique):
    """Lookups read artifacts in one listing (many candidates) or one by one (few): same answer,
    including a version whose artifact another client wrote under its own name."""
    from . import rest
    from .test_backends import record

    reg = open_registry(kubeflow_url, **FAST_RETRIES)
    published = [reg.publish(record(unique, f"v-00000000000{i}")) for i in range(1, 4)]
    base = rest.api_base(kubeflow_url)
    rm = rest.model_by_name(base, published[0].model_name)
    foreign = rest.create_version(base, rm["id"], "v-000000000009")
    rest.call(base, "POST", f"/model_versions/{foreign['id']}/artifacts",
              {"artifactType": "model-artifact", "name": "written-elsewhere", "uri": "pvc://other/place",
               "modelSourceKind": "dagster"})
    # written by an earlier release of ours, under the dashboard's pre-2024-11 name
    legacy = rest.create_version(base, rm["id"], "v-00000000000a")
    rest.call(base, "POST", f"/model_versions/{legacy['id']}/artifacts",
              {"artifactType": "model-artifact", "name": f"{published[0].model_name}-v-00000000000a-artifact",
               "uri": "pvc://legacy/place", "modelSourceKind": "dagster"})
    kw = dict(base_model=f"org/base-{unique}", approved_only=False)
    direct = dict(mirror_dir=None, **FAST_RETRIES)  # the listings read from the server itself
    batched = open_registry(kubeflow_url, batch_threshold=0, **direct).list_versions(**kw)
    one_by_one = open_registry(kubeflow_url, batch_threshold=10**6, **direct).list_versions(**kw)
    assert batched == one_by_one
    assert [v.uri for v in batched] == [p.uri for p in published]
    everything = open_registry(kubeflow_url, batch_threshold=0, **direct).list_versions(approved_only=False)
    assert {v.version_name: v.uri for v in everything if v.model_name == published[0].model_name} == {
        **{p.version_name: p.uri for p in published}, "v-000000000009": "pvc://other/place",
        "v-00000000000a": "pvc://legacy/place"}
