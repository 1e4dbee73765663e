"""The runs of `make k8s-e2e` (scripts/k8s/e2e.py), launched through the webserver's GraphQL API
like the UI's "Materialize", then checked from the Kubernetes API: which pods ran each step, on
which node, with which requests, tolerations, image and secret references (never values)."""

from __future__ import annotations

import json
import os
import time

BASE_ASSETS = ["base_model", "calibration_dataset", "base_evaluation"]
NS = "dmc-e2e"
VARIANT_ASSETS = ["compressed_model", "evaluation_report", "hub_release", "registry_entry"]


def log(msg: str) -> None:
    print(f"[k8s-e2e] {msg}", flush=True)


def pods_of_run(core, ns: str, run_id: str) -> list:
    return sorted(core.list_namespaced_pod(ns, label_selector=f"dagster/run-id={run_id}").items,
                  key=lambda p: p.metadata.creation_timestamp)


def describe(pod) -> dict:
    (c, *_) = pod.spec.containers
    env_refs = {e.name: f"secret {e.value_from.secret_key_ref.name}/{e.value_from.secret_key_ref.key}"
                for e in c.env or [] if e.value_from and e.value_from.secret_key_ref}
    started = next((s.state.terminated.started_at or s.state.running and s.state.running.started_at
                    for s in pod.status.container_statuses or [] if s.state and s.state.terminated), None)
    return {
        "pod": pod.metadata.name,
        "step": (pod.metadata.labels or {}).get("dagster/op") or (pod.metadata.labels or {}).get("dagster/job"),
        "component": (pod.metadata.labels or {}).get("app.kubernetes.io/component"),
        "node": pod.spec.node_name,
        "phase": pod.status.phase,
        "requests": (c.resources.requests or {}) if c.resources else {},
        "tolerations": [f"{t.key}={t.value}:{t.effect}" for t in pod.spec.tolerations or [] if t.key and
                        not t.key.startswith("node.kubernetes.io/")],
        "image": c.image,
        "secret_env": env_refs,
        "created": pod.metadata.creation_timestamp,
        "container_started": started,
    }


def wait_run(client, run_id: str, timeout: float = 1800) -> str:
    from dagster import DagsterRunStatus

    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            return status.value
        time.sleep(2)
    raise SystemExit(f"run {run_id}: still {status} after {timeout:.0f} s")


def materialize_demo(e, port: int, model: str) -> None:
    from dagster import DagsterInstance, MultiPartitionKey
    from dagster_graphql import DagsterGraphQLClient
    from kubernetes import client as k8s, config

    os.environ["DAGSTER_HOME"] = str(e.state / "dagster_home")
    os.environ.update(e.chart_env())
    api = config.new_client_from_config(config_file=e.kubeconfig)
    core = k8s.CoreV1Api(api)
    gql = DagsterGraphQLClient("127.0.0.1", port_number=port)

    from dagster_project.partitions import model_partitions, recipe_partitions

    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(model_partitions.name, [model])
        instance.add_dynamic_partitions(recipe_partitions.name, e.recipes)

    report: list[dict] = []
    launches = [("base", BASE_ASSETS, {"dagster/partition": model})]
    for recipe in e.recipes:
        key = MultiPartitionKey({"model": model, "recipe": recipe})
        launches.append((recipe, VARIANT_ASSETS, {"dagster/partition": str(key),
                                                  "dagster/partition/model": model,
                                                  "dagster/partition/recipe": recipe}))
    failures = []
    for name, assets, tags in launches:
        t0 = time.monotonic()
        run_id = gql.submit_job_execution("__ASSET_JOB", tags=tags, asset_selection=[[a] for a in assets])
        status = wait_run(gql, run_id)
        pods = [describe(p) for p in pods_of_run(core, NS, run_id)]
        log(f"run {name} ({run_id[:8]}): {status} in {time.monotonic() - t0:.0f} s, {len(pods)} pod(s)")
        for p in pods:
            log(f"   {p['component'] or '?':<12} {p['step'] or '':<28} node={p['node']} requests={p['requests']} "
                f"tolerations={p['tolerations']} image={p['image']} secret_env={p['secret_env']}")
        report.append({"run": name, "run_id": run_id, "status": status, "pods": pods})
        if status != "SUCCESS":
            failures.append(name)
    (e.state.parent / f"dmc-k8s-e2e-report-{os.getuid()}.json").write_text(json.dumps(report, default=str, indent=1))
    if failures:
        raise SystemExit(f"runs failed: {failures} (webserver log: {e.state / 'dagster-webserver.log'})")
