#!/usr/bin/env bash
# The local base image both Dockerfiles build FROM when no container registry is reachable:
# Debian bookworm made by debootstrap from Debian's own packages, with the Python the official
# python:3.11-slim-bookworm image provides (Debian's python3.11 + venv; `python` on PATH).
# The rootfs tarball is cached per machine, keyed by suite + package list; `docker import`
# tags it dmc/debian-python:<key>. Prints that tag. Needs DOCKER_HOST of a running dockerd.
set -euo pipefail

SUITE="${DMC_BASE_SUITE:-bookworm}"
MIRROR="${DMC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-venv,python-is-python3,ca-certificates,passwd"
CACHE_ROOT="${DMC_CACHE_DIR:-$HOME/.cache/dmc}"
KEY=$(printf '%s|%s|%s|v1' "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-12)
TAG="dmc/debian-python:$SUITE-$KEY"
TARBALL="$CACHE_ROOT/images/base-$SUITE-$KEY.tar"
DOCKER=/usr/bin/docker

log() { echo "[base_image] $*" >&2; }

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG"; exit 0; fi

if [[ ! -f "$TARBALL" ]]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2
  start=$(date +%s)
  mkdir -p "$CACHE_ROOT/images"
  tmp=$(mktemp -d "$CACHE_ROOT/images/.rootfs.XXXXXX")
  # debootstrap mounts proc/sys in the target while configuring packages: unmount before rm.
  cleanup() {
    for m in proc sys dev/pts; do umount -l "$tmp/rootfs/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$tmp"
  }
  trap cleanup EXIT
  log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
  # Same apt sources a Debian image has (the eval image installs gcc with apt-get).
  cat >"$tmp/rootfs/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC
  # Slim like the official image: no apt lists, docs, man pages or caches.
  rm -rf "$tmp/rootfs"/var/lib/apt/lists/* "$tmp/rootfs"/var/cache/apt/*.bin \
    "$tmp/rootfs"/var/cache/apt/archives/*.deb "$tmp/rootfs"/usr/share/doc/* "$tmp/rootfs"/usr/share/man/*
  tar -C "$tmp/rootfs" --numeric-owner -cf "$tmp/rootfs.tar" .
  mv "$tmp/rootfs.tar" "$TARBALL"
  log "rootfs built in $(( $(date +%s) - start )) s ($(du -h "$TARBALL" | cut -f1))"
fi
"$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  "$TARBALL" "$TAG" >&2
echo "$TAG"
