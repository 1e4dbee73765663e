"""Speed goals that used to be wall-clock asserts inside tests (tests now check behaviour only).

    python benchmarks/bench_test_goals.py [--partitions 50]

One RESULT line per goal: measured seconds / goal seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import fresh_state, report


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def goal(name: str, inputs: str, seconds: float, limit: float) -> None:
    report(name, inputs, f"{seconds:.3f} s", f"<= {limit} s", seconds / limit, seconds <= limit)


def bench_recipe_validation() -> None:
    from dagster_project.compression.oneshot_runner import compress
    from dagster_project.compression.recipes import RecipeError, parse_user_recipe, resolve_builtin

    def refuse_all():
        for text in ("stage: [unclosed", "s:\n  g_modifiers:\n    MagicModifier: {}\n", "s: {}\n"):
            try:
                parse_user_recipe("x", text)
            except RecipeError:
                pass
        try:  # calibrated recipe without data: refused before any weights load
            compress(Path("/nonexistent"), resolve_builtin("w4a16-gptq", "LlamaForCausalLM"), Path("/tmp/never"))
        except RecipeError:
            pass

    _, seconds = timed(refuse_all)
    goal("bad recipes refused before loading", "3 bad YAMLs + GPTQ without data", seconds, 1.0)


def bench_hub_model_info() -> None:
    from huggingface_hub import HfApi

    from tests.fakes import HubServer, hub_client_online

    var = fresh_state("hub")
    with HubServer(var / "hub") as hub, hub_client_online():
        for i in range(200):
            hub.add_model(f"bulk/m{i:03d}", {"config.json": "{}"})
        api = HfApi(endpoint=hub.url)
        api.model_info("bulk/m000")  # warm the connection
        _, seconds = timed(lambda: [api.model_info(f"bulk/m{i:03d}").sha for i in range(200)])
    goal("loopback Hub: 200 model_info calls", "200 repos", seconds, 2.0)


def bench_publish_1000() -> None:
    from dagster_project.registry import VariantRecord, open_registry

    var = fresh_state("publish")
    reg = open_registry(f"sqlite:///{var / 'registry.sqlite'}")
    records = [VariantRecord(model_name=f"base-{i % 25}", version_name=f"v-{i:012x}", uri=f"pvc://models/{i}",
                             properties={"recipe": "w4a16-rtn"}, source_id=f"run-{i}") for i in range(1000)]
    try:
        _, seconds = timed(lambda: [reg.publish(r) for r in records])
    finally:
        reg.close()
    goal("LocalRegistry: publish 1,000 versions", "SQLite", seconds, 120.0)


def bench_cached_demo_model() -> None:
    from dagster_project.demo.model import build_demo_model

    build_demo_model()  # trains once per machine; the goal is the cached lookup
    _, seconds = timed(build_demo_model)
    goal("demo model: cached build", "machine cache hit", seconds, 5.0)


def bench_backfill_queries(partitions: int) -> None:
    import yaml
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, RunsFilter, materialize

    from dagster_project.demo.model import build_demo_model

    demo = Path(build_demo_model().path)
    var = fresh_state("backfill")
    keys = [f"copy-{i:02d}" for i in range(partitions)]
    entries = []
    for k in keys:
        folder = var / "models-src" / k
        folder.mkdir(parents=True)
        for f in demo.iterdir():
            if f.is_file():
                (folder / f.name).symlink_to(f)
        (folder / "generation_marker.txt").write_text(k)
        entries.append({"key": k, "source": "local", "path": str(folder)})
    models_file = var / "models.yaml"
    models_file.write_text(yaml.safe_dump({"models": entries}))
    import os

    os.environ["DMC_MODELS_FILE"] = str(models_file)
    from dagster_project import definitions as d

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("models", keys)
        for k in keys:
            materialize([d.base_model], partition_key=k, instance=instance, resources=d.defs.resources,
                        run_config=quiet, tags={"dagster/backfill": "bench"})
        times = {
            "runs": timed(lambda: instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": "bench"})))[1],
            "partitions": timed(lambda: instance.get_materialized_partitions(AssetKey("base_model")))[1],
            "records": timed(lambda: instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey("base_model")), limit=100))[1],
            "one partition": timed(lambda: instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey("base_model"), asset_partitions=[keys[-1]]), limit=1))[1],
        }
    slowest = max(times, key=times.get)
    print(json.dumps({k: round(v, 4) for k, v in times.items()}))
    goal("instance queries after a backfill (slowest)", f"{partitions} base_model partitions, {slowest}",
         times[slowest], 1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=50)
    args = parser.parse_args()
    bench_recipe_validation()
    bench_hub_model_info()
    bench_publish_1000()
    bench_cached_demo_model()
    bench_backfill_queries(args.partitions)


if __name__ == "__main__":
    main()
