#!/usr/bin/env bash
# The GPU check, one entry point (benchmarks/gpu.md). On the lent GPU machine, from the repository root,
# with .gpu-carry/ carried (`make gpu-wheels` fills it here):
#     bash scripts/gpu/check.sh
# installs the carried wheels the machine lacks, then runs scripts/gpu/gpu_check.py on CUDA: every
# built-in recipe on the demo model and on a 102 M-parameter model trained there. Results:
# $OUT/gpu_results.json and $OUT/gpu_check.log when $OUT is set (the device tool's folder), else var/gpu-check/.
#     bash scripts/gpu/check.sh --dry-run      (or DMC_GPU_DRY_RUN=1; `make gpu-check`)
# runs the same steps here on CPU with the local venv, a small second model and CUDA-only recipes skipped.
# Further arguments go to gpu_check.py (--recipes, --deadline-s, --eval-limit).
set -euo pipefail
cd "$(dirname "$0")/../.."
DRY=${DMC_GPU_DRY_RUN:-0}
args=()
for a in "$@"; do
  if [ "$a" = --dry-run ]; then DRY=1; else args+=("$a"); fi
done
CARRY=${DMC_GPU_CARRY:-.gpu-carry}
WORK=${DMC_GPU_WORK:-var/gpu-check}
RESULTS_DIR=${OUT:-$WORK}
mkdir -p "$WORK" "$RESULTS_DIR"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ "$DRY" = 1 ]; then
  PY=${PY:-.venv/bin/python}
  args=(--dry-run --deadline-s "${DMC_GPU_DEADLINE_S:-3600}" --eval-limit "${DMC_GPU_EVAL_LIMIT:-16}" "${args[@]}")
else
  PY=${PY:-python3}  # on the GPU machine the python3 that holds its torch
  # ≤ 8 minutes of wall time: no new variant starts after 5.5 (the rest is reported skipped), so that
  # a second try still fits the 15 minutes of device time a session gets.
  args=(--deadline-s "${DMC_GPU_DEADLINE_S:-330}" "${args[@]}")
  if [ -d "$CARRY/wheels" ]; then
    SITE=${DMC_GPU_SITE:-/tmp/dmc-gpu-site}
    mapfile -t missing < <("$PY" scripts/gpu/wheelcheck.py missing "$CARRY/wheels")
    if [ "${#missing[@]}" -gt 0 ]; then
      echo "== installing ${#missing[@]} carried wheels into $SITE"
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${missing[@]}"
    fi
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    echo "== requirements of the carried packages (pip --no-deps checks none)"
    "$PY" scripts/gpu/wheelcheck.py unmet "$CARRY/wheels" || true  # recorded in the results too; imports decide
  else
    echo "no $CARRY/wheels: using the packages this machine has (make gpu-wheels fills it)" >&2
  fi
  if [ -f "$CARRY/demo-model/config.json" ]; then
    args=(--demo-model "$CARRY/demo-model" "${args[@]}")
  else
    echo "no carried demo model in $CARRY/demo-model: it will be built here" >&2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
fi

set -o pipefail
"$PY" scripts/gpu/gpu_check.py --out "$RESULTS_DIR/gpu_results.json" --work "$WORK" "${args[@]}" 2>&1 \
  | tee "$RESULTS_DIR/gpu_check.log"
