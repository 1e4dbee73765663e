"""The Kubernetes executor, plus one check dagster-k8s leaves out: a step pod that cannot be scheduled.

dagster-k8s's step handler calls a step healthy while its Job has not failed, so a pod the scheduler
cannot place (every GPU taken, a toleration missing) keeps the run waiting forever. Here such a pod
fails its step after `Placement.unschedulable_timeout_s`, with the scheduler's own reason
("0/2 nodes are available: 1 Insufficient nvidia.com/gpu, ...") in the run's failure message.
dagster_k8s is imported only when this module is (DMC_EXECUTOR=k8s).
"""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import executor
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements
from dagster._core.executor.step_delegating import CheckStepHealthResult
from dagster_k8s import k8s_job_executor
from dagster_k8s.executor import K8sStepHandler

from dagster_project.k8s import Placement


def unschedulable_reason(core_api, namespace: str, job_name: str, timeout_s: float,
                         now: datetime | None = None) -> str | None:
    """Why the Job's pod has been unschedulable for longer than `timeout_s`; None when it is not (yet)."""
    if timeout_s <= 0:
        return None
    now = now or datetime.now(timezone.utc)
    for pod in core_api.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items:
        if (pod.status.phase or "") != "Pending":
            continue
        cond = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
        if cond is None or cond.status != "False" or cond.reason != "Unschedulable":
            continue
        waited = (now - pod.metadata.creation_timestamp).total_seconds()
        if waited >= timeout_s:
            return (f"pod {pod.metadata.name} could not be scheduled for {waited:.0f} s "
                    f"(limit DMC_K8S_UNSCHEDULABLE_TIMEOUT_S={timeout_s:g}): {cond.message}. Check the step's "
                    "GPU request, tolerations and node selector (DMC_K8S_* / the chart's placement values) "
                    "against the cluster's nodes, or free a GPU node.")
    return None


class SchedulingAwareStepHandler(K8sStepHandler):
    """dagster-k8s's step handler; a step whose pod stays unschedulable past the limit is unhealthy."""

    unschedulable_timeout_s: float = 900.0

    def check_step_health(self, step_handler_context) -> CheckStepHealthResult:
        result = super().check_step_health(step_handler_context)
        if not result.is_healthy:
            return result
        namespace = self._get_container_context(step_handler_context).namespace
        job_name = self._get_k8s_step_job_name(step_handler_context)
        reason = unschedulable_reason(self._api_client.core_api, namespace, job_name, self.unschedulable_timeout_s)
        if reason is None:
            return result
        # The Job goes too: left behind, its pod would run this step of a failed run once a node frees up.
        self._api_client.delete_job(job_name=job_name, namespace=namespace)
        return CheckStepHealthResult.unhealthy(f"{reason} Its Job {job_name} was deleted.")


@executor(name="k8s", config_schema=k8s_job_executor.config_schema,
          requirements=multiple_process_executor_requirements())
def k8s_step_executor(init_context):
    """dagster-k8s's k8s_job_executor (same config, same Jobs), with the unschedulable-pod check."""
    built = k8s_job_executor.executor_creation_fn(init_context)
    handler = built._step_handler  # noqa: SLF001 - the one object this executor changes
    handler.__class__ = SchedulingAwareStepHandler
    handler.unschedulable_timeout_s = Placement.load().unschedulable_timeout_s
    return built
