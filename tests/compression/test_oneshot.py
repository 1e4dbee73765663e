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
    lines: list[str] = []
    result = compress(demo_model, recipe, out, calibration_dir=calibration if recipe.calibrated else None,
                      log=lines.append)
    assert is_complete_variant(out)
    # Per-layer progress for the algorithms that work layer by layer, and nothing of it for the others.
    layers = json.loads((demo_model / "config.json").read_text())["num_hidden_layers"]
    for modifier, label in (("GPTQModifier", "GPTQ"), ("SparseGPTModifier", "SparseGPT")):
        seen = [m.split(",")[0] for m in lines if m.startswith(f"{label}: layer ")]
        expected = [f"{label}: layer {i}/{layers} (model.layers.{i - 1})" for i in range(1, layers + 1)]
        assert seen == (expected if modifier in recipe.modifiers else []), lines
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
    # Measured around this compression (tests/compression/test_memory.py shows it is per variant).
    assert (manifest["peak_rss_mb"], manifest["peak_rss_increase_mb"]) == (result.peak_rss_mb, result.peak_rss_increase_mb)
    assert 0 <= result.peak_rss_increase_mb <= result.peak_rss_mb


def test_calibrated_recipe_without_data_fails_before_loading(demo_model, tmp_path):
    with pytest.raises(RecipeError, match="needs calibration data"):
        compress(demo_model, resolve_builtin("w4a16-gptq", "LlamaForCausalLM"), tmp_path / "v")
    assert not (tmp_path / "v").exists()
    # Before loading: in a fresh interpreter the refusal imports neither torch nor llmcompressor.
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from dagster_project.compression.oneshot_runner import compress\n"
        "from dagster_project.compression.recipes import RecipeError, resolve_builtin\n"
        "try:\n"
        "    compress(Path(sys.argv[1]), resolve_builtin('w4a16-gptq', 'LlamaForCausalLM'), Path(sys.argv[2]))\n"
        "except RecipeError:\n"
        "    print(sorted(m for m in ('torch', 'transformers', 'llmcompressor') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(demo_model), str(tmp_path / "w")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


KILL_SCRIPT = """
import sys, threading
from pathlib import Path
from dagster_project.compression.oneshot_runner import compress
from dagster_project.compression.recipes import resolve_builtin

def log(message):
    # Called from inside oneshot's calibration loop: say so, then hold the compression right there.
    if message.startswith("calibration: layer 2/"):
        Path(sys.argv[4]).write_text(message)
        threading.Event().wait()

compress(Path(sys.argv[1]), resolve_builtin("w4a16-gptq", "LlamaForCausalLM"), Path(sys.argv[2]),
         calibration_dir=Path(sys.argv[3]), log=log)
"""


@pytest.mark.slow
def test_killed_compression_leaves_no_variant(demo_model, calibration, tmp_path):
    """SIGKILL while oneshot is calibrating layer 2 (the progress hook holds it there): nothing at the path."""
    out = tmp_path / "variants" / "w4a16-gptq"
    marker = tmp_path / "in-oneshot"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(demo_model), str(out), str(calibration),
                             str(marker)])
    try:
        while not marker.exists():  # wait for the signal from inside the compression loop
            assert proc.poll() is None, f"compression ended (exit {proc.returncode}) before reaching layer 2"
            time.sleep(0.1)
        in_progress = [p.name for p in out.parent.iterdir()]
        assert len(in_progress) == 1 and in_progress[0].startswith(".tmp-w4a16-gptq-"), in_progress
        assert not out.exists()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert marker.read_text().startswith("calibration: layer 2/4")
    assert not out.exists(), "a killed run must not leave anything at the variant path"
    assert not is_complete_variant(out)
