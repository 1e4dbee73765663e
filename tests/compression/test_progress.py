"""A GPTQ compression of the demo model, run through the real definitions, shows per-layer progress in
the run's event log (what the Dagster UI shows for the step)."""

import json

import pytest
from dagster import MultiPartitionKey, materialize


@pytest.mark.slow
def test_gptq_run_logs_every_layer(demo_model, project_state, dagster_instance):
    from dagster_project import definitions as d

    instance, resources = dagster_instance, d.defs.resources
    instance.add_dynamic_partitions("models", ["demo-llama"])
    instance.add_dynamic_partitions("recipes", ["w4a16-gptq"])
    assert materialize([d.base_model, d.calibration_dataset], partition_key="demo-llama", instance=instance,
                       resources=resources).success
    run = materialize([d.compressed_model], partition_key=MultiPartitionKey({"model": "demo-llama", "recipe": "w4a16-gptq"}),
                      instance=instance, resources=resources)
    assert run.success
    messages = [entry.user_message for entry in instance.all_logs(run.run_id) if entry.dagster_event is None]

    layers = json.loads((demo_model / "config.json").read_text())["num_hidden_layers"]
    for stage in ("calibration", "GPTQ"):
        lines = [m for m in messages if m.startswith(f"{stage}: layer ")]
        seen = [m.split(",")[0] for m in lines]
        assert seen == [f"{stage}: layer {i}/{layers} (model.layers.{i - 1})" for i in range(1, layers + 1)], messages
    quantized = run.get_asset_materialization_events()[0].materialization.metadata["quantized_modules"].value
    modules = [m for m in messages if m.startswith("GPTQ: ") and "modules done" in m]
    assert len(modules) == 1 and modules[0].startswith(f"GPTQ: {quantized} modules done"), messages
    # Readable: about two lines per layer, not a line per module or per batch.
    assert len(messages) < 4 * layers + 20, messages
