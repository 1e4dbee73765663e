#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubelet from the
# k8s.io/kubernetes Go module (the Go proxy is reachable here; no release binaries are).
# Cached per machine under $DMC_CACHE_DIR/kubernetes/<version>, stamped, written atomically.
# Prints the bin dir.
#
# Why the go.mod rewrite: the module zip omits ./staging, and go.mod replaces every k8s.io/X
# with ./staging/src/k8s.io/X; the published k8s.io/X v0.<minor>.<patch> modules are the
# same code, so we point the replaces at them (recipe measured in shared FACTS.md).
set -euo pipefail

K8S_VERSION="${DMC_K8S_VERSION:-v1.34.2}"
CACHE_ROOT="${DMC_CACHE_DIR:-$HOME/.cache/dmc}"
OUT="$CACHE_ROOT/kubernetes/$K8S_VERSION"
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

if [[ -f "$OUT/STAMP" ]] && [[ "$(cat "$OUT/STAMP")" == "$K8S_VERSION" ]]; then
  echo "$OUT/bin"; exit 0
fi

log() { echo "[build_kubernetes] $*" >&2; }
command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH; }
command -v go >/dev/null || { log "go not found (install Go >= 1.24)"; exit 1; }
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS="-mod=mod -buildvcs=false"

start=$(date +%s)
mkdir -p "$CACHE_ROOT/kubernetes"
work=$(mktemp -d "$CACHE_ROOT/kubernetes/.build-$K8S_VERSION.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "downloading k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
mod_json=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
mod_dir=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d.get("Dir") or sys.exit(d.get("Error")))' <<<"$mod_json")
cp -r "$mod_dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
rm -rf vendor go.work go.work.sum
staging_version="v0.${K8S_VERSION#v1.}"
sed -i -E "s#^(\s*)(k8s\.io/[A-Za-z0-9._/-]+) => \./staging/src/k8s\.io/[A-Za-z0-9._/-]+#\1\2 => \2 $staging_version#" go.mod
if grep -q '=> ./staging' go.mod; then log "go.mod still points at ./staging"; exit 1; fi

log "go build (about 4 min on 2 cores with a cold Go cache)"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
mkdir -p "$work/out/bin"
go build -ldflags "$ldflags" -o "$work/out/bin/" \
  ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubelet >&2
for b in "${BINS[@]}"; do [[ -x "$work/out/bin/$b" ]] || { log "missing $b"; exit 1; }; done
echo "$K8S_VERSION" > "$work/out/STAMP"
# Atomic publish: another engineer may build the same version at the same time.
rm -rf "$OUT.old"; [[ -d "$OUT" ]] && mv "$OUT" "$OUT.old"
mv "$work/out" "$OUT" || { [[ -f "$OUT/STAMP" ]] || exit 1; }
rm -rf "$OUT.old"
log "built in $(( $(date +%s) - start )) s"
echo "$OUT/bin"
