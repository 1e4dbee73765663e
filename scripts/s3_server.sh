#!/usr/bin/env bash
# A real S3 server on 127.0.0.1 for the artifact-store tests: SeaweedFS (`weed mini`, Apache-2.0),
# built from its Go module and cached per version under $DMC_CACHE_DIR (default ~/.cache/dmc).
#
#   scripts/s3_server.sh start   # build (cached, ~3 min cold) + start; prints the endpoint URL
#   scripts/s3_server.sh url     # prints the endpoint of the running server
#   scripts/s3_server.sh status  # exit 0 when the server answers
#   scripts/s3_server.sh stop    # stops the server (a later start begins with an empty store)
#   scripts/s3_server.sh clean   # stop + delete the data
#   scripts/s3_server.sh build   # only build; prints the binary path
#
# Why the build steps: `go install .../weed@V` is refused (SeaweedFS' go.mod has replace
# directives), so the module is downloaded, copied, made writable and built inside its folder.
# Env: DMC_S3_STATE_DIR (default /tmp/dmc-s3-$UID), DMC_S3_PORT, DMC_SEAWEEDFS_VERSION.
set -euo pipefail

VERSION="${DMC_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"  # SeaweedFS 4.53 (2026-11-09)
CACHE_ROOT="${DMC_CACHE_DIR:-$HOME/.cache/dmc}"
OUT_DIR="$CACHE_ROOT/seaweedfs/$VERSION"
BIN="$OUT_DIR/weed"
STATE="${DMC_S3_STATE_DIR:-/tmp/dmc-s3-$(id -u)}"

log() { echo "[s3_server] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Any HTTP answer from the S3 gateway (403 for an anonymous ListBuckets counts) means it is up.
answers() {
  python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=2)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

cmd_build() {
  if [[ -x "$BIN" ]]; then echo "$BIN"; return 0; fi
  command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH; }
  command -v go >/dev/null || { log "installing golang-go"; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go >&2; }
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS="-mod=mod -buildvcs=false"
  local start; start=$(date +%s)
  mkdir -p "$CACHE_ROOT/seaweedfs"
  # Build in a private temp dir, then rename: two clones may build the same version at once.
  local work; work="$(mktemp -d "$CACHE_ROOT/seaweedfs/.build-XXXXXX")"
  trap 'rm -rf "$work"' RETURN
  log "downloading github.com/seaweedfs/seaweedfs@$VERSION from the Go module proxy"
  local dir
  dir="$(cd "$work" && GOFLAGS= go mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')"
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  log "go build ./weed (about 3 min on 2 cores with a cold cache)"
  mkdir -p "$work/out"
  ( cd "$work/src" && go build -o "$work/out/weed" ./weed ) >&2
  echo "$VERSION built in $(( $(date +%s) - start )) s" > "$work/out/BUILD_INFO"
  if ! mv -T "$work/out" "$OUT_DIR" 2>/dev/null; then
    [[ -x "$BIN" ]] || { log "could not move the build to $OUT_DIR"; return 1; }
  fi
  log "$(cat "$OUT_DIR/BUILD_INFO")"
  echo "$BIN"
}

cmd_start() {
  if [[ -f "$STATE/url" ]] && alive "$STATE/weed.pid" && answers "$(cat "$STATE/url")"; then
    cat "$STATE/url"; return 0
  fi
  local binary; binary="$(cmd_build | tail -n1)"
  # A new process starts on an empty store: its ports are picked afresh, and a master state left by
  # an earlier (killed) run then freezes volume growth ("topology id ... the master state was
  # rebuilt"), which hangs every upload. The store is the tests' scratch space.
  rm -rf "$STATE/data"
  mkdir -p "$STATE/data"
  alive "$STATE/weed.pid" && kill "$(cat "$STATE/weed.pid")" 2>/dev/null || true
  local port="${DMC_S3_PORT:-$(free_port)}"
  # `weed mini` runs master, volume, filer and S3 in one process; every other port it would take
  # is picked free too, so several clones on one machine never collide.
  local url="http://127.0.0.1:$port"
  log "starting $binary mini on $url"
  # Volume count and size are fixed: `mini` otherwise sizes them from the free disk, and on a
  # machine with ~10 GB free it ran out of volumes after a few buckets (each bucket is a
  # collection with volumes of its own): PutObject then fails with InternalError ("No writable
  # volumes and no free volumes left"). Volumes are sparse files, so 1000 x 64 MB costs nothing
  # until written.
  setsid "$binary" mini -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -volume.max=1000 -master.volumeSizeLimitMB=64 \
    -s3.port="$port" -master.port="$(free_port)" -volume.port="$(free_port)" \
    -filer.port="$(free_port)" -webdav.port="$(free_port)" -admin.port="$(free_port)" \
    >"$STATE/weed.log" 2>&1 </dev/null &
  echo $! > "$STATE/weed.pid"
  local i
  for i in $(seq 1 120); do
    if answers "$url"; then
      echo "$url" > "$STATE/url"
      log "ready after ~$((i / 2)) s (log: $STATE/weed.log)"
      echo "$url"; return 0
    fi
    alive "$STATE/weed.pid" || { log "weed exited:"; tail -n 30 "$STATE/weed.log" >&2; return 1; }
    sleep 0.5
  done
  log "S3 gateway did not answer $url within 60 s:"; tail -n 30 "$STATE/weed.log" >&2
  return 1
}

cmd_stop() {
  if alive "$STATE/weed.pid"; then
    local pid; pid="$(cat "$STATE/weed.pid")"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
  fi
  rm -f "$STATE/weed.pid" "$STATE/url"
  log "stopped"
}

cmd_status() {
  if [[ -f "$STATE/url" ]] && alive "$STATE/weed.pid" && answers "$(cat "$STATE/url")"; then
    echo "running $(cat "$STATE/url") (pid $(cat "$STATE/weed.pid"))"; return 0
  fi
  echo "not running"; return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) [[ -f "$STATE/url" ]] && cat "$STATE/url" || { log "not running"; exit 1; } ;;
  build) cmd_build ;;
  clean) cmd_stop; rm -rf "$STATE" ;;
  *) echo "usage: $0 start|stop|status|url|build|clean" >&2; exit 64 ;;
esac
