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

from dagster_project.settings import PROJECT_ROOT, load_settings, var_dir


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(var_dir() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():  # without it Dagster warns on every command
        cfg.write_text((PROJECT_ROOT / "deploy" / "dagster.local.yaml").read_text())
    return home


def materialize_variant_graph(instance, model: str, recipes: list[str], log=print,
                              walls: dict[str, float] | None = None) -> dict:
    """Materialize base → calibration → variants → evaluation → publication through the code
    location's own asset job (as the UI's "Materialize" does, checks included); returns per-recipe
    success. `walls`, if given, receives each run's wall time in seconds ("base", each recipe, "comparison")."""
    from dagster import AssetKey, MultiPartitionKey

    from dagster_project import definitions as d
    from dagster_project.partitions import model_partitions, recipe_partitions

    instance.add_dynamic_partitions(model_partitions.name, [model])
    instance.add_dynamic_partitions(recipe_partitions.name, recipes)
    job = d.defs.resolve_implicit_global_asset_job_def()
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    walls = walls if walls is not None else {}

    def run(name: str, assets: list[str], partition_key: str, **kw):
        t0 = time.perf_counter()
        res = job.execute_in_process(instance=instance, partition_key=partition_key, run_config=quiet,
                                     asset_selection=[AssetKey(a) for a in assets], **kw)
        walls[name] = time.perf_counter() - t0
        return res

    started = time.perf_counter()
    from dagster._core.definitions.observe import observe  # not re-exported; the UI's "Observe" does the same

    observe([d.recipe], instance=instance, resources=d.defs.resources)
    run("base", ["base_model", "calibration_dataset", "base_evaluation"], model)
    log(f"[{time.perf_counter() - started:6.1f} s] base model, calibration data and base evaluation done")
    outcome = {}
    for recipe in recipes:
        key = MultiPartitionKey({"model": model, "recipe": recipe})
        res = run(recipe, ["compressed_model", "evaluation_report", "hub_release", "registry_entry"], str(key),
                  raise_on_error=False)
        outcome[recipe] = res.success
        log(f"[{time.perf_counter() - started:6.1f} s] {recipe}: "
            f"{'approved and registered' if res.success else 'not approved (or failed): not published'}")
    run("comparison", ["model_comparison"], model)
    return outcome


SHOWN_EXTRA = ("bits_per_byte",)  # shown beside the primary metrics; not part of the gate
SHORT = {("dmc_jargon_ppl", "token_perplexity"): "token ppl", ("dmc_jargon_ppl", "bits_per_byte"): "bits/byte",
         ("dmc_jargon_lastword", "acc"): "next-word acc"}
# Enough digits that close schemes differ in print (the values themselves are measured, not rounded).
FORMATS = {"token_perplexity": ".2f", "bits_per_byte": ".4f", "acc": ".4f"}
DIVERGENCE_HEADS = ("KL nats/tok", "top-1 agree %")


def _cell(value: float | None, metric: str, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>{width}{FORMATS.get(metric, '.4g')}}"


def _divergence_cells(divergence: dict | None) -> list[str]:
    # KL(base ‖ variant) and top-1 agreement with the base: measured per variant, by definition 0 / 100 for the base.
    if not divergence:
        return [f"{'-':>{len(h)}}" for h in DIVERGENCE_HEADS]
    return [f"{divergence['kl_mean']:>{len(DIVERGENCE_HEADS[0])}.3e}",
            f"{100 * divergence['top1_agreement']:>{len(DIVERGENCE_HEADS[1])}.2f}"]


def comparison_table(model: str, reports: dict[str, dict | None], approved: set[tuple[str, str]]) -> str:
    """One row for the base and one per variant: size, each primary metric (+ bits per byte), the
    divergence from the base (KL, top-1 agreement), average recovery against the gate, and whether
    the variant was approved and registered."""
    done = [r for r in reports.values() if r]
    if not done:
        return "no evaluation finished: see the runs in the UI"
    columns = [(x["task"], x["metric"]) for x in done[0]["recoveries"] if x["primary"] or x["metric"] in SHOWN_EXTRA]
    heads = [SHORT.get((t, m), f"{t}/{m}") for t, m in columns]
    width = max(9, *(len(h) for h in heads))
    lines = [f"{'model':<12} {'recipe':<20} {'size MB':>8} {'ratio':>6} "
             + " ".join(f"{h:>{width}}" for h in heads) + " " + " ".join(DIVERGENCE_HEADS)
             + f" {'recovery %':>10} {'gate %':>6}  approved"]
    first = done[0]
    base = {(x["task"], x["metric"]): x["base"] for x in first["recoveries"]}
    lines.append(f"{model:<12} {'(base)':<20} {first['base_size_bytes'] / 2**20:>8.2f} {1:>5.2f}x "
                 + " ".join(_cell(base.get(c), c[1], width) for c in columns) + " "
                 + " ".join(_divergence_cells(None)))
    for recipe, r in reports.items():
        if r is None:
            lines.append(f"{model:<12} {recipe:<20} {'-':>8} (no evaluation: see the run in the UI)")
            continue
        values = {(x["task"], x["metric"]): x["variant"] for x in r["recoveries"]}
        avg = r.get("average_recovery")
        lines.append(f"{model:<12} {recipe:<20} {r['size_bytes'] / 2**20:>8.2f} {r['compression_ratio']:>5.2f}x "
                     + " ".join(_cell(values.get(c), c[1], width) for c in columns) + " "
                     + " ".join(_divergence_cells(r.get("divergence")))
                     + f" {avg if avg is not None else float('nan'):>10.2f} {r['threshold']:>6g}  "
                     + ("yes" if (model, recipe) in approved else "no"))
    return "\n".join(lines)


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
    # Read once when torch loads OpenMP (below, in the steps): idle threads sleep instead of spinning.
    # On a 2-core machine shared with other work, spinning threads steal the core the busy one
    # needs: a training step took 5.4-6.6 s spinning vs 1.96 s passive at load 3-4 (11-13.5 s vs
    # 4.7-5.6 s at load 11-26), an evaluation forward pass 1.0 s vs 0.27 s. Set OMP_WAIT_POLICY to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from dagster import DagsterInstance

    from dagster_project.models.catalog import resolve_model
    from dagster_project.evaluation.approval import EVALUATION_FILENAME
    from dagster_project.registry import open_registry
    from dagster_project.artifacts import ArtifactStore

    source = resolve_model(args.model)
    recipes = [r for r in args.recipes.split(",") if r] or list(source.recipes) or ["w4a16-rtn", "w4a16-gptq"]
    print(f"demo: {args.model} × {', '.join(recipes)}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    with DagsterInstance.get() as instance:
        materialize_variant_graph(instance, args.model, recipes)

    layout = ArtifactStore.from_env().layout()
    # The registry the graph published to ($DMC_REGISTRY_URL, else the local file), not always the local one.
    with open_registry(load_settings().registry.url) as registry:
        approved = {(v.properties.get("base_model"), v.properties.get("recipe")) for v in registry.list_versions()}
    reports = {}
    for recipe in recipes:
        path = layout.variant_dir(args.model, recipe) / EVALUATION_FILENAME
        reports[recipe] = json.loads(path.read_text()) if path.is_file() else None
    print()
    print(comparison_table(args.model, reports, approved))
    print("\nLook approved models up with:  .venv/bin/dmc models list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
