"""Recipe partition keys → resolved recipes: built-ins, plus users' recipes saved in the store."""

from __future__ import annotations

from pathlib import Path

from dagster_project.atomic import write_text_atomic
from dagster_project.compression.recipes import (
    BUILTIN_RECIPES,
    RecipeError,
    ResolvedRecipe,
    parse_user_recipe,
    resolve_builtin,
    validate_recipe_name,
)


def user_recipe_path(recipes_dir: Path, name: str) -> Path:
    return Path(recipes_dir) / f"{validate_recipe_name(name)}.yaml"


def register_user_recipe(recipes_dir: Path, name: str, yaml_text: str) -> ResolvedRecipe:
    """Validate and save a user's recipe; its name becomes a recipe partition key."""
    if name in BUILTIN_RECIPES:
        raise RecipeError(f"{name!r} is a built-in recipe name; choose another name for your recipe")
    recipe = parse_user_recipe(name, yaml_text)
    from dagster_project.compression.recipe_check import check_with_llmcompressor  # imports llmcompressor

    check_with_llmcompressor(recipe)
    path = user_recipe_path(recipes_dir, name)
    write_text_atomic(path, yaml_text)
    return recipe


def resolve_recipe(recipes_dir: Path, name: str, architecture: str | None) -> ResolvedRecipe:
    if name in BUILTIN_RECIPES:
        return resolve_builtin(name, architecture)
    path = user_recipe_path(recipes_dir, name)
    if not path.is_file():
        raise RecipeError(
            f"unknown recipe {name!r}: not built in ({', '.join(sorted(BUILTIN_RECIPES))}) "
            f"and not registered (dmc recipes add {name} FILE)"
        )
    return parse_user_recipe(name, path.read_text())
