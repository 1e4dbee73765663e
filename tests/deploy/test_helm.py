"""The Helm chart lints, renders and validates offline (real helm binary), and feeds Placement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dagster_project.k8s import K8S_CONFIG_TAG, Placement, step_tags
from dagster_project.resources.artifact_store import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]

# Placement fields deliberately not exposed by the chart (code defaults are the contract).
NOT_IN_CHART = {"hf_token_env", "registry_token_env"}


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
    assert set(docs) >= {"default", "values-no-dagster", "values-s3-gpu-selector"}
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
        eval_image="quay.io/your-org/dagster-model-compression-eval:0.1.0", image_pull_policy="IfNotPresent"
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
    assert "authors" in yaml.safe_load(catalog["watchlist.yaml"])


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
