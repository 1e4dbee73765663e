"""Keeps the dynamic partitions in step with models.yaml and the recipe catalog."""


from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from dagster_project.models.catalog import load_catalog
from dagster_project.compression.recipes import BUILTIN_RECIPES
from dagster_project.partitions import model_partitions, recipe_partitions


def catalog_partition_keys(recipes_dir) -> tuple[list[str], list[str]]:
    models = sorted(load_catalog())
    user = sorted(p.stem for p in recipes_dir.glob("*.yaml")) if recipes_dir.is_dir() else []
    return models, sorted(BUILTIN_RECIPES) + user


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Adds model and recipe partitions for models.yaml entries, built-in and registered recipes.")
def catalog_sensor(context: SensorEvaluationContext):
    from dagster_project.artifacts import ArtifactStore

    models, recipes = catalog_partition_keys(ArtifactStore.from_env().layout().recipes_dir())
    new_models = [m for m in models if not context.instance.has_dynamic_partition(model_partitions.name, m)]
    new_recipes = [r for r in recipes if not context.instance.has_dynamic_partition(recipe_partitions.name, r)]
    if not new_models and not new_recipes:
        return SkipReason("catalog partitions are up to date")
    return SensorResult(dynamic_partitions_requests=[
        *( [model_partitions.build_add_request(new_models)] if new_models else []),
        *( [recipe_partitions.build_add_request(new_recipes)] if new_recipes else []),
    ])
