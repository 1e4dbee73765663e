"""How runs execute here: the executor and the client that runs the vLLM evaluation.

`DMC_EXECUTOR` (the Helm chart sets `k8s`) picks them; unset, a laptop keeps Dagster's default
executor and runs vLLM as a subprocess. dagster_k8s is imported only when it is asked for.
"""

from __future__ import annotations

from dagster import ExecutorDefinition, PipesClient, PipesSubprocessClient, in_process_executor
from dagster import multi_or_in_process_executor, multiprocess_executor

from dagster_project.settings import load_settings


def executor_name(environ: dict[str, str] | None = None) -> str:
    return load_settings(environ).compute.executor


def on_kubernetes(environ: dict[str, str] | None = None) -> bool:
    return executor_name(environ) == "k8s"


def executor(environ: dict[str, str] | None = None) -> ExecutorDefinition:
    """k8s: one Kubernetes Job per step (placement from each asset's op tags, see k8s.py); a step pod
    that stays unschedulable fails its step with the scheduler's reason (resources/k8s_steps.py)."""
    name = executor_name(environ)
    if name == "k8s":
        from dagster_project.resources.k8s_steps import k8s_step_executor

        return k8s_step_executor
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    return multi_or_in_process_executor


def vllm_pipes_client(environ: dict[str, str] | None = None) -> PipesClient:
    """On Kubernetes the vLLM runner gets its own pod in the eval image; elsewhere a subprocess."""
    if on_kubernetes(environ):
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient()
    return PipesSubprocessClient()
