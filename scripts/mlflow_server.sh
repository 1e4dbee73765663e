#!/usr/bin/env bash
# Run a real MLflow tracking + Model Registry server on 127.0.0.1 with a SQLite backend store.
# The server (full `mlflow`) lives in its own tool venv under the cache: full mlflow 3.17.2 needs
# pyarrow<26, which our lock (pyarrow 26) cannot take; our env holds only the client,
# `mlflow-skinny==3.17.2` (3.18 cannot be installed here: mlflow-skinny 3.18 is not served).
#
#   scripts/mlflow_server.sh start    # install (cached) + start; prints the URL (mlflow+http://...)
#   scripts/mlflow_server.sh url | status | stop | clean | install
#
# Env: DMC_MLFLOW_STATE_DIR (default /tmp/dmc-mlflow-$UID), DMC_MLFLOW_PORT,
#      DMC_MLFLOW_VERSION (default 3.17.2), DMC_CACHE_DIR (default ~/.cache/dmc).
set -euo pipefail

VERSION="${DMC_MLFLOW_VERSION:-3.17.2}"
CACHE_ROOT="${DMC_CACHE_DIR:-$HOME/.cache/dmc}"
VENV="$CACHE_ROOT/tools/mlflow-$VERSION"
STATE="${DMC_MLFLOW_STATE_DIR:-/tmp/dmc-mlflow-$(id -u)}"

log() { echo "[mlflow_server] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

answers() {
  python3 - "$1/api/2.0/mlflow/registered-models/search?max_results=1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

cmd_install() {
  mkdir -p "$CACHE_ROOT/tools"
  # A venv cannot be renamed into place (its scripts hard-code their path): install under a lock;
  # the READY marker is written last, so a half-installed venv is never used.
  exec 8>"$CACHE_ROOT/tools/.mlflow-$VERSION.lock"
  flock 8
  if [[ ! -f "$VENV/READY" ]]; then
    log "installing mlflow==$VERSION into $VENV (first time: a few minutes)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "mlflow==$VERSION" >&2
    touch "$VENV/READY"
  fi
  flock -u 8
}

cmd_start() {
  if [[ -f "$STATE/url" ]] && alive "$STATE/server.pid" && answers "$(cat "$STATE/url")"; then
    echo "mlflow+$(cat "$STATE/url")"; return 0
  fi
  cmd_install
  mkdir -p "$STATE/artifacts"
  alive "$STATE/server.pid" && kill "$(cat "$STATE/server.pid")" 2>/dev/null || true
  local port="${DMC_MLFLOW_PORT:-$(free_port)}"
  local url="http://127.0.0.1:$port"
  log "starting mlflow server $VERSION on $url (SQLite $STATE/mlflow.db)"
  # --workers 2: concurrent publishers must really run concurrently on the server.
  # setsid: its own process group, so `stop` ends the server and its workers together.
  setsid "$VENV/bin/mlflow" server --backend-store-uri "sqlite:///$STATE/mlflow.db" \
    --default-artifact-root "$STATE/artifacts" --host 127.0.0.1 --port "$port" --workers 2 \
    >"$STATE/server.log" 2>&1 </dev/null &
  echo $! > "$STATE/server.pid"
  local i
  for i in $(seq 1 240); do
    if answers "$url"; then
      echo "$url" > "$STATE/url"
      log "ready after ~$((i / 2)) s (log: $STATE/server.log)"
      echo "mlflow+$url"; return 0
    fi
    alive "$STATE/server.pid" || { log "server exited:"; tail -n 30 "$STATE/server.log" >&2; return 1; }
    sleep 0.5
  done
  log "server did not answer $url within 120 s:"; tail -n 30 "$STATE/server.log" >&2
  return 1
}

cmd_stop() {
  if alive "$STATE/server.pid"; then
    local pid; pid="$(cat "$STATE/server.pid")"
    kill -- "-$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/server.pid" "$STATE/url"
  log "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  install) cmd_install ;;
  url) [[ -f "$STATE/url" ]] && echo "mlflow+$(cat "$STATE/url")" || { log "not running"; exit 1; } ;;
  status) if [[ -f "$STATE/url" ]] && alive "$STATE/server.pid" && answers "$(cat "$STATE/url")"; then
            echo "running mlflow+$(cat "$STATE/url")"; else echo "not running"; exit 3; fi ;;
  clean) cmd_stop; rm -rf "$STATE" ;;
  *) echo "usage: $0 start|stop|status|url|install|clean" >&2; exit 64 ;;
esac
