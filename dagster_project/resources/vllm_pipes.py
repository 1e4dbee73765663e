"""The vLLM evaluation invocation, and running it through Dagster Pipes.

vLLM cannot share an environment with llmcompressor, so the orchestrator never imports it: it
builds one `VllmInvocation` (the separate environment's Python, the runner, its arguments, its
environment) and hands it to
- `dagster.PipesSubprocessClient` on a laptop or a GPU node (the vLLM venv, `$DMC_VLLM_PYTHON`,
  default /opt/vllm/bin/python), or
- `dagster_k8s.PipesK8sClient` with the evaluation image on Kubernetes (`k8s_run_kwargs` builds
  the pod from the `vllm-eval` placement: image, command, GPU resources, tolerations, /dev/shm,
  the models PVC, secrets). `evaluate_vllm` picks the path from the client it is given.
The runner (`vllm_runner.py`) streams its log lines back and writes an lm-eval-shaped results
JSON; `read_results` takes it (from the Pipes message, else the file) and `to_eval_result` parses
it with the same `parse_results` as the in-process `hf` backend.

Tokens never appear in a command line: the subprocess inherits them from the environment and the
pod reads them from Kubernetes secrets.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import Config, PipesSubprocessClient
from pydantic import ConfigDict, Field

from dagster_project.evaluation.tasks import TaskSet
from dagster_project.settings import load_settings

PYTHON_ENV = "DMC_VLLM_PYTHON"
DEFAULT_PYTHON = "/opt/vllm/bin/python"
RUNNER_PATH = Path(__file__).resolve().parents[1] / "evaluation" / "vllm_runner.py"
RUNNER_MODULE = "dagster_project.evaluation.vllm_runner"
IMAGE_PYTHON = "python"  # the evaluation image's venv is first on PATH
MESSAGE_KIND = "lm_eval_results"  # = vllm_runner.MESSAGE_KIND (the runner may not import this module)

# Inherited from the orchestrator's environment when set (GPU selection, caches, vLLM knobs).
PASSTHROUGH_ENV = (
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "CUDA_HOME", "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES", "LD_LIBRARY_PATH", "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE",
    "XDG_CACHE_HOME", "TRITON_CACHE_DIR",
)
PASSTHROUGH_PREFIXES = ("VLLM_",)
# Secret-bearing variables: inherited (subprocess) or secretKeyRef'd (pod), never put in arguments.
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # and the registry token, from the settings


class VllmConfig(Config):
    """lm-eval's vLLM backend settings (RHOAI's example defaults)."""

    dtype: str = "bfloat16"
    max_model_len: int = Field(default=4096, ge=16)
    gpu_memory_utilization: float = Field(default=0.8, gt=0, le=1)
    add_bos_token: bool = True
    tensor_parallel_size: int = Field(default=1, ge=1)
    batch_size: str = "auto"
    extra_model_args: dict[str, str] = Field(default_factory=dict, description="more lm-eval model_args")


class VllmSettings(VllmConfig):
    """What the runner gets: the user's VllmConfig (the evaluation step's run config) plus run constants."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not silently dropped

    seed: int = 1234
    speed_tokens: int = Field(default=32, ge=0, description="generation speed probe; 0 = none")


@dataclass(frozen=True)
class VllmInvocation:
    command: list[str]
    env: dict[str, str]
    extras: dict[str, Any]
    output: Path
    include_paths: list[str] = field(default_factory=list)

    def shell(self) -> str:
        """The command line, for logs and for reproducing a run by hand."""
        return shlex.join(self.command)


def vllm_python(environ: dict[str, str] | None = None) -> str:
    return load_settings(environ).compute.vllm_python


def runner_script(environ: dict[str, str] | None = None) -> str:
    return load_settings(environ).compute.vllm_runner or str(RUNNER_PATH)


def task_args(task_set: TaskSet) -> list[str]:
    """--task NAME[:SHOTS[:LIMIT]] for every task of the set."""
    out = []
    for t in task_set.tasks:
        spec = t.name
        if t.num_fewshot is not None or t.limit is not None:
            spec += f":{'' if t.num_fewshot is None else t.num_fewshot}"
        if t.limit is not None:
            spec += f":{t.limit}"
        out += ["--task", spec]
    return out


def runner_args(
    model_path: Path | str,
    task_set: TaskSet,
    output: Path | str,
    *,
    settings: VllmSettings,
    include_paths: list[str],
    limit: int | None = None,
) -> list[str]:
    args = [
        "--pretrained", str(model_path),
        *task_args(task_set),
        "--output", str(output),
        "--model", "vllm",
        "--dtype", settings.dtype,
        "--max-model-len", str(settings.max_model_len),
        "--gpu-memory-utilization", f"{settings.gpu_memory_utilization:g}",
        "--add-bos-token", "true" if settings.add_bos_token else "false",
        "--tensor-parallel-size", str(settings.tensor_parallel_size),
        "--batch-size", settings.batch_size,
        "--seed", str(settings.seed),
        "--speed-tokens", str(settings.speed_tokens),
    ]
    for key, value in sorted(settings.extra_model_args.items()):
        args += ["--model-arg", f"{key}={value}"]
    for path in include_paths:
        args += ["--include-path", str(path)]
    if task_set.offline:
        args.append("--no-default-tasks")
    if limit:
        args += ["--limit", str(limit)]
    return args


def runner_env(
    task_set: TaskSet,
    settings: VllmSettings,
    environ: dict[str, str] | None = None,
    *,
    offline: bool | None = None,
) -> dict[str, str]:
    """The runner's own variables (the subprocess also inherits the rest of the environment)."""
    src = os.environ if environ is None else environ
    env = {k: v for k, v in src.items() if k in PASSTHROUGH_ENV or k.startswith(PASSTHROUGH_PREFIXES)}
    if offline is None:
        offline = task_set.offline or src.get("HF_HUB_OFFLINE", "") in ("1", "true", "True")
    flag = "1" if offline else "0"
    env.update({
        # The model is a local folder; offline task sets read local files only.
        "HF_HUB_OFFLINE": flag,
        "HF_DATASETS_OFFLINE": flag,
        "HF_EVALUATE_OFFLINE": flag,
        # CUDA cannot be re-initialised in a forked worker.
        "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        "TQDM_DISABLE": "1",  # Dagster's log lines are the progress report
        # The orchestrator's packages (torch 2.13, compressed-tensors 0.19) must not leak in.
        "PYTHONPATH": "",
    })
    if settings.tensor_parallel_size > 1 and "NCCL_P2P_DISABLE" in src:
        env["NCCL_P2P_DISABLE"] = src["NCCL_P2P_DISABLE"]
    return env


def build_invocation(
    model_path: Path | str,
    task_set: TaskSet,
    output: Path | str,
    *,
    settings: VllmSettings | None = None,
    include_paths: list[str] | None = None,
    limit: int | None = None,
    python: str | None = None,
    runner: str | None = None,
    environ: dict[str, str] | None = None,
) -> VllmInvocation:
    """The exact subprocess invocation: [vLLM env python, runner script, args...] + environment."""
    settings = settings or VllmSettings()
    include_paths = [str(p) for p in include_paths or []]
    args = runner_args(model_path, task_set, output, settings=settings, include_paths=include_paths, limit=limit)
    command = [python or vllm_python(environ), runner or runner_script(environ), *args]
    _assert_no_secrets(command, environ)
    extras = {"vllm_eval": {"task_set": task_set.name}}
    return VllmInvocation(command=command, env=runner_env(task_set, settings, environ), extras=extras,
                          output=Path(output), include_paths=include_paths)


def _assert_no_secrets(command: list[str], environ: dict[str, str] | None) -> None:
    env = os.environ if environ is None else environ
    token = load_settings(environ).registry.token
    secrets = {name: env.get(name) for name in SECRET_ENV}
    secrets["DMC_REGISTRY_TOKEN"] = token.get_secret_value() if token else None
    for name, value in secrets.items():
        if value and any(value in part for part in command):
            raise ValueError(f"the value of ${name} would appear in the vLLM command line")


def run_subprocess(context, client, invocation: VllmInvocation) -> dict[str, Any]:
    """Run the invocation with a `PipesSubprocessClient`; returns the runner's results dict."""
    context.log.info(f"vLLM evaluation: {invocation.shell()}")
    python = invocation.command[0]
    if os.path.sep in python and not Path(python).exists():
        raise FileNotFoundError(
            f"no vLLM environment at {python}: set ${PYTHON_ENV} to the Python of a venv with "
            f"vllm and lm-eval[vllm] (it cannot share the compression environment)"
        )
    completed = client.run(command=invocation.command, context=context, extras=invocation.extras,
                           env=invocation.env)
    return read_results(completed.get_custom_messages(), invocation.output)


def read_results(messages: list[Any], output: Path) -> dict[str, Any]:
    """The runner's results: the Pipes message's payload, else the results file it wrote."""
    for message in reversed(list(messages or [])):
        if isinstance(message, dict) and message.get("kind") == MESSAGE_KIND and message.get("results"):
            return message["results"]
    if Path(output).is_file():
        return json.loads(Path(output).read_text())
    raise RuntimeError(f"the vLLM runner reported no results (no Pipes message, no {output})")


def to_eval_result(results: dict[str, Any], model_path: Path | str, task_set: TaskSet):
    from dagster_project.evaluation.hf_eval import EvalResult, parse_results

    return EvalResult(
        model_path=str(model_path), task_set=task_set.name, scores=parse_results(results),
        eval_seconds=float(results.get("eval_seconds") or 0.0), backend="vllm",
        device=str((results.get("speed") or {}).get("device") or "cuda"),
        lm_eval_version=str(results.get("lm_eval_version") or ""), raw=results.get("results") or {},
    )


def speed_from_results(results: dict[str, Any]) -> dict[str, Any] | None:
    """The runner's speed probe in `SpeedResult`'s shape (or None when it ran none)."""
    speed = results.get("speed")
    if not speed:
        return None
    return {k: speed.get(k) for k in ("load_seconds", "latency_seconds", "tokens_per_second", "new_tokens",
                                       "sample", "device")}


def evaluate_vllm(
    context,
    client,
    model_path: Path,
    task_set: TaskSet,
    output: Path,
    *,
    include_paths: list[str] | None = None,
    limit: int | None = None,
    settings: VllmSettings | None = None,
):
    """Evaluate `model_path` in the vLLM environment; returns (EvalResult, speed dict, raw results)."""
    invocation = build_invocation(model_path, task_set, output, settings=settings,
                                  include_paths=include_paths, limit=limit)
    if isinstance(client, PipesSubprocessClient):
        results = run_subprocess(context, client, invocation)
    else:
        results = run_k8s(context, client, invocation, model_path)
    return to_eval_result(results, model_path, task_set), speed_from_results(results), results


# ---------------------------------------------------------------- Kubernetes (PipesK8sClient)

def k8s_run_kwargs(
    invocation: VllmInvocation,
    *,
    placement=None,
    model_size_gb: float | None = None,
    models_pvc: str | None = None,
    models_mount_path: str = "/models",
    namespace: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `PipesK8sClient().run(context=..., **kwargs)`: the same runner, the
    same arguments, in the evaluation image, with the `vllm-eval` step placement."""
    from dagster_project.k8s import K8S_CONFIG_TAG, load_placement, step_tags

    p = placement or load_placement()
    tag = step_tags("vllm-eval", model_size_gb=model_size_gb, placement=p)[K8S_CONFIG_TAG]
    container = dict(tag["container_config"])
    pod_spec = dict(tag.get("pod_spec_config") or {})
    container.pop("image", None)
    pull = container.pop("image_pull_policy", None)
    # In the image the runner is an installed module, not a file of this checkout.
    args = invocation.command[2:]
    command = [IMAGE_PYTHON, "-m", RUNNER_MODULE, *args]
    # Pod env: the runner's variables except those describing this machine's GPUs/paths.
    env = {k: v for k, v in invocation.env.items()
           if k not in PASSTHROUGH_ENV and not (k.startswith(PASSTHROUGH_PREFIXES) and k not in
                                                ("VLLM_WORKER_MULTIPROC_METHOD", "VLLM_NO_USAGE_STATS"))}
    env.pop("PYTHONPATH", None)
    main = {"name": "dagster-pipes-execution", **container}
    if pull:
        main["image_pull_policy"] = pull
    if models_pvc:
        main["volume_mounts"] = [*main.get("volume_mounts", []), {"name": "models", "mount_path": models_mount_path}]
        pod_spec["volumes"] = [*pod_spec.get("volumes", []),
                               {"name": "models", "persistent_volume_claim": {"claim_name": models_pvc}}]
    pod_spec["containers"] = [main]
    pod_spec.setdefault("restart_policy", "Never")
    kwargs: dict[str, Any] = {
        "image": p.eval_image, "command": command, "env": env, "extras": invocation.extras,
        "base_pod_spec": pod_spec,
        "base_pod_meta": {"labels": {"app.kubernetes.io/component": "vllm-eval"}},
    }
    if namespace:
        kwargs["namespace"] = namespace
    return kwargs


def run_k8s(context, client, invocation: VllmInvocation, model_path: Path | str, *, placement=None) -> dict[str, Any]:
    """Run the invocation in its own pod with a `PipesK8sClient`; returns the runner's results dict.

    The pod mounts the models PVC at the same path as the step pods, so the model folder and the
    task files are where the step sees them; the results come back as a Pipes message."""
    from dagster_project.k8s import load_placement

    p = placement or load_placement()
    outside = [str(path) for path in (model_path, *invocation.include_paths) if not _under(str(path), p.models_mount_path)]
    if not p.models_pvc or outside:
        raise RuntimeError(
            f"the vLLM pod reads the model from the models PVC ({p.models_pvc or 'DMC_K8S_MODELS_PVC unset'} at "
            f"{p.models_mount_path}); these paths are not on it: {outside or 'n/a'}. "
            "Use artifactStore.kind=pvc for evaluation backend vllm on Kubernetes."
        )
    kwargs = k8s_run_kwargs(invocation, placement=p, model_size_gb=p.model_size_gb, models_pvc=p.models_pvc,
                            models_mount_path=p.models_mount_path)
    context.log.info(f"vLLM evaluation pod ({kwargs['image']}): {shlex.join(kwargs['command'])}")
    completed = client.run(context=context, **kwargs)
    return read_results(completed.get_custom_messages(), invocation.output)


def _under(path: str, root: str) -> bool:
    return os.path.normpath(path).startswith(os.path.normpath(root).rstrip("/") + "/")
