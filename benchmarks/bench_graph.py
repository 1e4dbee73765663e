"""The whole demo graph through Dagster vs the sum of the bare tools doing the same work (goal <= 1.15).

    python benchmarks/bench_graph.py [--model demo-llama] [--recipes a,b]

Setup (not timed): the demo model (cached), a fresh DMC_VAR_DIR / DAGSTER_HOME.

- bare (first, so both sides find the libraries imported and the files in the page cache): the
  script a user would write without Dagster — the calibration set tokenized with the same chat
  template, `lm_eval.simple_evaluate` on the base, then per recipe `llmcompressor.oneshot` +
  `save_pretrained(save_compressed=True)` and `simple_evaluate` on the variant, each evaluation
  with the same generation-speed probe the report makes;
- dagster: `demo_run.materialize_variant_graph` — every asset, check, report, plot and registry
  entry of `make demo`, each stage in its own Dagster run.

Prints both wall times and the ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import fresh_state, report

GOAL = 1.15


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo-llama")
    p.add_argument("--recipes", default="", help="comma-separated; default: the model's recipes in models.yaml")
    args = p.parse_args(argv)
    var = fresh_state("graph")

    import lm_eval
    from bench_compression import bare_oneshot
    from dagster import DagsterInstance
    from lm_eval.tasks import TaskManager

    from dagster_project.models.catalog import resolve_model
    from dagster_project.compression.catalog import resolve_recipe
    from dagster_project.demo.model import build_demo_model
    from dagster_project.demo_run import materialize_variant_graph
    from dagster_project.evaluation.speed import measure_generation
    from dagster_project.evaluation.tasks import resolve_task_set, write_offline_tasks

    source = resolve_model(args.model)
    recipes = [r for r in args.recipes.split(",") if r] or list(source.recipes)
    base_dir = Path(build_demo_model().path)
    task_set = resolve_task_set(source.task_set)
    tmp = Path(tempfile.mkdtemp(prefix="dmc-bench-graph-bare-"))
    task_dir = write_offline_tasks(tmp / "tasks")

    def evaluate(path: Path) -> None:
        measure_generation(path, device="cpu")
        lm_eval.simple_evaluate(
            model="hf", model_args=f"pretrained={path},dtype=float32", tasks=[t.name for t in task_set.tasks],
            batch_size=8, device="cpu", task_manager=TaskManager(include_path=[str(task_dir)], include_defaults=False),
            log_samples=False, random_seed=0, numpy_random_seed=1234, torch_random_seed=1234,
            fewshot_random_seed=1234)

    started = time.perf_counter()
    calibration = bare_calibration(base_dir, tmp / "calibration")
    evaluate(base_dir)
    for recipe in recipes:
        resolved = resolve_recipe(var / "recipes", recipe, "LlamaForCausalLM")
        out = tmp / recipe
        bare_oneshot(base_dir, resolved.yaml_text, calibration if resolved.calibrated else None, out)
        evaluate(out)
    bare = time.perf_counter() - started
    print(f"  bare tools: {bare:.1f} s", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        outcome = materialize_variant_graph(instance, args.model, recipes, log=lambda m: print("  " + m, flush=True))
    graph = time.perf_counter() - started
    ratio = graph / bare
    print(f"whole graph of {args.model} x {', '.join(recipes)} ({json.dumps(outcome)}):")
    print(f"  through Dagster (make demo's graph): {graph:.1f} s")
    print(f"  bare tools, same work:               {bare:.1f} s")
    print(f"  ratio {ratio:.3f} (goal <= {GOAL:.2f}): {'OK' if ratio <= GOAL else 'OVER'}")
    report("whole demo graph vs bare tools", f"{args.model} x {len(recipes)} recipes",
           f"{graph:.1f} s vs {bare:.1f} s", f"<= {GOAL}", ratio, ratio <= GOAL)
    shutil.rmtree(var.parent, ignore_errors=True)
    return 0


def bare_calibration(base_dir: Path, out: Path, samples: int = 64, max_len: int = 256) -> Path:
    """The demo's calibration set, tokenized as a user would: chat template, truncation, saved to disk."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from dagster_project.settings import PACKAGE_DATA

    tok = AutoTokenizer.from_pretrained(base_dir)
    ds = load_dataset("json", data_files=str(PACKAGE_DATA / "calibration" / "jargon-calibration.jsonl"),
                      split="train").shuffle(seed=42).select(range(samples))

    def encode(row):
        text = tok.apply_chat_template([{"role": "user", "content": row["text"]}], tokenize=False)
        return tok(text, truncation=True, max_length=max_len, add_special_tokens=False)

    ds.map(encode, remove_columns=ds.column_names).save_to_disk(str(out))
    return out


if __name__ == "__main__":
    sys.exit(main())
