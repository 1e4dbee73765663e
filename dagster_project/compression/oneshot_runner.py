"""Run `llmcompressor.oneshot` for one (base model, recipe) and save a compressed-tensors folder atomically."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from dagster_project.atomic import atomic_directory
from dagster_project.compression.recipes import RecipeError, ResolvedRecipe

RECIPE_FILENAME = "recipe.yaml"
MANIFEST_FILENAME = "dmc_variant.json"  # written last: its presence marks a complete variant
TRACKED_LIBRARIES = ("llmcompressor", "compressed-tensors", "transformers", "torch")


@dataclass
class CompressionResult:
    path: str
    recipe: str
    recipe_sha256: str
    scheme: str
    wall_seconds: float
    peak_rss_mb: float  # the largest RSS while this variant compressed (load, oneshot, save)
    peak_rss_increase_mb: float  # how far RSS rose above its level when this compression began
    peak_gpu_mb: float | None
    size_bytes: int
    base_size_bytes: int
    compression_ratio: float
    quantized_modules: int
    library_versions: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"


def library_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def weights_size(path: Path) -> int:
    """Bytes of weight files only, so the ratio is not skewed by tokenizer / card files."""
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def is_complete_variant(path: Path) -> bool:
    return (Path(path) / MANIFEST_FILENAME).is_file()


def compress(
    base_dir: Path,
    recipe: ResolvedRecipe,
    output_dir: Path,
    calibration_dir: Path | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    manifest_extra: dict | None = None,
) -> CompressionResult:
    """Compress `base_dir` with `recipe` into `output_dir` (replaced only when complete)."""
    if recipe.calibrated and calibration_dir is None:
        raise RecipeError(f"recipe {recipe.name!r} needs calibration data but no calibration dataset was given")
    base_dir, output_dir = Path(base_dir), Path(output_dir)
    with atomic_directory(output_dir, replace=True) as tmp:
        result = _run_oneshot(base_dir, recipe, tmp, calibration_dir, device, log)
        result.path = str(output_dir)
        (tmp / MANIFEST_FILENAME).write_text(json.dumps({**asdict(result), **(manifest_extra or {})}, indent=2))
    return result

def _run_oneshot(base_dir, recipe, out, calibration_dir, device, log) -> CompressionResult:
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dagster_project.compression.memory import PeakMemory
    from dagster_project.compression.progress import compression_progress
    from dagster_project.compression.recipe_check import check_against_model, check_with_llmcompressor

    check_with_llmcompressor(recipe)  # before any weights load
    started = time.perf_counter()
    # Measured from here, after the imports: the memory this compression needs, not the process's.
    with PeakMemory(device) as peak:
        log(f"loading base model from {base_dir}")
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto", device_map=device)
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        check_against_model(recipe, model)
        kwargs = {}
        if recipe.calibrated:
            from datasets import load_from_disk

            dataset = load_from_disk(str(calibration_dir))
            kwargs = dict(
                dataset=dataset,
                num_calibration_samples=len(dataset),
                max_seq_length=max(len(x) for x in dataset["input_ids"]),
                shuffle_calibration_samples=False,
            )
            log(f"calibrating on {len(dataset)} samples")
        log(f"running oneshot with recipe {recipe.name} ({', '.join(recipe.modifiers)})")
        with compression_progress(model, log):
            oneshot(model=model, recipe=recipe.yaml_text, **kwargs)
        quantized = sum(1 for m in model.modules() if getattr(m, "quantization_scheme", None) is not None)
        model.save_pretrained(out, save_compressed=True)
        tokenizer.save_pretrained(out)
    (out / RECIPE_FILENAME).write_text(recipe.yaml_text)
    for name in ("LICENSE", "README.md"):
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, out / f"BASE_{name}")
    wall = time.perf_counter() - started
    base_size, size = weights_size(base_dir), weights_size(out)
    result = CompressionResult(
        path=str(out), recipe=recipe.name, recipe_sha256=recipe.sha256, scheme=recipe.scheme,
        wall_seconds=round(wall, 2), peak_rss_mb=peak.rss_mb, peak_rss_increase_mb=peak.increase_mb,
        peak_gpu_mb=peak.gpu_mb, size_bytes=size, base_size_bytes=base_size,
        compression_ratio=round(base_size / size, 3) if size else 0.0,
        quantized_modules=quantized, library_versions=library_versions(), device=device,
    )
    log(f"compressed in {wall:.1f} s: {base_size / 2**20:.1f} MB → {size / 2**20:.1f} MB, "
        f"{quantized} quantized modules, peak RSS {peak.rss_mb:.0f} MB (+{peak.increase_mb:.0f} MB)")
    return result
