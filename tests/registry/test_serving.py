"""Deployable entries: registered URIs in the forms the RHOAI dashboard parses (per store kind), and
`dmc models serve` printing a KServe InferenceService that is valid against KServe's own CRD
schema (tests/registry/data, source and commit in its $comment) and points at the registered artifact."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import jsonschema
import pytest
import yaml

from dagster_project.registry import RegistryError
from dagster_project.registry.serving import MODEL_FORMAT_NAME, inference_service, s3_uri
from dagster_project.artifacts import ArtifactStore

from .test_backends import record
from .test_cli import dmc

SCHEMA = json.loads(gzip.decompress((Path(__file__).parent / "data" / "kserve_inferenceservice_v1beta1.schema.json.gz").read_bytes()))
REL = "variants/demo-llama/w4a16-rtn/v-0123456789ab"


def dashboard_object_storage_fields(uri: str) -> dict | None:
    """The RHOAI dashboard's uriToObjectStorageFields (odh-dashboard, TypeScript), in Python."""
    u = urlparse(uri)
    parts = [p for p in f"{u.hostname or ''}/{u.path}".split("/") if p]
    if not parts:
        return None
    bucket, path = parts[0], "/".join(parts[1:])
    q = parse_qs(u.query)
    endpoint, region = (q.get("endpoint") or [None])[0], (q.get("defaultRegion") or [None])[0]
    return {"endpoint": endpoint, "bucket": bucket, "region": region, "path": path} if endpoint and bucket and path else None


def registered_uri(kind: str, tmp_path) -> str:
    """The URI publication registers for a variant folder in a store of this kind."""
    if kind == "local":
        return ArtifactStore(kind="local", root=str(tmp_path)).uri_for(REL)
    if kind == "pvc":
        return ArtifactStore(kind="pvc", root=str(tmp_path), pvc_claim="dmc-models").uri_for(REL)
    store = ArtifactStore(kind="s3", root="s3://models/dmc", s3_endpoint_url="http://minio.minio.svc:9000",
                          s3_region="us-east-1")
    return s3_uri(store.uri_for(REL), store.s3_endpoint_url, store.s3_region)


def strict_validate(obj, schema, path="$") -> None:
    """JSON-schema validation plus what `kubectl apply --validate=strict` adds: no unknown fields."""
    jsonschema.validate(obj, schema)

    def walk(o, s, at):
        if isinstance(o, dict) and s.get("type") == "object" and "properties" in s \
                and not s.get("x-kubernetes-preserve-unknown-fields"):
            unknown = set(o) - set(s["properties"])
            assert not unknown, f"unknown fields at {at}: {sorted(unknown)}"
            for k, v in o.items():
                walk(v, s["properties"][k], f"{at}.{k}")
        elif isinstance(o, list) and "items" in s:
            for i, v in enumerate(o):
                walk(v, s["items"], f"{at}[{i}]")

    walk(obj, schema, path)


def test_uri_forms_per_store_kind(tmp_path):
    assert registered_uri("local", tmp_path) == (tmp_path / REL).as_uri()
    assert registered_uri("pvc", tmp_path) == f"pvc://dmc-models/{REL}"
    s3 = registered_uri("s3", tmp_path)
    assert dashboard_object_storage_fields(s3) == {
        "endpoint": "http://minio.minio.svc:9000", "bucket": "models", "region": "us-east-1", "path": f"dmc/{REL}"}
    assert unquote(s3).startswith(f"s3://models/dmc/{REL}?endpoint=http://minio.minio.svc:9000")
    assert dashboard_object_storage_fields(registered_uri("pvc", tmp_path)) is None  # shown as-is, not a connection


@pytest.mark.parametrize("kind", ["pvc", "s3"])
def test_serve_prints_a_schema_valid_isvc_pointing_at_the_registered_artifact(kind, registry, unique, tmp_path):
    uri = registered_uri(kind, tmp_path)
    pv = registry.publish(record(unique, uri=uri))
    assert pv.model_format_name == MODEL_FORMAT_NAME
    got = registry.get(pv.model_name, pv.version_name)
    isvc = inference_service(got, gpus=2, namespace="team-a")
    strict_validate(isvc, SCHEMA)
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "vLLM"} and model["runtime"] == "vllm-runtime"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert isvc["metadata"]["labels"]["modelregistry.opendatahub.io/model-version-id"] == got.registry_version_id
    expected = uri if kind == "pvc" else uri.split("?")[0]
    assert model["storageUri"] == expected

    with_key = inference_service(got, storage_key="dmc-artifacts")
    strict_validate(with_key, SCHEMA)
    if kind == "s3":
        m = with_key["spec"]["predictor"]["model"]
        assert m["storage"] == {"key": "dmc-artifacts", "path": f"dmc/{REL}"} and "storageUri" not in m


def test_a_typo_fails_the_schema_check():
    """The check can fail: an unknown field and a wrong type are both caught."""
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "x"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "vLLM"}, "storageUrl": "pvc://c/p"}}}}
    with pytest.raises(AssertionError, match="storageUrl"):
        strict_validate(isvc, SCHEMA)
    isvc["spec"]["predictor"]["model"] = {"modelFormat": {"version": "1"}}  # name is required
    with pytest.raises(jsonschema.ValidationError):
        strict_validate(isvc, SCHEMA)


def test_local_files_and_revoked_versions_are_not_served(tmp_path, unique):
    from dagster_project.registry import open_registry

    reg = open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    local = reg.publish(record(unique, uri=registered_uri("local", tmp_path)))
    with pytest.raises(RegistryError, match="cannot be deployed by KServe"):
        inference_service(local)
    pvc = reg.publish(record(unique, "v-000000000002", uri=registered_uri("pvc", tmp_path)))
    reg.revoke(pvc.model_name, pvc.version_name)
    with pytest.raises(RegistryError, match="revoked"):
        inference_service(reg.get(pvc.model_name, pvc.version_name))


def test_dmc_models_serve(tmp_path, unique):
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    from dagster_project.registry import open_registry

    pv = open_registry(url).publish(record(unique, uri=registered_uri("pvc", tmp_path)))
    out = dmc("models", "serve", pv.model_name, pv.version_name, "--gpu", "1", registry=url)
    assert out.returncode == 0, out.stderr
    isvc = yaml.safe_load(out.stdout)
    strict_validate(isvc, SCHEMA)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == pv.uri
    out = dmc("models", "serve", pv.model_name, "v-nope", registry=url)
    assert out.returncode == 1 and "no such version" in out.stderr
    local = open_registry(url).publish(record(unique, "v-000000000009", uri=registered_uri("local", tmp_path)))
    out = dmc("models", "serve", local.model_name, local.version_name, registry=url)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "cannot be deployed" in out.stderr
