"""Recipes whose modifiers contradict each other, and recipes llmcompressor's own parser refuses, are
refused at registration with one line naming the problem (CLI and Python API alike)."""

import os
import subprocess
import sys

import pytest

from dagster_project.compression.catalog import register_user_recipe
from dagster_project.compression.recipes import RecipeError, parse_user_recipe

SQ_MAPPINGS = ('[[["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"], "re:.*input_layernorm"], '
               '[["re:.*gate_proj", "re:.*up_proj"], "re:.*post_attention_layernorm"]]')
GPTQ = "GPTQModifier: {targets: [Linear], scheme: W8A8, ignore: [lm_head]}"

# Each one ran through llmcompressor 0.14 on the demo model without an error (see the issue-15 report).
CONFLICTS = {
    # Recipe.from_dict reads only '*_stage' keys: this "recipe" compressed nothing and was saved as a variant.
    "stage not named *_stage": (
        f"quant:\n  quant_modifiers:\n    {GPTQ}\n",
        r"stage 'quant' is not named '<name>_stage', so llmcompressor would skip its modifiers"),
    "smoothing after the quantizer": (
        f"quant_stage:\n  quant_modifiers:\n    {GPTQ}\n"
        f"    SmoothQuantModifier: {{smoothing_strength: 0.8, mappings: {SQ_MAPPINGS}}}\n",
        r"SmoothQuantModifier comes after GPTQModifier; it rescales weights that GPTQModifier has already rounded"),
    "smoothing in a later stage": (
        f"quant_stage:\n  quant_modifiers:\n    {GPTQ}\n"
        f"smooth_stage:\n  smooth_modifiers:\n    SmoothQuantModifier: {{smoothing_strength: 0.5}}\n",
        r"SmoothQuantModifier comes after GPTQModifier"),
    "two quantizers on the same layers": (
        "quant_stage:\n  quant_modifiers:\n"
        "    GPTQModifier: {targets: [Linear], scheme: W4A16, ignore: [lm_head]}\n"
        "    QuantizationModifier: {targets: [Linear], scheme: W8A16, ignore: [lm_head]}\n",
        r"GPTQModifier and QuantizationModifier both quantize Linear \(W4A16 vs W8A16\)"),
    "ignore everything": (
        "quant_stage:\n  quant_modifiers:\n    QuantizationModifier: {targets: [Linear], scheme: W4A16, ignore: ['re:.*']}\n",
        r"QuantizationModifier's ignore list \('re:\.\*'\) excludes every layer it targets"),
    "ignore the targets themselves": (
        "quant_stage:\n  quant_modifiers:\n    GPTQModifier: {targets: [Linear], scheme: W4A16, ignore: [Linear]}\n",
        r"GPTQModifier's ignore list \('Linear'\) excludes every layer it targets"),
}


@pytest.mark.parametrize("case", sorted(CONFLICTS))
def test_contradictory_recipe_is_refused_naming_the_conflict(case):
    text, message = CONFLICTS[case]
    with pytest.raises(RecipeError, match=r"recipe 'mine' contradicts itself: " + message):
        parse_user_recipe("mine", text)


def test_consistent_multi_modifier_recipes_pass():
    """The pairs that conflict above, in the order llmcompressor expects, are accepted."""
    smooth_then_quant = (f"quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier: {{smoothing_strength: 0.8}}\n"
                         f"    {GPTQ}\n")
    split_layers = ("quant_stage:\n  quant_modifiers:\n"
                    "    GPTQModifier: {targets: ['re:.*mlp.*'], scheme: W4A16}\n"
                    "    QuantizationModifier: {targets: ['re:.*self_attn.*'], scheme: W8A16}\n")
    prune_then_quant = ("sparse_stage:\n  sparse_modifiers:\n    SparseGPTModifier: {sparsity: 0.5, mask_structure: '0:0'}\n"
                        f"quant_stage:\n  quant_modifiers:\n    {GPTQ}\n")
    for text in (smooth_then_quant, split_layers, prune_then_quant):
        assert parse_user_recipe("mine", text).modifiers


LLMCOMPRESSOR_REFUSES = {
    "unknown argument": (
        "quant_stage:\n  quant_modifiers:\n    GPTQModifier: {targets: [Linear], scheme: W4A16, dampening: 0.1}\n",
        r"llmcompressor refuses GPTQModifier dampening: Extra inputs are not permitted"),
    "argument of the wrong type": (
        "quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier: {smoothing_strength: strong}\n"
        f"    {GPTQ}\n",
        r"llmcompressor refuses SmoothQuantModifier smoothing_strength: Input should be a valid number"),
}


@pytest.mark.parametrize("case", sorted(LLMCOMPRESSOR_REFUSES))
def test_recipe_llmcompressor_refuses_is_not_registered(case, tmp_path):
    text, message = LLMCOMPRESSOR_REFUSES[case]
    parse_user_recipe("mine", text)  # our own checks pass: only llmcompressor's parser knows
    with pytest.raises(RecipeError, match=r"recipe 'mine': " + message):
        register_user_recipe(tmp_path, "mine", text)
    assert not list(tmp_path.iterdir()), "a refused recipe must not be saved"


def test_cli_refuses_contradictory_recipe_in_one_line(project_state, tmp_path):
    for case, (text, message) in [("conflict", CONFLICTS["smoothing after the quantizer"]),
                                  ("refused", LLMCOMPRESSOR_REFUSES["unknown argument"])]:
        path = tmp_path / f"{case}.yaml"
        path.write_text(text)
        done = subprocess.run([sys.executable, "-m", "dagster_project.cli", "recipes", "add", case, str(path)],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "LLM_COMPRESSOR_LOG_LEVEL": "ERROR"})
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"dmc: error: recipe '{case}'"), done.stderr[-2000:]
        assert __import__("re").search(message, lines[0]), lines[0]
    assert not (project_state / "artifacts" / "recipes").exists() or \
        not list((project_state / "artifacts" / "recipes").iterdir())
