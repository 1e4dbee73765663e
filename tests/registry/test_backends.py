"""One behaviour suite for both backends (LocalRegistry always; the real server when configured)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from dagster_project.registry import (
    PublishedVersion,
    RegistryBackend,
    RegistryError,
    VariantRecord,
    VersionFilter,
)

from . import rest


def record(unique: str, version: str = "v-000000000001", **overrides) -> VariantRecord:
    props = {
        "base_model": f"org/base-{unique}",
        "base_model_revision": "abc123",
        "recipe": "w4a16-rtn",
        "recipe_sha256": "f" * 64,
        "calibration_hash": "",
        "scheme": "W4A16",
        "eval_wikitext_word_perplexity": "21.5",
        "recovery_wikitext_word_perplexity": "98.7",
        "recovery_avg": "99.2",
        "llmcompressor_version": "0.14.0.1",
        "dagster_run_url": "http://127.0.0.1:3000/runs/abc",
    }
    props.update(overrides.pop("properties", {}))
    base = dict(
        model_name=f"demo-llama-w4a16-rtn-{unique}",
        version_name=version,
        uri=f"pvc://models/{unique}/{version}",
        description="test variant",
        properties=props,
        source_group="model_compression",
        source_id=f"run-{unique}",
        source_name=f"published_variant[{unique}]",
    )
    base.update(overrides)
    return VariantRecord(**base)


# -- raw creation of half-done state, bypassing our layer ---------------------------------------
def raw_create_model_only(url: str, name: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///") :]) as con:
            con.execute("INSERT INTO models (name, created_at) VALUES (?, ?)", (name, time.time()))
        return
    if url.startswith("mlflow+"):
        mlflow_client(url).create_registered_model(name)
        return
    rest.create_model(rest.api_base(url), name)


def raw_create_version_without_artifact(url: str, rec: VariantRecord) -> None:
    """Kubeflow/local: a version with no artifact. MLflow (a version always has its source): a version
    that carries only its version-name tag, as a publisher that died before its tags would leave it."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///") :]) as con:
            con.execute("INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)", (rec.model_name, time.time()))
            (mid,) = con.execute("SELECT id FROM models WHERE name = ?", (rec.model_name,)).fetchone()
            con.execute(
                "INSERT INTO versions (model_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (mid, rec.version_name, time.time(), time.time()),
            )
        return
    if url.startswith("mlflow+"):
        from dagster_project.registry.mlflow_registry import VERSION_TAG

        client = mlflow_client(url)
        client.create_registered_model(rec.model_name)
        client.create_model_version(rec.model_name, source=rec.uri, tags={VERSION_TAG: rec.version_name})
        return
    base = rest.api_base(url)
    rm = rest.create_model(base, rec.model_name)
    rest.create_version(base, rm["id"], rec.version_name)


def mlflow_client(url: str):
    from mlflow import MlflowClient

    tracking = url[len("mlflow+") :]
    return MlflowClient(tracking_uri=tracking, registry_uri=tracking)


# -- tests ---------------------------------------------------------------------------------------
def test_publish_stores_model_version_artifact_and_lineage(registry: RegistryBackend, unique):
    rec = record(unique)
    pv = registry.publish(rec)
    assert isinstance(pv, PublishedVersion)
    assert (pv.model_name, pv.version_name, pv.uri) == (rec.model_name, rec.version_name, rec.uri)
    assert pv.model_format_name == "vLLM"  # what RHOAI's vLLM ServingRuntime selects
    assert pv.approved and not pv.archived
    assert pv.source_kind == "dagster"
    assert pv.source_id == f"run-{unique}" and pv.source_name == f"published_variant[{unique}]"
    assert pv.properties == dict(rec.properties)  # flat strings; label kept out of properties
    assert pv.registry_model_id and pv.registry_version_id and pv.registry_artifact_id
    assert pv.metric("recovery_avg") == pytest.approx(99.2)
    assert pv.metric("calibration_hash") is None and pv.metric("missing") is None
    assert registry.get(rec.model_name, rec.version_name) == pv
    assert registry.get(rec.model_name, "v-does-not-exist") is None
    assert registry.get(f"no-such-model-{unique}", rec.version_name) is None


def test_republish_creates_nothing_new(make_registry, unique):
    rec = record(unique)
    first = make_registry().publish(rec)
    again = make_registry().publish(rec)
    assert again == first
    hits = [v for v in make_registry().list_versions(base_model=rec.properties["base_model"])]
    assert [(v.model_name, v.version_name, v.registry_artifact_id) for v in hits] == [
        (rec.model_name, rec.version_name, first.registry_artifact_id)
    ]


def test_two_versions_of_one_family(registry, unique):
    a = registry.publish(record(unique, "v-aaaaaaaaaaaa"))
    b = registry.publish(record(unique, "v-bbbbbbbbbbbb"))
    assert a.registry_model_id == b.registry_model_id
    assert a.registry_version_id != b.registry_version_id
    assert a.registry_artifact_id != b.registry_artifact_id


def test_publish_repairs_model_without_version(registry, registry_url, unique):
    rec = record(unique)
    raw_create_model_only(registry_url, rec.model_name)
    assert registry.get(rec.model_name, rec.version_name) is None
    pv = registry.publish(rec)
    assert pv.uri == rec.uri and pv.registry_artifact_id and pv.approved


def test_publish_repairs_version_without_artifact(registry, registry_url, unique):
    rec = record(unique)
    raw_create_version_without_artifact(registry_url, rec)
    half = registry.get(rec.model_name, rec.version_name)
    assert half is not None and not half.approved and half.properties == {}
    assert half.uri == (rec.uri if registry_url.startswith("mlflow+") else "")
    pv = registry.publish(rec)
    assert pv.uri == rec.uri and pv.registry_artifact_id and pv.approved
    assert pv.registry_version_id == half.registry_version_id
    assert pv.properties == dict(rec.properties)


def test_publish_refuses_to_repoint_a_version(registry, unique):
    registry.publish(record(unique))
    with pytest.raises(RegistryError, match="already published"):
        registry.publish(record(unique, uri="pvc://elsewhere"))


def test_revoke_removes_label_and_archives(registry, unique):
    rec = record(unique)
    registry.publish(rec)
    pv = registry.revoke(rec.model_name, rec.version_name)
    assert pv.archived and not pv.approved
    assert "approved" not in pv.properties
    assert registry.list_versions(base_model=rec.properties["base_model"]) == []
    everything = registry.list_versions(base_model=rec.properties["base_model"], approved_only=False, include_archived=True)
    assert [v.version_name for v in everything] == [rec.version_name]
    # a later re-run of the publication must not silently re-approve a revoked version
    again = registry.publish(rec)
    assert again.archived and not again.approved
    with pytest.raises(RegistryError, match="no such version"):
        registry.revoke(rec.model_name, "v-nope")


def test_list_filters(registry, unique):
    base = f"org/base-{unique}"
    other_base = f"org/other-{unique}"
    specs = [
        ("v-000000000001", dict(properties={"recipe": "w4a16-rtn", "scheme": "W4A16", "recovery_avg": "99.5"})),
        ("v-000000000002", dict(properties={"recipe": "w4a16-gptq", "scheme": "W4A16", "recovery_avg": "99.9"})),
        ("v-000000000003", dict(properties={"recipe": "w8a8-sq", "scheme": "W8A8", "recovery_avg": "97.0"})),
        ("v-000000000004", dict(properties={"recipe": "fp8", "scheme": "FP8_DYNAMIC", "recovery_avg": "not-a-number"})),
        ("v-000000000005", dict(properties={"recipe": "w4a16-rtn", "scheme": "W4A16", "recovery_avg": "100.0"}, approved=False)),
        ("v-000000000006", dict(properties={"recipe": "w4a16-rtn", "scheme": "W4A16", "recovery_avg": "99.0", "base_model": other_base})),
    ]
    for version, kw in specs:
        registry.publish(record(unique, version, **kw))
    registry.publish(record(unique, "v-000000000007", properties={"recovery_avg": "99.99"}))
    registry.revoke(f"demo-llama-w4a16-rtn-{unique}", "v-000000000007")

    def names(**kw):
        got = registry.list_versions(**kw)
        assert all(isinstance(v, PublishedVersion) for v in got)
        assert registry.list_versions(VersionFilter(**kw)) == got  # the value object means the same
        return [v.version_name for v in got if v.properties.get("base_model") in (base, other_base)]

    assert names(base_model=base) == ["v-000000000001", "v-000000000002", "v-000000000003", "v-000000000004"]
    assert names(base_model=other_base) == ["v-000000000006"]
    assert names(base_model=base, recipe="w4a16-rtn") == ["v-000000000001"]
    assert names(base_model=base, scheme="W4A16") == ["v-000000000001", "v-000000000002"]
    assert names(base_model=base, min_recovery=99.5) == ["v-000000000001", "v-000000000002"]
    assert names(base_model=base, min_recovery=99.95) == []
    assert names(base_model=base, approved_only=False) == [
        "v-000000000001", "v-000000000002", "v-000000000003", "v-000000000004", "v-000000000005",
    ]
    assert names(base_model=base, approved_only=False, include_archived=True, min_recovery=99.95) == [
        "v-000000000005", "v-000000000007",
    ]
    assert names(base_model=base, recipe="w4a16-rtn", scheme="W8A8") == []
    assert names(base_model=f"org/nothing-{unique}") == []
    # no filters at all: ours are there, sorted by (model, version)
    allv = registry.list_versions()
    assert allv == sorted(allv, key=lambda v: (v.model_name, v.version_name))
    assert {"v-000000000001", "v-000000000006"} <= {v.version_name for v in allv if unique in v.model_name}


def test_concurrent_publish_yields_one_version(make_registry, unique):
    rec = record(unique)
    n = 4
    regs = [make_registry() for _ in range(n)]
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def worker(i):
        try:
            barrier.wait(timeout=10)
            results[i] = regs[i].publish(rec)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len({(r.registry_model_id, r.registry_version_id, r.registry_artifact_id) for r in results}) == 1
    listed = make_registry().list_versions(base_model=rec.properties["base_model"], approved_only=False)
    assert len(listed) == 1


def test_record_validation():
    with pytest.raises(ValueError):
        VariantRecord(model_name="", version_name="v", uri="x")
    with pytest.raises(ValueError, match="flat strings"):
        VariantRecord(model_name="m", version_name="v", uri="x", properties={"recovery_avg": 99.0})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="approved"):
        VariantRecord(model_name="m", version_name="v", uri="x", properties={"approved": ""})
