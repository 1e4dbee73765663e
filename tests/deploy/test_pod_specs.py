"""Step pods built by dagster-k8s itself from `step_tags`, validated against Kubernetes' schema."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg
import kubernetes_validate
import pytest
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from kubernetes.client import ApiClient

from dagster_project.k8s import (
    GPU_POOL,
    K8S_CONFIG_TAG,
    Placement,
    compute_kind_tags,
    memory_request_gi,
    pool_for,
    step_tags,
)

K8S_VERSION = "1.33.0"
PLACEMENT = Placement(node_selector={"nvidia.com/gpu.present": "true"}, eval_image="quay.io/acme/dmc-eval:1.0")


def _job(tags: dict, name: str) -> dict:
    """The Job dict the k8s_job_executor would create for a step with these op tags."""

    @dg.asset(name=name.replace("-", "_"), op_tags=tags)
    def _a() -> None: ...

    # Op tags reach the executor as JSON strings; go through the executor's own parser.
    user_config = get_user_defined_k8s_config(_a.op.tags)
    job_config = DagsterK8sJobConfig(
        job_image="quay.io/acme/dmc-compress:1.0",
        dagster_home="/opt/dagster/dagster_home",
        image_pull_policy="IfNotPresent",
        instance_config_map="dagster-instance",
        service_account_name="dmc-runner",
        postgres_password_secret="dagster-postgresql-secret",
    )
    job = construct_dagster_k8s_job(
        job_config,
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{name}",
        user_defined_k8s_config=user_config,
        component="step_worker",
    )
    manifest = ApiClient().sanitize_for_serialization(job)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def _container(manifest: dict) -> dict:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_gpu_step_job() -> None:
    manifest = _job(step_tags("gpu", model_size_gb=16, placement=PLACEMENT), "compress-gpu")
    pod = manifest["spec"]["template"]["spec"]
    c = _container(manifest)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert c["resources"]["requests"]["memory"] == "40Gi"  # 2.5 × 16 GB
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "NVIDIA-A10G-SHARED", "effect": "NoSchedule"}
    ]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert _env(c)["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hf-hub-secret", "key": "HF_TOKEN", "optional": True,
    }
    assert "DMC_REGISTRY_TOKEN" not in _env(c)
    assert c["image"] == "quay.io/acme/dmc-compress:1.0"  # inherits the code location image
    assert pod["serviceAccountName"] == "dmc-runner"


def test_cpu_step_job() -> None:
    manifest = _job(step_tags("cpu", placement=PLACEMENT), "publish-cpu")
    pod = manifest["spec"]["template"]["spec"]
    c = _container(manifest)
    assert "nvidia.com/gpu" not in json.dumps(c["resources"])
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "4Gi"}
    assert "tolerations" not in pod and "nodeSelector" not in pod
    env = _env(c)
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-hub-secret"
    assert env["DMC_REGISTRY_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "model-registry-token", "key": "token", "optional": True,
    }


def test_vllm_eval_step_job() -> None:
    manifest = _job(step_tags("vllm-eval", model_size_gb=4, placement=PLACEMENT), "eval-vllm")
    pod = manifest["spec"]["template"]["spec"]
    c = _container(manifest)
    assert c["image"] == "quay.io/acme/dmc-eval:1.0"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in pod["volumes"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_tags_parse_as_user_defined_config() -> None:
    for kind in ("cpu", "gpu", "vllm-eval"):
        cfg = UserDefinedDagsterK8sConfig.from_dict(step_tags(kind, placement=PLACEMENT)[K8S_CONFIG_TAG])
        assert cfg.container_config["resources"]["requests"]


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


def test_pools_and_kinds() -> None:
    assert pool_for("cpu") is None
    assert pool_for("gpu") == pool_for("vllm-eval") == GPU_POOL
    assert "dagster/kind/gpu" in compute_kind_tags("gpu")


def test_import_is_cheap() -> None:
    code = (
        "import sys, dagster_project.k8s as k;"
        "k.step_tags('gpu');"
        "bad = [m for m in ('dagster_k8s', 'kubernetes', 'dagster', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
