"""llmcompressor's own reading of a recipe, and the checks that need the loaded model.

Separate from `recipes.py` because it imports llmcompressor (seconds): listing recipes stays light,
registering one and compressing with one pay for the import.
"""

from __future__ import annotations

import yaml

from dagster_project.compression.recipes import (
    QUANTIZING_MODIFIERS,
    RecipeError,
    ResolvedRecipe,
    as_list,
    modifier_targets,
    modifiers_in_order,
)


def check_with_llmcompressor(recipe: ResolvedRecipe) -> None:
    """Build the recipe with llmcompressor's parser, the one `oneshot` uses; refuse what it refuses."""
    try:
        from llmcompressor.recipe import Recipe
    except ImportError as exc:
        raise RecipeError(f"recipe {recipe.name!r} cannot be checked: llmcompressor is not installed "
                          f"({exc.name}); install the 'compress' extra") from None
    from pydantic import ValidationError

    try:
        parsed = Recipe.create_instance(recipe.yaml_text)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "arguments"
        raise RecipeError(f"recipe {recipe.name!r}: llmcompressor refuses {exc.title} {field}: {err['msg']}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RecipeError(f"recipe {recipe.name!r}: llmcompressor cannot build it: {exc}".replace("\n", " ")) from None
    built = [type(m).__name__ for m in parsed.modifiers]
    if sorted(built) != sorted(recipe.modifiers):
        raise RecipeError(
            f"recipe {recipe.name!r}: llmcompressor builds modifiers [{', '.join(built)}] "
            f"where the recipe names [{', '.join(recipe.modifiers)}]; check the stage and group names"
        )


def check_against_model(recipe: ResolvedRecipe, model) -> None:
    """Refuse a quantizer whose targets minus its ignore list match no module of this model:
    llmcompressor would save an unquantized copy and call it compressed."""
    from compressed_tensors.utils import match_named_modules

    for mod, args in modifiers_in_order(yaml.safe_load(recipe.yaml_text)):
        if mod not in QUANTIZING_MODIFIERS:
            continue
        targets, ignore = modifier_targets(args), as_list(args.get("ignore"))
        if next(iter(match_named_modules(model, targets, ignore)), None) is None:
            raise RecipeError(
                f"recipe {recipe.name!r}: {mod} targets {targets} minus ignore {ignore} match no module of "
                f"{type(model).__name__}, so nothing would be quantized"
            )
