"""Versions: a changed recipe or a new base revision shows the variant as stale; user recipes register
from run config (inline or path) as their own recipe partition."""

import shutil

import pytest
from dagster import MultiPartitionKey, materialize

RECIPE_V1 = "quant_stage:\n  m_modifiers:\n    QuantizationModifier: {scheme: W8A16, targets: [Linear], ignore: [lm_head]}\n"
RECIPE_V2 = "quant_stage:\n  m_modifiers:\n    QuantizationModifier: {scheme: W4A16, targets: [Linear], ignore: [lm_head]}\n"


def _status(instance, key, partition):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContextForTest

    from dagster_project.definitions import defs

    graph = defs.get_repository_def().asset_graph
    return CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance)).get_status(key, partition)


@pytest.mark.slow
def test_changed_recipe_or_base_revision_makes_the_variant_stale(demo_model, project_state, dagster_instance, monkeypatch):
    from dagster._core.definitions.data_version import StaleStatus
    from dagster._core.definitions.observe import observe

    from dagster_project import definitions as d

    local = project_state / "my-model"
    shutil.copytree(demo_model, local)
    models = project_state / "models.yaml"
    models.write_text(f"models:\n  - key: mine\n    source: local\n    path: {local}\n")
    monkeypatch.setenv("DMC_MODELS_FILE", str(models))
    instance, res = dagster_instance, d.defs.resources

    run = d.register_recipe_job.execute_in_process(
        instance=instance, resources={"artifacts": res["artifacts"]},
        run_config={"ops": {"register_recipe_op": {"config": {"name": "my-w8", "yaml_text": RECIPE_V1}}}},
    )
    assert run.success and instance.has_dynamic_partition("recipes", "my-w8")
    instance.add_dynamic_partitions("models", ["mine"])
    key = MultiPartitionKey({"model": "mine", "recipe": "my-w8"})
    observe([d.recipe], instance=instance, resources=res)
    assert materialize([d.base_model, d.calibration_dataset], partition_key="mine", instance=instance, resources=res).success
    assert materialize([d.compressed_model], partition_key=key, instance=instance, resources=res).success
    assert _status(instance, d.compressed_model.key, key) == StaleStatus.FRESH

    # A new version of the user's recipe (registered again from a file path this time).
    (project_state / "v2.yaml").write_text(RECIPE_V2)
    run = d.register_recipe_job.execute_in_process(
        instance=instance, resources={"artifacts": res["artifacts"]},
        run_config={"ops": {"register_recipe_op": {"config": {"name": "my-w8", "path": str(project_state / "v2.yaml")}}}},
    )
    assert run.success
    observe([d.recipe], instance=instance, resources=res)
    assert _status(instance, d.compressed_model.key, key) == StaleStatus.STALE

    assert materialize([d.compressed_model], partition_key=key, instance=instance, resources=res).success
    assert _status(instance, d.compressed_model.key, key) == StaleStatus.FRESH

    # A new base revision: the local folder's content hash changes.
    (local / "extra.txt").write_text("a new revision\n")
    assert materialize([d.base_model], partition_key="mine", instance=instance, resources=res).success
    assert _status(instance, d.compressed_model.key, key) == StaleStatus.STALE


def test_registration_rejects_bad_config(project_state, dagster_instance):
    from dagster_project import definitions as d

    for config in ({"name": "../evil", "yaml_text": RECIPE_V1},
                   {"name": "ok", "yaml_text": RECIPE_V1, "path": "/etc/hosts"},
                   {"name": "ok", "yaml_text": "s:\n  m_modifiers:\n    NopeModifier: {}\n"}):
        run = d.register_recipe_job.execute_in_process(
            instance=dagster_instance, resources={"artifacts": d.defs.resources["artifacts"]},
            run_config={"ops": {"register_recipe_op": {"config": config}}}, raise_on_error=False,
        )
        assert not run.success
    assert not dagster_instance.get_dynamic_partitions("recipes")


def test_cli_recipes(project_state):
    import json
    import os
    import subprocess
    import sys

    path = project_state / "r.yaml"
    path.write_text(RECIPE_V1)
    env = {**os.environ}
    add = subprocess.run([sys.executable, "-m", "dagster_project.cli", "recipes", "add", "cli-w8", str(path), "--json"],
                         capture_output=True, text=True, env=env)
    assert add.returncode == 0, add.stderr
    assert json.loads(add.stdout)["partition_added"] is True
    for spelling in ("list", "recipes-list", "ls"):  # `recipes-list` and `ls`: older spellings, still accepted
        ls = subprocess.run([sys.executable, "-m", "dagster_project.cli", "recipes", spelling, "--json"],
                            capture_output=True, text=True, env=env)
        assert ls.returncode == 0, ls.stderr
        assert "cli-w8" in {r["name"] for r in json.loads(ls.stdout)}
    bad = subprocess.run([sys.executable, "-m", "dagster_project.cli", "recipes", "add", "x", "/nonexistent.yaml"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
