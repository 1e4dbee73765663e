"""Every built-in recipe that llmcompressor runs on CPU compresses the demo model; the output reloads and generates."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dagster_project.compression.oneshot_runner import MANIFEST_FILENAME, compress, is_complete_variant
from dagster_project.compression.recipes import BUILTIN_RECIPES, RecipeError, resolve_builtin

CPU_RECIPES = sorted(n for n, r in BUILTIN_RECIPES.items() if not r.requires_gpu)


@pytest.fixture(scope="module")
def calibration(demo_model, tmp_path_factory):
    from dagster_project.calibration.build import CalibrationSpec, build_calibration

    result = build_calibration(CalibrationSpec(num_samples=16, max_seq_length=128), demo_model,
                               tmp_path_factory.mktemp("calibration"))
    return Path(result.path)


@pytest.mark.slow
@pytest.mark.parametrize("name", CPU_RECIPES)
def test_recipe_compresses_reloads_and_generates(name, demo_model, calibration, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = resolve_builtin(name, "LlamaForCausalLM")
    out = tmp_path / name
    result = compress(demo_model, recipe, out, calibration_dir=calibration if recipe.calibrated else None,
                      log=lambda m: None)
    assert is_complete_variant(out)
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert (out / "recipe.yaml").read_text() == recipe.yaml_text
    assert result.quantized_modules == 4 * 7  # every Linear in 4 decoder layers; lm_head ignored
    assert result.compression_ratio > 1.5, result
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("A hacker is", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 8
    manifest = json.loads((out / MANIFEST_FILENAME).read_text())
    assert set(manifest["library_versions"]) == {"llmcompressor", "compressed-tensors", "transformers", "torch"}
    assert manifest["peak_rss_mb"] > 100


def test_calibrated_recipe_without_data_fails_before_loading(demo_model, tmp_path):
    started = time.perf_counter()
    with pytest.raises(RecipeError, match="needs calibration data"):
        compress(demo_model, resolve_builtin("w4a16-gptq", "LlamaForCausalLM"), tmp_path / "v")
    assert time.perf_counter() - started < 1.0
    assert not (tmp_path / "v").exists()


KILL_SCRIPT = """
import sys
from pathlib import Path
from dagster_project.compression.oneshot_runner import compress
from dagster_project.compression.recipes import resolve_builtin
compress(Path(sys.argv[1]), resolve_builtin("w4a16-gptq", "LlamaForCausalLM"), Path(sys.argv[2]),
         calibration_dir=Path(sys.argv[3]), log=lambda m: print(m, flush=True))
"""


@pytest.mark.slow
def test_killed_compression_leaves_no_variant(demo_model, calibration, tmp_path):
    out = tmp_path / "variants" / "w4a16-gptq"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(demo_model), str(out), str(calibration)],
                            stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # kill once oneshot is under way, mid-calibration
        if line.startswith("running oneshot"):
            time.sleep(1.0)
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "a killed run must not leave anything at the variant path"
    assert not is_complete_variant(out)
