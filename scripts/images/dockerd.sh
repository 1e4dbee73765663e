#!/usr/bin/env bash
# A private Docker daemon (Debian's docker.io, no systemd) for `make images` and `make k8s-e2e`.
# Host networking only (--bridge=none): no private-range bridge, no iptables rules.
#
#   scripts/images/dockerd.sh start   # starts (or reuses) it; prints DOCKER_HOST
#   scripts/images/dockerd.sh stop
#   scripts/images/dockerd.sh prune   # remove dangling layers / build cache older than a day
#
# Env: DMC_DOCKER_ROOT (data root, default $DMC_CACHE_DIR/docker = ~/.cache/dmc/docker),
#      DMC_DOCKER_RUN (sockets/pid, default /run/dmc-docker).
# Uses Debian's client /usr/bin/docker (20.10, BuildKit built in): a newer client without the
# buildx plugin refuses BuildKit builds.
set -euo pipefail

CACHE_ROOT="${DMC_CACHE_DIR:-$HOME/.cache/dmc}"
ROOT="${DMC_DOCKER_ROOT:-$CACHE_ROOT/docker}"
RUN="${DMC_DOCKER_RUN:-/run/dmc-docker}"
SOCK="$RUN/docker.sock"
PIDFILE="$RUN/dockerd.pid"
export DOCKER_HOST="unix://$SOCK"

log() { echo "[dockerd] $*" >&2; }
alive() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
answers() { /usr/bin/docker version >/dev/null 2>&1; }

ensure_installed() {
  [[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] && return 0
  [[ $(id -u) -eq 0 ]] || { log "dockerd needs root (and Debian's docker.io)"; exit 1; }
  log "installing Debian's docker.io with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2
}

case "${1:-}" in
  start)
    ensure_installed
    mkdir -p "$ROOT" "$RUN"
    if alive && answers; then echo "$DOCKER_HOST"; exit 0; fi
    log "starting dockerd (data root $ROOT)"
    # Debian's dockerd finds containerd/runc on PATH; its own containerd is started under $RUN.
    setsid /usr/sbin/dockerd --data-root "$ROOT" --exec-root "$RUN/exec" -H "$DOCKER_HOST" \
      --pidfile "$PIDFILE" --bridge=none --iptables=false --ip-masq=false \
      --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs \
      >"$RUN/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do answers && break; sleep 0.5; done
    answers || { log "dockerd did not answer; last log lines:"; tail -20 "$RUN/dockerd.log" >&2; exit 1; }
    echo "$DOCKER_HOST"
    ;;
  stop)
    if alive; then
      pid=$(cat "$PIDFILE"); kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && { log "dockerd $pid still running after 30 s"; exit 1; }
    fi
    rm -f "$PIDFILE"
    ;;
  prune)
    answers || { log "dockerd is not running"; exit 1; }
    /usr/bin/docker image prune -f >&2
    /usr/bin/docker builder prune -f --filter until=24h >&2
    ;;
  *) echo "usage: $0 start|stop|prune" >&2; exit 2 ;;
esac
