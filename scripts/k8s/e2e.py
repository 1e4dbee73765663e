"""`make k8s-e2e`: the demo graph materialized on a real one-node Kubernetes cluster.

Stages (each timed; the table is printed at the end):
  cluster   scripts/k8s/cluster.sh start (apiserver, scheduler, kubelet ... on 127.0.0.1) with two
            nodes: dmc-node (fake nvidia.com/gpu: 1 + the chart's GPU taint) and dmc-cpu (untainted)
  image     the compress image (`make images`) saved by dockerd and imported into containerd
  services  PostgreSQL (Debian, private instance) for the Dagster instance; the real Model
            Registry server (scripts/model_registry_server.sh); with --store s3 (default) the real
            S3 server (SeaweedFS, scripts/s3_server.sh) that carries the artifacts between pods
  chart     our chart rendered by helm (dagster.enabled=false: the official chart cannot be
            downloaded) and applied; the models PVC (caches; artifacts with --store pvc) bound to a
            hostPath PV
  dagster   dagster-webserver (host) + dagster-daemon (a pod) configured as the official chart
            configures them: QueuedRunCoordinator, K8sRunLauncher with in-cluster config, run/event
            storage in PostgreSQL
  runs      the base run and one variant run per recipe, launched through the webserver's GraphQL
            API like the UI's "Materialize"; every pod the cluster created is listed with its
            node, requests, tolerations and image, and checked (GPU only for compression, on
            the GPU node; no secret value in any spec or log; the approved variants in the registry)
  registry  every recipe's approved variant read back from the registry server with `dmc`
  pod deleted  (s3 store) a w4a16-gptq run whose compression pod is deleted while it compresses:
            the step and run fail, the bucket holds no partial variant, the re-run completes it
  nightly   the nightly schedule ticks (cron every minute) with nothing new: no run, no pod
  no toleration  the chart's GPU toleration removed (ConfigMap patched, code server restarted): the
            compression step's pod stays Pending, and after DMC_K8S_UNSCHEDULABLE_TIMEOUT_S (45 s
            here) the run fails with the scheduler's reason and the step's Job is deleted
  in-process  the same runs on this host, in-process (local store, SQLite): wall times side by side
The stages after `runs` are independent: a failing one is reported and the others still run.
Everything is torn down at the end (cluster.sh clean, servers stopped), also on failure.

    python scripts/k8s/e2e.py [--recipes w4a16-rtn,w8a16-rtn] [--store s3|pvc] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = ROOT / ".venv" / "bin" / "python"
DOCKER = "/usr/bin/docker"
NS = "dmc-e2e"
MODEL = "demo-llama"
BUCKET = "dmc-e2e"
LOCATION = "model-compression"
S3_KEY = "dmc-e2e"  # SeaweedFS accepts any credentials unless configured otherwise
S3_SECRET = "dmc-s3-credentials"
# Stand-in token values: the checks look for them in every pod spec and log (they must not appear).
SECRET_VALUES = {"hf-hub-secret": ("HF_TOKEN", "hf_e2e_not_a_real_token_5b1f"),
                 "model-registry-token": ("token", "e2e-registry-token-9c2d")}
TIMES: list[tuple[str, float]] = []


def log(msg: str) -> None:
    print(f"[k8s-e2e] {msg}", flush=True)


def run(cmd: list[str], env: dict | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, text=True, capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@contextlib.contextmanager
def stage(name: str):
    t0 = time.monotonic()
    log(f"== {name}")
    yield
    TIMES.append((name, time.monotonic() - t0))
    log(f"   {name}: {TIMES[-1][1]:.1f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what: str, fn, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"{what}: not reached within {timeout:.0f} s")


class E2E:
    def __init__(self, state: Path, recipes: list[str], image: str, store: str = "s3"):
        self.state = state
        self.recipes = recipes
        self.image = image
        self.store = store
        self.s3_endpoint = ""
        self.s3_key = S3_KEY
        self.env = {"DMC_K8S_STATE_DIR": str(state / "cluster"), "DMC_MR_STATE_DIR": str(state / "registry"),
                    "DMC_S3_STATE_DIR": str(state / "s3"), "DMC_K8S_CPU_NODE": "1"}
        self.procs: list[subprocess.Popen] = []
        self.kubeconfig = ""
        self.api_port = 0

    # -- cluster -------------------------------------------------------------------------------
    def cluster(self) -> None:
        out = run(["bash", str(ROOT / "scripts/k8s/cluster.sh"), "start"], env=self.env, timeout=3600)
        self.kubeconfig = out.stdout.strip().splitlines()[-1]
        self.api_port = int((state_dir(self) / "apiserver_port").read_text())

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return run(["kubectl", "--kubeconfig", self.kubeconfig, *args], input=input, check=check)

    def import_image(self) -> None:
        run(["bash", str(ROOT / "scripts/k8s/cluster.sh"), "import-docker", self.image],
            env={**self.env, "DOCKER_HOST": docker_host()}, timeout=3600)
        run(["bash", str(ROOT / "scripts/images/dockerd.sh"), "stop"], check=False)

    # -- services ------------------------------------------------------------------------------
    def postgres(self) -> str:
        pg = Path("/usr/lib/postgresql/15/bin")
        if not (pg / "initdb").exists():
            run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql-15"],
                env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=900)
        data = self.state / "pg"
        data.mkdir(parents=True, exist_ok=True)
        shutil.chown(data, "postgres", "postgres")
        self.state.chmod(0o755)
        port = free_port()
        as_pg = ["runuser", "-u", "postgres", "--"]
        run([*as_pg, str(pg / "initdb"), "-D", str(data / "data"), "-U", "dagster", "--auth=trust"], timeout=300)
        run([*as_pg, str(pg / "pg_ctl"), "-D", str(data / "data"), "-l", str(data / "pg.log"), "-w", "start",
             "-o", f"-h 127.0.0.1 -p {port} -k {data}"], timeout=120)
        run([*as_pg, str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster"])
        (self.state / "pg_port").write_text(str(port))
        return f"127.0.0.1:{port}"

    def s3(self) -> str:
        """The real S3 server (SeaweedFS) on loopback and the bucket the chart's s3.root names."""
        import s3fs

        self.s3_endpoint = run(["bash", str(ROOT / "scripts/s3_server.sh"), "start"], env=self.env,
                               timeout=3600).stdout.strip().splitlines()[-1]
        s3fs.S3FileSystem(key=S3_KEY, secret=S3_KEY, skip_instance_cache=True,
                          client_kwargs={"endpoint_url": self.s3_endpoint, "region_name": "us-east-1"}).mkdir(BUCKET)
        return self.s3_endpoint

    def registry(self) -> str:
        return run(["bash", str(ROOT / "scripts/model_registry_server.sh"), "start"], env=self.env,
                   timeout=3600).stdout.strip().splitlines()[-1]

    # -- chart ---------------------------------------------------------------------------------
    def chart(self, registry_url: str) -> None:
        helm = run(["bash", str(ROOT / "scripts/install_helm.sh")]).stdout.strip().splitlines()[-1]
        work = self.state / "chart"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ROOT / "deploy/helm/dagster-model-compression", work / "dagster-model-compression")
        (work / "dagster-model-compression/charts").mkdir(exist_ok=True)
        run([helm, "package", str(ROOT / "deploy/helm/ci/dagster"), "--destination",
             str(work / "dagster-model-compression/charts")])
        name, tag = self.image.split(":")
        values = {
            "dagster": {"enabled": False},
            "images": {"compress": {"repository": name, "tag": tag}, "pullPolicy": "Never"},
            # A 2-core node: requests scaled down; GPU placement (toleration, GPU count) unchanged.
            # 2 GiB: torch + llmcompressor + lm-eval imported in one step pod come close to 1 GiB.
            "placement": {"cpuRequest": "100m", "gpuCpuRequest": "100m", "minMemoryGi": 2, "gpuMinMemoryGi": 2},
            "modelsPvc": {"accessModes": ["ReadWriteOnce"], "size": "20Gi", "storageClassName": "manual"},
            "registry": {"url": registry_url},
            # Evaluation on CPU pods: the GPU (one, fake) is for compression only, so every pod but
            # compression's must land on the CPU node.
            "evaluation": {"hfOn": "cpu"},
            # The catalog names exactly the recipes run here: the nightly check then finds nothing new.
            "catalog": {"models": [{"key": MODEL, "source": "demo", "license": "apache-2.0", "task_set": "demo",
                                    "recipes": self.recipes}]},
        }
        if self.store == "s3":
            values["artifactStore"] = {"kind": "s3", "s3": {"root": f"s3://{BUCKET}/dmc", "endpointUrl": self.s3_endpoint,
                                                            "region": "us-east-1", "credentialsSecret": S3_SECRET}}
        (work / "values-e2e.json").write_text(json.dumps(values))
        rendered = run([helm, "template", "dmc", str(work / "dagster-model-compression"), "-n", NS,
                        "-f", str(work / "values-e2e.json")]).stdout
        (work / "rendered.yaml").write_text(rendered)
        models = self.state / "models"
        # Demo model pre-seeded in the PVC's cache (as a previous run would have left it).
        from_cache = Path(run([str(PY), "-c", "from dagster_project.demo.model import demo_model_dir as d;"
                                                "print(d())"]).stdout.strip())
        if not (from_cache / "config.json").is_file():
            raise SystemExit(f"demo model not cached at {from_cache}: run `make demo` first")
        seed = models / "cache" / "demo-model" / from_cache.name
        if not seed.exists():
            shutil.copytree(from_cache, seed)
            # The cached report records the folder it was built in; in the pods it lives on the PVC.
            report = seed / "demo_model_report.json"
            report.write_text(json.dumps({**json.loads(report.read_text()),
                                          "path": f"/models/cache/demo-model/{from_cache.name}"}, indent=2))
        run(["chmod", "-R", "a+rwX", str(models)])
        self.kubectl("create", "namespace", NS)
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "dmc-e2e-models"},
              "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"],
                       "storageClassName": "manual", "persistentVolumeReclaimPolicy": "Retain",
                       "hostPath": {"path": str(models), "type": "Directory"}}}
        self.kubectl("apply", "-f", "-", input=json.dumps(pv))
        self.kubectl("apply", "-n", NS, "-f", str(work / "rendered.yaml"))
        # The secrets the chart only refers to, created as deploy/README.md tells a user to.
        secrets = {name: {key: value} for name, (key, value) in SECRET_VALUES.items()}
        if self.store == "s3":
            secrets[S3_SECRET] = {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_KEY}
        for name, data in secrets.items():
            self.kubectl("-n", NS, "create", "secret", "generic", name,
                         *[f"--from-literal={k}={v}" for k, v in data.items()])

    # -- dagster -------------------------------------------------------------------------------
    def instance_yaml(self, pg_port: int, in_cluster: bool) -> str:
        launcher = {
            "load_incluster_config": in_cluster,
            **({} if in_cluster else {"kubeconfig_file": self.kubeconfig}),
            "job_namespace": NS,
            "job_image": self.image,
            "image_pull_policy": "Never",
            "service_account_name": "dmc-runner",
            "instance_config_map": "dagster-instance",
            "env_config_maps": ["dmc-env"],
            # Host-network pods: the in-cluster API address is the apiserver on loopback, not the
            # service IP (no kube-proxy here).
            "env_vars": [f"KUBERNETES_SERVICE_HOST=127.0.0.1", f"KUBERNETES_SERVICE_PORT={self.api_port}",
                         "HF_HUB_OFFLINE=1", "HF_DATASETS_OFFLINE=1", "HF_EVALUATE_OFFLINE=1"],
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "dmc-models"}},
                        {"name": "dmc-catalog", "configMap": {"name": "dmc-catalog"}}],
            "volume_mounts": [{"name": "models", "mountPath": "/models"},
                              {"name": "dmc-catalog", "mountPath": "/etc/dmc", "readOnly": True}],
            # Run pods and (merged by k8s_job_executor) step pods: host network, and the tokens as
            # the chart's user deployment passes them (includeConfigInLaunchedRuns).
            "run_k8s_config": {"pod_spec_config": {"host_network": True, "dns_policy": "ClusterFirstWithHostNet"},
                               "container_config": {"env": self.token_env()}},
            **({"env_secrets": [S3_SECRET]} if self.store == "s3" else {}),
        }
        doc = {
            "telemetry": {"enabled": False},
            # SQLAlchemy 2.1 (constraints.txt) maps plain "postgresql" to psycopg 3, which the image
            # lacks; dagster-postgres ships psycopg2, so name that driver.
            "storage": {"postgres": {"postgres_db": {"hostname": "127.0.0.1", "port": pg_port, "username": "dagster",
                                                     "password": "", "db_name": "dagster",
                                                     "scheme": "postgresql+psycopg2"}}},
            "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
            # As the official chart: the webserver queues, the daemon (a pod, in-cluster config)
            # launches, so run and step pods get the daemon's in-cluster instance.
            "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        }
        return json.dumps(doc)

    @staticmethod
    def token_env() -> list[dict]:
        """HF_TOKEN / DMC_REGISTRY_TOKEN from their secrets (optional), as the chart's values set them."""
        names = {"hf-hub-secret": "HF_TOKEN", "model-registry-token": "DMC_REGISTRY_TOKEN"}
        return [{"name": names[secret], "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
                for secret, (key, _) in SECRET_VALUES.items()]

    def dagster(self, pg_port: int) -> int:
        home = self.state / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(self.instance_yaml(pg_port, in_cluster=False))
        self.kubectl("-n", NS, "create", "configmap", "dagster-instance",
                     f"--from-literal=dagster.yaml={self.instance_yaml(pg_port, in_cluster=True)}")
        # The code location runs in the image, as the chart's user deployment: runs launched from
        # it carry the image's Python and DAGSTER_CURRENT_IMAGE.
        grpc = free_port()
        code_server = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "model-compression-code-server", "labels": {"app": "dmc-code-server"}},
            "spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet",
                     "serviceAccountName": "dmc-runner",
                     "containers": [{
                         "name": "code-server", "image": self.image, "imagePullPolicy": "Never",
                         "args": ["dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc),
                                  "-m", "dagster_project.definitions"],
                         # A nightly tick every minute: the e2e sees the schedule's real tick.
                         "env": [{"name": "DAGSTER_CURRENT_IMAGE", "value": self.image},
                                 {"name": "DMC_NIGHTLY_CRON", "value": "* * * * *"}, *self.token_env()],
                         "envFrom": [{"configMapRef": {"name": "dmc-env"}},
                                     *([{"secretRef": {"name": S3_SECRET}}] if self.store == "s3" else [])],
                         "volumeMounts": [{"name": "models", "mountPath": "/models"},
                                          {"name": "dmc-catalog", "mountPath": "/etc/dmc", "readOnly": True}]}],
                     "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "dmc-models"}},
                                 {"name": "dmc-catalog", "configMap": {"name": "dmc-catalog"}}]},
        }
        self.code_server_spec, self.grpc_port = code_server, grpc
        self.start_code_server()
        workspace = self.state / "workspace.yaml"
        workspace.write_text(json.dumps({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": grpc, "location_name": LOCATION}}]}))
        # The daemon as the chart runs it: a pod with the runner ServiceAccount and the instance
        # ConfigMap (in-cluster config), so what it launches can reach the API from inside.
        self.kubectl("-n", NS, "create", "configmap", "dagster-workspace", f"--from-file=workspace.yaml={workspace}")
        daemon = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "dagster-daemon", "labels": {"app": "dagster-daemon"}},
            "spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet", "serviceAccountName": "dmc-runner",
                     "containers": [{
                         "name": "daemon", "image": self.image, "imagePullPolicy": "Never",
                         "args": ["dagster-daemon", "run", "-w", "/dagster-workspace/workspace.yaml"],
                         "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                                 {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.api_port)}],
                         "envFrom": [{"configMapRef": {"name": "dmc-env"}}],
                         "volumeMounts": [{"name": "instance", "mountPath": "/opt/dagster/dagster_home/dagster.yaml",
                                           "subPath": "dagster.yaml"},
                                          {"name": "workspace", "mountPath": "/dagster-workspace"}]}],
                     "volumes": [{"name": "instance", "configMap": {"name": "dagster-instance"}},
                                 {"name": "workspace", "configMap": {"name": "dagster-workspace"}}]},
        }
        self.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(daemon))
        self.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/dagster-daemon", "--timeout=600s")
        port = free_port()
        env = {**os.environ, "DAGSTER_HOME": str(home), **self.chart_env()}
        for cmd in ([str(ROOT / ".venv/bin/dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                     "-w", str(workspace)],):
            logf = open(self.state / f"{Path(cmd[0]).name}.log", "w")
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                               cwd=ROOT, start_new_session=True))
        (self.state / "dagster_pids").write_text(" ".join(str(p.pid) for p in self.procs))
        wait("dagster-webserver", lambda: _http_ok(f"http://127.0.0.1:{port}/server_info"), 180)
        return port

    def start_code_server(self) -> None:
        """(Re)create the code server pod from its spec and wait until it answers gRPC."""
        self.kubectl("-n", NS, "delete", "pod", "model-compression-code-server", "--ignore-not-found", "--wait=true")
        self.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(self.code_server_spec))
        self.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/model-compression-code-server",
                     "--timeout=600s")
        wait("code server gRPC", lambda: run([str(ROOT / ".venv/bin/dagster"), "api", "grpc-health-check",
                                             "-p", str(self.grpc_port)], check=False).returncode == 0, 600, every=3)

    def set_placement(self, **env: str) -> None:
        """Change DMC_K8S_* values in the chart's ConfigMap and restart the code server, as a user
        would by changing the chart's placement values and upgrading the release."""
        self.kubectl("-n", NS, "patch", "configmap", "dmc-env", "--type", "merge", "-p", json.dumps({"data": env}))
        self.start_code_server()

    def check_registry(self, url: str) -> None:
        """Every recipe's approved variant is in the real Model Registry server (read back with `dmc`)."""
        out = run([str(ROOT / ".venv/bin/dmc"), "models", "list", "--registry", url, "--json"],
                  env={"DMC_REGISTRY_URL": url}, timeout=120).stdout
        versions = json.loads(out)
        found = {v["properties"].get("recipe") for v in versions if v["approved"]}
        log(f"registry {url}: {len(versions)} approved version(s): "
            + ", ".join(f"{v['model_name']}/{v['version_name']} {v['uri']}" for v in versions))
        if missing := set(self.recipes) - found:
            raise SystemExit(f"not in the registry as approved: {sorted(missing)}\n{out[:2000]}")

    def chart_env(self) -> dict[str, str]:
        """The env ConfigMap the chart rendered: webserver/daemon see what the pods see."""
        cm = json.loads(self.kubectl("-n", NS, "get", "configmap", "dmc-env", "-o", "json").stdout)["data"]
        # Paths on the PVC are paths inside pods; on this host the same folder is the PV's.
        models = str(self.state / "models")
        return {k: v.replace("/models", models, 1) if v.startswith("/models") else v for k, v in cm.items()
                if not k.startswith("DMC_MODELS_FILE") and not k.startswith("DMC_WATCHLIST_FILE")}

    def stop(self) -> None:
        self.stop_services()
        run(["bash", str(ROOT / "scripts/k8s/cluster.sh"), "clean"], env=self.env, check=False, timeout=1800)  # rm of ~11 GB of snapshots

    def stop_services(self) -> None:
        # Webserver + daemon: their process groups (also those a --keep run left, by the pids it wrote).
        pids = {p.pid for p in self.procs}
        if (self.state / "dagster_pids").exists():
            pids |= {int(x) for x in (self.state / "dagster_pids").read_text().split()}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        for pid in pids - {p.pid for p in self.procs}:
            for _ in range(60):
                try:
                    os.killpg(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
        run(["bash", str(ROOT / "scripts/model_registry_server.sh"), "clean"], env=self.env, check=False, timeout=120)
        run(["bash", str(ROOT / "scripts/s3_server.sh"), "clean"], env=self.env, check=False, timeout=120)
        pg = self.state / "pg" / "data"
        if pg.exists():
            run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", str(pg), "-m", "fast",
                 "stop"], check=False, timeout=120)


def state_dir(e: E2E) -> Path:
    return Path(e.env["DMC_K8S_STATE_DIR"])


def docker_host() -> str:
    return run(["bash", str(ROOT / "scripts/images/dockerd.sh"), "start"]).stdout.strip()


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", default="w4a16-rtn,w8a16-rtn")
    ap.add_argument("--image", default="dagster-model-compression:0.1.0")
    ap.add_argument("--state", default=os.environ.get("DMC_K8S_STATE_DIR") or f"/tmp/dmc-k8s-e2e-{os.getuid()}",
                    help="everything of this run lives here (default $DMC_K8S_STATE_DIR); removed at the end")
    ap.add_argument("--store", choices=("s3", "pvc"), default="s3", help="where artifacts go between pods")
    ap.add_argument("--keep", action="store_true", help="leave everything running (debugging)")
    ap.add_argument("--resume", action="store_true", help="reuse what a --keep run left running; go to the runs")
    ap.add_argument("--reuse-cluster", action="store_true", help="reuse the cluster a --keep run left running")
    args = ap.parse_args(argv)
    # `timeout` / Ctrl-C still tear everything down (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    state = Path(args.state)
    e = E2E(state, [r for r in args.recipes.split(",") if r], args.image, args.store)
    ready = state / "ready.json"
    if args.resume and ready.exists():  # debugging: the setup a --keep run left running
        saved = json.loads(ready.read_text())
        e.kubeconfig, e.api_port, e.s3_endpoint = saved["kubeconfig"], saved["api_port"], saved["s3_endpoint"]
        registry, port = saved["registry"], saved["port"]
        e.code_server_spec, e.grpc_port = saved["code_server"], saved["grpc_port"]
    elif args.reuse_cluster:  # debugging: the cluster (image imported) a --keep run left; the rest afresh
        e.kubeconfig = str(state / "cluster" / "admin.kubeconfig")
        e.api_port = int((state / "cluster" / "apiserver_port").read_text())
        e.stop_services()
        e.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=300s")
        e.kubectl("delete", "pv", "dmc-e2e-models", "--ignore-not-found")
        for child in state.iterdir():
            if child.name != "cluster":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    else:
        if state.exists():  # a run killed before its teardown: stop what it left, then start afresh
            e.stop()
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
    t0 = time.monotonic()
    failed: list[str] = []
    try:
        if not (args.resume and ready.exists()):
            if not args.reuse_cluster:
                with stage("cluster"):
                    e.cluster()
                with stage("image"):
                    e.import_image()
            with stage("services"):
                pg = e.postgres()
                registry = e.registry()
                if e.store == "s3":
                    e.s3()
            with stage("chart"):
                e.chart(registry)
            with stage("dagster"):
                port = e.dagster(int(pg.split(":")[1]))
            ready.write_text(json.dumps({"kubeconfig": e.kubeconfig, "api_port": e.api_port, "registry": registry,
                                         "port": port, "s3_endpoint": e.s3_endpoint,
                                         "code_server": e.code_server_spec, "grpc_port": e.grpc_port}))
        from k8s_e2e_runs import (inprocess_comparison, materialize_demo, nightly_noop,  # noqa: E402
                                  pod_deleted_mid_step, unschedulable_fails)

        with stage("runs"):
            report = materialize_demo(e, port, MODEL, [v for _, v in SECRET_VALUES.values()])
        # The later stages are independent: each one's failure is reported, the rest still run.
        checks = [("registry", lambda: e.check_registry(registry))]
        if e.store == "s3":
            checks.append(("pod deleted", lambda: pod_deleted_mid_step(e, port, MODEL)))
        checks += [("nightly", lambda: nightly_noop(e, port, LOCATION)),
                   ("no toleration", lambda: unschedulable_fails(e, port, MODEL, LOCATION)),
                   ("in-process", lambda: inprocess_comparison(e, MODEL, report))]
        for name, check in checks:
            try:
                with stage(name):
                    check()
            except SystemExit as exc:
                failed.append(f"{name}: {exc}")
                log(f"FAILED {name}: {exc}")
    finally:
        if not args.keep:
            with stage("teardown"):
                e.stop()
                shutil.rmtree(state, ignore_errors=True)
        log("timings: " + ", ".join(f"{n} {s:.0f} s" for n, s in TIMES) + f"; total {time.monotonic() - t0:.0f} s")
    if failed:
        log("failed stages:\n  " + "\n  ".join(failed))
        return 1
    log("all stages passed")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
