"""A foreign client for the Kubeflow Model Registry: plain REST with urllib, written from the API
spec, sharing no code with dagster_project.registry. Used to create half-done state behind our
layer's back and to read back what we published the way the RHOAI dashboard does."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


def api_base(url: str) -> str:
    """`url` + the API prefix the server answers: /v1 if served, else /v1alpha3."""
    for version in ("v1", "v1alpha3"):
        base = f"{url}/api/model_registry/{version}"
        try:
            with urllib.request.urlopen(f"{base}/registered_models?pageSize=1", timeout=10) as resp:
                json.loads(resp.read())
                return base
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
    raise AssertionError(f"{url} serves neither API version")


def call(base: str, method: str, path: str, body: dict | None = None, **query) -> dict:
    q = ("?" + urllib.parse.urlencode(query)) if query else ""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}{q}", data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def create_model(base: str, name: str) -> dict:
    return call(base, "POST", "/registered_models", {"name": name, "owner": "raw-client"})


def create_version(base: str, model_id: str, name: str) -> dict:
    return call(base, "POST", f"/registered_models/{model_id}/versions",
                {"name": name, "author": "raw-client", "registeredModelId": model_id})


def model_by_name(base: str, name: str) -> dict | None:
    try:
        return call(base, "GET", "/registered_model", name=name)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def versions_of(base: str, model_id: str) -> list[dict]:
    return call(base, "GET", f"/registered_models/{model_id}/versions", pageSize="100")["items"] or []


def artifacts_of(base: str, version_id: str) -> list[dict]:
    return call(base, "GET", f"/model_versions/{version_id}/artifacts", pageSize="100")["items"] or []
