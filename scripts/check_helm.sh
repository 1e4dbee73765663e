#!/usr/bin/env bash
# Offline check of deploy/helm/dagster-model-compression: helm lint + helm template for every CI
# scenario, then strict schema validation of the rendered manifests with kubernetes-validate.
#
# The official Dagster chart cannot be downloaded offline, so a copy of the chart gets the stub
# deploy/helm/ci/dagster (same name and version, plus a values schema for the keys we set)
# vendored into charts/. The chart in the repository is not modified.
#
# Env: HELM (binary; default: scripts/install_helm.sh), PYTHON (with kubernetes-validate),
#      K8S_VERSION (default 1.33.0), CHECK_HELM_OUT (folder that keeps rendered manifests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART_SRC="$ROOT/deploy/helm/dagster-model-compression"
STUB_SRC="$ROOT/deploy/helm/ci/dagster"
K8S_VERSION="${K8S_VERSION:-1.33.0}"
HELM="${HELM:-$("$ROOT/scripts/install_helm.sh")}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -c "import kubernetes_validate" 2>/dev/null || {
  echo "check_helm: $PYTHON lacks kubernetes-validate (pip install 'kubernetes-validate>=1.30')" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
OUT="${CHECK_HELM_OUT:-$WORK/rendered}"
mkdir -p "$OUT"
# Keep helm away from the user's repositories, cache and plugins.
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

CHART="$WORK/dagster-model-compression"
cp -R "$CHART_SRC" "$CHART"
rm -rf "$CHART/charts" "$CHART/Chart.lock"
mkdir -p "$CHART/charts"
"$HELM" package "$STUB_SRC" --destination "$CHART/charts" >/dev/null

echo "check_helm: $("$HELM" version --short), kubernetes $K8S_VERSION"
status=0
scenarios=(default "$ROOT"/deploy/helm/ci/values-*.yaml)
for scenario in "${scenarios[@]}"; do
  if [[ "$scenario" == default ]]; then
    name=default; args=()
  else
    name="$(basename "$scenario" .yaml)"; args=(--values "$scenario")
  fi
  echo "== $name"
  "$HELM" lint --strict "$CHART" --namespace models "${args[@]}" || { status=1; continue; }
  "$HELM" template dmc "$CHART" --namespace models --kube-version "$K8S_VERSION" "${args[@]}" \
    >"$OUT/$name.yaml" || { status=1; continue; }
  "$PYTHON" -m kubernetes_validate -k "$K8S_VERSION" --strict --quiet "$OUT/$name.yaml" || status=1
  echo "   $(grep -c '^kind:' "$OUT/$name.yaml") objects rendered and valid"
done

# Offline-rendering facts the chart relies on: a missing dependency must fail loudly.
if "$HELM" template dmc "$CHART_SRC" >/dev/null 2>&1 && [[ ! -d "$CHART_SRC/charts" ]]; then
  echo "check_helm: expected 'helm template' of the chart without its dependency to fail" >&2
  status=1
fi

[[ $status -eq 0 ]] && echo "check_helm: OK" || echo "check_helm: FAILED" >&2
exit $status
