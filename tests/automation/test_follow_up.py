"""Declarative automation: evaluation and publication follow a new variant, and only that variant."""

from __future__ import annotations

from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization, evaluate_automation_conditions

M, R, OTHER = "acme--tiny", "w4a16-rtn", "w8a16-rtn"
VARIANT = f"{M}|{R}"


def requested(result, key: str) -> set[str]:
    return set(result.get_requested_partitions(AssetKey(key)))


def made(instance, key: str, partition: str):
    instance.report_runless_asset_event(AssetMaterialization(key, partition=partition))


def checks(instance, partition: str, passed: bool):
    for name in ("loads_and_generates", "recovery_meets_threshold", "size_reduced"):
        instance.report_runless_asset_event(AssetCheckEvaluation(
            asset_key=AssetKey("evaluation_report"), check_name=name, passed=passed, partition=partition))


def test_new_variant_is_evaluated_with_its_publication_in_one_run(dagster_instance):
    from dagster_project.definitions import defs

    inst = dagster_instance
    inst.add_dynamic_partitions("models", [M])
    inst.add_dynamic_partitions("recipes", [R, OTHER])
    made(inst, "base_model", M)
    made(inst, "base_evaluation", M)

    result = evaluate_automation_conditions(defs=defs, instance=inst)
    cursor = result.cursor
    assert requested(result, "evaluation_report") == set()  # no variant yet: nothing to evaluate

    made(inst, "compressed_model", VARIANT)
    result = evaluate_automation_conditions(defs=defs, instance=inst, cursor=cursor)
    cursor = result.cursor
    # the new variant only (not w8a16-rtn), with its publication in the same run: the blocking
    # approval checks of evaluation_report stop publication inside that run when they fail
    assert requested(result, "evaluation_report") == {VARIANT}
    assert requested(result, "hub_release") == {VARIANT}
    assert requested(result, "registry_entry") == {VARIANT}
    assert requested(result, "base_evaluation") == set() and requested(result, "compressed_model") == set()
    assert requested(result, "model_comparison") == set()

    made(inst, "evaluation_report", VARIANT)
    checks(inst, VARIANT, passed=False)  # not approved: publication steps skipped in the run
    result = evaluate_automation_conditions(defs=defs, instance=inst, cursor=cursor)
    cursor = result.cursor
    assert requested(result, "hub_release") == set() and requested(result, "registry_entry") == set()
    assert requested(result, "evaluation_report") == set()
    assert requested(result, "model_comparison") == {M}
    made(inst, "model_comparison", M)

    # and a tick later with nothing new, nothing is requested again
    result = evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
    result = evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
    assert result.total_requested == 0


def test_automation_sensor_and_jobs_are_registered():
    from dagster_project.definitions import defs

    repo = defs.get_repository_def()
    sensors = {s.name for s in repo.sensor_defs}
    assert {"hub_watch_sensor", "variant_follow_up", "catalog_sensor"} <= sensors
    assert {s.name for s in repo.schedule_defs} >= {"nightly_compression"}
    for asset in ("evaluation_report", "model_comparison", "hub_release", "registry_entry"):
        assert repo.asset_graph.get(AssetKey(asset)).automation_condition is not None, asset
    for asset in ("base_model", "compressed_model"):  # compute is launched explicitly, never eagerly
        assert repo.asset_graph.get(AssetKey(asset)).automation_condition is None, asset
    assert repo.get_job("variant_job") and repo.get_job("base_model_job")
