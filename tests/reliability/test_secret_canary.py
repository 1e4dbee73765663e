"""Secrets canary: run the demo graph with Hub publication to a loopback Hub, with canary values in
HF_TOKEN and DMC_REGISTRY_TOKEN, plus runs that fail with those tokens, then scan everything the
project produced — the Dagster event log (every event of every run, serialized), run configs and
tags, materialization metadata, model cards, every file under the var dir and the Hub's storage,
exception messages and tracebacks, process output, and `dmc` CLI output — for the canaries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANARY_HF = "hf_CanaryWriteTok3nQx7Zk2Lm9Pw4Rt8Vb1Nc6"  # noqa: S105 - a canary, not a secret
CANARY_HF_BAD = "hf_CanaryUnknownTok3nHj5Ds2Fg8Kl1Zx4Cv7"  # noqa: S105 - a token the Hub does not know
CANARY_REGISTRY = "mr-canary-Tok3n-8f3a1c9e7b2d4f6a0c5e9b1d"  # noqa: S105
CANARIES = [CANARY_HF, CANARY_HF_BAD, CANARY_REGISTRY]
RECIPE = "w4a16-rtn"


def _needles() -> list[bytes]:
    """Each canary, and a distinctive core of it (catches truncated or partly masked leaks)."""
    out = []
    for c in CANARIES:
        out += [c.encode(), c[8:28].encode()]
    return out


def find_canaries(text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [n.decode() for n in _needles() if n in data]


def scan_tree(root: Path) -> dict[str, list[str]]:
    hits = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            found = find_canaries(p.read_bytes())
            if found:
                hits[str(p)] = found
    return hits


def test_scanner_finds_a_planted_canary(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "leak.sqlite").write_bytes(b"\x00\x01prefix" + CANARY_REGISTRY[:-3].encode() + b"\x00")
    assert list(scan_tree(tmp_path)) == [str(tmp_path / "a" / "b" / "leak.sqlite")]
    assert find_canaries(f"Authorization: Bearer {CANARY_HF}") == [CANARY_HF, CANARY_HF[8:28]]


@pytest.fixture(scope="module")
def canary_run(demo_model, tmp_path_factory):
    """The demo graph in a subprocess (resources are built at import: DMC_HUB_PUBLISH=1 must be set
    before), against a loopback Hub that knows the canary write token."""
    from huggingface_hub import constants

    from tests.fakes import HubServer, hub_client_online

    base = tmp_path_factory.mktemp("canary")
    var = base / "var"
    home = var / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    registry_url = os.environ.get("DMC_REGISTRY_URL", "").strip()
    mp = pytest.MonkeyPatch()
    mp.setattr(constants, "HF_TOKEN_PATH", str(base / "no-token"))
    mp.setattr(constants, "HF_STORED_TOKENS_PATH", str(base / "no-stored-tokens"))
    mp.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    try:
        with HubServer(base / "hub", tokens={CANARY_HF: "write"}) as hub, hub_client_online():
            env = {
                **os.environ,
                "DMC_VAR_DIR": str(var), "DAGSTER_HOME": str(home), "HF_HOME": str(base / "hf-home"),
                "HF_ENDPOINT": hub.url, "HF_TOKEN": CANARY_HF, "DMC_HUB_PUBLISH": "1", "DMC_HUB_ORG": "canary-org",
                "DMC_REGISTRY_TOKEN": CANARY_REGISTRY, "TQDM_DISABLE": "1",
            }
            for k in ("DMC_ARTIFACT_ROOT", "DMC_REGISTRY_DB", "DMC_MODELS_FILE", "DMC_REGISTRY_TOKEN_FILE"):
                env.pop(k, None)
            if registry_url.startswith("http"):
                env["DMC_REGISTRY_URL"] = registry_url  # the token travels to the real server
            else:
                env.pop("DMC_REGISTRY_URL", None)
            # HF_HUB_OFFLINE stays 1 for datasets; the Hub client may talk to the loopback Hub.
            env["HF_HUB_OFFLINE"] = "0"
            done = subprocess.run([sys.executable, "-m", "dagster_project.demo_run", "--recipes", RECIPE],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
            repo = f"canary-org/demo-llama-{RECIPE}"
            assert hub.has_model(repo), (hub.models, done.stdout[-3000:])
            yield {"base": base, "var": var, "home": home, "hub": hub, "env": env, "demo": done,
                   "repo": repo, "registry_url": registry_url}
    finally:
        mp.undo()


def _instance(home: Path):
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(home))  # without touching $DAGSTER_HOME for other tests


def _failing_runs(run: dict) -> list[str]:
    """Runs that fail *because of* the tokens: texts of their exceptions and tracebacks."""
    from dagster import MultiPartitionKey, materialize

    from dagster_project.resources.hf_hub import HuggingFaceHubResource
    from tests.fakes.fault_proxy import FaultProxy

    texts = []
    env = {"DMC_VAR_DIR": str(run["var"]), "DAGSTER_HOME": str(run["home"]), "HF_ENDPOINT": run["hub"].url,
           "HF_TOKEN": CANARY_HF_BAD, "DMC_REGISTRY_TOKEN": CANARY_REGISTRY,
           "DMC_REGISTRY_RETRY_ATTEMPTS": "2", "DMC_REGISTRY_RETRY_INITIAL_WAIT": "0.01"}
    mp = pytest.MonkeyPatch()
    try:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("DMC_MODELS_FILE", raising=False)
        from dagster_project import definitions as d

        key = MultiPartitionKey({"model": "demo-llama", "recipe": RECIPE})
        with _instance(run["home"]) as instance, \
                FaultProxy("http://127.0.0.1:9", [], then="401", max_faults=10_000) as refusing:
            # The Hub does not know this token: 401 while publishing.
            resources = {**d.defs.resources,
                         "hub": HuggingFaceHubResource(publish_enabled=True, publish_organization="canary-org2")}
            for assets, extra_env in (([d.hub_release], {}),
                                      ([d.registry_entry], {"DMC_REGISTRY_URL": refusing.url})):
                for k, v in extra_env.items():
                    mp.setenv(k, v)
                try:
                    materialize(assets, partition_key=key, instance=instance, resources=resources)
                except Exception as exc:  # noqa: BLE001 - the text is what we scan
                    texts.append("".join(traceback.format_exception(exc)))
                    texts.append(str(exc))
                else:
                    pytest.fail(f"{assets[0].key} was expected to fail with a wrong token")
        # Directly at the layers, too.
        from dagster_project.hub import publish_folder
        from dagster_project.registry import open_registry

        for fn in (lambda: publish_folder(run["var"], "canary-org/x", token=CANARY_HF_BAD, endpoint=run["hub"].url,
                                          card_markdown="# x\n", commit_message="x", max_attempts=1),
                   lambda: open_registry("https://registry.invalid:8443", token=CANARY_REGISTRY,
                                         retry_attempts=1).list_versions()):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                texts.append("".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args))
            else:
                pytest.fail("expected a failure")
    finally:
        mp.undo()
    return texts


def _event_log_texts(home: Path) -> list[str]:
    from dagster._serdes import serialize_value

    texts = []
    with _instance(home) as instance:
        runs = instance.get_runs()
        assert runs
        for r in runs:
            texts.append(serialize_value(r))  # run config, tags, op selection
            for entry in instance.all_logs(r.run_id):
                texts.append(serialize_value(entry))  # messages, metadata, errors, stack traces
    return texts


@pytest.mark.slow
def test_no_canary_anywhere(canary_run, tmp_path):
    run = canary_run
    findings: dict[str, list[str]] = {}

    def check(where: str, text) -> None:
        found = find_canaries(text)
        if found:
            findings[where] = found

    # What the process printed.
    check("demo stdout", run["demo"].stdout)
    check("demo stderr", run["demo"].stderr)
    # Exceptions from runs that fail with the canary tokens (they run before the scans below).
    failure_texts = _failing_runs(run)
    assert any("HF_TOKEN is invalid or expired" in t or "HTTP 401" in t for t in failure_texts), failure_texts[:2]
    assert any("check the bearer token" in t for t in failure_texts), failure_texts[:3]
    for i, text in enumerate(failure_texts):
        check(f"failure text {i}", text)
    # The Dagster event log: every event of every run (materializations with metadata, failures, logs).
    texts = _event_log_texts(run["home"])
    assert any("hub_url" in t for t in texts) and any("STEP_FAILURE" in t for t in texts)
    for i, text in enumerate(texts):
        check(f"event log entry {i}", text)
    # The model card and everything pushed to the Hub.
    card = run["hub"].files(run["repo"])["README.md"].decode()
    assert "w4a16" in card.lower()
    check("model card", card)
    findings.update(scan_tree(run["hub"].root))
    # Every file under the var dir: artifacts, manifests, registry DB, Dagster storage, logs.
    files = [p for p in run["var"].rglob("*") if p.is_file()]
    assert any(p.name == "registry.sqlite" or p.suffix == ".db" for p in files) or run["registry_url"]
    findings.update(scan_tree(run["var"]))
    # The dmc CLI, with the tokens in its environment.
    env = {k: v for k, v in run["env"].items()}
    for args in (["models", "list"], ["models", "list", "--json"], ["recipes", "list"]):
        out = subprocess.run([sys.executable, "-m", "dagster_project.cli", *args], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"dmc {' '.join(args)}: exit {out.returncode}: {out.stderr[-2000:]}"
        check(f"dmc {' '.join(args)}", out.stdout + out.stderr)
    assert RECIPE in out.stdout  # the recipe table really printed
    listed = subprocess.run([sys.executable, "-m", "dagster_project.cli", "models", "list", "--json"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    mine = [v for v in json.loads(listed.stdout) if v["properties"].get("recipe") == RECIPE
            and v["properties"].get("hub_repo") == run["repo"]]
    assert mine, listed.stdout[:2000]
    show = subprocess.run([sys.executable, "-m", "dagster_project.cli", "models", "show",
                           mine[0]["model_name"], mine[0]["version_name"]],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stderr[-2000:]
    check("dmc models show", show.stdout + show.stderr)
    bad_env = {**env, "DMC_REGISTRY_URL": "https://registry.invalid:8443"}
    out = subprocess.run([sys.executable, "-m", "dagster_project.cli", "models", "list"], env=bad_env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr  # 2: the registry is unreachable
    check("dmc models list (failing)", out.stdout + out.stderr)
    assert not findings, f"canary tokens leaked: {json.dumps(findings, indent=2)}"
