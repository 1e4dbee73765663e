#!/usr/bin/env bash
# Run the real Kubeflow Model Registry server (built from Go, see scripts/registry/build_server.sh)
# on 127.0.0.1, backed by a private MariaDB instance (Debian's mariadb-server, no containers).
# Not PostgreSQL: Debian 12 ships PostgreSQL 15, and the server's postgres schema migration
# 000025 uses `IS JSON ARRAY` (PostgreSQL >= 16) -> "syntax error at or near JSON".
#
#   scripts/model_registry_server.sh start   # build (cached) + start db + server; prints the URL
#   scripts/model_registry_server.sh url     # prints the URL of the running server
#   scripts/model_registry_server.sh status  # exit 0 when the server answers
#   scripts/model_registry_server.sh stop    # stops server and db (data kept until `clean`)
#   scripts/model_registry_server.sh clean   # stop + delete the database
#
# Env: DMC_MR_FLAVOR: upstream (default: v0.3.14 unmodified, REST v1alpha3 as on every GA RHOAI)
#      or v1-approx (the same with routes renamed to /v1: an approximation of a v1 server; its
#      state dir gets a "-v1-approx" suffix so both can run at once),
#      DMC_MR_STATE_DIR (default /tmp/dmc-model-registry-$UID), DMC_MR_PORT, DMC_MR_DB_PORT,
#      DMC_MR_VERSION (default v0.3.14), DMC_CACHE_DIR (default ~/.cache/dmc).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLAVOR="${DMC_MR_FLAVOR:-upstream}"
STATE="${DMC_MR_STATE_DIR:-/tmp/dmc-model-registry-$(id -u)}"
API_PATH="/api/model_registry/v1alpha3/registered_models"
if [[ "$FLAVOR" == v1-approx ]]; then
  STATE="$STATE-v1-approx"
  API_PATH="/api/model_registry/v1/registered_models"
fi
DBDIR="$STATE/mariadb"

log() { echo "[model_registry_server] $*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

answers() {
  local url="$1"
  python3 - "$url$API_PATH" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

db_alive() { alive "$DBDIR/mysqld.pid"; }

start_db() {
  if ! command -v mariadbd >/dev/null && [[ ! -x /usr/sbin/mariadbd ]]; then
    log "MariaDB missing: installing mariadb-server with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server >&2
  fi
  local mariadbd; mariadbd="$(command -v mariadbd || echo /usr/sbin/mariadbd)"
  local user_args=()
  mkdir -p "$DBDIR"
  if [[ $(id -u) -eq 0 ]]; then
    id mysql >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mysql
    chown mysql "$DBDIR"; chmod 755 "$STATE"
    user_args=(--user=mysql)
  fi
  if [[ ! -d "$DBDIR/data/mysql" ]]; then
    log "mariadb-install-db $DBDIR/data"
    mariadb-install-db --no-defaults "${user_args[@]}" --datadir="$DBDIR/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$STATE/install-db.log" 2>&1
  fi
  db_alive && return 0
  local port="${DMC_MR_DB_PORT:-$(free_port)}"
  echo "$port" > "$STATE/db_port"
  setsid "$mariadbd" --no-defaults "${user_args[@]}" --datadir="$DBDIR/data" \
    --bind-address=127.0.0.1 --port="$port" --socket="$DBDIR/mysqld.sock" \
    --pid-file="$DBDIR/mysqld.pid" --skip-log-bin --innodb-flush-log-at-trx-commit=0 \
    >"$STATE/mariadb.log" 2>&1 </dev/null &
  local i
  for i in $(seq 1 60); do
    mariadb --no-defaults --socket="$DBDIR/mysqld.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
  done
  mariadb --no-defaults --socket="$DBDIR/mysqld.sock" -uroot -e \
    "CREATE DATABASE IF NOT EXISTS model_registry CHARACTER SET utf8mb4;
     CREATE USER IF NOT EXISTS 'mr'@'127.0.0.1' IDENTIFIED BY 'mr';
     GRANT ALL ON model_registry.* TO 'mr'@'127.0.0.1';" \
    || { log "MariaDB did not come up:"; tail -n 20 "$STATE/mariadb.log" >&2; return 1; }
}

stop_db() {
  if db_alive; then
    local pid; pid="$(cat "$DBDIR/mysqld.pid")"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
}

cmd_start() {
  if [[ -f "$STATE/url" ]] && alive "$STATE/server.pid" && answers "$(cat "$STATE/url")"; then
    cat "$STATE/url"; return 0
  fi
  local binary; binary="$("$HERE/registry/build_server.sh" "$FLAVOR" | tail -n1)"
  start_db
  local db_port; db_port="$(cat "$STATE/db_port")"
  alive "$STATE/server.pid" && kill "$(cat "$STATE/server.pid")" 2>/dev/null || true
  local port="${DMC_MR_PORT:-$(free_port)}"
  local url="http://127.0.0.1:$port"
  local dsn="mr:mr@tcp(127.0.0.1:$db_port)/model_registry?charset=utf8mb4"
  log "starting $binary ($FLAVOR) on $url"
  setsid "$binary" proxy --hostname 127.0.0.1 --port "$port" --datastore-type embedmd \
    --embedmd-database-type mysql --embedmd-database-dsn "$dsn" \
    >"$STATE/server.log" 2>&1 < /dev/null &
  echo $! > "$STATE/server.pid"
  local i
  for i in $(seq 1 120); do
    if answers "$url"; then
      echo "$url" > "$STATE/url"
      log "ready after ~$((i / 2)) s (log: $STATE/server.log)"
      echo "$url"; return 0
    fi
    alive "$STATE/server.pid" || { log "server exited:"; tail -n 30 "$STATE/server.log" >&2; return 1; }
    sleep 0.5
  done
  log "server did not answer $url$API_PATH within 60 s:"; tail -n 30 "$STATE/server.log" >&2
  return 1
}

cmd_stop() {
  if alive "$STATE/server.pid"; then
    kill "$(cat "$STATE/server.pid")"
    for _ in $(seq 1 20); do alive "$STATE/server.pid" || break; sleep 0.25; done
    alive "$STATE/server.pid" && kill -9 "$(cat "$STATE/server.pid")" || true
  fi
  rm -f "$STATE/server.pid" "$STATE/url"
  stop_db
  log "stopped"
}

cmd_status() {
  if [[ -f "$STATE/url" ]] && alive "$STATE/server.pid" && answers "$(cat "$STATE/url")"; then
    echo "running $(cat "$STATE/url") (pid $(cat "$STATE/server.pid"))"; return 0
  fi
  echo "not running"; return 3
}

cmd_url() {
  [[ -f "$STATE/url" ]] || { log "not running (start it first)"; return 1; }
  cat "$STATE/url"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) cmd_url ;;
  build) "$HERE/registry/build_server.sh" "$FLAVOR" ;;
  clean) cmd_stop; rm -rf "$STATE" ;;
  *) echo "usage: $0 start|stop|status|url|build|clean" >&2; exit 64 ;;
esac
