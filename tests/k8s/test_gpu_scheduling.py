"""The real kube-scheduler decides GPU placement from our `Placement` (scripts/k8s/cluster.sh).

The step Job is built by dagster-k8s's own `construct_dagster_k8s_job` from `step_tags`, exactly as
the k8s_job_executor builds it; the Job controller creates the pod and the scheduler places it on
the node that advertises `nvidia.com/gpu: 1` and carries the chart's GPU taint — or leaves it
Pending when the toleration is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import yaml
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

from dagster_project.k8s import Placement, step_tags

ROOT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((ROOT / "deploy/helm/dagster-model-compression/values.yaml").read_text())
# The cluster script's sandbox image: runs anywhere, never pulled.
IMAGE = "registry.k8s.io/pause:3.10"


def chart_placement(**overrides) -> Placement:
    """Placement from the chart's defaults; CPU/memory scaled to a 2-core test node."""
    tol = VALUES["placement"]["toleration"]
    base = dict(toleration_key=tol["key"], toleration_value=tol["value"], toleration_effect=tol["effect"],
                gpu_resource_name=VALUES["placement"]["gpuResourceName"], gpu_cpu_request="100m",
                gpu_min_memory_gi=1)
    return Placement(**{**base, **overrides})


def create_step_job(batch, core, ns: str, name: str, placement: Placement) -> None:
    @dg.asset(name=name.replace("-", "_"), op_tags=step_tags("gpu", placement=placement))
    def _step() -> None: ...

    if not core.list_namespaced_config_map(ns, field_selector="metadata.name=dagster-instance").items:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "dagster-instance"}, "data": {"dagster.yaml": ""}})
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image=IMAGE, dagster_home="/opt/dagster/dagster_home",
                            image_pull_policy="Never", instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"],
        job_name=name,
        user_defined_k8s_config=get_user_defined_k8s_config(_step.op.tags),
        component="step_worker",
    )
    job.spec.template.spec.host_network = True  # the node's only CNI plugin is loopback
    batch.create_namespaced_job(ns, job)


def wait_pod(core, ns: str, job: str, done, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    pods = []
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items
        if pods and done(pods[0]):
            return pods[0]
        time.sleep(1)
    raise AssertionError(f"pod of job {job}: condition not reached in {timeout}s; last: {pods[0].status if pods else 'no pod'}")


def scheduled_condition(pod):
    return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def test_gpu_step_needs_its_toleration(k8s_api, k8s_cluster) -> None:
    core, batch, ns = k8s_api
    node = core.read_node(k8s_cluster["node"])
    assert node.status.allocatable.get("nvidia.com/gpu") == "1"
    tol = VALUES["placement"]["toleration"]
    assert any(t.key == tol["key"] and t.value == tol["value"] and t.effect == tol["effect"]
               for t in node.spec.taints or [])

    # Without the toleration: Pending, and the scheduler says why.
    create_step_job(batch, core, ns, "compress-no-toleration", chart_placement(toleration_key=""))
    pending = wait_pod(core, ns, "compress-no-toleration",
                       lambda p: (c := scheduled_condition(p)) is not None and c.status == "False")
    cond = scheduled_condition(pending)
    assert cond.reason == "Unschedulable" and "untolerated taint" in cond.message, cond.message
    assert pending.spec.node_name is None

    # With our placement's toleration + GPU request: placed on the GPU node.
    create_step_job(batch, core, ns, "compress-gpu", chart_placement())
    placed = wait_pod(core, ns, "compress-gpu", lambda p: p.spec.node_name is not None)
    assert placed.spec.node_name == k8s_cluster["node"]
    (container,) = placed.spec.containers
    assert container.resources.requests["nvidia.com/gpu"] == "1"
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert any(t.key == tol["key"] and t.value == tol["value"] and t.effect == tol["effect"]
               for t in placed.spec.tolerations)

    # The untolerating pod is still not placed, even though it asked for the same GPU.
    again = core.read_namespaced_pod(pending.metadata.name, ns)
    assert again.spec.node_name is None and again.status.phase == "Pending"

    # What the Kubernetes executor's health check says about each (dagster_project/resources/k8s_steps.py).
    from datetime import timedelta

    from dagster_project.resources.k8s_steps import unschedulable_reason

    assert unschedulable_reason(core, ns, "compress-no-toleration", timeout_s=3600) is None  # not long enough yet
    later = again.metadata.creation_timestamp + timedelta(seconds=901)
    reason = unschedulable_reason(core, ns, "compress-no-toleration", timeout_s=900, now=later)
    assert reason and again.metadata.name in reason and "could not be scheduled for 901 s" in reason, reason
    assert scheduled_condition(again).message in reason  # the scheduler's own words
    assert unschedulable_reason(core, ns, "compress-gpu", timeout_s=900, now=later) is None  # placed
    assert unschedulable_reason(core, ns, "compress-no-toleration", timeout_s=0, now=later) is None  # 0: wait

    # The health check of the step handler the executor uses: unhealthy, and the Job is deleted.
    from dagster_k8s.client import DagsterKubernetesClient

    from dagster_project.resources.k8s_steps import SchedulingAwareStepHandler

    handler = SchedulingAwareStepHandler.__new__(SchedulingAwareStepHandler)  # no kubeconfig loading
    handler._api_client = DagsterKubernetesClient(batch_api=batch, core_api=core, logger=lambda *_: None,
                                                 sleeper=time.sleep, timer=time.time)
    handler.unschedulable_timeout_s = 0.001
    handler._get_step_key = lambda _ctx: "compressed_model"
    handler._get_k8s_step_job_name = lambda _ctx: "compress-no-toleration"
    handler._get_container_context = lambda _ctx: type("Ctx", (), {"namespace": ns})()
    result = handler.check_step_health(None)
    assert not result.is_healthy and "could not be scheduled" in result.unhealthy_reason
    assert "compress-no-toleration was deleted" in result.unhealthy_reason
    deadline = time.monotonic() + 60
    while batch.list_namespaced_job(ns, field_selector="metadata.name=compress-no-toleration").items:
        assert time.monotonic() < deadline, "the unschedulable step's Job was not deleted"
        time.sleep(1)
