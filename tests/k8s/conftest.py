"""A real one-node Kubernetes cluster (scripts/k8s/cluster.sh) for the tests in this folder.

Started once per session in its own state dir and stopped at the end; the node advertises a fake
`nvidia.com/gpu: 1` and carries the chart's default GPU taint.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "k8s" / "cluster.sh"
NODE = "dmc-node"


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory) -> dict:
    if os.geteuid() != 0:
        pytest.fail("the local Kubernetes node needs root (kubelet, containerd, mounts)")
    env = {**os.environ, "DMC_K8S_STATE_DIR": os.environ.get("DMC_K8S_STATE_DIR") or f"/tmp/dmc-k8s-test-{os.getpid()}",
           "DMC_K8S_NODE": NODE}
    proc = subprocess.run(["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "clean"], env=env, capture_output=True, timeout=300)
        pytest.fail(f"cluster did not start:\n{proc.stderr[-4000:]}")
    kubeconfig = proc.stdout.strip().splitlines()[-1]
    try:
        yield {"kubeconfig": kubeconfig, "node": NODE, "env": env}
    finally:
        subprocess.run(["bash", str(CLUSTER), "clean"], env=env, capture_output=True, timeout=300)


@pytest.fixture
def k8s_api(k8s_cluster):
    """CoreV1Api + BatchV1Api on a fresh namespace (deleted afterwards)."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=k8s_cluster["kubeconfig"])
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    ns = f"dmc-test-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        yield core, batch, ns
    finally:
        core.delete_namespace(ns)
        api_client.close()
