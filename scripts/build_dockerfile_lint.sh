#!/usr/bin/env bash
# Build the BuildKit Dockerfile parser check (deploy/docker/lint, Go) into the machine cache and
# print the binary's path. Cached by the hash of its sources; built in a temp dir and renamed, so
# concurrent builds never see a half-written binary. Installs Go (Debian's golang-go) when missing;
# go.mod asks for a newer toolchain, which GOTOOLCHAIN=auto fetches from the Go module proxy.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../deploy/docker/lint" && pwd)"
CACHE_ROOT="${DMC_CACHE_DIR:-$HOME/.cache/dmc}"
KEY=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/dockerfile-lint/$KEY/dockerfile-lint"
if [[ -x "$OUT" ]]; then
  echo "$OUT"
  exit 0
fi

log() { echo "[build_dockerfile_lint] $*" >&2; }
command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH; }
if ! command -v go >/dev/null; then
  log "installing golang-go with apt-get"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends golang-go >&2 \
    || { $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq --no-install-recommends golang-go >&2; }
fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS="${GOFLAGS:--mod=mod -buildvcs=false}"

mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp -d "$(dirname "$OUT")/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "go build $SRC (first time: downloads BuildKit from the Go module proxy)"
( cd "$SRC" && go build -o "$tmp/dockerfile-lint" . ) >&2
mv -f "$tmp/dockerfile-lint" "$OUT"
echo "$OUT"
