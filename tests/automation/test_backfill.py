"""Backfills: one model across recipes (or one recipe across models) — the multi-partition slices
the UI's "Materialize → partitions" dialog selects, executed here per partition in process."""

from __future__ import annotations

from dagster import AssetKey, MultiPartitionKey

from dagster_project.partitions import variant_partitions

MODEL = "demo-llama"
RECIPES = ["w4a16-rtn", "w8a16-rtn"]  # data-free: seconds on CPU


def slice_for(instance, *, model: str | None = None, recipe: str | None = None) -> list[str]:
    """The partitions a backfill of one model (all recipes) or one recipe (all models) covers."""
    from dagster._core.definitions.partitions.context import partition_loading_context

    with partition_loading_context(dynamic_partitions_store=instance):
        keys = variant_partitions.get_partition_keys()
    return sorted(k for k in keys
                  if (model is None or k.keys_by_dimension["model"] == model)
                  and (recipe is None or k.keys_by_dimension["recipe"] == recipe))


def test_backfill_one_model_across_two_recipes(demo_model, dagster_instance):
    from dagster import materialize

    from dagster_project import definitions as d

    inst = dagster_instance
    inst.add_dynamic_partitions("models", [MODEL, "acme--other"])
    inst.add_dynamic_partitions("recipes", RECIPES)
    assert slice_for(inst, recipe="w4a16-rtn") == ["acme--other|w4a16-rtn", f"{MODEL}|w4a16-rtn"]
    keys = slice_for(inst, model=MODEL)
    assert keys == [f"{MODEL}|{r}" for r in RECIPES]

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    assert materialize([d.base_model, d.calibration_dataset], partition_key=MODEL, instance=inst,
                       resources=d.defs.resources, run_config=quiet).success
    job = d.defs.resolve_job_def("variant_job")
    backfill_id = "bf-demo-llama"
    for key in keys:
        res = job.execute_in_process(partition_key=key, instance=inst, run_config=quiet,
                                     tags={"dagster/backfill": backfill_id})
        assert res.success, key
    assert inst.get_materialized_partitions(AssetKey("compressed_model")) == set(keys)
    runs = inst.get_runs()
    backfill_runs = [r for r in runs if r.tags.get("dagster/backfill") == backfill_id]
    assert sorted(r.tags["dagster/partition"] for r in backfill_runs) == sorted(keys)
    for key in keys:
        mk = MultiPartitionKey({"model": MODEL, "recipe": key.split("|")[1]})
        rec = inst.fetch_materializations(AssetKey("compressed_model"), limit=10).records
        assert any(r.partition_key == str(mk) for r in rec)
