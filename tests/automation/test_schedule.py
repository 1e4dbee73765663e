"""The nightly schedule finds new Hub releases itself (one backfill each: base and variants) and
requests only missing or stale variants; a quiet night compresses nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from dagster import AssetMaterialization, MultiPartitionKey, build_schedule_context

MODEL, RECIPE = "demo-llama", "w4a16-rtn"


@pytest.fixture
def catalog(tmp_path, monkeypatch, write_watchlist):
    path = tmp_path / "models.yaml"
    path.write_text(f"models:\n  - key: {MODEL}\n    source: demo\n    recipes: [{RECIPE}]\n")
    monkeypatch.setenv("DMC_MODELS_FILE", str(path))
    write_watchlist("watch: []\n")  # no Hub releases: the stale-variant part alone
    return path


def night(instance, endpoint: str = "http://127.0.0.1:9"):
    from dagster_project.automation.schedules import nightly_compression
    from dagster_project.definitions import defs
    from dagster_project.resources.hf_hub import HuggingFaceHubResource

    ctx = build_schedule_context(instance=instance, instance_ref=instance.get_ref(),
                                 repository_def=defs.get_repository_def(),
                                 resources={"hub": HuggingFaceHubResource(endpoint=endpoint)},
                                 scheduled_execution_time=datetime(2026, 1, 1, 2, tzinfo=timezone.utc))
    return nightly_compression.evaluate_tick(ctx)


def backfills(instance):
    return sorted(instance.get_backfills(), key=lambda b: b.backfill_timestamp)


def targets(backfill) -> dict[str, set[str]]:
    """asset name → partition keys the backfill covers."""
    subset = backfill.asset_backfill_data.target_subset
    out: dict[str, set[str]] = {}
    for akpk in subset.iterate_asset_partitions():
        out.setdefault(akpk.asset_key.to_user_string(), set()).add(str(akpk.partition_key))
    return out


WATCH = """
watch:
  - repo: acme/tiny-chat
    recipes: [w4a16-rtn, w8a16-rtn]
    task_set: demo
"""
FILES = {"config.json": '{"architectures": ["LlamaForCausalLM"]}', "model.safetensors": b"\0" * 64}


@pytest.fixture
def watched_release(hub, write_watchlist, tmp_path, monkeypatch) -> tuple[str, str]:
    """One watched Hub repo with one commit and no catalog models: (partition key, commit)."""
    monkeypatch.setenv("DMC_MODELS_FILE", str(tmp_path / "no-models.yaml"))
    (tmp_path / "no-models.yaml").write_text("models: []\n")
    write_watchlist(WATCH)
    return "acme--tiny-chat", hub.add_model("acme/tiny-chat", FILES)


def test_new_release_launches_one_pinned_backfill_then_nothing(hub, dagster_instance, watched_release):
    from dagster_project.automation.backfills import RELEASE_TAG

    inst, (model, sha) = dagster_instance, watched_release

    # a release nobody compressed: partitions, and one backfill (base chain + every recipe) pinned to the commit
    first = night(inst, hub.url)
    assert first.run_requests == [] and "launched 1 release backfill" in first.skip_message
    assert inst.has_dynamic_partition("models", model)
    [bf] = backfills(inst)
    assert bf.tags["dmc/revision"] == sha and bf.tags[RELEASE_TAG] == f"{model}@{sha}"
    assert targets(bf) == {
        "base_model": {model}, "calibration_dataset": {model}, "base_evaluation": {model},
        "compressed_model": {f"{model}|w4a16-rtn", f"{model}|w8a16-rtn"},
    }

    # the next tick while it runs: no second backfill for the same release
    assert "launched" not in night(inst, hub.url).skip_message and len(backfills(inst)) == 1

    # the backfill finished: base holds the commit, both variants were made from it → nothing new
    from dagster._core.execution.backfill import BulkActionStatus

    inst.update_backfill(bf.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    inst.report_runless_asset_event(AssetMaterialization("base_model", partition=model, metadata={"revision": sha}))
    for recipe in ("w4a16-rtn", "w8a16-rtn"):
        inst.report_runless_asset_event(AssetMaterialization(
            "compressed_model", partition=f"{model}|{recipe}", metadata={"base_revision": sha}))
    quiet = night(inst, hub.url)
    assert quiet.run_requests == [] and "nothing new or stale" in quiet.skip_message
    assert len(backfills(inst)) == 1

    # a new commit on the Hub → a new backfill at that commit
    sha2 = hub.add_revision("acme/tiny-chat", {"model.safetensors": b"\1" * 64})
    again = night(inst, hub.url)
    assert "launched 1 release backfill" in again.skip_message
    newest = backfills(inst)[-1]
    assert len(backfills(inst)) == 2 and newest.tags["dmc/revision"] == sha2
    assert targets(newest)["base_model"] == {model}
    assert targets(newest)["compressed_model"] == {f"{model}|w4a16-rtn", f"{model}|w8a16-rtn"}


def test_base_at_the_release_launches_only_the_missing_variants(hub, dagster_instance, watched_release):
    inst, (model, sha) = dagster_instance, watched_release
    inst.add_dynamic_partitions("models", [model])
    inst.add_dynamic_partitions("recipes", ["w4a16-rtn", "w8a16-rtn"])
    inst.report_runless_asset_event(AssetMaterialization("base_model", partition=model, metadata={"revision": sha}))
    inst.report_runless_asset_event(AssetMaterialization(
        "compressed_model", partition=f"{model}|w4a16-rtn", metadata={"base_revision": sha}))
    night(inst, hub.url)
    [bf] = backfills(inst)
    assert targets(bf) == {"compressed_model": {f"{model}|w8a16-rtn"}}


def test_hub_down_still_checks_stale_variants(dagster_instance, catalog, write_watchlist, closed_port):
    write_watchlist(WATCH)
    tick = night(dagster_instance, f"http://127.0.0.1:{closed_port}")
    assert tick.run_requests == [] and "releases not checked" in tick.skip_message
    assert backfills(dagster_instance) == []


def run(instance, assets, partition_key, tags=None):
    """Materialize `assets` through the code location's own asset job, as the UI, a sensor or the
    schedule does: the rest of the graph (partitioned upstreams included) is the real one, so the
    input data versions Dagster records are the ones a deployment records."""
    from dagster import AssetKey
    from dagster_project.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    res = job.execute_in_process(
        instance=instance, partition_key=str(partition_key), tags=tags or {},
        asset_selection=[AssetKey(a.key.path) if hasattr(a, "key") else AssetKey(a) for a in assets],
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert res.success
    return res


def test_cron_and_timezone_come_from_the_environment(monkeypatch):
    import importlib

    import dagster_project.automation.schedules as schedules

    monkeypatch.setenv("DMC_NIGHTLY_CRON", "30 3 * * 1-5")
    monkeypatch.setenv("DMC_TIMEZONE", "Europe/Berlin")
    try:
        mod = importlib.reload(schedules)
        assert mod.nightly_compression.cron_schedule == "30 3 * * 1-5"
        assert mod.nightly_compression.execution_timezone == "Europe/Berlin"
    finally:
        monkeypatch.undo()
        mod = importlib.reload(schedules)
    assert mod.nightly_compression.cron_schedule == "0 2 * * *"
    assert mod.nightly_compression.execution_timezone == "UTC"


def test_second_night_with_nothing_new_compresses_nothing(demo_model, dagster_instance, catalog):
    from dagster_project import definitions as d

    inst = dagster_instance
    inst.add_dynamic_partitions("models", [MODEL])
    inst.add_dynamic_partitions("recipes", [RECIPE])

    # no base model yet: nothing can be compressed, nothing is requested
    first = night(inst)
    assert not first.run_requests and "without a base model" in first.skip_message

    run(inst, [d.base_model, d.calibration_dataset], MODEL)
    requests = night(inst).run_requests
    assert [r.partition_key for r in requests] == [f"{MODEL}|{RECIPE}"]
    assert requests[0].tags["dmc/reason"] == "missing"
    assert requests[0].job_name in (None, "variant_job")
    key = MultiPartitionKey({"model": MODEL, "recipe": RECIPE})
    res = run(inst, [d.compressed_model], key, requests[0].tags)
    assert res.asset_materializations_for_node("compressed_model")[0].metadata["reused_existing"].value is False

    # the next night: nothing new → no run at all
    quiet = night(inst)
    assert quiet.run_requests == [] and "nothing new or stale" in quiet.skip_message

    # the base re-materialized with identical content (same data version): still nothing
    run(inst, [d.base_model], MODEL)
    assert night(inst).run_requests == []

    # upstream data version changes (a new base revision recorded) → stale → one run, which finds
    # the variant on disk made from the same inputs and finishes without compressing
    inst.report_runless_asset_event(AssetMaterialization(
        "base_model", partition=MODEL, tags={"dagster/data_version": "0123456789abcdef"}))
    stale = night(inst).run_requests
    assert [r.partition_key for r in stale] == [f"{MODEL}|{RECIPE}"]
    assert stale[0].tags["dmc/reason"].startswith("stale: base_model")
    res = run(inst, [d.compressed_model], key, stale[0].tags)
    assert res.asset_materializations_for_node("compressed_model")[0].metadata["reused_existing"].value is True
    assert night(inst).run_requests == []
