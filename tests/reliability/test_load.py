"""Load: 1,000 registered versions (filters stay correct), 200 watched repos (one sensor tick handles
them all with a bounded number of Hub requests, the next does nothing), and a 50-partition backfill
of base_model on the in-process executor (all succeed; the instance answers exactly). Speed goals
live in benchmarks/ (bench_lookup, bench_sensor, bench_test_goals), not here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from dagster_project.registry import VariantRecord, open_registry

RECIPES = [("w4a16-rtn", "W4A16"), ("w4a16-gptq", "W4A16"), ("w8a8-int8", "W8A8"), ("fp8-dynamic", "FP8_DYNAMIC")]


def _records(n: int) -> list[VariantRecord]:
    out = []
    for i in range(n):
        recipe, scheme = RECIPES[i % 4]
        out.append(VariantRecord(
            model_name=f"base-{i % 25}-{recipe}", version_name=f"v-{i:012x}", uri=f"pvc://models/{i}",
            properties={"base_model": f"org/base-{i % 25}", "recipe": recipe, "scheme": scheme,
                        "recovery_avg": f"{95 + (i * 37 % 500) / 100:.2f}"},
            source_id=f"run-{i}", approved=i % 7 != 0,
        ))
    return out


def test_filters_are_exact_over_1000_versions(tmp_path):
    records = _records(1000)
    reg = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    try:
        for r in records:
            reg.publish(r)
        revoked = {(r.model_name, r.version_name) for r in records[3:1000:50]}  # 20 archived
        for m, v in revoked:
            reg.revoke(m, v)

        def expected(approved_only=True, base_model=None, recipe=None, scheme=None, min_recovery=None,
                     include_archived=False):
            out = set()
            for r in records:
                key = (r.model_name, r.version_name)
                archived = key in revoked
                approved = r.approved and not archived
                if approved_only and not approved:
                    continue
                if archived and not include_archived:
                    continue
                p = r.properties
                if base_model is not None and p["base_model"] != base_model:
                    continue
                if recipe is not None and p["recipe"] != recipe:
                    continue
                if scheme is not None and p["scheme"] != scheme:
                    continue
                if min_recovery is not None and float(p["recovery_avg"]) < min_recovery:
                    continue
                out.add(key)
            return out

        queries = [
            {}, {"approved_only": False}, {"approved_only": False, "include_archived": True},
            {"base_model": "org/base-7"}, {"recipe": "w4a16-gptq"}, {"scheme": "W4A16"},
            {"min_recovery": 99.0}, {"min_recovery": 99.99}, {"min_recovery": 100.0},
            {"base_model": "org/base-3", "recipe": "w4a16-rtn", "min_recovery": 97.5},
            {"scheme": "FP8_DYNAMIC", "include_archived": True},
            {"base_model": "org/nobody"}, {"recipe": "w4a16-rtn", "scheme": "W8A8"},
        ]
        for q in queries:
            got = reg.list_versions(**q)
            keys = [(v.model_name, v.version_name) for v in got]
            assert len(keys) == len(set(keys)), f"duplicates for {q}"
            assert set(keys) == expected(**q), q
            assert keys == sorted(keys)
        assert len(reg.list_versions(approved_only=False, include_archived=True)) == 1000
        # Point lookups agree with the listing, and republishing everything changes nothing.
        sample = records[::97]
        for r in sample:
            v = reg.get(r.model_name, r.version_name)
            assert v is not None and v.uri == r.uri and v.properties["recipe"] == r.properties["recipe"]
        before = {(v.model_name, v.version_name, v.registry_version_id)
                  for v in reg.list_versions(approved_only=False, include_archived=True)}
        for r in records[:200]:
            reg.publish(r)
        after = {(v.model_name, v.version_name, v.registry_version_id)
                 for v in reg.list_versions(approved_only=False, include_archived=True)}
        assert before == after
    finally:
        reg.close()


# ---------------------------------------------------------------- 200 watched repos


@pytest.fixture
def hub_200(tmp_path, hf_isolated):
    from tests.fakes import HubServer

    files = {"config.json": json.dumps({"architectures": ["LlamaForCausalLM"]}), "model.safetensors": b"\0" * 64}
    with HubServer(tmp_path / "hub", page_size=50) as hub:
        repos = [f"org{i % 10}/model-{i:03d}" for i in range(200)]
        shas = {r: hub.add_model(r, files) for r in repos}
        yield hub, shas


def test_sensor_tick_over_200_watched_repos(hub_200, dagster_instance, tmp_path, monkeypatch):
    from dagster import build_sensor_context

    from dagster_project.automation.watch_sensor import WatchCursor, hub_watch_sensor
    from dagster_project.models.keys import REVISION_TAG
    from dagster_project.definitions import defs
    from dagster_project.resources.hf_hub import HuggingFaceHubResource

    hub, shas = hub_200
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text("watch:\n  - repos: [" + ", ".join(sorted(shas)) + "]\n    recipes: [w4a16-rtn]\n")
    monkeypatch.setenv("DMC_WATCHLIST_FILE", str(watchlist))
    instance = dagster_instance

    def tick(cursor):
        ctx = build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                   definitions=defs, resources={"hub": HuggingFaceHubResource(endpoint=hub.url)})
        hub.reset_requests()
        data = hub_watch_sensor.evaluate_tick(ctx)
        for req in data.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        return data, hub.requests

    first, first_requests = tick(None)
    assert len(first.run_requests) == 200
    by_model = {r.partition_key: r for r in first.run_requests}
    assert set(by_model) == {repo.replace("/", "--") for repo in shas}
    for repo, sha in shas.items():
        req = by_model[repo.replace("/", "--")]
        assert req.tags[REVISION_TAG] == sha and req.run_key == f"{repo.replace('/', '--')}|base|{sha}"
    assert len(instance.get_dynamic_partitions("models")) == 200
    # One head-commit lookup per watched repo, none retried or failed (speed: bench_sensor.py).
    assert len(first_requests) == 200 and {r.status for r in first_requests} == {200}, first_requests[:5]

    second, second_requests = tick(first.cursor)
    assert not second.run_requests  # nothing new: no duplicate requests
    assert len(second_requests) == 200 and {r.status for r in second_requests} == {200}
    moved = sorted(shas)[::67]  # three repos get a new commit
    new = {r: hub.add_revision(r, {"extra.json": "{}"}) for r in moved}
    third, _ = tick(second.cursor or first.cursor)
    assert sorted(r.partition_key for r in third.run_requests) == sorted(r.replace("/", "--") for r in moved)
    assert {r.tags[REVISION_TAG] for r in third.run_requests} == set(new.values())
    assert json.loads(third.cursor)["repos"][moved[0]] == new[moved[0]]
    assert WatchCursor.parse(third.cursor).repos.keys() == shas.keys()


# ---------------------------------------------------------------- a 50-partition backfill


@pytest.mark.slow
def test_backfill_of_50_partitions_in_process(demo_model, dagster_instance, project_state, tmp_path, monkeypatch):
    import yaml
    from dagster import AssetKey, AssetRecordsFilter, DagsterRunStatus, RunsFilter, materialize

    from dagster_project import definitions as d

    keys = [f"copy-{i:02d}" for i in range(50)]
    entries = []
    for k in keys:  # 50 model folders: symlinks to the demo model's files, plus a distinct marker
        folder = tmp_path / "models" / k
        folder.mkdir(parents=True)
        for f in Path(demo_model).iterdir():
            if f.is_file():
                (folder / f.name).symlink_to(f)
        (folder / "generation_marker.txt").write_text(k)
        entries.append({"key": k, "source": "local", "path": str(folder)})
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump({"models": entries}))
    monkeypatch.setenv("DMC_MODELS_FILE", str(models_file))
    instance = dagster_instance
    instance.add_dynamic_partitions("models", keys)
    backfill_id = uuid.uuid4().hex[:8]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    results = [
        materialize([d.base_model], partition_key=k, instance=instance, resources=d.defs.resources,
                    run_config=quiet, raise_on_error=False, tags={"dagster/backfill": backfill_id})
        for k in keys
    ]
    assert all(r.success for r in results), [k for k, r in zip(keys, results) if not r.success]

    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert len(runs) == 50 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert instance.get_materialized_partitions(AssetKey("base_model")) == set(keys)
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("base_model")), limit=100).records
    assert len(records) == 50 and {r.partition_key for r in records} == set(keys)
    revisions = {r.asset_materialization.metadata["revision"].value for r in records}
    assert len(revisions) == 50  # distinct folders → distinct content revisions
    one = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("base_model"), asset_partitions=["copy-37"]), limit=1).records
    assert [r.partition_key for r in one] == ["copy-37"]
    for k in keys:
        manifest = json.loads((project_state / "artifacts" / "models" / k / "base_model.json").read_text())
        assert manifest["key"] == k and manifest["source"] == "local"
