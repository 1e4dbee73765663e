"""Recipes as observed source data: a changed recipe changes its data version, so variants turn stale."""

import hashlib

from dagster import AutomationCondition, DataVersion, DataVersionsByPartition, observable_source_asset

from dagster_project.compression.recipes import BUILTIN_RECIPES
from dagster_project.k8s import op_tags
from dagster_project.partitions import recipe_partitions
from dagster_project.artifacts import ArtifactStore


def recipe_versions(recipes_dir, keys) -> dict[str, str]:
    """Built-ins: their definition; user recipes: their YAML text. Unknown keys are left out."""
    out = {}
    for key in keys:
        if key in BUILTIN_RECIPES:
            text = BUILTIN_RECIPES[key].model_dump_json()
        else:
            path = recipes_dir / f"{key}.yaml"
            if not path.is_file():
                continue
            text = path.read_text()
        out[key] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


@observable_source_asset(
    partitions_def=recipe_partitions,
    group_name="compression",
    description="The recipe catalog (built-in definitions and users' YAML), observed for changes.",
    automation_condition=AutomationCondition.cron_tick_passed("*/15 * * * *"),
    op_tags=op_tags("recipe"),
)
def recipe(context, artifacts: ArtifactStore) -> DataVersionsByPartition:
    keys = context.instance.get_dynamic_partitions(recipe_partitions.name)
    store = artifacts.step()
    for key in keys:
        if key not in BUILTIN_RECIPES:
            store.pull_file(store.layout.recipes_dir() / f"{key}.yaml")
    versions = recipe_versions(store.layout.recipes_dir(), keys)
    return DataVersionsByPartition({k: DataVersion(v) for k, v in versions.items()})
