"""Step pods of the REAL code location on Kubernetes, built by dagster-k8s from the assets' op tags.

`tests/deploy/step_jobs.py` loads `dagster_project.definitions` in a fresh process with the
chart's settings, resolves the run that each launcher starts (UI, backfill, sensors, schedule),
builds its execution plan and makes every step's Job with dagster-k8s's own functions. The Jobs
are validated against Kubernetes' schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from dagster_project.k8s import K8S_CONFIG_TAG, Placement, memory_request_gi, step_tags

K8S_VERSION = "1.33.0"
ROOT = Path(__file__).resolve().parents[2]
CPU_STEPS = {"base_model", "calibration_dataset", "model_comparison", "hub_release", "registry_entry"}
CHECK_STEPS = {"evaluation_report_loads_and_generates", "evaluation_report_recovery_meets_threshold",
               "evaluation_report_size_reduced"}
EVAL_STEPS = {"base_evaluation", "evaluation_report"}
CHART_ENV = {  # what the chart's dmc-env ConfigMap sets (see test_helm.py for the rendered one)
    "DMC_EXECUTOR": "k8s",
    "DMC_K8S_NODE_SELECTOR": '{"nvidia.com/gpu.present": "true"}',
    "DMC_K8S_MODEL_SIZE_GB": "8",
    "DMC_K8S_EVAL_IMAGE": "quay.io/acme/dmc-eval:1.0",
}


def launch_plans(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DMC_K8S_", "DMC_EXECUTOR"))}
    proc = subprocess.run([sys.executable, str(ROOT / "tests/deploy/step_jobs.py")], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def hf_plans() -> dict:
    return launch_plans(**CHART_ENV)


def _pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def _container(job: dict) -> dict:
    (container,) = _pod(job)["containers"]
    return container


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _steps(plans: dict) -> dict[str, list[dict]]:
    """step key → its Job in every launcher that runs it."""
    out: dict[str, list[dict]] = {}
    for launcher in plans["launchers"].values():
        for key, job in launcher["steps"].items():
            out.setdefault(key, []).append(job)
    return out


def test_every_run_uses_the_k8s_executor(hf_plans) -> None:
    assert set(hf_plans["executors"].values()) == {"k8s"}, hf_plans["executors"]
    assert {name for name in hf_plans["launchers"]} == {
        "ui", "backfill", "sensor:base_model_job", "sensor:variant_job", "sensor:variant_follow_up",
        "schedule:variant_job"}
    assert {launcher["executor"] for launcher in hf_plans["launchers"].values()} == {"k8s"}
    # The schedule's run carries no placement of its own: run tags never reach step pods.
    assert not any(k.startswith("dagster-k8s") for k in hf_plans["schedule_tags"])


def test_same_placement_whatever_launched_the_run(hf_plans) -> None:
    steps = _steps(hf_plans)
    assert set(steps) == CPU_STEPS | CHECK_STEPS | EVAL_STEPS | {"compressed_model"}
    assert len(steps["compressed_model"]) == 3  # backfill, sensor, schedule
    for key, jobs in steps.items():
        pods = [_pod(j) for j in jobs]
        assert all(p == pods[0] for p in pods), f"{key}: placement differs between launchers"
        for job in jobs:
            kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_compression_step_is_the_gpu_pod(hf_plans) -> None:
    job = _steps(hf_plans)["compressed_model"][0]
    pod, c = _pod(job), _container(job)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["resources"]["requests"]["memory"] == "20Gi"  # 2.5 × the chart's 8 GB model
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "NVIDIA-A10G-SHARED", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert _env(c)["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-hub-secret", "key": "HF_TOKEN",
                                                                 "optional": True}
    assert "DMC_REGISTRY_TOKEN" not in _env(c)  # GPU pods never see the registry token
    assert c["image"] == "quay.io/acme/dagster-model-compression:0.1.0"  # the code location's image
    assert pod["serviceAccountName"] == "dmc-runner"


def test_cpu_steps_get_no_gpu(hf_plans) -> None:
    steps = _steps(hf_plans)
    for key in CPU_STEPS | CHECK_STEPS:
        job = steps[key][0]
        assert "nvidia.com/gpu" not in json.dumps(job), key
        assert "tolerations" not in _pod(job) and "nodeSelector" not in _pod(job), key
        assert _container(job)["resources"]["requests"]["cpu"] == "1", key
    registry = _env(_container(steps["registry_entry"][0]))
    assert registry["DMC_REGISTRY_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "model-registry-token"


def test_hf_evaluation_runs_where_the_chart_says(hf_plans) -> None:
    for key in EVAL_STEPS:  # default: hf backend on a GPU pod
        assert _container(_steps(hf_plans)[key][0])["resources"]["limits"]["nvidia.com/gpu"] == "1"
    on_cpu = _steps(launch_plans(**CHART_ENV, DMC_K8S_HF_EVAL_ON="cpu"))
    for key in EVAL_STEPS:
        assert "nvidia.com/gpu" not in json.dumps(on_cpu[key][0]), key
    assert "nvidia.com/gpu" in json.dumps(on_cpu["compressed_model"][0])


def test_vllm_evaluation_steps_are_cpu_pods_that_start_the_eval_pod() -> None:
    steps = _steps(launch_plans(**CHART_ENV, DMC_K8S_EVALUATION_BACKEND="vllm"))
    for key in EVAL_STEPS:
        c = _container(steps[key][0])
        assert "nvidia.com/gpu" not in json.dumps(c), key  # the GPU is the Pipes pod's
        assert c["image"] == "quay.io/acme/dagster-model-compression:0.1.0"


def test_laptop_and_cluster_clients() -> None:
    from dagster import PipesSubprocessClient
    from dagster_k8s import PipesK8sClient, k8s_job_executor

    from dagster_project.deployment import executor, vllm_pipes_client

    assert executor({}).name == "multi_or_in_process_executor"  # Dagster's default: unchanged
    assert executor({"DMC_EXECUTOR": "in_process"}).name == "in_process"
    k8s = executor({"DMC_EXECUTOR": "k8s"})
    # dagster-k8s's executor with its own config (what the chart and users pass), plus the scheduling check
    assert k8s.name == k8s_job_executor.name and k8s.config_schema is k8s_job_executor.config_schema
    assert isinstance(vllm_pipes_client({}), PipesSubprocessClient)
    assert isinstance(vllm_pipes_client({"DMC_EXECUTOR": "k8s"}), PipesK8sClient)
    with pytest.raises(ValueError, match="DMC_EXECUTOR"):
        executor({"DMC_EXECUTOR": "kubernetes"})


def test_vllm_pod_needs_the_model_on_the_pvc() -> None:
    """With an S3 store the variant is in the step's scratch folder, which the vLLM pod cannot see."""
    from dagster_k8s import PipesK8sClient

    from dagster_project.evaluation.tasks import resolve_task_set
    from dagster_project.resources.vllm_pipes import build_invocation, run_k8s

    inv = build_invocation("/tmp/scratch/models/m/variants/r", resolve_task_set("demo"), "/tmp/scratch/out.json")
    with pytest.raises(RuntimeError, match="models PVC"):
        run_k8s(None, PipesK8sClient(), inv, "/tmp/scratch/models/m/variants/r",
                placement=Placement(models_pvc="dmc-models"))


def test_memory_scales_with_model_size() -> None:
    p = Placement()
    assert memory_request_gi("cpu", None, p) == 4
    assert memory_request_gi("cpu", 1.0, p) == 4
    assert memory_request_gi("cpu", 3.3, p) == 9  # ceil(8.25)
    assert memory_request_gi("gpu", None, p) == 16
    assert memory_request_gi("gpu", 70, p) == 175
    with pytest.raises(ValueError):
        step_tags("tpu")  # type: ignore[arg-type]


def test_env_and_yaml_overrides(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "placement.yaml"
    cfg.write_text("toleration_value: NVIDIA-H100\neval_image: from-yaml:1\n")
    monkeypatch.setenv("DMC_K8S_CONFIG", str(cfg))
    monkeypatch.setenv("DMC_K8S_EVAL_IMAGE", "from-env:2")
    monkeypatch.setenv("DMC_K8S_NODE_SELECTOR", "nvidia.com/gpu.present=true,pool=gpu")
    monkeypatch.setenv("DMC_K8S_GPU_RESOURCE_NAME", "amd.com/gpu")
    monkeypatch.setenv("DMC_K8S_TOLERATION_KEY", "")
    tags = step_tags("vllm-eval")[K8S_CONFIG_TAG]
    assert tags["container_config"]["image"] == "from-env:2"  # env beats YAML
    assert tags["container_config"]["resources"]["limits"]["amd.com/gpu"] == "1"
    assert tags["pod_spec_config"]["node_selector"] == {"nvidia.com/gpu.present": "true", "pool": "gpu"}
    assert "tolerations" not in tags["pod_spec_config"]
    # to_env() is the inverse of load(): the Helm ConfigMap has exactly this shape.
    p = Placement(node_selector={"a": "b"}, secrets_optional=False)
    assert Placement.load(path=None, environ=p.to_env()) == p


def test_bad_settings_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="DMC_K8S_TOLERATON_KEY"):
        Placement.load(environ={"DMC_K8S_TOLERATON_KEY": "x"})
    cfg = tmp_path / "p.yaml"
    cfg.write_text("gpu_count: 0\n")
    with pytest.raises(ValueError, match="gpu_count"):
        Placement.load(path=cfg, environ={})
    cfg.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="mapping"):
        Placement.load(path=cfg, environ={})


def test_import_is_cheap() -> None:
    code = (
        "import sys, dagster_project.k8s as k;"
        "k.step_tags('gpu');"
        "bad = [m for m in ('dagster_k8s', 'kubernetes', 'dagster', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
