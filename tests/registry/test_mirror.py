"""Lookups from the local copy of a registry (registry/kubeflow_mirror.py, registry/mlflow_mirror.py)
give the same answer as reading the real server, catch up with only what changed, and read
everything again when the copy no longer belongs to the server or is old."""

from __future__ import annotations

import json

import pytest

from dagster_project.registry import open_registry
from dagster_project.registry import mlflow_mirror
from dagster_project.registry.kubeflow_mirror import OVERLAP_MS

from .conftest import FAST_RETRIES, server_url
from .test_backends import mlflow_client, record

QUERIES = [dict(), dict(approved_only=False, include_archived=True), "by_base",
           dict(recipe="w4a16-rtn", min_recovery=99.0)]


def same_answers(url: str, mirror_dir, unique: str) -> list:
    """Every query from the copy equals the same query read from the server."""
    answers = []
    for q in QUERIES:
        q = dict(base_model=f"org/base-{unique}") if q == "by_base" else q
        got = open_registry(url, mirror_dir=mirror_dir, **FAST_RETRIES).list_versions(**q)
        assert got == open_registry(url, mirror_dir=None, **FAST_RETRIES).list_versions(**q), q
        answers.append(got)
    return answers


def one_lookup(url: str, mirror_dir) -> dict[str, int]:
    """Items each listing read from the server in one lookup."""
    reg = open_registry(url, mirror_dir=mirror_dir, **FAST_RETRIES)
    reg.list_versions(approved_only=False, include_archived=True)
    return reg.last_mirror_sync


def copy_of(folder, kind: str = "kubeflow") -> tuple:
    [path] = list(folder.glob(f"{kind}-*.json"))
    return path, json.loads(path.read_text())


def test_the_copy_answers_like_the_server_and_catches_up_with_changes(kubeflow_url, unique, tmp_path):
    writer = open_registry(kubeflow_url, mirror_dir=None, **FAST_RETRIES)
    for i in range(1, 4):
        writer.publish(record(unique, f"v-00000000000{i}"))
    same_answers(kubeflow_url, tmp_path, unique)
    _, before = copy_of(tmp_path)

    # changes after the copy was made: a new version, a revoked one
    writer.publish(record(unique, "v-000000000004", properties={"recovery_avg": "98.5"}))
    writer.revoke(f"demo-llama-w4a16-rtn-{unique}", "v-000000000002")
    read = one_lookup(kubeflow_url, tmp_path)
    path, after = copy_of(tmp_path)
    for name, part in after["listings"].items():
        since = before["listings"][name]["high_water_ms"] - OVERLAP_MS
        changed = [i for i in part["items"].values() if int(i["lastUpdateTimeSinceEpoch"]) > since]
        assert read[name] == len(changed), name  # what changed, not the whole listing

    approved, everything, by_base, by_recipe = same_answers(kubeflow_url, tmp_path, unique)
    assert [v.version_name for v in by_base] == ["v-000000000001", "v-000000000003", "v-000000000004"]
    assert [v.version_name for v in by_recipe if v.model_name.endswith(unique)] == ["v-000000000001", "v-000000000003"]
    assert {v.version_name for v in everything if v.archived and v.model_name.endswith(unique)} == {"v-000000000002"}

    # a token names its own copy and is never written into it
    canary = f"canary-token-{unique}"
    open_registry(kubeflow_url, token=canary, mirror_dir=tmp_path, **FAST_RETRIES).list_versions()
    files = sorted(tmp_path.glob("kubeflow-*.json"))
    assert len(files) == 2 and not any(canary in f.name or canary in f.read_text() for f in files)


def test_a_copy_of_another_server_or_an_old_one_is_read_again(kubeflow_url, unique, tmp_path):
    open_registry(kubeflow_url, mirror_dir=None, **FAST_RETRIES).publish(record(unique))
    one_lookup(kubeflow_url, tmp_path)
    path, state = copy_of(tmp_path)

    # the registry behind this URL was rebuilt: its first version is not the one the copy holds
    state["listings"]["model_versions"]["first"][1] = "1"
    state["listings"]["model_versions"]["items"]["999999"] = {
        "id": "999999", "name": "gone", "registeredModelId": "1", "lastUpdateTimeSinceEpoch": "1"}
    path.write_text(json.dumps(state))
    read = one_lookup(kubeflow_url, tmp_path)
    _, state = copy_of(tmp_path)
    assert "999999" not in state["listings"]["model_versions"]["items"]
    assert {n: len(p["items"]) for n, p in state["listings"].items()} == read  # everything was read
    same_answers(kubeflow_url, tmp_path, unique)

    # a copy older than its max age is read in full too
    _, state = copy_of(tmp_path)
    state["full_read_at"] -= 3600
    path.write_text(json.dumps(state))
    read = one_lookup(kubeflow_url, tmp_path)
    _, state = copy_of(tmp_path)
    assert {n: len(p["items"]) for n, p in state["listings"].items()} == read


# -- MLflow ------------------------------------------------------------------------------------
@pytest.fixture
def mlflow_url() -> str:
    return server_url("mlflow")


def mlflow_version_number(url: str, model: str, version_name: str) -> str:
    [pv] = [v for v in open_registry(url, mirror_dir=None).list_versions(approved_only=False, include_archived=True)
            if (v.model_name, v.version_name) == (model, version_name)]
    return pv.registry_version_id


@pytest.mark.registry_server
def test_mlflow_copy_answers_like_the_server_and_reads_only_what_changed(mlflow_url, unique, tmp_path):
    writer = open_registry(mlflow_url, mirror_dir=None)
    model = f"demo-llama-w4a16-rtn-{unique}"
    for i in range(1, 4):
        writer.publish(record(unique, f"v-00000000000{i}"))
    same_answers(mlflow_url, tmp_path, unique)
    _, before = copy_of(tmp_path, "mlflow")

    # Nothing changed: the registered models and the newest few versions, never the listing.
    quiet = one_lookup(mlflow_url, tmp_path)
    print(f"copy holds {len(before['versions'])} versions; a lookup with nothing new read {quiet}")
    assert quiet["model_versions"] <= mlflow_mirror.CHANGED_PAGE < len(before["versions"]) or len(before["versions"]) <= 3

    # Changes after the copy was made: a new version, and one deleted by another MLflow client.
    writer.publish(record(unique, "v-000000000004", properties={"recovery_avg": "98.5"}))
    mlflow_client(mlflow_url).delete_model_version(model, mlflow_version_number(mlflow_url, model, "v-000000000003"))
    read = one_lookup(mlflow_url, tmp_path)
    _, after = copy_of(tmp_path, "mlflow")
    since = before["high_water_ms"] - mlflow_mirror.OVERLAP_MS
    changed = [mv for mv in after["versions"].values() if int(mv["last_updated_timestamp"]) > since]
    ours_now = [mv for mv in after["versions"].values() if mv["name"] == model]
    assert read["model_versions"] == len(changed) + len(ours_now)  # our model re-read + what changed
    same_answers(mlflow_url, tmp_path, unique)

    # A revocation changes tags only, which move no timestamp: dmc touches the version, so the
    # next lookup sees it without re-reading the model.
    writer.revoke(model, "v-000000000002")
    approved, everything, by_base, by_recipe = same_answers(mlflow_url, tmp_path, unique)
    mine = [v for v in everything if v.model_name == model]
    assert [(v.version_name, v.archived) for v in mine] == [
        ("v-000000000001", False), ("v-000000000002", True), ("v-000000000004", False)]
    assert [v.version_name for v in by_base] == ["v-000000000001", "v-000000000004"]
    assert "v-000000000002" not in {v.version_name for v in approved if v.model_name == model}


@pytest.mark.registry_server
def test_mlflow_copy_of_another_server_or_an_old_one_is_read_again(mlflow_url, unique, tmp_path):
    writer = open_registry(mlflow_url, mirror_dir=None)
    model = f"demo-llama-w4a16-rtn-{unique}"
    writer.publish(record(unique))
    one_lookup(mlflow_url, tmp_path)
    path, state = copy_of(tmp_path, "mlflow")

    # A model the server no longer has, and ours recreated (other creation time): both re-read.
    state["models"]["gone-" + unique] = [1, 1]
    state["versions"][f"gone-{unique}\n1"] = {"name": f"gone-{unique}", "version": "1", "tags": [],
                                              "last_updated_timestamp": "1"}
    state["models"][model] = [1, 1]
    state["versions"][f"{model}\n999"] = {"name": model, "version": "999", "tags": [], "last_updated_timestamp": "1"}
    path.write_text(json.dumps(state))
    one_lookup(mlflow_url, tmp_path)
    _, state = copy_of(tmp_path, "mlflow")
    assert not [k for k in state["versions"] if k.startswith("gone-") or k.endswith("\n999")]
    same_answers(mlflow_url, tmp_path, unique)

    # A tag changed by another tool moves no timestamp on the server: seen once the copy is old.
    mlflow_client(mlflow_url).delete_model_version_tag(model, mlflow_version_number(mlflow_url, model, "v-000000000001"),
                                                       "approved")
    state["full_read_at"] -= mlflow_mirror.MAX_AGE_S + 1
    path.write_text(json.dumps(state))
    read = one_lookup(mlflow_url, tmp_path)
    _, state = copy_of(tmp_path, "mlflow")
    assert read["model_versions"] == len(state["versions"])  # everything was read
    assert model not in {v.model_name for v in open_registry(mlflow_url, mirror_dir=tmp_path).list_versions()}
    same_answers(mlflow_url, tmp_path, unique)
