"""The runs of `make k8s-e2e` (scripts/k8s/e2e.py), launched through the webserver's GraphQL API
like the UI's "Materialize", then checked from the Kubernetes API: which pods ran each step, on
which node, with which requests, tolerations, image and secret references (never values)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

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
    ended = next((s.state.terminated for s in pod.status.container_statuses or [] if s.state and s.state.terminated),
                 None)
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
        "terminated": f"{ended.reason} (exit {ended.exit_code}) {ended.message or ''}".strip() if ended else None,
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


GPU_NODE, CPU_NODE = "dmc-node", "dmc-cpu"
GPU_STEPS = {"compressed_model"}  # evaluation.hfOn=cpu in the e2e values


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                 data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.loads(r.read())
    if body.get("errors"):
        raise SystemExit(f"GraphQL errors: {body['errors']}")
    return body["data"]


def step_events(instance, run_id: str) -> dict[str, dict[str, float]]:
    """step key -> {start, end}: Dagster's own event times (seconds since the epoch)."""
    from dagster import DagsterEventType

    out: dict[str, dict[str, float]] = {}
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None or not rec.step_key:
            continue
        if ev.event_type == DagsterEventType.STEP_START:
            out.setdefault(rec.step_key, {})["start"] = rec.timestamp
        elif ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            out.setdefault(rec.step_key, {})["end"] = rec.timestamp
    return out


def check_pods(run: dict, image: str, problems: list[str]) -> None:
    """One run pod on the CPU node; one pod per step; the GPU (request + toleration) only for compression."""
    runs = [p for p in run["pods"] if p["component"] == "run_worker"]
    steps = [p for p in run["pods"] if p["component"] == "step_worker"]
    if len(runs) != 1:
        problems.append(f"{run['run']}: {len(runs)} run pods")
    by_step = {}
    for p in steps:
        by_step.setdefault(p["step"], []).append(p["pod"])
    for key in run["steps"]:
        op = key.split("[")[0]
        if len(by_step.get(op, [])) != 1:
            problems.append(f"{run['run']}: step {key} ran in {len(by_step.get(op, []))} pods")
    for p in run["pods"]:
        gpu = p["requests"].get("nvidia.com/gpu")
        tolerated = any(t.startswith("nvidia.com/gpu=") for t in p["tolerations"])
        if p["image"] != image:
            problems.append(f"{p['pod']}: image {p['image']}")
        if p["step"] in GPU_STEPS and p["component"] == "step_worker":
            if (p["node"], gpu, tolerated) != (GPU_NODE, "1", True):
                problems.append(f"{p['pod']} (GPU step): node={p['node']} gpu={gpu} tolerated={tolerated}")
        elif (p["node"], gpu, tolerated) != (CPU_NODE, None, False):
            problems.append(f"{p['pod']} (CPU): node={p['node']} gpu={gpu} tolerated={tolerated}")


def check_no_secret_values(core, ns: str, pods: list, values: list[str], problems: list[str]) -> None:
    api = core.api_client
    for pod in pods:
        spec = json.dumps(api.sanitize_for_serialization(pod))
        try:
            logs = core.read_namespaced_pod_log(pod.metadata.name, ns)
        except Exception as exc:  # a pod that never started has no log
            logs = f"<no log: {type(exc).__name__}>"
        for v in values:
            if v in spec or v in logs:
                problems.append(f"{pod.metadata.name}: a secret value appears in its {'spec' if v in spec else 'log'}")


def materialize_demo(e, port: int, model: str, secret_values: list[str]) -> list[dict]:
    from dagster import DagsterInstance, MultiPartitionKey
    from dagster_graphql import DagsterGraphQLClient
    from kubernetes import client as k8s, config

    os.environ["DAGSTER_HOME"] = str(e.state / "dagster_home")
    os.environ.update(e.chart_env())
    api = config.new_client_from_config(config_file=e.kubeconfig)
    core = k8s.CoreV1Api(api)
    gql = DagsterGraphQLClient("127.0.0.1", port_number=port)

    from dagster_project.partitions import model_partitions, recipe_partitions

    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(model_partitions.name, [model])
    instance.add_dynamic_partitions(recipe_partitions.name, e.recipes)

    report: list[dict] = []
    launches = [("base", BASE_ASSETS, {"dagster/partition": model})]
    for recipe in e.recipes:
        key = MultiPartitionKey({"model": model, "recipe": recipe})
        launches.append((recipe, VARIANT_ASSETS, {"dagster/partition": str(key),
                                                  "dagster/partition/model": model,
                                                  "dagster/partition/recipe": recipe}))
    failures, problems = [], []
    for name, assets, tags in launches:
        t0 = time.monotonic()
        run_id = gql.submit_job_execution("__ASSET_JOB", tags=tags, asset_selection=[[a] for a in assets])
        status = wait_run(gql, run_id)
        wall = time.monotonic() - t0
        raw_pods = pods_of_run(core, NS, run_id)
        pods = [describe(p) for p in raw_pods]
        steps = step_events(instance, run_id)
        log(f"run {name} ({run_id[:8]}): {status} in {wall:.0f} s, {len(pods)} pod(s), {len(steps)} step(s)")
        for p in pods:
            ev = steps.get(next((k for k in steps if k.split('[')[0] == p["step"]), ""), {})
            overhead = ev["start"] - p["created"].timestamp() if "start" in ev else None
            p["overhead_s"] = overhead
            p["step_s"] = ev["end"] - ev["start"] if "end" in ev and "start" in ev else None
            log(f"   {p['component'] or '?':<11} {p['step'] or '':<26} node={p['node']} "
                f"gpu={p['requests'].get('nvidia.com/gpu', '-')} requests={p['requests']} "
                f"tolerations={p['tolerations']} image={p['image']} secret_env={p['secret_env']}"
                + (f" pod→step-start {overhead:.1f} s, step {p['step_s']:.1f} s" if overhead is not None
                   and p["step_s"] is not None else ""))
        run = {"run": name, "run_id": run_id, "status": status, "wall_s": wall, "pods": pods, "steps": sorted(steps)}
        report.append(run)
        if status != "SUCCESS":
            failures.append(name)
            for p, d in zip(raw_pods, pods, strict=True):
                log(f"   --- {p.metadata.name}: phase {d['phase']}, container {d['terminated'] or 'not terminated'}")
                with contextlib.suppress(Exception):
                    tail = core.read_namespaced_pod_log(p.metadata.name, NS, tail_lines=25)
                    log(f"   --- {p.metadata.name} log tail ---\n{tail}")
            continue
        check_pods(run, e.image, problems)
        check_no_secret_values(core, NS, raw_pods, secret_values, problems)
    (e.state.parent / f"dmc-k8s-e2e-report-{os.getuid()}.json").write_text(json.dumps(report, default=str, indent=1))
    if failures:
        raise SystemExit(f"runs failed: {failures} (webserver log: {e.state / 'dagster-webserver.log'})")
    overheads = [p["overhead_s"] for r in report for p in r["pods"]
                 if p["component"] == "step_worker" and p["overhead_s"] is not None]
    if overheads:
        overheads.sort()
        log(f"step pod overhead (pod created → STEP_START), {len(overheads)} steps: "
            f"median {overheads[len(overheads) // 2]:.1f} s, min {overheads[0]:.1f} s, max {overheads[-1]:.1f} s")
    if problems:
        raise SystemExit("placement/secret checks failed:\n  " + "\n  ".join(problems))
    log("checks passed: one run pod per run, one pod per step, GPU request + toleration only on "
        f"compression (on {GPU_NODE}), every other pod on {CPU_NODE}, no secret value in any spec or log")
    return report


SCHEDULE_QUERY = """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
  __typename ... on Schedule { scheduleState { id status ticks(limit: 5) { status timestamp skipReason runIds
  error { message } } } } ... on PythonError { message } } }"""


def nightly_noop(e, port: int, location: str) -> None:
    """The nightly schedule's real tick (cron every minute in the e2e) with nothing new: no run, no pod."""
    from kubernetes import client as k8s, config

    core = k8s.CoreV1Api(config.new_client_from_config(config_file=e.kubeconfig))
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__",
                "scheduleName": "nightly_compression"}
    pods_before = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    started = time.time()
    out = graphql(port, """mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) {
      __typename ... on PythonError { message } } }""", {"s": selector})
    if out["startSchedule"]["__typename"] == "PythonError":
        raise SystemExit(f"startSchedule: {out['startSchedule']['message']}")

    def ticked():
        state = graphql(port, SCHEDULE_QUERY, {"s": selector})["scheduleOrError"]["scheduleState"]
        done = [t for t in state["ticks"] if t["timestamp"] >= started and t["status"] != "STARTED"]
        return done[0] if done else None

    deadline = time.monotonic() + 150
    tick = None
    while tick is None and time.monotonic() < deadline:
        tick = ticked()
        time.sleep(3)
    state_id = graphql(port, SCHEDULE_QUERY, {"s": selector})["scheduleOrError"]["scheduleState"]["id"]
    stopped = graphql(port, """mutation($id: String) { stopRunningSchedule(id: $id) {
      __typename ... on PythonError { message } } }""", {"id": state_id})["stopRunningSchedule"]
    if stopped["__typename"] == "PythonError":
        raise SystemExit(f"stopRunningSchedule: {stopped['message']}")
    if tick is None:
        raise SystemExit("nightly schedule: no tick within 150 s of starting it")
    time.sleep(10)  # a run launched by the tick would have its pod by now
    new_pods = sorted({p.metadata.name for p in core.list_namespaced_pod(NS).items} - pods_before)
    log(f"nightly tick: {tick['status']}, runs {tick['runIds']}, reason: {tick['skipReason'] or tick['error']}; "
        f"new pods: {new_pods or 'none'}")
    if tick["runIds"]:  # the schedule tags each request with its decision (dmc/reason)
        from dagster import DagsterInstance

        instance = DagsterInstance.get()
        for run_id in tick["runIds"]:
            run = instance.get_run_by_id(run_id)
            tags = run.tags if run else {}
            log(f"   nightly run {run_id[:8]}: {tags.get('dagster/partition')} reason={tags.get('dmc/reason')}")
    if tick["status"] != "SKIPPED" or tick["runIds"] or new_pods:
        raise SystemExit(f"nightly schedule with nothing new should skip without pods: {tick}, new pods {new_pods}")


def unschedulable_fails(e, port: int, model: str, location: str, timeout_s: int = 45) -> None:
    """The chart's GPU toleration removed: the compression step's pod stays Pending, and the run fails
    after `timeout_s` with the scheduler's reason (dagster_project/resources/k8s_steps.py), its Job deleted."""
    from dagster import DagsterInstance, MultiPartitionKey
    from dagster_graphql import DagsterGraphQLClient
    from kubernetes import client as k8s, config

    e.set_placement(DMC_K8S_TOLERATION_KEY="", DMC_K8S_UNSCHEDULABLE_TIMEOUT_S=str(timeout_s))
    out = graphql(port, """mutation($l: String!) { reloadRepositoryLocation(repositoryLocationName: $l) {
      __typename } }""", {"l": location})
    log(f"placement without the GPU toleration, code server restarted ({out['reloadRepositoryLocation']['__typename']})")
    api = config.new_client_from_config(config_file=e.kubeconfig)
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    recipe = e.recipes[0]
    key = MultiPartitionKey({"model": model, "recipe": recipe})
    gql = DagsterGraphQLClient("127.0.0.1", port_number=port)
    t0 = time.monotonic()
    run_id = gql.submit_job_execution("__ASSET_JOB", asset_selection=[["compressed_model"]], tags={
        "dagster/partition": str(key), "dagster/partition/model": model, "dagster/partition/recipe": recipe})
    status = wait_run(gql, run_id, timeout=600)
    wall = time.monotonic() - t0
    instance = DagsterInstance.get()
    # The health check's reason is the step failure's error (event data), not its headline.
    messages = [(rec.message or "") + " " + (repr(rec.dagster_event.event_specific_data) if rec.dagster_event else "")
                for rec in instance.all_logs(run_id)]
    hit = next((m for m in messages if "could not be scheduled" in m), None)
    reason = hit[hit.index("pod "):][:400] if hit and "pod " in hit else hit
    pending = [describe(p) for p in pods_of_run(core, NS, run_id) if p.status.phase == "Pending"]
    jobs = [j.metadata.name for j in batch.list_namespaced_job(NS, label_selector=f"dagster/run-id={run_id}").items
            if (j.metadata.labels or {}).get("app.kubernetes.io/component") == "step_worker"]
    log(f"run without toleration ({run_id[:8]}): {status} in {wall:.0f} s; reason: {reason}; "
        f"step Jobs left: {jobs or 'none'}; pending pods: {[p['pod'] for p in pending] or 'none'}")
    if status != "FAILURE" or not reason or "untolerated taint" not in reason:
        raise SystemExit(f"expected the run to fail with the scheduler's reason; got {status}: {messages[-5:]}")
    deadline = time.monotonic() + 60
    while jobs and time.monotonic() < deadline:  # deletion is asynchronous
        time.sleep(2)
        jobs = [j.metadata.name for j in batch.list_namespaced_job(
            NS, label_selector=f"dagster/run-id={run_id}").items
            if (j.metadata.labels or {}).get("app.kubernetes.io/component") == "step_worker"]
    if jobs:
        raise SystemExit(f"the unschedulable step's Job was not deleted: {jobs}")


def _variant_in_store(e, model: str, recipe: str) -> tuple[dict | None, int]:
    """The variant folder in the run's S3 store: (its `_COMPLETE` manifest or None, objects under it)."""
    from dagster_project.artifacts.store import ArtifactStore
    from dagster_project.settings import load_settings

    cfg = load_settings(e.chart_env()).store  # the store the chart configured for the pods
    store = ArtifactStore(kind=cfg.kind, root=cfg.root, s3_endpoint_url=cfg.s3_endpoint_url,
                          s3_region=cfg.s3_region, aws_access_key_id=e.s3_key, aws_secret_access_key=e.s3_key)
    rel = f"models/{model}/variants/{recipe}"
    fs = store._s3()  # noqa: SLF001 - the e2e looks at the bucket the way the store writes it
    prefix = store._s3_key(rel)  # noqa: SLF001
    objects = fs.find(prefix) if fs.exists(prefix) else []
    return store.folder_manifest(rel), len(objects)


def pod_deleted_mid_step(e, port: int, model: str, recipe: str = "w4a16-gptq") -> None:
    """Delete the compression step's pod while it compresses: the step fails clearly (its Job
    failed), the store holds no partial variant, and the re-run of the variant completes."""
    from dagster import DagsterInstance, DagsterEventType, MultiPartitionKey
    from dagster_graphql import DagsterGraphQLClient
    from kubernetes import client as k8s, config

    from dagster_project.partitions import recipe_partitions

    api = config.new_client_from_config(config_file=e.kubeconfig)
    core = k8s.CoreV1Api(api)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(recipe_partitions.name, [recipe])
    key = MultiPartitionKey({"model": model, "recipe": recipe})
    tags = {"dagster/partition": str(key), "dagster/partition/model": model, "dagster/partition/recipe": recipe}
    gql = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = gql.submit_job_execution("__ASSET_JOB", tags=tags, asset_selection=[["compressed_model"]])

    def compressing():
        for p in pods_of_run(core, NS, run_id):
            if (p.metadata.labels or {}).get("dagster/op") == "compressed_model" and p.status.phase == "Running":
                with contextlib.suppress(Exception):
                    if "running oneshot" in core.read_namespaced_pod_log(p.metadata.name, NS):
                        return p
        return None

    deadline, pod = time.monotonic() + 600, None
    while pod is None and time.monotonic() < deadline:
        pod = compressing()
        time.sleep(1)
    if pod is None:
        raise SystemExit(f"run {run_id[:8]}: the compression step never started compressing within 600 s")
    core.delete_namespaced_pod(pod.metadata.name, NS)
    t0 = time.monotonic()
    log(f"deleted pod {pod.metadata.name} (compressed_model[{key}]) while it compressed")
    status = wait_run(gql, run_id, timeout=600)
    failures = [rec for rec in instance.all_logs(run_id) if rec.dagster_event
                and rec.dagster_event.event_type == DagsterEventType.STEP_FAILURE]
    why = ""
    if failures:
        data = failures[0].dagster_event.event_specific_data
        why = getattr(getattr(data, "error", None), "message", "") or failures[0].message or ""
    manifest, objects = _variant_in_store(e, model, recipe)
    log(f"run {run_id[:8]}: {status} {time.monotonic() - t0:.0f} s after the deletion; step failure: "
        f"{why.strip().splitlines()[0][:300] if why.strip() else 'none'}; variant in the store: "
        f"{'complete' if manifest else 'none'} ({objects} object(s))")
    if status != "FAILURE" or not failures:
        raise SystemExit(f"a deleted step pod should fail its step and the run; got {status}")
    if manifest is not None or objects:
        raise SystemExit(f"a partial variant was left in the store: manifest={bool(manifest)}, {objects} object(s)")
    t0 = time.monotonic()
    rerun = gql.submit_job_execution("__ASSET_JOB", tags=tags, asset_selection=[[a] for a in VARIANT_ASSETS])
    status = wait_run(gql, rerun)
    manifest, objects = _variant_in_store(e, model, recipe)
    log(f"re-run {rerun[:8]}: {status} in {time.monotonic() - t0:.0f} s; variant in the store: "
        f"{'complete' if manifest else 'none'} ({objects} object(s))")
    if status != "SUCCESS" or manifest is None:
        raise SystemExit(f"the re-run after the deleted pod should complete the variant; got {status}")


INPROCESS = """
import json, sys
from dagster import DagsterInstance
from dagster_project.demo_run import materialize_variant_graph
walls = {}
with DagsterInstance.get() as instance:
    outcome = materialize_variant_graph(instance, sys.argv[1], sys.argv[2].split(","), log=lambda m: None, walls=walls)
print(json.dumps({"walls": walls, "outcome": outcome}))
"""


def inprocess_comparison(e, model: str, report: list[dict]) -> None:
    """The same runs on this host in one process each (the laptop's in-process executor, a local
    store, a fresh SQLite instance, the local registry file): wall time beside the cluster's. (Not
    the e2e's registry server: it already holds these versions, same names, with S3 URIs, and
    refuses the same version at another URI.)"""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dmc-e2e-inprocess-") as tmp:
        home = os.path.join(tmp, "dagster_home")
        os.makedirs(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DMC_", "DAGSTER_", "AWS_"))}
        env.update(DAGSTER_HOME=home, DMC_VAR_DIR=os.path.join(tmp, "var"),
                   HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1",
                   OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
        out = subprocess.run([sys.executable, "-c", INPROCESS, model, ",".join(e.recipes)], env=env,
                             capture_output=True, text=True, timeout=3600,
                             cwd=str(Path(__file__).resolve().parents[2]))
    if out.returncode != 0:
        raise SystemExit(f"in-process run of the same graph failed:\n{out.stderr[-3000:]}")
    (e.state.parent / f"dmc-k8s-e2e-inprocess-{os.getuid()}.log").write_text(out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    walls = result["walls"]
    rows = [(r["run"], r["wall_s"], walls.get(r["run"])) for r in report]
    log("whole-run wall time, cluster (a pod per step) vs in-process (this host, one process per run):")
    for name, k8s_s, local_s in rows:
        log(f"   {name:<12} cluster {k8s_s:6.1f} s   in-process {local_s:6.1f} s   ratio {k8s_s / local_s:4.2f}")
    total_k8s, total_local = sum(r[1] for r in rows), sum(r[2] for r in rows)
    log(f"   {'all':<12} cluster {total_k8s:6.1f} s   in-process {total_local:6.1f} s   "
        f"ratio {total_k8s / total_local:4.2f}")
    if not all(result["outcome"].values()):
        raise SystemExit(f"in-process: not every recipe was approved: {result['outcome']}")
