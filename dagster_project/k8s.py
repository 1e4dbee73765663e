"""Where each step runs on Kubernetes: one `Placement`, turned into `dagster-k8s/config` op tags.

Every GPU/CPU placement decision (resources, tolerations, node selector, images, secrets) comes
from `Placement`, which the Helm chart fills through the `DMC_K8S_*` environment variables
(ConfigMap `dmc-env` of the Helm chart). Every asset and check takes `op_tags=op_tags(name)`:
the k8s_job_executor (`DMC_EXECUTOR=k8s`, see `deployment.py`) reads them for each step's Job,
whatever launched the run (UI, sensor, schedule, backfill) — run-level tags never reach step pods.
Importing this module is cheap: no dagster, no dagster_k8s, no kubernetes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from dagster_project.settings import K8S_PREFIX, load_settings

StepKind = Literal["cpu", "gpu", "vllm-eval"]
STEP_KINDS: tuple[str, ...] = ("cpu", "gpu", "vllm-eval")

K8S_CONFIG_TAG = "dagster-k8s/config"
ENV_PREFIX = K8S_PREFIX
CONFIG_FILE_ENV = "DMC_K8S_CONFIG"  # path to a YAML file with Placement fields (settings.k8s.config)

# Which step kind each asset (and the checks) runs as. "evaluation" follows the chart's
# evaluation settings (see `step_kind`). The GPU steps share the pool `model_compute`
# (automation/pools.py): its limit is how many of them run at once.
ASSET_STEPS: dict[str, str] = {
    "recipe": "cpu",
    "base_model": "cpu",
    "calibration_dataset": "cpu",
    "compressed_model": "gpu",
    "base_evaluation": "evaluation",
    "evaluation_report": "evaluation",
    "model_comparison": "cpu",
    "hub_release": "cpu",
    "registry_entry": "cpu",
    "checks": "cpu",
    "register_recipe": "cpu",
}


class Placement(BaseModel):
    """Cluster-specific placement settings; defaults follow RHOAI's shared-A10G example."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_resource_name: str = "nvidia.com/gpu"
    gpu_count: int = Field(default=1, ge=1)
    # An empty toleration_key means "no toleration" (GPU nodes without taints).
    toleration_key: str = "nvidia.com/gpu"
    toleration_value: str = "NVIDIA-A10G-SHARED"
    toleration_effect: str = "NoSchedule"
    node_selector: dict[str, str] = Field(default_factory=dict)
    # None: steps inherit the code location's image (the compress image runs the code server).
    compress_image: str | None = None
    eval_image: str = "dagster-model-compression-eval:0.1.0"
    image_pull_policy: str | None = None

    hf_token_secret: str = "hf-hub-secret"
    hf_token_key: str = "HF_TOKEN"
    hf_token_env: str = "HF_TOKEN"
    registry_token_secret: str = "model-registry-token"
    registry_token_key: str = "token"
    registry_token_env: str = "DMC_REGISTRY_TOKEN"
    # Optional secret refs let public models run before anyone creates the secrets.
    secrets_optional: bool = True

    cpu_request: str = "1"
    gpu_cpu_request: str = "4"
    min_memory_gi: int = Field(default=4, ge=1)
    gpu_min_memory_gi: int = Field(default=16, ge=1)
    memory_per_model_gb: float = Field(default=2.5, gt=0)
    # vLLM's worker processes share tensors through /dev/shm; the default 64 MiB is too small.
    shm_size: str = "8Gi"
    # A step pod the scheduler cannot place (no GPU node free, a missing toleration) fails its step
    # after this many seconds with the scheduler's reason, instead of the run waiting forever. 0: wait.
    unschedulable_timeout_s: float = Field(default=900, ge=0)
    # Size in GB of the largest base model this deployment compresses: memory of model steps.
    model_size_gb: float | None = Field(default=None, ge=0)
    # Default lm-eval backend of evaluation steps. "vllm": the step is a CPU pod that starts a
    # PipesK8sClient pod in the eval image; "hf": lm-eval runs in the step pod, on `hf_eval_on`.
    evaluation_backend: Literal["hf", "vllm"] = "hf"
    hf_eval_on: Literal["gpu", "cpu"] = "gpu"
    # The models PVC and where pods mount it: the vLLM pod reads the variant from there.
    models_pvc: str | None = None
    models_mount_path: str = "/models"

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name → environment variable that overrides it."""
        return {name: ENV_PREFIX + name.upper() for name in cls.model_fields}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Placement:
        """Defaults, then the YAML file (`path` or `$DMC_K8S_CONFIG`), then `DMC_K8S_*` variables."""
        settings = load_settings(environ)
        env = settings.placement_variables  # the DMC_K8S_<FIELD> values, parsed and checked here
        values: dict[str, Any] = {}
        path = path or settings.k8s.config
        if path:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping of Placement fields")
            values.update(loaded)
        names = cls.env_names()
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k != CONFIG_FILE_ENV and k not in names.values())
        if unknown:
            raise ValueError(f"unknown placement variables {unknown}; known: {sorted(names.values())}")
        for name, var in names.items():
            if var in env:
                values[name] = _parse_env(name, env[var])
        return cls.model_validate(values)

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce this placement (the Helm ConfigMap's shape)."""
        out: dict[str, str] = {}
        for name, var in self.env_names().items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, dict):
                out[var] = json.dumps(value, sort_keys=True)
            elif isinstance(value, bool):
                out[var] = "true" if value else "false"
            else:
                out[var] = str(value)
        return out


def _parse_env(name: str, raw: str) -> Any:
    if name == "node_selector":
        raw = raw.strip()
        if not raw:
            return {}
        if raw.startswith("{"):
            return json.loads(raw)
        # "k=v,k2=v2" for shells and Helm --set
        return dict(item.split("=", 1) for item in raw.split(",") if item.strip())
    if name in ("compress_image", "image_pull_policy", "model_size_gb", "models_pvc") and raw.strip() == "":
        return None
    return raw


def load_placement() -> Placement:
    """The placement of this process (re-read each call: cheap, and tests may change env)."""
    return Placement.load()


def memory_request_gi(kind: StepKind, model_size_gb: float | None, placement: Placement) -> int:
    """max(minimum, factor × model size) in whole GiB."""
    floor = placement.min_memory_gi if kind == "cpu" else placement.gpu_min_memory_gi
    if model_size_gb is None:
        return floor
    if model_size_gb < 0:
        raise ValueError("model_size_gb must be >= 0")
    return max(floor, math.ceil(placement.memory_per_model_gb * model_size_gb))


def _secret_env(env_name: str, secret: str, key: str, optional: bool) -> dict[str, Any]:
    return {
        "name": env_name,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}},
    }


def step_tags(
    kind: StepKind,
    model_size_gb: float | None = None,
    placement: Placement | None = None,
) -> dict[str, Any]:
    """`op_tags` for an asset/op: resources, secrets, image and GPU placement for its step pod."""
    if kind not in STEP_KINDS:
        raise ValueError(f"unknown step kind {kind!r}; expected one of {STEP_KINDS}")
    p = placement or load_placement()
    gpu = kind != "cpu"
    mem = f"{memory_request_gi(kind, model_size_gb, p)}Gi"

    requests: dict[str, str] = {"cpu": p.gpu_cpu_request if gpu else p.cpu_request, "memory": mem}
    limits: dict[str, str] = {"memory": mem}
    if gpu:
        requests[p.gpu_resource_name] = str(p.gpu_count)
        limits[p.gpu_resource_name] = str(p.gpu_count)

    env = [_secret_env(p.hf_token_env, p.hf_token_secret, p.hf_token_key, p.secrets_optional)]
    if kind == "cpu":
        # Publishing (registry, Hub) runs on CPU steps; GPU steps never see the registry token.
        env.append(
            _secret_env(p.registry_token_env, p.registry_token_secret, p.registry_token_key, p.secrets_optional)
        )

    container: dict[str, Any] = {"resources": {"requests": requests, "limits": limits}, "env": env}
    pod_spec: dict[str, Any] = {}

    image = p.eval_image if kind == "vllm-eval" else p.compress_image
    if image:
        container["image"] = image
        if p.image_pull_policy:
            container["image_pull_policy"] = p.image_pull_policy

    if gpu:
        if p.node_selector:
            pod_spec["node_selector"] = dict(p.node_selector)
        if p.toleration_key:
            toleration: dict[str, str] = {"key": p.toleration_key, "effect": p.toleration_effect}
            if p.toleration_value:
                toleration.update(operator="Equal", value=p.toleration_value)
            else:
                toleration["operator"] = "Exists"
            pod_spec["tolerations"] = [toleration]

    if kind == "vllm-eval":
        container["volume_mounts"] = [{"name": "dshm", "mount_path": "/dev/shm"}]
        pod_spec["volumes"] = [{"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": p.shm_size}}]

    config: dict[str, Any] = {"container_config": container}
    if pod_spec:
        config["pod_spec_config"] = pod_spec
    return {K8S_CONFIG_TAG: config}


def step_kind(asset: str, placement: Placement) -> StepKind:
    """The kind of pod an asset's step runs in (KeyError for an asset nobody placed)."""
    kind = ASSET_STEPS[asset]
    if kind == "evaluation":
        return "cpu" if placement.evaluation_backend == "vllm" else placement.hf_eval_on
    return kind  # type: ignore[return-value]


def op_tags(asset: str, placement: Placement | None = None) -> dict[str, Any]:
    """`op_tags` of an asset or check: its step pod's placement, from this process's Placement."""
    p = placement or load_placement()
    return step_tags(step_kind(asset, p), model_size_gb=p.model_size_gb, placement=p)


__all__ = [
    "ASSET_STEPS",
    "CONFIG_FILE_ENV",
    "ENV_PREFIX",
    "K8S_CONFIG_TAG",
    "STEP_KINDS",
    "Placement",
    "StepKind",
    "load_placement",
    "memory_request_gi",
    "op_tags",
    "step_kind",
    "step_tags",
]
