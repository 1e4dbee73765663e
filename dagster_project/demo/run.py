"""`make demo`: materialize the whole graph for the demo model on this machine, then list approved models.

Runs against the project-local Dagster instance ($DAGSTER_HOME, SQLite), so `make ui` shows
every run, materialization, check and plot afterwards.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from dagster_project.settings import PROJECT_ROOT, var_dir


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(var_dir() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():  # without it Dagster warns on every command
        cfg.write_text((PROJECT_ROOT / "deploy" / "dagster.local.yaml").read_text())
    return home


def materialize_variant_graph(instance, model: str, recipes: list[str], log=print) -> dict:
    """Materialize base → calibration → variants → evaluation → publication; returns per-recipe success."""
    from dagster import MultiPartitionKey, materialize

    from dagster_project import definitions as d
    from dagster_project.partitions import model_partitions, recipe_partitions

    instance.add_dynamic_partitions(model_partitions.name, [model])
    instance.add_dynamic_partitions(recipe_partitions.name, recipes)
    resources = d.defs.resources
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    checks = [d.loads_and_generates, d.recovery_meets_threshold, d.size_reduced]
    started = time.perf_counter()
    from dagster._core.definitions.observe import observe  # not re-exported; the UI's "Observe" does the same

    observe([d.recipe], instance=instance, resources=resources)
    res = materialize([d.base_model, d.calibration_dataset, d.base_evaluation], partition_key=model,
                      instance=instance, resources=resources, run_config=quiet)
    log(f"[{time.perf_counter() - started:6.1f} s] base model, calibration data and base evaluation done")
    outcome = {}
    for recipe in recipes:
        key = MultiPartitionKey({"model": model, "recipe": recipe})
        res = materialize(
            [d.compressed_model, d.evaluation_report, *checks, d.hub_release, d.registry_entry],
            partition_key=key, instance=instance, resources=resources, raise_on_error=False, run_config=quiet,
        )
        outcome[recipe] = res.success
        log(f"[{time.perf_counter() - started:6.1f} s] {recipe}: "
            f"{'approved and registered' if res.success else 'not approved (or failed): not published'}")
    materialize([d.model_comparison], partition_key=model, instance=instance, resources=resources, run_config=quiet)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="demo-llama")
    parser.add_argument("--recipes", default="", help="comma-separated; default: the model's recipes in models.yaml")
    args = parser.parse_args(argv)
    ensure_dagster_home()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # Dagster's log lines are the progress report

    from dagster import DagsterInstance

    from dagster_project.catalog import resolve_model
    from dagster_project.evaluation.approval import EVALUATION_FILENAME
    from dagster_project.registry import open_registry
    from dagster_project.resources.artifact_store import ArtifactStore
    from dagster_project.storage import layout_for

    source = resolve_model(args.model)
    recipes = [r for r in args.recipes.split(",") if r] or list(source.recipes) or ["w4a16-rtn", "w4a16-gptq"]
    print(f"demo: {args.model} × {', '.join(recipes)}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    with DagsterInstance.get() as instance:
        materialize_variant_graph(instance, args.model, recipes)

    layout = layout_for(ArtifactStore.from_env())
    approved = {(v.properties.get("base_model"), v.properties.get("recipe")) for v in open_registry().list_versions()}
    print()
    print(f"{'model':<12} {'recipe':<12} {'size MB':>8} {'ratio':>6} {'metric':<28} {'base':>9} {'variant':>9} {'recovery %':>10}  approved")
    for recipe in recipes:
        path = layout.variant_dir(args.model, recipe) / EVALUATION_FILENAME
        if not path.is_file():
            print(f"{args.model:<12} {recipe:<12} {'-':>8} (no evaluation: see the run in the UI)")
            continue
        r = json.loads(path.read_text())
        for rec in [x for x in r["recoveries"] if x["primary"]]:
            print(f"{args.model:<12} {recipe:<12} {r['size_bytes'] / 2**20:>8.2f} {r['compression_ratio']:>5.2f}x "
                  f"{rec['task'] + '/' + rec['metric']:<28} {rec['base']:>9.4g} {rec['variant']:>9.4g} "
                  f"{rec['recovery_pct']:>10.2f}  {'yes' if (args.model, recipe) in approved else 'no'}")
    print("\nLook approved models up with:  .venv/bin/dmc models list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
