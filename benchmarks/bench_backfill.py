"""A backfill of one model × every recipe: parallel (pool limit N) vs serial (pool limit 1).

    python benchmarks/bench_backfill.py [--model demo-llama] [--recipes a,b] [--limit 2]

Setup (not timed): a fresh DMC_VAR_DIR / DAGSTER_HOME, the demo model's base_model and
calibration_dataset, and a real `dagster-daemon` over the project's workspace (backfill daemon,
queued runs, run workers as processes). Then the same asset backfill (compressed_model for every
recipe of the model in models.yaml) twice, variant folders removed before each: with the
`model_compute` pool limit at 1 (the serial sum: one variant after another, each in its own run)
and at N. Prints both wall times and the ratio parallel / serial (goal <= 0.8 with N = 2 on 2
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
            started = time.monotonic()
            backfill_id = launch_backfill(instance, d.defs.get_repository_def().asset_graph,
                                          release_partitions(args.model, recipes, with_base=False),
                                          tags={"dmc/trigger": "bench"}, title=f"bench, pool limit {limit}")
            walls[limit] = wait_for(instance, backfill_id, daemon) - started
            print(f"  pool limit {limit}: {len(recipes)} variants in {walls[limit]:.1f} s", flush=True)
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
