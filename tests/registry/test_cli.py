"""`dmc` as a subprocess, against the local registry and (when configured) the real server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_project.registry import open_registry

from .test_backends import record

ROOT = Path(__file__).resolve().parents[2]


def dmc(*args: str, registry: str | None = None, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DMC_REGISTRY_URL", "DMC_REGISTRY_TOKEN")}
    env.update(env_extra or {})
    if registry:
        env["DMC_REGISTRY_URL"] = registry
    return subprocess.run(
        [sys.executable, "-m", "dagster_project.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def seeded(registry_url, unique):
    with open_registry(registry_url) as reg:
        reg.publish(record(unique, "v-000000000001"))
        reg.publish(record(unique, "v-000000000002", properties={"recipe": "w8a8-sq", "scheme": "W8A8", "recovery_avg": "97.25"}))
        reg.publish(record(unique, "v-000000000003", approved=False))
    return registry_url, f"org/base-{unique}", f"demo-llama-w4a16-rtn-{unique}"


def test_help():
    out = dmc("--help")
    assert out.returncode == 0 and "models" in out.stdout
    out = dmc("models", "list", "--help")
    assert out.returncode == 0 and "--min-recovery" in out.stdout


def test_list_table_and_json(seeded):
    url, base, model = seeded
    out = dmc("models", "list", "--base-model", base, registry=url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "RECIPE", "SCHEME", "RECOVERY", "%", "URI"]
    assert len(lines) == 4  # header, rule, two approved versions
    assert "v-000000000001" in out.stdout and "99.20" in out.stdout and "97.25" in out.stdout
    assert "v-000000000003" not in out.stdout

    out = dmc("models", "list", "--base-model", base, "--scheme", "W8A8", "--json", "--registry", url)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [d["version_name"] for d in data] == ["v-000000000002"]
    assert data[0]["model_name"] == model and data[0]["source_kind"] == "dagster"
    assert data[0]["properties"]["recipe"] == "w8a8-sq"

    out = dmc("models", "list", "--base-model", base, "--all", registry=url)
    assert out.returncode == 0 and "v-000000000003" in out.stdout and "unapproved" in out.stdout


def test_list_nothing_matches_exit_1(seeded):
    url, base, _ = seeded
    out = dmc("models", "list", "--base-model", base, "--min-recovery", "99.9", registry=url)
    assert out.returncode == 1
    assert out.stdout == "" and "no published model matches" in out.stderr
    out = dmc("models", "list", "--base-model", base, "--min-recovery", "99.9", "--json", registry=url)
    assert out.returncode == 1 and json.loads(out.stdout) == []


def test_show_and_revoke(seeded):
    url, base, model = seeded
    out = dmc("models", "show", model, "v-000000000001", registry=url)
    assert out.returncode == 0, out.stderr
    for text in ("pvc://models/", "source kind:  dagster", "recovery_avg: 99.2", "eval_wikitext_word_perplexity: 21.5",
                 "base_model: " + base, "dagster_run_url"):
        assert text in out.stdout
    out = dmc("models", "show", model, "v-000000000001", "--json", registry=url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["approved"] is True

    out = dmc("models", "show", model, "v-nope", registry=url)
    assert out.returncode == 1 and "no such version" in out.stderr

    out = dmc("models", "revoke", model, "v-000000000001", registry=url)
    assert out.returncode == 0, out.stderr
    assert "revoked" in out.stdout
    out = dmc("models", "show", model, "v-000000000001", "--json", registry=url)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["archived"] is True and data["approved"] is False
    out = dmc("models", "list", "--base-model", base, "--json", registry=url)
    assert out.returncode == 0, out.stderr
    assert [d["version_name"] for d in json.loads(out.stdout)] == ["v-000000000002"]
    out = dmc("models", "revoke", model, "v-nope", registry=url)
    assert out.returncode == 1


def test_errors_exit_2_with_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = dmc(
        "models", "list", "--registry", f"http://127.0.0.1:{port}",
        env_extra={"DMC_REGISTRY_RETRY_ATTEMPTS": "2", "DMC_REGISTRY_RETRY_INITIAL_WAIT": "0.01"},
    )
    assert out.returncode == 2
    assert out.stderr.startswith("dmc: error:") and len(out.stderr.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}" in out.stderr
    out = dmc("models", "frobnicate")
    assert out.returncode == 2


def test_default_is_local_sqlite_and_no_heavy_imports(tmp_path):
    env = {"DMC_REGISTRY_DB": str(tmp_path / "default.sqlite")}
    out = dmc("models", "list", env_extra=env)
    assert out.returncode == 1 and (tmp_path / "default.sqlite").exists()
    code = (
        "import sys; from dagster_project import cli; "
        "rc = cli.main(['models','list','--json']); "
        "bad=[m for m in ('torch','llmcompressor','transformers','dagster') if m in sys.modules]; "
        "print('HEAVY', bad, 'RC', rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, **env, "DMC_REGISTRY_URL": ""})
    assert res.returncode == 0, res.stderr
    assert "HEAVY [] RC 1" in res.stdout, res.stdout + res.stderr  # 1: an empty registry matches nothing


@pytest.mark.registry_server
def test_dmc_lists_what_the_publication_step_wrote_to_an_unmodified_v1alpha3_server(unique, monkeypatch):
    """Acceptance (issue 12): entries published the way the graph publishes them (the registry_entry
    step's `publish_or_fail` through the Dagster resource, $DMC_REGISTRY_URL) into the unmodified
    v0.3.14 server are listed by `dmc models list --registry <url>`; a URL serving an HTML page
    instead exits 2 with one clear line."""
    from dagster_project.assets.publication import publish_or_fail
    from dagster_project.resources.model_registry import ModelRegistryResource

    from . import loopback
    from .conftest import server_url

    url = server_url("v1alpha3-upstream")
    records = [record(unique, f"v-00000000000{i}", model_name=f"demo-llama-{recipe}-{unique}",
                      properties={"recipe": recipe})
               for i, recipe in enumerate(("w4a16-rtn", "w4a16-gptq"), start=1)]
    resource = ModelRegistryResource()  # as definitions.py builds it: the URL comes from the environment
    monkeypatch.setenv("DMC_REGISTRY_URL", url)
    published = [publish_or_fail(resource, rec) for rec in records]
    with open_registry(url) as reg:
        assert reg.api_version == "v1alpha3"  # the unmodified upstream server: no v1 routes

    out = dmc("models", "list", "--registry", url, "--base-model", f"org/base-{unique}", "--json")
    assert out.returncode == 0, out.stderr
    listed = {(v["model_name"], v["version_name"]): v["uri"] for v in json.loads(out.stdout)}
    assert listed == {(p.model_name, p.version_name): p.uri for p in published}
    table = dmc("models", "list", "--registry", url, "--base-model", f"org/base-{unique}")
    assert table.returncode == 0 and all(p.model_name in table.stdout for p in published), table.stderr

    with loopback.serve({"*": loopback.HTML_LOGIN}) as (html_url, _):
        out = dmc("models", "list", "--registry", html_url)
    assert out.returncode == 2, out
    assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
    line = out.stderr.strip()
    assert line.startswith("dmc: error:") and html_url.split("//")[1] in line and "text/html" in line
    assert "likely cause" in line and "Traceback" not in out.stderr
