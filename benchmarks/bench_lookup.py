"""Lookup latency over 1,000 registered versions: local SQLite and the REAL servers.

    python benchmarks/bench_lookup.py [--versions 1000] [--remote-versions 1000] [--repeats 15]

Backends: LocalRegistry (goal 50 ms), the Kubeflow Model Registry v0.3.14 unmodified (REST
v1alpha3; $DMC_REGISTRY_URL) and MLflow 3.17.2 ($DMC_MLFLOW_URL), goal 300 ms each. A server that
is not configured is started on loopback by the project's scripts (private state dir) and
stopped afterwards. Each backend gets N versions under a unique prefix (servers cannot delete);
three common queries are timed: all approved; by base model; by recipe + min recovery. Each server
is timed without and with the lookups' local copy of the listings (the default).
Prints a table per backend and one `RESULT {json}` line per query for run_all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster_project.registry import VariantRecord, VersionFilter, open_registry  # noqa: E402

LOCAL_GOAL_MS = 50.0
SERVER_GOAL_MS = 300.0
RECIPES = [("w4a16-rtn", "W4A16"), ("w4a16-gptq", "W4A16"), ("w8a8-sq-gptq", "W8A8"), ("fp8-dynamic", "FP8_DYNAMIC")]


def records(n: int, prefix: str) -> list[VariantRecord]:
    out = []
    for i in range(n):
        recipe, scheme = RECIPES[i % len(RECIPES)]
        out.append(
            VariantRecord(
                model_name=f"{prefix}-base-{i % 10}-{recipe}",
                version_name=f"v-{i:012x}",
                uri=f"pvc://models/{prefix}/{i}",
                properties={
                    "base_model": f"org/{prefix}-base-{i % 10}",
                    "recipe": recipe,
                    "scheme": scheme,
                    "recovery_avg": f"{95 + (i * 37 % 500) / 100:.2f}",
                    "eval_wikitext_word_perplexity": f"{20 + i % 7}.0",
                    "bench_prefix": prefix,
                },
                source_id=f"run-{i}",
                source_name=f"registry_entry[{i}]",
                approved=i % 9 != 0,
            )
        )
    return out


def queries(prefix: str) -> dict[str, VersionFilter]:
    return {
        "all approved": VersionFilter(),
        "by base model": VersionFilter(base_model=f"org/{prefix}-base-3"),
        "by recipe + min recovery": VersionFilter(recipe="w4a16-gptq", min_recovery=99.0),
    }


def raw_server_get(reg, flt: VersionFilter) -> float | None:
    """Seconds for ONE plain GET of the server's filtered version listing (a fresh connection, as
    `curl` would): the least any client pays for that query, before reading a single artifact."""
    import urllib.parse
    import urllib.request

    if hasattr(reg, "version_query"):  # Kubeflow
        params = {"pageSize": "1000", "filterQuery": reg.version_query(flt) or ""}
        url = f"{reg.url}{reg.api_prefix}/model_versions?" + urllib.parse.urlencode(params)
    elif hasattr(reg, "search_filter"):  # MLflow
        params = {"filter": reg.search_filter(flt), "max_results": "10000"}
        url = f"{reg.tracking_uri}/api/2.0/mlflow/model-versions/search?" + urllib.parse.urlencode(params)
    else:
        return None
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 - loopback
        resp.read()
    return time.perf_counter() - t0


def time_queries(reg, prefix: str, repeats: int) -> list[tuple[str, float, float, float | None, int]]:
    """Per query: first call on a fresh connection (ms), median of the next `repeats` (ms), the
    median raw server GET (ms, None for the local registry), hits."""
    rows = []
    for name, flt in queries(prefix).items():
        t0 = time.perf_counter()
        reg.list_versions(flt)  # first call: opens the connection pool
        first = (time.perf_counter() - t0) * 1000
        samples, raws, hits = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            hits = reg.list_versions(flt)
            samples.append((time.perf_counter() - t0) * 1000)
            raw = raw_server_get(reg, flt)
            if raw is not None:
                raws.append(raw * 1000)
        rows.append((name, first, statistics.median(samples), statistics.median(raws) if raws else None, len(hits)))
    return rows


def report(title: str, register_s: float, n: int, rows, goal_ms: float, reference: bool = False) -> None:
    """`reference`: a configuration users do not run by default (a server without the local copy),
    shown beside the default for comparison; its rows read n/a, neither pass nor fail."""
    print(f"\n== {title}: {n} versions registered in {register_s:.1f} s ({register_s / n * 1000:.1f} ms each)")
    load = os.getloadavg()
    print(f"load average while measuring: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    print(f"{'query':28} {'median ms':>10} {'x goal':>7} {'first ms':>9} {'server GET ms':>14} {'hits':>6}")
    for name, first, med, raw, hits in rows:
        raw_txt = "-" if raw is None else f"{raw:.1f}"
        print(f"{name:28} {med:10.2f} {med / goal_ms:7.2f} {first:9.1f} {raw_txt:>14} {hits:6d}")
        print("RESULT " + json.dumps({
            "name": f"lookup, {title.split(' (')[0]}: {name}", "inputs": f"{n} versions, {hits} hits",
            "measured": f"{med:.1f} ms" + ("" if raw is None else f" (server alone, one GET of the filtered"
                                                                 f" versions: {raw:.1f} ms)"),
            "goal": f"<= {goal_ms:.0f} ms" + (" (reference: not the default)" if reference else ""),
            "ratio": round(med / goal_ms, 3), "ok": None if reference else med <= goal_ms,
        }))
    if any(r[3] is not None for r in rows):
        print("server GET = one plain GET of the server's filtered version listing on a new connection (no"
              " artifacts): what the server alone needs for that query.")


def seed(url: str, recs: list[VariantRecord], workers: int = 8) -> float:
    """Write the versions with the fewest requests (what is measured is the lookup, not publication):
    Kubeflow by plain REST POSTs, MLflow by the client with all tags at creation; the same objects
    `publish` writes. Then one real publish of the first record must find it all in place."""
    t0 = time.perf_counter()
    if url.startswith("mlflow+"):
        _seed_mlflow(url[len("mlflow+"):], recs, workers)
    else:
        _seed_kubeflow(url, recs, workers)
    seeded = time.perf_counter() - t0
    reg = open_registry(url)
    before = reg.get(recs[0].model_name, recs[0].version_name)
    after = reg.publish(recs[0])
    assert before == after, f"seeded entry differs from a published one:\n{before}\n{after}"
    reg.close()
    return seeded


def _seed_kubeflow(url: str, recs: list[VariantRecord], workers: int) -> None:
    import urllib.request

    from dagster_project.registry.kubeflow import _storage_path, artifact_name
    from dagster_project.registry.kubeflow_api import api_prefix, detect_api_version

    base = url.rstrip("/") + api_prefix(detect_api_version(url.rstrip("/"), None, 10))

    def post(path: str, body: dict) -> dict:
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())

    def props(rec: VariantRecord) -> dict:
        return {k: {"metadataType": "MetadataStringValue", "string_value": v}
                for k, v in rec.version_properties().items()}

    models = {}
    for rec in recs:
        if rec.model_name not in models:
            models[rec.model_name] = post("/registered_models", {"name": rec.model_name, "owner": "dagster"})["id"]

    def one(rec: VariantRecord) -> None:
        mv = post(f"/registered_models/{models[rec.model_name]}/versions",
                  {"name": rec.version_name, "author": "dagster", "registeredModelId": models[rec.model_name],
                   "customProperties": props(rec)})
        art = {"artifactType": "model-artifact", "name": artifact_name(rec.version_name),
               "uri": rec.uri, "modelFormatName": rec.model_format_name, "modelSourceKind": "dagster",
               "modelSourceClass": rec.source_class, "modelSourceId": rec.source_id,
               "modelSourceName": rec.source_name}
        if _storage_path(rec.uri):
            art["storagePath"] = _storage_path(rec.uri)
        post(f"/model_versions/{mv['id']}/artifacts", art)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, recs))


def _seed_mlflow(tracking: str, recs: list[VariantRecord], workers: int) -> None:
    from mlflow import MlflowClient

    from dagster_project.registry.mlflow_registry import MlflowRegistry

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    tags_for = MlflowRegistry._tags_for
    for name in dict.fromkeys(r.model_name for r in recs):
        client.create_registered_model(name)

    def one(rec: VariantRecord):
        return rec.model_name, client.create_model_version(
            rec.model_name, rec.uri, tags=tags_for(None, rec), description=rec.description or None,
            await_creation_for=0).version

    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one, recs))
    newest: dict[str, int] = {}
    for rec, (name, version) in zip(recs, done, strict=True):
        if rec.approved:
            newest[name] = max(newest.get(name, 0), int(version))
    for name, version in newest.items():
        client.set_registered_model_alias(name, "approved", str(version))


class Servers:
    """Servers from the environment, else started here by the project's scripts and stopped at exit."""

    def __init__(self):
        self.state = tempfile.mkdtemp(prefix="dmc-bench-")
        # mkdtemp makes it 0700: as root, the server script runs MariaDB as user `mysql`, which must
        # be able to reach its data dir below this one.
        os.chmod(self.state, 0o755)
        self.started: list[list[str]] = []

    def url(self, env: str, script: str, state_env: str) -> str:
        if os.environ.get(env):
            return os.environ[env]
        envs = {**os.environ, state_env: f"{self.state}/{env.lower()}"}
        out = subprocess.run(["bash", str(ROOT / "scripts" / script), "start"], env=envs, capture_output=True,
                             text=True, timeout=3600)
        if out.returncode != 0:
            raise SystemExit(f"could not start {script}: {out.stderr.strip().splitlines()[-1:]}")
        self.started.append(["bash", str(ROOT / "scripts" / script), "stop", state_env, envs[state_env]])
        return out.stdout.strip().splitlines()[-1]

    def stop(self):
        import shutil

        for cmd in self.started:
            subprocess.run(cmd[:3], env={**os.environ, cmd[3]: cmd[4]}, capture_output=True, timeout=120)
        shutil.rmtree(self.state, ignore_errors=True)  # the servers' databases: nothing to keep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--remote-versions", type=int, default=1000, help="versions registered in each real server")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--backends", default="local,kubeflow,mlflow")
    args = ap.parse_args()
    prefix = "bench-" + uuid.uuid4().hex[:6]
    wanted = set(args.backends.split(","))

    if "local" in wanted:
        with tempfile.TemporaryDirectory() as d:
            reg = open_registry(f"sqlite:///{d}/bench.sqlite")
            t0 = time.perf_counter()
            for rec in records(args.versions, prefix):
                reg.publish(rec)
            reg_s = time.perf_counter() - t0
            report("LocalRegistry (SQLite)", reg_s, args.versions, time_queries(reg, prefix, args.repeats), LOCAL_GOAL_MS)
            reg.close()

    servers = Servers()
    try:
        for key, env, script, state_env in (
            ("kubeflow", "DMC_REGISTRY_URL", "model_registry_server.sh", "DMC_MR_STATE_DIR"),
            ("mlflow", "DMC_MLFLOW_URL", "mlflow_server.sh", "DMC_MLFLOW_STATE_DIR"),
        ):
            if key not in wanted:
                continue
            url = servers.url(env, script, state_env)
            reg_s = seed(url, records(args.remote_versions, prefix))
            # A lookup from the local copy re-reads every change within OVERLAP_MS of the newest one.
            # A registry grows by single publications, not by a burst of 1,000 in 10 s: so the
            # newest change here is one more publication after a pause, as in use. (Right after
            # the burst, a lookup would re-read the burst's last OVERLAP_MS.)
            from dagster_project.registry.kubeflow_mirror import OVERLAP_MS

            time.sleep(OVERLAP_MS / 1000 + 1)
            extra = records(args.remote_versions + 1, prefix)[-1]
            with open_registry(url) as reg:
                reg.publish(extra)
            # Without and with the local copy of the listings (the default; registry/kubeflow_mirror.py,
            # registry/mlflow_mirror.py): with it, "first ms" is the copy being made, the median a
            # lookup that catches up.
            cls = "MlflowRegistry" if key == "mlflow" else "KubeflowRegistry"
            variants = [(f"{cls}, no local copy", {"mirror_dir": None}),
                        (f"{cls}, local copy", {"mirror_dir": tempfile.mkdtemp(prefix="dmc-mirror-")})]
            for name, options in variants:
                reg = open_registry(url, **options)
                t0 = time.perf_counter()
                total = len(reg.list_versions(approved_only=False, include_archived=True))
                if options.get("mirror_dir"):
                    print(f"\nlocal copy of the listings made in {time.perf_counter() - t0:.2f} s ({total} versions)")
                api = f", API {reg.api_version}" if hasattr(reg, "api_version") else ""
                report(f"{name} ({url}{api}; holds {total} versions)", reg_s, args.remote_versions,
                       time_queries(reg, prefix, max(3, args.repeats // 3)), SERVER_GOAL_MS,
                       reference=not options.get("mirror_dir"))
                reg.close()
    finally:
        servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
