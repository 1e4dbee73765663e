"""The GPU check script (scripts/gpu/check.sh) cannot rot: its dry run executes every step on CPU here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "gpu" / "check.sh"
sys.path.insert(0, str(ROOT / "scripts" / "gpu"))

import wheelcheck  # noqa: E402


# The GPU machine has none of the orchestration packages: the script must run without them.
NOT_ON_GPU_MACHINE = """
import sys

ABSENT = {"dagster", "dagster_pipes", "dagster_k8s", "dagster_postgres", "model_registry", "mlflow"}

class _NotOnGpuMachine:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"{name} is not on the GPU machine")
        return None

sys.meta_path.insert(0, _NotOnGpuMachine())
"""


def _env(tmp_path: Path) -> dict:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NOT_ON_GPU_MACHINE)
    # An empty carry folder: a developer's .gpu-carry/ must not be installed anywhere by a test.
    return {**os.environ, "PY": sys.executable, "DMC_GPU_WORK": str(tmp_path / "work"), "OUT": str(tmp_path / "out"),
            "DMC_GPU_CARRY": str(tmp_path / "carry"), "DMC_GPU_DRY_RUN": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


@pytest.mark.slow
def test_dry_run_compresses_and_evaluates_every_cpu_recipe(demo_model, tmp_path):
    from dagster_project.compression.recipes import BUILTIN_RECIPES
    from dagster_project.evaluation.tasks import resolve_task_set

    # One data-free, one calibrated and the CUDA-only recipe cover every path of the script; each CPU recipe's
    # compression is tested in tests/compression/test_oneshot.py (`make gpu-check` runs them all).
    recipes = ["w4a16-rtn", "w4a16-gptq", "w4a16-awq"]
    assert BUILTIN_RECIPES["w4a16-awq"].requires_gpu
    proc = subprocess.run(
        ["bash", str(CHECK), "--dry-run", "--demo-model", str(demo_model), "--recipes", ",".join(recipes),
         "--eval-limit", "8", "--deadline-s", "3600"],  # a loaded machine must not turn this into a skip
        cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = tmp_path / "out"
    results = json.loads((out / "gpu_results.json").read_text())
    assert (out / "gpu_check.log").read_text() == proc.stdout
    assert results["dry_run"] is True and results["device"] == "cpu" and results["failures"] == 0
    assert isinstance(results["requirements_unmet"], list)
    assert [m["name"] for m in results["models"]] == ["demo-llama", "demo-llama-large"]
    for model in results["models"]:
        assert model["status"] == "ok", model
        assert model["parameters"] > 0 and model["base_size_bytes"] > 0
        assert {s["task"] for s in model["base"]["scores"]} == {t.name for t in resolve_task_set("demo").tasks}
        assert [v["recipe"] for v in model["variants"]] == recipes
        for v in model["variants"]:
            if BUILTIN_RECIPES[v["recipe"]].requires_gpu:
                assert v["status"] == "skipped" and "CUDA" in v["reason"], v
                assert f"skipped {model['name']} × {v['recipe']}" in proc.stdout
                continue
            assert v["status"] == "ok", v
            assert 0 < v["size_bytes"] < v["base_size_bytes"], v
            assert v["compress_seconds"] > 0 and v["compress_peak_gpu_mb"] is None
            assert v["eval"]["eval_seconds"] > 0 and v["eval"]["scores"]
            assert v["average_recovery"] is not None and v["recoveries"]
            assert f"| {model['name']} | " in proc.stdout and f"| {v['recipe']} | ok |" in proc.stdout
    # The larger model was trained by the demo-model builder, not copied from the small one.
    demo, large = results["models"]
    assert large["path"] != demo["path"] and large["hidden_size"] != demo["hidden_size"]


def test_a_run_past_its_deadline_reports_every_model_skipped(tmp_path):
    env = {**_env(tmp_path), "DMC_GPU_DRY_RUN": "1"}  # the variable's way into a dry run, instead of --dry-run
    proc = subprocess.run(["bash", str(CHECK), "--deadline-s", "0"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "out" / "gpu_results.json").read_text())
    assert [(m["name"], m["status"]) for m in results["models"]] == [("demo-llama", "skipped"), ("demo-llama-large", "skipped")]
    assert all("deadline" in m["reason"] for m in results["models"])
    assert results["dry_run"] is True and results["device"] == "cpu"


@pytest.mark.parametrize("args, message", [
    ([], "error: torch sees no CUDA device; run with --dry-run"),  # the real run, on this CPU machine
    (["--dry-run", "--recipes", "w4a16-rtn,nope"], "error: unknown recipe(s) nope; built-in: w4a16-rtn,"),
])
def test_a_run_that_cannot_start_says_why_in_one_line(args, message, tmp_path):
    proc = subprocess.run(["bash", str(CHECK), *args], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_missing_lists_only_wheels_whose_exact_version_is_not_installed(tmp_path):
    from importlib.metadata import version

    present = f"pydantic-{version('pydantic')}-py3-none-any.whl"
    other_version = "pyyaml-0.0.1-cp312-cp312-manylinux_2_17_x86_64.whl"
    absent = "no_such_dmc_package-1.0-py3-none-any.whl"
    for name in (present, other_version, absent):
        (tmp_path / name).write_bytes(b"")
    assert sorted(p.name for p in wheelcheck.missing(tmp_path)) == sorted([other_version, absent])


def test_unmet_reports_wrong_and_absent_requirements_but_not_extras(tmp_path, monkeypatch):
    info = tmp_path / "dmc_fake_carried-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dmc-fake-carried\nVersion: 1.0\n"
        "Requires-Dist: pydantic<1\nRequires-Dist: no-such-dmc-package>=2\nRequires-Dist: pyyaml\n"
        "Requires-Dist: no-such-dmc-extra; extra == \"x\"\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    problems = wheelcheck.unmet(["dmc-fake-carried"])
    assert len(problems) == 2, problems
    assert problems[0].startswith("dmc-fake-carried: pydantic<1 (found 2.")
    assert problems[1] == "dmc-fake-carried: no-such-dmc-package>=2 (found nothing)"


def test_a_gpu_trained_model_gets_its_own_cache_key():
    from dagster_project.demo.model import DemoModelSpec

    assert DemoModelSpec(device="cuda").content_hash() != DemoModelSpec().content_hash()
    assert DemoModelSpec(device="cpu").content_hash() == DemoModelSpec().content_hash()
