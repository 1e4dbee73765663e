"""Recipes are validated before any weights load; bad input fails fast with a message naming the problem."""

import subprocess
import sys

import pytest
import yaml

from dagster_project.compression.catalog import register_user_recipe, resolve_recipe
from dagster_project.compression.recipes import (
    BUILTIN_RECIPES,
    KNOWN_MODIFIERS,
    RecipeError,
    check_device,
    parse_user_recipe,
    resolve_builtin,
)

LLAMA = "LlamaForCausalLM"


@pytest.mark.parametrize("name", sorted(BUILTIN_RECIPES))
def test_builtin_recipes_render_for_llama(name):
    recipe = resolve_builtin(name, LLAMA)
    doc = yaml.safe_load(recipe.yaml_text)
    mods = doc["default_stage"]["default_modifiers"]
    quant = mods.get("GPTQModifier") or mods.get("QuantizationModifier")
    assert "lm_head" in quant["ignore"]
    assert recipe.placement == ("gpu" if recipe.calibrated else "cpu")
    assert len(recipe.sha256) == 64


def test_expected_catalog():
    assert {"w4a16-rtn", "w8a16-rtn", "fp8-dynamic", "w4a16-gptq", "w8a8-int8", "w4a16-awq", "sparse50-w8a8"} <= set(BUILTIN_RECIPES)
    sq = yaml.safe_load(resolve_builtin("w8a8-int8", LLAMA).yaml_text)["default_stage"]["default_modifiers"]
    assert sq["SmoothQuantModifier"]["smoothing_strength"] == 0.8 and sq["GPTQModifier"]["scheme"] == "W8A8"
    sp = yaml.safe_load(resolve_builtin("sparse50-w8a8", LLAMA).yaml_text)["default_stage"]["default_modifiers"]
    assert sp["SmoothQuantModifier"]["smoothing_strength"] == 0.5 and sp["SparseGPTModifier"]["sparsity"] == 0.5
    assert not resolve_builtin("w4a16-rtn", LLAMA).calibrated and resolve_builtin("w4a16-gptq", LLAMA).calibrated


def test_moe_routers_are_ignored():
    text = resolve_builtin("w4a16-gptq", "Qwen3MoeForCausalLM").yaml_text
    assert "re:.*mlp.gate$" in text


def test_smoothquant_needs_known_architecture():
    with pytest.raises(RecipeError, match="SmoothQuant.*GPT2LMHeadModel"):
        resolve_builtin("w8a8-int8", "GPT2LMHeadModel")
    # Data-free recipes still work on an unknown architecture.
    assert resolve_builtin("w4a16-rtn", "GPT2LMHeadModel").yaml_text


def test_awq_refuses_cpu_before_loading():
    recipe = resolve_builtin("w4a16-awq", LLAMA)
    with pytest.raises(RecipeError, match="CUDA"):
        check_device(recipe, "cpu")
    check_device(recipe, "cuda")


BAD = {
    "not yaml": ("x", "stage: [unclosed", "not valid YAML"),
    "unknown modifier": ("x", "s:\n  g_modifiers:\n    MagicModifier: {}\n", "unknown modifier"),
    "unknown scheme": ("x", "s:\n  g_modifiers:\n    QuantizationModifier: {scheme: W3A5, targets: [Linear]}\n", "unknown scheme"),
    "no modifiers": ("x", "s: {}\n", "names no modifiers"),
    "path traversal name": ("../etc", "s:\n  g_modifiers:\n    QuantizationModifier: {scheme: W4A16}\n", "invalid recipe name"),
    "absolute name": ("/tmp/x", "s:\n  g_modifiers:\n    QuantizationModifier: {scheme: W4A16}\n", "invalid recipe name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_user_recipes_fail_fast(case):
    name, text, message = BAD[case]
    with pytest.raises(RecipeError, match=message):
        parse_user_recipe(name, text)


def test_bad_user_recipes_are_refused_without_heavy_imports():
    """Validation is plain YAML work: refusing every bad recipe imports no torch / llmcompressor."""
    code = (
        "import sys\n"
        "from dagster_project.compression.recipes import RecipeError, parse_user_recipe\n"
        f"for name, text, _ in {list(BAD.values())!r}:\n"
        "    try:\n"
        "        parse_user_recipe(name, text)\n"
        "    except RecipeError:\n"
        "        pass\n"
        "    else:\n"
        "        sys.exit(f'accepted {name}')\n"
        "print(sorted(m for m in ('torch', 'transformers', 'llmcompressor', 'compressed_tensors') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_unknown_recipe_names_the_catalog(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe 'w3a5'.*w4a16-rtn"):
        resolve_recipe(tmp_path, "w3a5", LLAMA)


def test_user_recipe_registration(tmp_path):
    text = "quant_stage:\n  quant_modifiers:\n    GPTQModifier: {scheme: W4A16, targets: [Linear], ignore: [lm_head]}\n"
    recipe = register_user_recipe(tmp_path, "my-gptq", text)
    assert recipe.calibrated and not recipe.builtin
    again = resolve_recipe(tmp_path, "my-gptq", LLAMA)
    assert again.sha256 == recipe.sha256 and again.yaml_text == text
    with pytest.raises(RecipeError, match="built-in"):
        register_user_recipe(tmp_path, "w4a16-rtn", text)


def test_known_modifiers_exist_in_llmcompressor():
    import llmcompressor.modifiers.factory  # noqa: F401
    from llmcompressor.modifiers.factory import ModifierFactory

    ModifierFactory.refresh()
    available = set(ModifierFactory._registered_registry) | set(ModifierFactory._experimental_registry) \
        | set(ModifierFactory._main_registry)
    assert KNOWN_MODIFIERS <= available, KNOWN_MODIFIERS - available


@pytest.mark.parametrize("name", sorted(BUILTIN_RECIPES))
def test_llmcompressor_builds_every_builtin_recipe(name):
    """llmcompressor itself parses each recipe into modifier objects (AWQ included, which needs CUDA to run)."""
    from llmcompressor.recipe import Recipe

    recipe = Recipe.create_instance(resolve_builtin(name, LLAMA).yaml_text)
    names = [type(m).__name__ for m in recipe.modifiers]
    assert names == list(resolve_builtin(name, LLAMA).modifiers)
