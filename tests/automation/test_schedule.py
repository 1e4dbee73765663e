"""The nightly schedule requests only missing or stale variants; a quiet night compresses nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from dagster import AssetMaterialization, MultiPartitionKey, build_schedule_context, materialize

MODEL, RECIPE = "demo-llama", "w4a16-rtn"


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    path = tmp_path / "models.yaml"
    path.write_text(f"models:\n  - key: {MODEL}\n    source: demo\n    recipes: [{RECIPE}]\n")
    monkeypatch.setenv("DMC_MODELS_FILE", str(path))
    return path


def night(instance):
    from dagster_project.automation.schedules import nightly_compression
    from dagster_project.definitions import defs

    ctx = build_schedule_context(instance=instance, instance_ref=instance.get_ref(),
                                 repository_def=defs.get_repository_def(),
                                 scheduled_execution_time=datetime(2026, 1, 1, 2, tzinfo=timezone.utc))
    return nightly_compression.evaluate_tick(ctx)


def run(instance, assets, partition_key, tags=None):
    from dagster_project.definitions import defs

    res = materialize(assets, partition_key=partition_key, instance=instance, resources=defs.resources,
                      tags=tags or {}, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
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
