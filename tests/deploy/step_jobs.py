"""Print, as JSON, the Kubernetes Job of every step of the runs each launcher starts.

Run in a fresh process (the environment decides how `dagster_project.definitions` loads):
`DMC_EXECUTOR=k8s python tests/deploy/step_jobs.py`. Each launcher's run is resolved the way
Dagster resolves it (job definition + run config), its execution plan built, and each step's Job
made by dagster-k8s's own functions from the step's tags, as `K8sStepHandler.launch_step` does.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime, timezone


def step_jobs(job_def, run_config: dict | None = None) -> dict[str, dict]:
    from dagster._core.execution.api import create_execution_plan
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config
    from kubernetes.client import ApiClient

    plan = create_execution_plan(job_def, run_config=run_config or {})
    out = {}
    for step in plan.get_all_steps_in_topo_order():
        # = K8sStepHandler.launch_step (step tags → user-defined config → Job), minus the API call;
        # the job config is what the chart's run launcher passes (image, env ConfigMap, account).
        job_config = DagsterK8sJobConfig(
            job_image="quay.io/acme/dagster-model-compression:0.1.0", dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dmc-dagster-instance", service_account_name="dmc-runner",
            env_config_maps=["dmc-env"], image_pull_policy="IfNotPresent",
        )
        job = construct_dagster_k8s_job(
            job_config=job_config, args=["dagster", "api", "execute_step"], job_name=f"dagster-step-{step.key}"[:63],
            pod_name=f"dagster-step-{step.key}"[:63], component="step_worker",
            user_defined_k8s_config=get_user_defined_k8s_config(step.tags),
            labels={"dagster/job": job_def.name, "dagster/op": step.key},
        )
        out[step.key] = ApiClient().sanitize_for_serialization(job)
    return out


def schedule_run(defs, instance) -> tuple[str, dict, dict]:
    """The run the nightly schedule requests for a base model whose variants are missing."""
    from dagster import AssetMaterialization, build_schedule_context

    instance.add_dynamic_partitions("models", ["demo-llama"])
    instance.add_dynamic_partitions("recipes", ["w4a16-gptq"])
    instance.report_runless_asset_event(AssetMaterialization("base_model", partition="demo-llama"))
    instance.report_runless_asset_event(AssetMaterialization("calibration_dataset", partition="demo-llama"))
    schedule = defs.get_schedule_def("nightly_compression")
    from dagster_project.resources.hf_hub import HuggingFaceHubResource

    # An empty watchlist: no Hub release to look for, only the catalog's missing variants.
    os.environ["DMC_WATCHLIST_FILE"] = os.path.join(instance.root_directory, "no-watchlist.yaml")
    ctx = build_schedule_context(instance=instance, instance_ref=instance.get_ref(),
                                 repository_def=defs.get_repository_def(),
                                 resources={"hub": HuggingFaceHubResource(endpoint="http://127.0.0.1:9")},
                                 scheduled_execution_time=datetime(2026, 1, 1, 2, tzinfo=timezone.utc))
    data = schedule.evaluate_tick(ctx)
    (req,) = [r for r in data.run_requests if "w4a16-gptq" in str(r.partition_key)]
    return req.job_name or schedule.job_name, dict(req.run_config or {}), dict(req.tags)


def main() -> None:
    from dagster import AssetKey, DagsterInstance

    from dagster_project.definitions import defs

    repo = defs.get_repository_def()
    global_job = defs.resolve_implicit_global_asset_job_def()
    variant_follow_up = [AssetKey(k) for k in ("evaluation_report", "model_comparison", "hub_release",
                                               "registry_entry")]
    result: dict = {"executors": {}, "launchers": {}}
    for job in [*repo.get_all_jobs()]:
        result["executors"][job.name] = job.executor_def.name

    with tempfile.TemporaryDirectory() as home:
        os.environ["DAGSTER_HOME"] = home
        with DagsterInstance.local_temp(home) as instance:
            sched_job, sched_config, sched_tags = schedule_run(defs, instance)
    sensor_jobs = sorted(t.job_name for t in defs.get_sensor_def("hub_watch_sensor").targets)
    launchers = {
        # The UI's "Materialize" and a backfill both launch the implicit asset job on a selection.
        "ui": (global_job.get_subset(asset_selection={AssetKey("base_model"), AssetKey("calibration_dataset"),
                                                      AssetKey("base_evaluation")}), {}),
        "backfill": (global_job.get_subset(asset_selection={AssetKey("compressed_model")}), {}),
        **{f"sensor:{name}": (defs.resolve_job_def(name), {}) for name in sensor_jobs},
        "sensor:variant_follow_up": (global_job.get_subset(asset_selection=set(variant_follow_up)), {}),
        f"schedule:{sched_job}": (defs.resolve_job_def(sched_job), sched_config),
    }
    for name, (job, run_config) in launchers.items():
        result["launchers"][name] = {"job": job.name, "executor": job.executor_def.name,
                                     "steps": step_jobs(job, run_config)}
    result["schedule_tags"] = sched_tags
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
