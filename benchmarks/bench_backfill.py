"""A backfill of one model × every recipe: parallel (pool limit N) vs serial (pool limit 1).

    python benchmarks/bench_backfill.py [--model demo-llama] [--recipes a,b] [--limit 2]

Setup (not timed): a fresh DMC_VAR_DIR / DAGSTER_HOME, the demo model's base_model and
calibration_dataset, and a real `dagster-daemon` over the project's workspace (backfill daemon,
queued runs, run workers as processes). Then the same asset backfill (compressed_model for every
recipe of the model in models.yaml) twice, variant folders removed before each: with the
`model_compute` pool limit at 1 (the serial sum: one variant after another, each in its own run)
and at N. The wall time of each is from its first run's creation to its last run's end: what the
pool's parallelism changes. The daemon's ticks come on top (it picks a requested backfill up, and
marks it complete, on its next tick: 0-30 s each, at random): printed, not counted. Prints both wall
times, each run's timeline and the ratio parallel / serial (goal <= 0.8 with N = 2 on 2
cores: the recipes are single-threaded in places, so two at once use the second core).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, fresh_state, report

GOAL = 0.8


def wait_for(instance, backfill_id: str, daemon, timeout: float = 1800) -> float:
    from dagster._core.execution.backfill import BulkActionStatus

    deadline = time.monotonic() + timeout
    while True:
        status = instance.get_backfill(backfill_id).status
        if status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING):
            if status != BulkActionStatus.COMPLETED_SUCCESS:
                raise SystemExit(f"backfill {backfill_id} ended {status.value}")
            return time.monotonic()
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"daemon exited or backfill {backfill_id} still {status.value}")
        time.sleep(0.5)


def timeline(instance, backfill_id: str) -> tuple[float, float]:
    """Prints when each run of the backfill was created, started and ended, and its steps' windows
    (seconds from the first run's creation); returns (first run created, last run ended), epoch s."""
    from dagster import RunsFilter

    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    if not runs:
        raise SystemExit(f"backfill {backfill_id} made no runs")
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(
        filters=RunsFilter(run_ids=[run.run_id for run in runs]))}
    t0 = min(rec.create_timestamp.timestamp() for rec in records.values())
    for run in sorted(runs, key=lambda r: records[r.run_id].create_timestamp):
        rec = records[run.run_id]
        stats = instance.get_run_stats(run.run_id)
        steps = ", ".join(f"{s.step_key} {s.start_time - t0:.0f}-{s.end_time - t0:.0f}"
                          for s in instance.get_run_step_stats(run.run_id) if s.start_time and s.end_time)
        print(f"    run {run.run_id[:8]} {run.tags.get('dagster/partition', '')}: created "
              f"{rec.create_timestamp.timestamp() - t0:.0f}, started {(stats.start_time or t0) - t0:.0f}, "
              f"ended {(stats.end_time or t0) - t0:.0f}; {steps}")
    return t0, max(instance.get_run_stats(run.run_id).end_time or 0 for run in runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo-llama")
    p.add_argument("--recipes", default="", help="comma-separated; default: the model's recipes in models.yaml")
    p.add_argument("--limit", type=int, default=2, help="model_compute pool limit of the parallel backfill")
    args = p.parse_args(argv)
    var = fresh_state("backfill")
    home = Path(os.environ["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nconcurrency:\n  runs:\n"
                                       "    max_concurrent_runs: 8\n  pools:\n    default_limit: 1\n")

    from dagster import DagsterInstance, materialize

    from dagster_project import definitions as d
    from dagster_project.automation.backfills import launch_backfill, release_partitions
    from dagster_project.automation.pools import set_pool_limit
    from dagster_project.models.catalog import resolve_model
    from dagster_project.artifacts import ArtifactStore

    recipes = [r for r in args.recipes.split(",") if r] or list(resolve_model(args.model).recipes)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("models", [args.model])
    instance.add_dynamic_partitions("recipes", recipes)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    assert materialize([d.base_model, d.calibration_dataset], partition_key=args.model, instance=instance,
                       resources=d.defs.resources, run_config=quiet).success
    layout = ArtifactStore.from_env().layout()
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run",
                               "-w", str(ROOT / "workspace.yaml")], cwd=ROOT, start_new_session=True,
                              stdout=(var / "daemon.log").open("w"), stderr=subprocess.STDOUT)
    walls = {}
    try:
        for limit in (1, args.limit):
            set_pool_limit(instance, limit)
            for r in recipes:
                shutil.rmtree(layout.variant_dir(args.model, r), ignore_errors=True)  # a real recompression
            started, launched_at = time.monotonic(), time.time()
            backfill_id = launch_backfill(instance, d.defs.get_repository_def().asset_graph,
                                          release_partitions(args.model, recipes, with_base=False),
                                          tags={"dmc/trigger": "bench"}, title=f"bench, pool limit {limit}")
            marked_done = wait_for(instance, backfill_id, daemon) - started
            first_created, last_ended = timeline(instance, backfill_id)
            walls[limit] = last_ended - first_created
            print(f"  pool limit {limit}: {len(recipes)} variants: runs {walls[limit]:.1f} s from the first one "
                  f"created to the last one ended; {last_ended - launched_at:.1f} s from the request (the daemon "
                  f"picks a backfill up on its next tick), marked complete after {marked_done:.1f} s", flush=True)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    serial, parallel = walls[1], walls[args.limit]
    ratio = parallel / serial
    print(f"backfill of {args.model} x {', '.join(recipes)}:")
    print(f"  serial (pool limit 1):          {serial:.1f} s")
    print(f"  parallel (pool limit {args.limit}):        {parallel:.1f} s")
    print(f"  ratio {ratio:.3f} (goal <= {GOAL}): speed-up {serial / parallel:.2f}x")
    report(f"backfill: {len(recipes)} recipes, pool {args.limit} vs 1", f"{args.model} x {', '.join(recipes)}",
           f"{parallel:.1f} s vs {serial:.1f} s", f"<= {GOAL}", ratio, ratio <= GOAL)
    shutil.rmtree(var.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
