"""The Helm chart lints, renders and validates offline (real helm binary), and what it renders is
what the code loads: every scenario's ConfigMaps go through the code's own loaders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dagster_project.k8s import K8S_CONFIG_TAG, Placement, step_tags
from dagster_project.artifacts import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]

# Placement fields deliberately not exposed by the chart (code defaults are the contract).
NOT_IN_CHART = {"hf_token_env", "registry_token_env"}
SCENARIOS = ("default", "values-no-dagster", "values-s3-gpu-selector", "values-watch-vllm-local-registry")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("rendered")
    env = {**os.environ, "CHECK_HELM_OUT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_helm.sh")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"check_helm.sh failed:\n{proc.stdout}\n{proc.stderr}"
    assert "check_helm: OK" in proc.stdout
    docs = {}
    for f in sorted(out.glob("*.yaml")):
        docs[f.stem] = [d for d in yaml.safe_load_all(f.read_text()) if d]
    assert set(docs) == set(SCENARIOS)
    return docs


def _get(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} not rendered once: {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def test_env_configmap_is_exactly_what_placement_reads(rendered) -> None:
    data = _get(rendered["default"], "ConfigMap", "dmc-env")["data"]
    known = set(Placement.env_names().values())
    placement_keys = {k for k in data if k.startswith("DMC_K8S_")}
    assert placement_keys <= known, placement_keys - known
    missing = {Placement.env_names()[f] for f in Placement.model_fields if f not in NOT_IN_CHART} - placement_keys
    assert not missing, f"Placement fields the chart does not set: {missing}"

    placement = Placement.load(environ=data)
    assert placement == Placement(
        eval_image="quay.io/your-org/dagster-model-compression-eval:0.1.0", image_pull_policy="IfNotPresent",
        models_pvc="dmc-models", models_mount_path="/models",
    )
    tags = step_tags("vllm-eval", placement=placement)[K8S_CONFIG_TAG]
    assert tags["container_config"]["image"] == "quay.io/your-org/dagster-model-compression-eval:0.1.0"
    assert tags["pod_spec_config"]["tolerations"][0]["value"] == "NVIDIA-A10G-SHARED"

    store = ArtifactStore.from_env(data)
    assert store.uri_for("compressed/m/w4a16") == "pvc://dmc-models/compressed/m/w4a16"
    assert data["DMC_ARTIFACT_ROOT"] == "/models/artifacts"
    assert data["DMC_REGISTRY_URL"].startswith("https://") and data["DAGSTER_DEPLOYMENT"] == "models"
    assert data["DMC_MODELS_FILE"] == "/etc/dmc/models.yaml"


def test_s3_scenario_feeds_placement_and_store(rendered) -> None:
    data = _get(rendered["values-s3-gpu-selector"], "ConfigMap", "dmc-env")["data"]
    placement = Placement.load(environ=data)
    gpu = step_tags("gpu", placement=placement)[K8S_CONFIG_TAG]
    assert gpu["pod_spec_config"] == {"node_selector": {"nvidia.com/gpu.present": "true"}}
    assert gpu["container_config"]["image"] == "quay.io/acme/dagster-model-compression:0.1.0-gpu"
    assert data["DMC_ARTIFACT_STORE_KIND"] == "s3"
    assert ArtifactStore.from_env(data).uri_for("a") == "s3://models/dmc/a"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_values_load_in_the_code(rendered, scenario, tmp_path) -> None:
    """dmc-env and dmc-catalog of every scenario, fed to the loaders the pods run."""
    from dagster_project.models.watchlist import parse_watchlist
    from dagster_project.models.catalog import load_catalog
    from dagster_project.deployment import executor_name
    from dagster_project.k8s import ASSET_STEPS, op_tags
    from dagster_project.registry import open_registry

    docs = rendered[scenario]
    data = _get(docs, "ConfigMap", "dmc-env")["data"]
    assert executor_name(data) == "k8s"
    placement = Placement.load(environ=data)
    for asset in ASSET_STEPS:  # every step's op tags build from this placement
        op_tags(asset, placement)
    store = ArtifactStore.from_env(data)
    assert store.uri_for("models/m").startswith(("pvc://dmc-models/", "s3://"))

    files = _get(docs, "ConfigMap", "dmc-catalog")["data"]
    assert {data["DMC_MODELS_FILE"], data["DMC_WATCHLIST_FILE"]} == {f"/etc/dmc/{n}" for n in files}
    (tmp_path / "models.yaml").write_text(files["models.yaml"])
    catalog = load_catalog(tmp_path / "models.yaml")
    assert catalog and all(m.recipes for m in catalog.values())
    watchlist = parse_watchlist(files["watchlist.yaml"], "dmc-catalog/watchlist.yaml", recipes_dir=None)

    url = data["DMC_REGISTRY_URL"]
    if url:
        assert url.startswith("https://")  # KubeflowRegistry: TLS + the token secret / SA token
    else:  # the local registry file under DMC_VAR_DIR (on the PVC)
        assert data["DMC_VAR_DIR"] == "/models/var"
        with open_registry(str(tmp_path / "registry.sqlite")) as reg:
            assert reg.list_versions() == []

    if scenario == "values-watch-vllm-local-registry":
        assert placement.evaluation_backend == "vllm" and placement.hf_eval_on == "cpu"
        assert placement.model_size_gb == 16
        assert op_tags("compressed_model", placement)[K8S_CONFIG_TAG]["container_config"]["resources"][
            "requests"]["memory"] == "40Gi"
        assert "nvidia.com/gpu" not in json.dumps(op_tags("evaluation_report", placement))
        assert [e.describe() for e in watchlist.entries] == [
            "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "author meta-llama / Llama-3.*-Instruct"]
        assert catalog["TinyLlama--TinyLlama-1.1B-Chat-v1.0"].revision.startswith("fe8a4ea")
    else:
        assert watchlist.entries == ()


def test_own_objects(rendered) -> None:
    docs = rendered["default"]
    role = _get(docs, "Role", "dmc-runner")
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    for key in [("batch", "jobs"), ("", "pods")]:
        assert {"create", "get", "list", "watch"} <= verbs[key]
    assert {"get", "list", "watch"} <= verbs[("", "pods/log")]
    binding = _get(docs, "RoleBinding", "dmc-runner")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dmc-runner", "namespace": "models"}]
    _get(docs, "ServiceAccount", "dmc-runner")
    pvc = _get(docs, "PersistentVolumeClaim", "dmc-models")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    catalog = _get(docs, "ConfigMap", "dmc-catalog")["data"]
    assert yaml.safe_load(catalog["models.yaml"])["models"][0]["key"] == "demo-llama"
    assert yaml.safe_load(catalog["watchlist.yaml"]) == {"watch": []}
    from dagster_project.models.watchlist import WatchlistError, parse_watchlist

    with pytest.raises(WatchlistError, match="authors"):  # the shape the chart used to render
        parse_watchlist("authors: []\nrepos: []\n", check_recipes=False)


def test_dagster_values_point_at_our_objects(rendered) -> None:
    # The offline stub echoes the values the official chart would receive.
    stub = _get(rendered["default"], "ConfigMap", "dmc-dagster-chart-stub")["data"]
    (deployment,) = json.loads(stub["user-deployments.json"])
    assert deployment["codeServerArgs"] == ["-m", "dagster_project.definitions"]
    assert deployment["envConfigMaps"] == [{"name": "dmc-env"}]
    volumes = {v["name"]: v for v in deployment["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "dmc-models"
    assert volumes["dmc-catalog"]["configMap"]["name"] == "dmc-catalog"
    assert {"name": "models", "mountPath": "/models"} in deployment["volumeMounts"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in deployment["env"]}
    assert env["HF_TOKEN"] == {"name": "hf-hub-secret", "key": "HF_TOKEN", "optional": True}
    assert env["DMC_REGISTRY_TOKEN"] == {"name": "model-registry-token", "key": "token", "optional": True}
    launcher = json.loads(stub["run-launcher.json"])
    assert launcher["type"] == "K8sRunLauncher"
    assert launcher["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]["serviceAccountName"] == "dmc-runner"


def test_dagster_dependency_condition(rendered) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered["values-no-dagster"]}
    assert ("ConfigMap", "dmc-dagster-chart-stub") not in kinds
    assert ("ConfigMap", "dmc-env") in kinds


def test_chart_declares_the_official_dependency() -> None:
    chart = yaml.safe_load((ROOT / "deploy/helm/dagster-model-compression/Chart.yaml").read_text())
    (dep,) = chart["dependencies"]
    assert dep == {
        "name": "dagster", "version": "1.13.27",
        "repository": "https://dagster-io.github.io/helm", "condition": "dagster.enabled",
    }
    stub = yaml.safe_load((ROOT / "deploy/helm/ci/dagster/Chart.yaml").read_text())
    assert (stub["name"], str(stub["version"])) == ("dagster", "1.13.27")
    import dagster

    assert dagster.__version__ == dep["version"]  # chart and code location speak the same Dagster
