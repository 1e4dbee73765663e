"""Register a user's llmcompressor recipe (path or inline YAML) as a recipe partition, from the UI or CLI."""

from dagster import Config, DagsterInstance, OpExecutionContext, job, op
from pydantic import Field

from dagster_project.compression.catalog import register_user_recipe, user_recipe_path
from dagster_project.compression.recipes import RecipeError, load_user_recipe_file, validate_recipe_name
from dagster_project.k8s import op_tags
from dagster_project.partitions import recipe_partitions
from dagster_project.artifacts import ArtifactStore


class RecipeRegistrationConfig(Config):
    name: str = Field(description="partition key for the recipe: lowercase letters, digits, '.', '_', '-'")
    yaml_text: str = Field(default="", description="llmcompressor recipe YAML, inline")
    path: str = Field(default="", description="or: a recipe YAML file readable by the code location")


def register_recipe(artifacts: ArtifactStore, instance: DagsterInstance | None, name: str,
                    yaml_text: str = "", path: str = ""):
    """Validate, store and add the partition; returns the ResolvedRecipe (with its sha256)."""
    validate_recipe_name(name)
    if bool(yaml_text) == bool(path):
        raise RecipeError("give exactly one of an inline recipe (yaml_text) or a recipe file (path)")
    text = yaml_text or load_user_recipe_file(name, path).yaml_text
    store = artifacts.step()
    recipe = register_user_recipe(store.layout.recipes_dir(), name, text)
    store.push_file(user_recipe_path(store.layout.recipes_dir(), name))
    if instance is not None:
        instance.add_dynamic_partitions(recipe_partitions.name, [name])
    return recipe


@op(tags=op_tags("register_recipe"), description="Validates a user recipe, stores it beside the artifacts and adds its recipe partition.")
def register_recipe_op(context: OpExecutionContext, config: RecipeRegistrationConfig, artifacts: ArtifactStore):
    recipe = register_recipe(artifacts, context.instance, config.name, config.yaml_text, config.path)
    context.log.info(
        f"registered recipe {recipe.name} (sha256 {recipe.sha256}, modifiers {', '.join(recipe.modifiers)}, "
        f"{'calibrated' if recipe.calibrated else 'data-free'})"
    )


@job(description="Register a user recipe (path or inline YAML) as a new recipe partition.", tags={"dmc/kind": "catalog"})
def register_recipe_job():
    register_recipe_op()
