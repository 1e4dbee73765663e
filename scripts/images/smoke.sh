#!/usr/bin/env bash
# Smoke-run a built image (called by build.sh; usable alone):
#   smoke.sh compress IMAGE   code server answers `dagster api grpc-health-check`; the demo model
#                             (mounted read-only) is compressed with the data-free w4a16-rtn recipe
#   smoke.sh eval IMAGE       the vLLM runner starts (--help); lm_eval + dagster_pipes import;
#                             vLLM is imported only where an NVIDIA GPU is visible (CUDA-only wheel)
# Containers use host networking and are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=/usr/bin/docker
DOCKER_HOST="${DOCKER_HOST:-$(bash scripts/images/dockerd.sh start)}"; export DOCKER_HOST
kind="$1"; image="$2"
names=(); cleanup_dirs=()
cleanup() {
  for n in "${names[@]}"; do "$DOCKER" rm -f "$n" >/dev/null 2>&1 || true; done
  rm -rf "${cleanup_dirs[@]}"
}
trap cleanup EXIT

smoke_compress() {
  local port name t0
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  name="dmc-smoke-codeserver-$$"; names+=("$name")
  echo "-- $image: code server on 127.0.0.1:$port"
  t0=$(date +%s)
  "$DOCKER" run -d --rm --network host --name "$name" "$image" \
    dagster code-server start -h 127.0.0.1 -p "$port" -m dagster_project.definitions >/dev/null
  for _ in $(seq 1 180); do
    if "$DOCKER" exec "$name" dagster api grpc-health-check -p "$port" >/dev/null 2>&1; then
      echo "   grpc-health-check: SERVING after $(( $(date +%s) - t0 )) s"; break
    fi
    "$DOCKER" inspect "$name" >/dev/null 2>&1 || { echo "code server exited" >&2; exit 1; }
    sleep 1
  done
  "$DOCKER" exec "$name" dagster api grpc-health-check -p "$port" >/dev/null \
    || { "$DOCKER" logs "$name" 2>&1 | tail -20 >&2; echo "code server never answered" >&2; exit 1; }
  "$DOCKER" rm -f "$name" >/dev/null

  local model out
  # The demo model (`make demo` builds and caches it); DMC_SMOKE_MODEL: any other HF model folder.
  model="${DMC_SMOKE_MODEL:-$(.venv/bin/python -c 'from dagster_project.demo.model import build_demo_model as b; print(b(log=lambda m: None).path)')}"
  out="$(mktemp -d)"; chmod 0777 "$out"; cleanup_dirs+=("$out")
  # The image runs as uid 1001 (OpenShift-style): mount a world-readable copy of the model.
  cp -r "$model" "$out/model"; chmod -R a+rX "$out/model"
  echo "-- $image: compress the demo model ($model) with w4a16-rtn"
  t0=$(date +%s)
  "$DOCKER" run --rm --network host -e HF_HUB_OFFLINE=1 -v "$out/model:/models/demo:ro" -v "$out:/out" \
    "$image" python -c '
import json
from pathlib import Path
from dagster_project.compression.oneshot_runner import compress
from dagster_project.compression.recipes import resolve_builtin
arch = json.loads(Path("/models/demo/config.json").read_text())["architectures"][0]
r = compress(Path("/models/demo"), resolve_builtin("w4a16-rtn", arch), Path("/out/w4a16-rtn"), log=lambda m: None)
print("   variant", r.path, "scheme", r.scheme if hasattr(r, "scheme") else "?")
'
  .venv/bin/python - "$out/w4a16-rtn" <<'PY'
import json, pathlib, sys
from dagster_project.compression.oneshot_runner import is_complete_variant
d = pathlib.Path(sys.argv[1])
assert is_complete_variant(d), f"{d}: no completion manifest"
cfg = json.loads((d / "config.json").read_text())
q = cfg.get("quantization_config") or sys.exit(f"{d}: no quantization_config in config.json")
assert any(d.glob("*.safetensors")), f"{d}: no weights"
print("   quantization_config:", q.get("quant_method"), q.get("format"))
PY
  echo "   compressed in $(( $(date +%s) - t0 )) s"
}

smoke_eval() {
  echo "-- $image: vLLM runner"
  "$DOCKER" run --rm --network host "$image" --help | head -3
  "$DOCKER" run --rm --network host "$image" dagster --version
  "$DOCKER" run --rm --network host "$image" python -c '
import importlib.metadata as md, shutil
import dagster_pipes, lm_eval  # the runner imports these
print("   lm_eval", md.version("lm_eval"), "vllm", md.version("vllm"), "torch", md.version("torch"))
if shutil.which("nvidia-smi") is None:
    print("   vLLM import skipped: no NVIDIA GPU visible (vLLM 0.33 wheel is CUDA-only)")
else:
    import vllm
    print("   vLLM imported:", vllm.__version__)
'
}

case "$kind" in
  compress) smoke_compress ;;
  eval) smoke_eval ;;
  *) echo "usage: $0 compress|eval IMAGE" >&2; exit 2 ;;
esac
echo "smoke $kind: OK"
