"""Compression through the `compressed_model` asset vs a bare `llmcompressor.oneshot` script
(goal: ratio <= 1.10).

    python benchmarks/bench_compression.py [--recipe w4a16-gptq] [--samples 512] [--repeats 3]

With 512 calibration samples (RHOAI's default count) GPTQ's bare time is well over 30 s on 2
cores, so process start and Dagster's run bookkeeping cannot hide in the noise.

Setup (not timed): a fresh DMC_VAR_DIR / DAGSTER_HOME, the demo model as base_model, its
calibration dataset. Then, alternating, `repeats` times each, in this one process (so both sides
have llmcompressor imported already — a warm-up run of each side comes first):

- asset: `materialize([compressed_model])` for demo-llama × RECIPE with the variant folder removed
  (a forced recompression: load, oneshot, save compressed, manifest, Dagster run and event log);
- bare: the script a user would write — `AutoModelForCausalLM.from_pretrained`, `oneshot(model,
  recipe=<the same YAML>, dataset=<the same tokenized calibration set>)`, `save_pretrained(...,
  save_compressed=True)` and the tokenizer.

Prints the best time of each and the ratio.
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

GOAL = 1.10


def bare_oneshot(base_dir: Path, recipe_yaml: str, calibration_dir: Path | None, out: Path) -> float:
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto", device_map="cpu")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    kwargs = {}
    if calibration_dir is not None:
        from datasets import load_from_disk

        ds = load_from_disk(str(calibration_dir))
        kwargs = dict(dataset=ds, num_calibration_samples=len(ds),
                      max_seq_length=max(len(x) for x in ds["input_ids"]), shuffle_calibration_samples=False)
    oneshot(model=model, recipe=recipe_yaml, **kwargs)
    model.save_pretrained(out, save_compressed=True)
    tokenizer.save_pretrained(out)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo-llama")
    p.add_argument("--recipe", default="w4a16-gptq")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--samples", type=int, default=512, help="calibration samples (the demo's default is 64)")
    args = p.parse_args(argv)
    var = fresh_state("compression")

    from dagster import DagsterInstance, MultiPartitionKey, materialize

    from dagster_project import definitions as d
    from dagster_project.compression.catalog import resolve_recipe
    from dagster_project.artifacts import ArtifactStore

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    t0 = time.perf_counter()
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("models", [args.model])
    instance.add_dynamic_partitions("recipes", [args.recipe])
    calibration_config = {"ops": {"calibration_dataset": {"config": {"num_samples": args.samples}}}}
    assert materialize([d.base_model, d.calibration_dataset], partition_key=args.model, instance=instance,
                       resources=d.defs.resources, run_config={**quiet, **calibration_config}).success
    layout = ArtifactStore.from_env().layout()
    base = json.loads(layout.base_manifest(args.model).read_text())
    recipe = resolve_recipe(layout.recipes_dir(), args.recipe, base["architecture"])
    calibration = json.loads(layout.calibration_manifest(args.model).read_text()) if recipe.calibrated else None
    cal_dir = Path(calibration["path"]) if calibration else None
    variant = layout.variant_dir(args.model, args.recipe)
    key = MultiPartitionKey({"model": args.model, "recipe": args.recipe})
    print(f"setup (base model, calibration: {calibration and calibration['num_samples']} samples): "
          f"{time.perf_counter() - t0:.1f} s")

    def asset_once() -> float:
        shutil.rmtree(variant, ignore_errors=True)  # forced recompression
        started = time.perf_counter()
        res = materialize([d.compressed_model], partition_key=key, instance=instance,
                          resources=d.defs.resources, run_config=quiet)
        elapsed = time.perf_counter() - started
        assert res.success
        mat = res.asset_materializations_for_node("compressed_model")[0]
        assert mat.metadata["reused_existing"].value is False
        return elapsed

    def bare_once() -> float:
        out = Path(tempfile.mkdtemp(prefix="dmc-bench-bare-"))
        try:
            return bare_oneshot(Path(base["path"]), recipe.yaml_text, cal_dir, out)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    bare_once(), asset_once()  # warm-up: imports, page cache
    times = {"asset": [], "bare": []}
    for i in range(args.repeats):
        times["bare"].append(bare_once())
        times["asset"].append(asset_once())
        print(f"  repeat {i + 1}: bare {times['bare'][-1]:.2f} s, asset {times['asset'][-1]:.2f} s")
    best_a, best_b = min(times["asset"]), min(times["bare"])
    ratio = best_a / best_b
    print(f"compression of {args.model} x {args.recipe}:")
    print(f"  through Dagster (compressed_model): {best_a:.2f} s")
    print(f"  bare llmcompressor.oneshot script:  {best_b:.2f} s")
    print(f"  ratio {ratio:.3f} (goal <= {GOAL:.2f}): {'OK' if ratio <= GOAL else 'OVER'}")
    report("compression: asset vs bare oneshot",
           f"{args.model} x {args.recipe}, {args.samples} samples, best of {args.repeats}",
           f"{best_a:.2f} s vs {best_b:.2f} s", f"<= {GOAL}", ratio, ratio <= GOAL)
    shutil.rmtree(var.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
