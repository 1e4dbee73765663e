"""Evaluation through Dagster vs a bare `lm_eval.simple_evaluate`, same model, tasks and process.

    python benchmarks/bench_eval.py [--recipe w4a16-rtn] [--limit 0] [--repeats 2]

Setup (not timed): a fresh DMC_VAR_DIR / DAGSTER_HOME, the demo model, its base evaluation and
one compressed variant. Then, alternating, `repeats` times each:
- dagster: `materialize([evaluation_report])` for the variant with its evaluation.json removed
  (forces re-evaluation: speed probe + lm-eval + divergence from the base + recovery + report +
  plot, plus Dagster's run);
- bare: `lm_eval.simple_evaluate(model="hf", ...)` on the same variant folder and task configs,
  alone and with the same speed probe and `divergence_from_base` (plain torch) beside it.
Prints the best time of each and the ratio (goal <= 1.10). `--limit 0` evaluates every item.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL = 1.10


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo-llama")
    p.add_argument("--recipe", default="w4a16-rtn")
    p.add_argument("--limit", type=int, default=0, help="items per task, both sides (0 = all, the demo evaluation)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="dmc-bench-eval-"))
    home = tmp / "var" / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ.update(DMC_VAR_DIR=str(tmp / "var"), DAGSTER_HOME=str(home), HF_HUB_OFFLINE="1",
                      HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                      TQDM_DISABLE="1")
    for k in ("DMC_ARTIFACT_ROOT", "DMC_REGISTRY_URL", "DMC_EVAL_LIMIT"):
        os.environ.pop(k, None)

    import lm_eval
    from dagster import DagsterInstance, MultiPartitionKey, materialize
    from lm_eval.tasks import TaskManager

    from dagster_project import definitions as d
    from dagster_project.models.catalog import resolve_model
    from dagster_project.evaluation.approval import EVALUATION_FILENAME
    from dagster_project.evaluation.tasks import resolve_task_set, write_offline_tasks
    from dagster_project.partitions import model_partitions, recipe_partitions
    from dagster_project.artifacts import ArtifactStore

    limit = args.limit or None
    loggers = {"console": {"config": {"log_level": "WARNING"}}}
    eval_cfg = {"config": {"limit": limit}} if limit else {"config": {}}
    key = MultiPartitionKey({"model": args.model, "recipe": args.recipe})
    layout = ArtifactStore.from_env().layout()
    vdir = layout.variant_dir(args.model, args.recipe)
    task_set = resolve_task_set(resolve_model(args.model).task_set)

    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(model_partitions.name, [args.model])
        instance.add_dynamic_partitions(recipe_partitions.name, [args.recipe])
        t0 = time.perf_counter()
        materialize([d.base_model, d.calibration_dataset, d.base_evaluation], partition_key=args.model,
                    instance=instance, resources=d.defs.resources,
                    run_config={"loggers": loggers, "ops": {"base_evaluation": eval_cfg}})
        materialize([d.compressed_model], partition_key=key, instance=instance, resources=d.defs.resources,
                    run_config={"loggers": loggers})
        print(f"setup (base model, base evaluation, {args.recipe}): {time.perf_counter() - t0:.1f} s")

        def through_dagster() -> float:
            (vdir / EVALUATION_FILENAME).unlink(missing_ok=True)
            t = time.perf_counter()
            res = materialize([d.evaluation_report], partition_key=key, instance=instance,
                              resources=d.defs.resources,
                              run_config={"loggers": loggers, "ops": {"evaluation_report": eval_cfg}})
            assert res.success
            elapsed = time.perf_counter() - t
            inner["lm_eval"].append(json.loads((vdir / EVALUATION_FILENAME).read_text())["eval"]["eval_seconds"])
            return elapsed

        task_dir = write_offline_tasks(tmp / "tasks")
        base_dir = json.loads(layout.base_manifest(args.model).read_text())["path"]
        inner: dict[str, list[float]] = {"lm_eval": []}

        def bare(with_speed: bool = False) -> float:
            t = time.perf_counter()
            if with_speed:  # the same generation-speed probe and divergence the report makes, no Dagster around
                from dagster_project.evaluation.divergence import divergence_from_base, heldout_texts
                from dagster_project.evaluation.speed import measure_generation

                measure_generation(vdir, device="cpu")
                divergence_from_base(base_dir, vdir, heldout_texts(limit))
            manager = TaskManager(include_path=[str(task_dir)], include_defaults=not task_set.offline)
            lm_eval.simple_evaluate(
                model="hf", model_args=f"pretrained={vdir},dtype=float32", tasks=[t.name for t in task_set.tasks],
                batch_size=8, device="cpu", limit=limit, task_manager=manager, log_samples=False,
                random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234,
            )
            return time.perf_counter() - t

        times: dict[str, list[float]] = {"dagster": [], "bare": [], "bare+speed": []}
        bare(with_speed=True)  # warm-up: imports, dataset cache
        for i in range(args.repeats):
            times["bare"].append(bare())
            times["bare+speed"].append(bare(with_speed=True))
            times["dagster"].append(through_dagster())
            print(f"  repeat {i + 1}: bare {times['bare'][-1]:.2f} s, bare+speed {times['bare+speed'][-1]:.2f} s, "
                  f"dagster {times['dagster'][-1]:.2f} s (its evaluate_hf: {inner['lm_eval'][-1]:.2f} s)")

    best_d, best_b, best_bs = min(times["dagster"]), min(times["bare"]), min(times["bare+speed"])
    # The report does three things: lm-eval scores, a generation-speed probe and the divergence from
    # the base. Dagster's overhead is the asset against the same three done bare ("bare+speed");
    # lm-eval alone is shown beside it.
    ratio = best_d / best_bs
    print(f"evaluation of {args.model} x {args.recipe} on {task_set.name} (limit {limit or 'all'}):")
    print(f"  through Dagster (evaluation_report):          {best_d:.2f} s")
    print(f"  bare simple_evaluate + speed probe + KL:      {best_bs:.2f} s")
    print(f"  bare simple_evaluate alone:                   {best_b:.2f} s (asset / this = {best_d / best_b:.3f})")
    print(f"  ratio {ratio:.3f} (goal <= {GOAL:.2f}): {'OK' if ratio <= GOAL else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
