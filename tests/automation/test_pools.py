"""Model-heavy steps share the `model_compute` pool, whose limit is configurable."""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import AssetKey

from dagster_project.automation.pools import MODEL_HEAVY_ASSETS, MODEL_POOL, main, pool_limit, set_pool_limit

ROOT = Path(__file__).resolve().parents[2]


def test_model_heavy_assets_use_the_pool():
    from dagster_project.definitions import defs

    graph = defs.get_repository_def().asset_graph
    for name in MODEL_HEAVY_ASSETS:
        assert graph.get(AssetKey(name)).pools == {MODEL_POOL}, name
    for name in ("base_model", "calibration_dataset", "hub_release", "registry_entry", "model_comparison"):
        assert MODEL_POOL not in (graph.get(AssetKey(name)).pools or set()), name


def test_local_instance_default_limit_is_one_and_can_be_raised(dagster_instance, capsys, monkeypatch):
    local = yaml.safe_load((ROOT / "deploy" / "dagster.local.yaml").read_text())
    assert local["concurrency"]["pools"]["default_limit"] == 1
    assert dagster_instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert pool_limit(dagster_instance) == (1, True)

    set_pool_limit(dagster_instance, 2)
    assert pool_limit(dagster_instance) == (2, False)

    monkeypatch.setenv("DMC_MODEL_COMPUTE_LIMIT", "3")
    assert main([]) == 0
    assert "limit 3" in capsys.readouterr().out
    assert pool_limit(dagster_instance) == (3, False)


def test_steps_sharing_this_machine_split_its_cores_by_the_pool_limit(dagster_instance):
    import os

    from dagster_project.resources.compute import ComputeResource

    cores = len(os.sched_getaffinity(0))
    compute = ComputeResource()
    assert pool_limit(dagster_instance) == (1, True)
    assert compute.step_threads(dagster_instance) is None  # one model step at a time: torch's default
    set_pool_limit(dagster_instance, 2)
    assert compute.step_threads(dagster_instance) == max(1, cores // 2)
    set_pool_limit(dagster_instance, 4 * cores)
    assert compute.step_threads(dagster_instance) == 1  # never zero
    assert ComputeResource(cpu_threads=3).step_threads(dagster_instance) == 3  # the user's choice wins
