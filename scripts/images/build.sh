#!/usr/bin/env bash
# `make images`: build both images offline and smoke-run them.
#   1. a private dockerd (Debian's docker.io, host networking)      scripts/images/dockerd.sh
#   2. the local Debian bookworm + Python base (debootstrap)         scripts/images/base_image.sh
#   3. deploy/docker/Dockerfile.compress and Dockerfile.eval, FROM that base (--build-arg)
#   4. smoke runs                                                     scripts/images/smoke.sh
# Build times and image sizes go to var/images/report.tsv (and stdout).
# Env: DMC_IMAGES (default "compress eval"), DMC_IMAGE_TAG (default: project version),
#      DMC_IMAGES_SMOKE=0 to build only, DMC_BUILD_CACHE_KEEP (build cache kept, default 20GB).
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=1
# The daemon is stopped again at exit unless it was already running (no process left behind).
if ! DOCKER_HOST=unix:///run/dmc-docker/docker.sock "$DOCKER" version >/dev/null 2>&1; then
  trap 'bash scripts/images/dockerd.sh stop' EXIT
fi
DOCKER_HOST="$(bash scripts/images/dockerd.sh start)"; export DOCKER_HOST
TAG="${DMC_IMAGE_TAG:-$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')}"
mkdir -p var/images
REPORT=var/images/report.tsv
printf 'image\tbuild_s\tsize_bytes\n' > "$REPORT"

t0=$(date +%s)
BASE="$(bash scripts/images/base_image.sh)"
echo "base image: $BASE ($(( $(date +%s) - t0 )) s)"
printf 'base\t%s\t%s\n' "$(( $(date +%s) - t0 ))" "$($DOCKER image inspect -f '{{.Size}}' "$BASE")" >> "$REPORT"

# A TLS-intercepting network's CA bundle (this machine sets PIP_CERT) reaches pip as a build
# secret, never as a layer.
secret=()
cert="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-}}"
[[ -n "$cert" && -s "$cert" ]] && secret=(--secret "id=pip_cert,src=$cert")

declare -A NAMES=([compress]=dagster-model-compression [eval]=dagster-model-compression-eval)
for kind in ${DMC_IMAGES:-compress eval}; do
  image="${NAMES[$kind]}:$TAG"
  echo "== docker build $image (deploy/docker/Dockerfile.$kind) =="
  t0=$(date +%s)
  "$DOCKER" build --network host --progress plain --build-arg "PYTHON_IMAGE=$BASE" "${secret[@]}" \
    -f "deploy/docker/Dockerfile.$kind" -t "$image" . 2>&1 | tail -n "${DMC_BUILD_LOG_LINES:-40}"
  [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "docker build $image failed" >&2; exit 1; }
  secs=$(( $(date +%s) - t0 ))
  size=$("$DOCKER" image inspect -f '{{.Size}}' "$image")
  printf '%s\t%s\t%s\n' "$image" "$secs" "$size" >> "$REPORT"
  echo "$image: built in $secs s, $(( size / 1024 / 1024 )) MiB"
done
# Old layers of earlier builds of these tags: gone, so the disk does not fill up. The build cache
# (pip's cache mount, old layers) is capped too: uncapped it reached ~50 GB and filled the disk.
"$DOCKER" image prune -f >/dev/null
"$DOCKER" builder prune -f --keep-storage "${DMC_BUILD_CACHE_KEEP:-20GB}" >/dev/null

if [[ "${DMC_IMAGES_SMOKE:-1}" != 0 ]]; then
  for kind in ${DMC_IMAGES:-compress eval}; do
    bash scripts/images/smoke.sh "$kind" "${NAMES[$kind]}:$TAG"
  done
fi
echo "== images =="; column -t "$REPORT"
