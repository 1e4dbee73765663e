"""Backfills: one model × its recipes through Dagster's asset backfill machinery, executed by a real
`dagster-daemon` (backfill daemon → queued runs → run workers), the variants side by side up to
the `model_compute` pool limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType

from dagster_project.partitions import variant_partitions

MODEL = "demo-llama"
RECIPES = ["w4a16-rtn", "w8a16-rtn"]  # data-free: seconds on CPU
ROOT = Path(__file__).resolve().parents[2]


def slice_for(instance, *, model: str | None = None, recipe: str | None = None) -> list[str]:
    """The partitions a backfill of one model (all recipes) or one recipe (all models) covers."""
    from dagster._core.definitions.partitions.context import partition_loading_context

    with partition_loading_context(dynamic_partitions_store=instance):
        keys = variant_partitions.get_partition_keys()
    return sorted(k for k in keys
                  if (model is None or k.keys_by_dimension["model"] == model)
                  and (recipe is None or k.keys_by_dimension["recipe"] == recipe))


def test_release_partitions_cover_one_model_across_recipes(dagster_instance):
    from dagster_project.automation.backfills import release_partitions

    inst = dagster_instance
    inst.add_dynamic_partitions("models", [MODEL, "acme--other"])
    inst.add_dynamic_partitions("recipes", RECIPES)
    assert slice_for(inst, recipe="w4a16-rtn") == ["acme--other|w4a16-rtn", f"{MODEL}|w4a16-rtn"]
    keys = slice_for(inst, model=MODEL)
    assert release_partitions(MODEL, RECIPES, with_base=False) == {"compressed_model": [str(k) for k in keys]}
    assert set(release_partitions(MODEL, RECIPES, with_base=True)) == {
        "base_model", "calibration_dataset", "base_evaluation", "compressed_model"}


def step_windows(instance, run_id: str, step: str) -> tuple[float, float] | None:
    """(start, end) of one step in one run, from the run's event log."""
    start = end = None
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        if entry.step_key != step:
            continue
        if entry.dagster_event.event_type == DagsterEventType.STEP_START:
            start = entry.timestamp
        else:
            end = entry.timestamp
    return (start, end) if start is not None and end is not None else None


@pytest.fixture
def daemon(project_state):
    """A real dagster-daemon over the project's workspace, pool limit 2; stopped with its children."""
    home = Path(os.environ["DAGSTER_HOME"])
    cfg = home / "dagster.yaml"
    cfg.write_text(cfg.read_text().replace("default_limit: 1", "default_limit: 2"))
    assert "default_limit: 2" in cfg.read_text()
    log = (project_state / "daemon.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.mark.slow
def test_backfill_runs_recipes_in_parallel(demo_model, dagster_instance, project_state, daemon):
    from dagster import materialize
    from dagster._core.execution.backfill import BulkActionStatus

    from dagster_project import definitions as d
    from dagster_project.automation.backfills import launch_backfill, release_partitions

    inst = dagster_instance
    inst.add_dynamic_partitions("models", [MODEL])
    inst.add_dynamic_partitions("recipes", RECIPES)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    assert materialize([d.base_model, d.calibration_dataset], partition_key=MODEL, instance=inst,
                       resources=d.defs.resources, run_config=quiet).success

    backfill_id = launch_backfill(inst, d.defs.get_repository_def().asset_graph,
                                  release_partitions(MODEL, RECIPES, with_base=False),
                                  tags={"dmc/trigger": "test"}, title="test")
    deadline = time.monotonic() + 900
    while True:
        status = inst.get_backfill(backfill_id).status
        if status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING):
            break
        assert daemon.poll() is None, (project_state / "daemon.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"backfill still {status}: " + (project_state / "daemon.log").read_text()[-3000:]
        time.sleep(2)
    assert status == BulkActionStatus.COMPLETED_SUCCESS, (project_state / "daemon.log").read_text()[-3000:]

    runs = [r for r in inst.get_runs() if r.tags.get("dagster/backfill") == backfill_id]
    assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(f"{MODEL}|{r}" for r in RECIPES)
    assert inst.get_materialized_partitions(AssetKey("compressed_model")) == {f"{MODEL}|{r}" for r in RECIPES}
    windows = [step_windows(inst, r.run_id, "compressed_model") for r in runs]
    assert all(windows), windows
    # Two runs, two compressed_model steps, and the steps' execution windows overlap: in parallel.
    assert max(w[0] for w in windows) < min(w[1] for w in windows), windows
