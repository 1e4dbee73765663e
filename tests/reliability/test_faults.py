"""Faults: a flaky network in front of the real Model Registry server, processes killed during Hub
upload and during registration, and two processes publishing the same variant at once.

Each case ends with ONE consistent result: one RegisteredModel, one ModelVersion, one
ModelArtifact (registry), or one commit holding exactly the folder (Hub). Killed compression is
covered by tests/compression/test_oneshot.py::test_killed_compression_leaves_no_variant.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from dagster_project.registry import RegistryUnavailable, VariantRecord, open_registry
from tests.fakes.fault_proxy import FaultProxy
from tests.registry.conftest import server_url
from tests.registry.rest import api_base  # the API version the server speaks (v1alpha3 or v1)

ROOT = Path(__file__).resolve().parents[2]
FAST = dict(retry_attempts=6, retry_initial_wait=0.01, retry_max_wait=0.05, retry_total_s=20, request_timeout_s=1.5)


def _record(name: str, version: str = "v-000000000001") -> VariantRecord:
    return VariantRecord(
        model_name=name, version_name=version, uri=f"pvc://models/{name}/{version}",
        description=f"reliability test {name}",
        properties={"base_model": "org/base", "recipe": "w4a16-rtn", "scheme": "W4A16", "recovery_avg": "99.5"},
        source_id="run-1", source_name="registry_entry[test]",
    )


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- raw views of the stores


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def server_objects(url: str, model_name: str) -> dict[str, int] | None:
    """{version name: number of artifacts} of a RegisteredModel, read from the server's REST API."""
    try:
        rm = _get(f"{api_base(url)}/registered_model?name={urllib.parse.quote(model_name)}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    if not rm or not rm.get("id"):
        return None
    versions = _get(f"{api_base(url)}/registered_models/{rm['id']}/versions?pageSize=100")["items"] or []
    return {v["name"]: len(_get(f"{api_base(url)}/model_versions/{v['id']}/artifacts?pageSize=100")["items"] or [])
            for v in versions}


def server_model_count(url: str, model_name: str) -> int:
    """RegisteredModels with this name (the server should hold at most one)."""
    items, token = [], ""
    while True:
        page = _get(f"{api_base(url)}/registered_models?pageSize=1000" + (f"&nextPageToken={token}" if token else ""))
        items += page.get("items") or []
        token = page.get("nextPageToken")
        if not token or not page.get("items"):
            break
    return sum(1 for m in items if m["name"] == model_name)


def local_objects(path: Path, model_name: str) -> dict[str, int] | None:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        models = con.execute("SELECT id FROM models WHERE name = ?", (model_name,)).fetchall()
        if not models:
            return None
        assert len(models) == 1
        rows = con.execute(
            "SELECT v.name, (SELECT COUNT(*) FROM artifacts a WHERE a.version_id = v.id) FROM versions v WHERE v.model_id = ?",
            (models[0][0],),
        ).fetchall()
        return dict(rows)
    finally:
        con.close()


@pytest.fixture
def real_server() -> str:
    return server_url()  # skips, or fails under DMC_REQUIRE_REGISTRY_SERVER=1


# ---------------------------------------------------------------- the proxy itself (no server needed)


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0

    def do_GET(self):  # noqa: N802
        type(self).hits += 1
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *a):
        pass


@pytest.fixture
def echo():
    handler = type("E", (_Echo,), {"hits": 0})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    srv.shutdown()
    srv.server_close()


def test_proxy_follows_its_plan_and_is_bounded(echo):
    import http.client

    url, handler = echo
    plan = ["503", "drop", "lost", "slow:0.3", "ok", "500", "500", "500"]
    with FaultProxy(url, plan, then="503", max_faults=6) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")

        def call():
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            try:
                conn.request("GET", "/x")
                return conn.getresponse().status
            except (ConnectionError, http.client.RemoteDisconnected, OSError):
                return None
            finally:
                conn.close()

        started = time.perf_counter()
        got = [call() for _ in range(10)]
        elapsed = time.perf_counter() - started
    assert got == [503, None, None, 200, 200, 500, 500, 200, 200, 200], got
    assert proxy.faults_injected == 6  # 503, drop, lost, slow, 500, 500: the bound stops the rest
    assert elapsed >= 0.3  # a lower bound: the injected "slow" fault really delayed a response
    # "lost" reached the upstream although the client saw a disconnect; "drop" and statuses did not.
    assert handler.hits == 6  # lost, slow, ok, and the three the bound let through
    assert [e.action for e in proxy.log][:4] == ["503", "drop", "lost", "slow:0.3"]


# ---------------------------------------------------------------- flaky network in front of the real server


@pytest.mark.registry_server
@pytest.mark.parametrize("fault", ["503", "drop", "lost", "slow:2.5"])
def test_publish_through_faults_is_retried_and_consistent(real_server, fault):
    """The fault hits each request of a publication in turn; every publication ends consistent."""
    names = []
    for position in range(8):  # a publication makes 7 requests; 8 covers 'after the last one' too
        name = _unique(f"rel-fault-{fault.split(':')[0]}-{position}")
        names.append(name)
        with FaultProxy(real_server, ["ok"] * position + [fault], max_faults=1) as proxy:
            reg = open_registry(proxy.url, **FAST)
            published = reg.publish(_record(name))
            again = reg.publish(_record(name))  # idempotent through the proxy too
            reg.close()
        assert published.registry_version_id == again.registry_version_id
        assert published.uri == f"pvc://models/{name}/v-000000000001" and published.approved
        assert server_objects(real_server, name) == {"v-000000000001": 1}, (fault, position, proxy.log)
        assert server_model_count(real_server, name) == 1
    direct = open_registry(real_server, **FAST)
    try:
        found = {v.model_name for v in direct.list_versions(base_model="org/base", recipe="w4a16-rtn")}
    finally:
        direct.close()
    assert set(names) <= found


@pytest.mark.registry_server
def test_intermittent_faults_on_every_request_still_converge(real_server):
    """Every other request fails in some way (bounded); five variants still publish exactly once."""
    plan = [a for f in ["503", "drop", "lost", "500", "slow:2.5", "drop", "lost", "503"] for a in ("ok", f)]
    names = [_unique("rel-mixed") for _ in range(5)]
    with FaultProxy(real_server, plan, max_faults=8) as proxy:
        reg = open_registry(proxy.url, **FAST)
        for name in names:
            reg.publish(_record(name))
        reg.close()
    assert proxy.faults_injected == 8
    for name in names:
        assert server_objects(real_server, name) == {"v-000000000001": 1}


@pytest.mark.registry_server
def test_outage_longer_than_the_retry_budget_fails_clearly_then_recovers(real_server):
    name = _unique("rel-outage")
    with FaultProxy(real_server, [], then="ok", max_faults=100) as proxy:
        reg = open_registry(proxy.url, retry_attempts=3, retry_initial_wait=0.01, retry_max_wait=0.02,
                            request_timeout_s=2)
        proxy.set_plan([], then="503")
        with pytest.raises(RegistryUnavailable, match=r"503.*gave up after 3 attempt"):
            reg.publish(_record(name))
        proxy.set_plan([], then="ok")
        reg.publish(_record(name))
        reg.close()
    assert server_objects(real_server, name) == {"v-000000000001": 1}


# ---------------------------------------------------------------- killed during registration


_PUBLISH_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    from dagster_project.registry import VariantRecord, open_registry
    rec = VariantRecord(**json.loads(sys.argv[2]))
    reg = open_registry(sys.argv[1], retry_attempts=2, retry_initial_wait=0.01, request_timeout_s=120)
    print("publishing", flush=True)
    pv = reg.publish(rec)
    print("published", pv.registry_version_id, flush=True)
""")


def _record_json(rec: VariantRecord) -> str:
    return json.dumps({"model_name": rec.model_name, "version_name": rec.version_name, "uri": rec.uri,
                       "description": rec.description, "properties": dict(rec.properties),
                       "source_id": rec.source_id, "source_name": rec.source_name})


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.registry_server
@pytest.mark.parametrize("step", ["registered_models", "model_versions", "/artifacts"])
@pytest.mark.parametrize("delivered", [True, False], ids=["request-delivered", "request-lost"])
def test_killed_during_registration_next_publish_completes(real_server, step, delivered):
    """SIGKILL while a create request is in flight (delivered to the server or not): one of each after."""
    name = _unique("rel-kill")
    rec = _record(name)
    with FaultProxy(real_server, [], path_contains=step, methods=["POST"],
                    then="hold" if delivered else "hold-drop", max_faults=1, hold_timeout=60) as proxy:
        proc = subprocess.Popen([sys.executable, "-c", _PUBLISH_SCRIPT.format(root=str(ROOT)), proxy.url,
                                 _record_json(rec)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proxy.held.wait(60), f"the publisher never reached {step}: {proc.stdout.read() if proc.poll() is not None else ''}"
            _kill(proc)
        finally:
            if proc.poll() is None:
                _kill(proc)
        proxy.release()
        deadline = time.time() + 10  # let a delivered request reach the server
        while time.time() < deadline and not any(e.action.startswith("hold") for e in proxy.log):
            time.sleep(0.05)
    assert proc.returncode == -signal.SIGKILL
    reg = open_registry(real_server, **FAST)
    try:
        published = reg.publish(rec)
        assert reg.publish(rec).registry_version_id == published.registry_version_id
    finally:
        reg.close()
    assert server_objects(real_server, name) == {"v-000000000001": 1}
    assert server_model_count(real_server, name) == 1
    assert published.uri == rec.uri and published.approved and published.properties["recipe"] == "w4a16-rtn"


_LOCAL_SLOW_PUBLISH = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})
    from dagster_project.registry import VariantRecord, open_registry
    from dagster_project.registry import local
    original = local.LocalRegistry._sync_properties
    def slow(self, *a, **k):
        original(self, *a, **k)
        print("in-transaction", flush=True)   # rows written, not committed
        time.sleep(120)
    local.LocalRegistry._sync_properties = slow
    rec = VariantRecord(**json.loads(sys.argv[2]))
    open_registry(sys.argv[1]).publish(rec)
""")


def test_killed_during_local_registration_leaves_nothing_half_done(tmp_path):
    db = tmp_path / "registry.sqlite"
    rec = _record(_unique("rel-kill-local"))
    proc = subprocess.Popen([sys.executable, "-c", _LOCAL_SLOW_PUBLISH.format(root=str(ROOT)), f"sqlite:///{db}",
                             _record_json(rec)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "in-transaction", line + proc.stdout.read()
        _kill(proc)
    finally:
        if proc.poll() is None:
            _kill(proc)
    reg = open_registry(f"sqlite:///{db}")
    try:
        assert reg.get(rec.model_name, rec.version_name) is None  # rolled back: nothing half-done is visible
        assert local_objects(db, rec.model_name) is None
        published = reg.publish(rec)
    finally:
        reg.close()
    assert published.uri == rec.uri
    assert local_objects(db, rec.model_name) == {rec.version_name: 1}


# ---------------------------------------------------------------- two publishers at once


_RACE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})
    from dagster_project.registry import VariantRecord, open_registry
    reg = open_registry(sys.argv[1], **json.loads(sys.argv[4]))
    records = [VariantRecord(**r) for r in json.loads(sys.argv[2])]
    start = float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    ids = [reg.publish(r).registry_version_id for r in records]
    print(json.dumps(ids), flush=True)
""")


def _race(url: str, records: list[VariantRecord], options: dict, processes: int = 2) -> list[list[str]]:
    payload = "[" + ",".join(_record_json(r) for r in records) + "]"
    start = time.time() + 4.0  # both interpreters are up and connected by then
    procs = [subprocess.Popen([sys.executable, "-c", _RACE_SCRIPT.format(root=str(ROOT)), url, payload, str(start),
                               json.dumps(options)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.mark.parametrize("backend", ["local", pytest.param("kubeflow", marks=pytest.mark.registry_server)])
def test_two_processes_publishing_the_same_variants_make_one_version_each(backend, tmp_path):
    if backend == "local":
        db = tmp_path / "registry.sqlite"
        url, options = f"sqlite:///{db}", {}
    else:
        url, options = server_url(), FAST
    records = [_record(_unique(f"rel-race-{backend}")) for _ in range(6)]
    first, second = _race(url, records, options)
    assert first == second, "both publishers must end up pointing at the same versions"
    for rec in records:
        if backend == "local":
            assert local_objects(db, rec.model_name) == {rec.version_name: 1}
        else:
            assert server_objects(url, rec.model_name) == {rec.version_name: 1}
            assert server_model_count(url, rec.model_name) == 1


# ---------------------------------------------------------------- killed during Hub upload


_HUB_PUBLISH_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from dagster_project.hub import publish_folder
    pub = publish_folder(sys.argv[1], sys.argv[2], token=os.environ["HF_TOKEN"],
                         endpoint=sys.argv[3], card_markdown="# card\\n", commit_message="upload",
                         retry_wait_s=0.01, max_attempts=1)
    print(pub.commit_sha, flush=True)
""")

HUB_TOKEN = "hf_reliabilityWriteToken0123456789abcdef"  # noqa: S105 - loopback test token


@pytest.mark.parametrize("delivered", [True, False], ids=["commit-delivered", "commit-lost"])
def test_killed_during_hub_upload_next_run_makes_one_consistent_commit(tmp_path, monkeypatch, delivered):
    from huggingface_hub import constants

    from dagster_project.hub import publish_folder
    from tests.fakes import HubServer, hub_client_online

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))  # the in-process publish's Xet cache
    with contextlib.suppress(ImportError):
        from huggingface_hub.utils import _xet

        monkeypatch.setattr(_xet, "_GLOBAL_XET_HOLDER", _xet.XetSessionHolder())
    folder = tmp_path / "variant"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "model.safetensors").write_bytes(os.urandom(3 * 2**20))
    (folder / "recipe.yaml").write_text("quant_stage: {}\n")
    repo = "acme/reliability-w4a16"
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": HUB_TOKEN,
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    with HubServer(tmp_path / "hub", tokens={HUB_TOKEN: "write"}) as hub, \
            FaultProxy(hub.url, [], path_contains="/commit/", methods=["POST"],
                       then="hold" if delivered else "hold-drop", max_faults=1) as proxy:
        proc = subprocess.Popen([sys.executable, "-c", _HUB_PUBLISH_SCRIPT.format(root=str(ROOT)), str(folder), repo,
                                 proxy.url], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proxy.held.wait(60), proc.stdout.read() if proc.poll() is not None else "no commit request"
            _kill(proc)  # mid-upload: the weights went through Xet, the commit is on the wire
        finally:
            if proc.poll() is None:
                _kill(proc)
        proxy.release()
        deadline = time.time() + 10
        while time.time() < deadline and not any(e.action.startswith("hold") for e in proxy.log):
            time.sleep(0.05)
        commits_after_kill = hub.commit_count(repo)
        with hub_client_online():
            pub = publish_folder(folder, repo, token=HUB_TOKEN, endpoint=hub.url, card_markdown="# card\n",
                                 commit_message="upload", retry_wait_s=0.01)
            again = publish_folder(folder, repo, token=HUB_TOKEN, endpoint=hub.url, card_markdown="# card\n",
                                   commit_message="upload", retry_wait_s=0.01)
        files = hub.files(repo)
        total = hub.commit_count(repo)
    assert pub.created_commit is (not delivered)  # a delivered commit is found complete and not redone
    assert not again.created_commit and again.commit_sha == pub.commit_sha
    assert total == 2, "the repo's initial commit plus exactly one upload commit"
    assert commits_after_kill == (2 if delivered else 1), proxy.log
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert set(files) == {".gitattributes", "README.md", "config.json", "model.safetensors", "recipe.yaml"} or \
        set(files) - {".gitattributes"} == {"README.md", "config.json", "model.safetensors", "recipe.yaml"}
