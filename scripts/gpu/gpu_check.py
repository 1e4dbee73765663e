"""The GPU path in one run: every built-in recipe through the project's `compress`, base and variants
through its `evaluate_hf` (lm-eval's hf backend), per variant the time, peak GPU memory, size and recovery,
all into one JSON. `scripts/gpu/check.sh` calls this; `--dry-run` runs the same steps on CPU.

Two models: the demo model (carried from the local cache) and a larger one that the demo-model builder
trains on the GPU from the shipped corpus, so that GPU timings mean something. The results file is
rewritten after every step, so a run stopped at its time limit still reports what it finished.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the GPU machine runs the checkout itself; the project is not installed there

# 102 M parameters (hidden sizes multiples of 128 for group-size-128 quantization): about a minute of
# bf16 training on one H200 over ~4.7 passes of the 437 k-token corpus.
LARGE_SPEC = dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=14, num_attention_heads=12,
                  num_key_value_heads=12, seq_len=256, batch_size=32, train_steps=250, learning_rate=1e-3)
# Dry run: the same builder path with a model two CPU cores train in seconds.
DRY_LARGE_SPEC = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, seq_len=64, batch_size=8, train_steps=20)
TASK_SET = "demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, a small second model, CUDA-only recipes skipped")
    parser.add_argument("--out", type=Path, required=True, help="results JSON (rewritten after every step)")
    parser.add_argument("--work", type=Path, required=True, help="calibration data and variants go here")
    parser.add_argument("--demo-model", type=Path, help="carried demo model folder (default: build or reuse the cached one)")
    parser.add_argument("--recipes", default="", help="comma-separated built-in recipes (default: all)")
    parser.add_argument("--deadline-s", type=float, default=330.0,
                        help="start no new model or variant after this many seconds (the rest is reported skipped)")
    parser.add_argument("--eval-limit", type=int, default=None, help="documents per task (default: all)")
    args = parser.parse_args(argv)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        os.environ.setdefault(var, "1")  # the GPU machine has no network; here tests must not reach the Hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return Run(args).run()


class Run:
    def __init__(self, args: argparse.Namespace):
        import torch

        from dagster_project.compression.recipes import BUILTIN_RECIPES

        self.args = args
        self.started = time.perf_counter()
        self.device = "cpu" if args.dry_run else "cuda"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("error: torch sees no CUDA device; run with --dry-run (DMC_GPU_DRY_RUN=1) on a CPU machine")
        # CUDA-only recipes first: they are what only this machine can prove, so a deadline skips them last.
        self.recipes = [r for r in args.recipes.split(",") if r] or sorted(
            BUILTIN_RECIPES, key=lambda name: not BUILTIN_RECIPES[name].requires_gpu)
        if args.demo_model and not (args.demo_model / "config.json").is_file():
            raise SystemExit(f"error: --demo-model {args.demo_model} holds no config.json")
        unknown = [r for r in self.recipes if r not in BUILTIN_RECIPES]
        if unknown:
            raise SystemExit(f"error: unknown recipe(s) {', '.join(unknown)}; built-in: {', '.join(BUILTIN_RECIPES)}")
        self.results: dict = {
            "dry_run": args.dry_run, "device": self.device, "task_set": TASK_SET, "eval_limit": args.eval_limit,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": _machine(torch), "models": [], "failures": 0,
        }

    def run(self) -> int:
        self.results["requirements_unmet"] = _unmet_requirements()
        models = [("demo-llama", self._demo_model), ("demo-llama-large", self._large_model)]
        for name, build in models:
            if self._out_of_time():
                self.results["models"].append({"name": name, "status": "skipped", "reason": self._time_reason()})
                continue
            self._model(name, build)
        self.results["total_seconds"] = round(time.perf_counter() - self.started, 1)
        self._save()
        print(render_table(self.results))
        print(f"results: {self.args.out}")
        return 1 if self.results["failures"] else 0

    # -- models ---------------------------------------------------------------------------------
    def _demo_model(self) -> Path:
        if self.args.demo_model:
            return self.args.demo_model
        from dagster_project.demo.model import build_demo_model

        return Path(build_demo_model().path)

    def _large_model(self) -> Path:
        from dagster_project.demo.model import DemoModelSpec, build_demo_model

        spec = DemoModelSpec(**(DRY_LARGE_SPEC if self.args.dry_run else LARGE_SPEC), device=self.device)
        return Path(build_demo_model(spec).path)

    def _model(self, name: str, build) -> None:
        entry: dict = {"name": name, "status": "ok", "variants": []}
        self.results["models"].append(entry)
        try:
            t0 = time.perf_counter()
            base = build()
            entry.update(_model_info(base, seconds=time.perf_counter() - t0))
            self._save()
            base_eval, entry["base"] = self._evaluate(base)
            self._save()
            calibration = self._calibration(name, base)
        except Exception as exc:  # one model's failure must not lose the other's results
            self._fail(entry, exc)
            return
        for recipe in self.recipes:
            self._variant(entry, name, base, recipe, base_eval, calibration)

    def _calibration(self, name: str, base: Path) -> Path:
        from dagster_project.calibration.build import CalibrationSpec, build_calibration

        spec = CalibrationSpec(num_samples=16, max_seq_length=128) if self.args.dry_run else CalibrationSpec()
        return Path(build_calibration(spec, base, self.args.work / "calibration" / name).path)

    # -- variants -------------------------------------------------------------------------------
    def _variant(self, entry: dict, name: str, base: Path, recipe_name: str, base_eval, calibration: Path) -> None:
        from dagster_project.compression.oneshot_runner import compress
        from dagster_project.compression.recipes import RecipeError, check_device, resolve_builtin
        from dagster_project.evaluation.recovery import average_recovery, compare
        from dagster_project.evaluation.tasks import resolve_task_set

        variant: dict = {"recipe": recipe_name}
        entry["variants"].append(variant)
        if self._out_of_time():
            variant.update(status="skipped", reason=self._time_reason())
            return
        try:
            recipe = resolve_builtin(recipe_name, entry["architecture"])
            try:
                check_device(recipe, self.device)
            except RecipeError as exc:  # CUDA-only recipe in a dry run: say so, do not count it as failed
                variant.update(status="skipped", reason=str(exc))
                print(f"skipped {name} × {recipe_name}: {exc}", flush=True)
                return
            out = self.args.work / "variants" / name / recipe_name
            result = compress(base, recipe, out, calibration_dir=calibration if recipe.calibrated else None,
                              device=self.device, log=lambda m: print(f"  {m}", flush=True))
            variant.update(
                status="ok", scheme=recipe.scheme, compress_seconds=result.wall_seconds,
                compress_peak_gpu_mb=result.peak_gpu_mb, peak_rss_mb=result.peak_rss_mb,
                size_bytes=result.size_bytes, base_size_bytes=result.base_size_bytes,
                compression_ratio=result.compression_ratio, quantized_modules=result.quantized_modules,
            )
            self._save()
            var_eval, variant["eval"] = self._evaluate(out)
            recoveries = compare(base_eval, var_eval, resolve_task_set(TASK_SET))
            variant["recoveries"] = [asdict(r) for r in recoveries]
            variant["average_recovery"] = average_recovery(recoveries)
        except Exception as exc:
            self._fail(variant, exc)
        finally:
            self._save()
            _free_memory()

    def _evaluate(self, model_path: Path):
        """(EvalResult, summary) with lm-eval's hf backend on this run's device, peak GPU memory included."""
        import torch

        from dagster_project.evaluation.hf_eval import evaluate_hf
        from dagster_project.evaluation.speed import measure_generation
        from dagster_project.evaluation.tasks import add_derived_scores, resolve_task_set

        cuda = self.device == "cuda"
        _free_memory()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        speed = measure_generation(model_path, device=self.device)
        result = evaluate_hf(model_path, resolve_task_set(TASK_SET), device=self.device,
                             batch_size=32 if cuda else 8, limit=self.args.eval_limit)
        # As the evaluation asset does: token perplexity (the demo's primary metric) is derived from bits per byte.
        result = add_derived_scores(result, model_path, self.args.eval_limit)
        summary = {
            "eval_seconds": result.eval_seconds,
            "eval_peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            "tokens_per_second": speed.tokens_per_second, "load_seconds": speed.load_seconds,
            "scores": [asdict(s) for s in result.scores],
        }
        print(f"  evaluated {model_path.name} in {result.eval_seconds:.1f} s", flush=True)
        return result, summary

    # -- bookkeeping ----------------------------------------------------------------------------
    def _out_of_time(self) -> bool:
        return time.perf_counter() - self.started > self.args.deadline_s

    def _time_reason(self) -> str:
        return f"not started: the run passed its {self.args.deadline_s:.0f} s deadline"

    def _fail(self, entry: dict, exc: Exception) -> None:
        traceback.print_exc()
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        self.results["failures"] += 1

    def _save(self) -> None:
        self.results["elapsed_seconds"] = round(time.perf_counter() - self.started, 1)
        out = self.args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(self.results, indent=2, default=str))
        os.replace(tmp, out)  # a reader (or a kill) never sees half a file


def _machine(torch) -> dict:
    from dagster_project.compression.oneshot_runner import library_versions

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "libraries": {**library_versions(), "lm-eval": _version("lm-eval"), "datasets": _version("datasets")}}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _unmet_requirements() -> list[str]:
    """Requirements of the compression / evaluation stack that this environment does not meet (recorded, not fatal)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from wheelcheck import unmet

    return unmet(["llmcompressor", "compressed-tensors", "lm-eval", "datasets"])


def _model_info(path: Path, seconds: float) -> dict:
    from dagster_project.compression.oneshot_runner import weights_size

    config = json.loads((path / "config.json").read_text())
    info = {"path": str(path), "architecture": (config.get("architectures") or [None])[0],
            "hidden_size": config.get("hidden_size"), "layers": config.get("num_hidden_layers"),
            "base_size_bytes": weights_size(path), "build_seconds": round(seconds, 1)}
    report = path / "demo_model_report.json"
    if report.is_file():
        r = json.loads(report.read_text())
        info.update(parameters=r["parameters"], train_seconds=r["train_seconds"],
                    trained_perplexity=r["trained_perplexity"], untrained_perplexity=r["untrained_perplexity"])
    return info


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def render_table(results: dict) -> str:
    """The markdown table benchmarks/gpu.md shows, from a results file."""
    rows = ["| model | params | recipe | status | compress s | compress peak GPU MiB | eval s | eval peak GPU MiB "
            "| size MiB | ratio | avg recovery % |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    mib = lambda b: f"{b / 2**20:.1f}" if b else "–"  # noqa: E731
    num = lambda v: "–" if v is None else f"{v:g}"  # noqa: E731
    for m in results["models"]:
        params = f"{m['parameters'] / 1e6:.1f} M" if m.get("parameters") else "–"
        base = m.get("base") or {}
        if base or m["status"] != "ok":
            rows.append(f"| {m['name']} | {params} | (base) | {m['status']} | – | – | {num(base.get('eval_seconds'))} "
                        f"| {num(base.get('eval_peak_gpu_mb'))} | {mib(m.get('base_size_bytes'))} | – | – |")
        for v in m.get("variants", []):
            if v["status"] != "ok":
                why = (v.get("reason") or v.get("error") or "").replace("|", "/")
                why = why if len(why) <= 80 else why[:79] + "…"
                rows.append(f"| {m['name']} | {params} | {v['recipe']} | {v['status']}: {why} | – | – | – | – | – | – | – |")
                continue
            ev = v.get("eval") or {}
            rows.append(
                f"| {m['name']} | {params} | {v['recipe']} | ok | {num(v.get('compress_seconds'))} "
                f"| {num(v.get('compress_peak_gpu_mb'))} | {num(ev.get('eval_seconds'))} | {num(ev.get('eval_peak_gpu_mb'))} "
                f"| {mib(v.get('size_bytes'))} | {num(v.get('compression_ratio'))}x | {num(v.get('average_recovery'))} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--table":  # re-render a results file for benchmarks/gpu.md
        print(render_table(json.loads(Path(sys.argv[2]).read_text())))
        sys.exit(0)
    sys.exit(main())
