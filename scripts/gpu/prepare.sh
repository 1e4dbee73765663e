#!/usr/bin/env bash
# `make gpu-wheels`: fill .gpu-carry/ (ignored by git), the one folder the GPU run carries:
#   wheels/      the wheels of scripts/gpu/wheels.txt for the GPU machine (CPython 3.12, manylinux x86-64),
#                downloaded, or built here for source-only packages;
#   demo-model/  a copy of the demo model from the machine cache (built first if it is not cached).
# Then checks that what travels stays under the device tool's 64 MiB. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
CARRY=${DMC_GPU_CARRY:-.gpu-carry}
DEST=$CARRY/wheels
LIST=scripts/gpu/wheels.txt
MAX_MIB=60  # the device tool carries 64 MiB: the tree, the wheels and the demo model together
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
mkdir -p "$DEST"

binary=() build=()
while IFS= read -r line; do
  spec=${line%%#*}; spec=${spec//[[:space:]]/}
  [ -n "$spec" ] || continue
  if [[ $line == *"# build"* ]]; then build+=("$spec"); else binary+=("$spec"); fi
done < "$LIST"

export PIP_DISABLE_PIP_VERSION_CHECK=1
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${binary[@]}"
for spec in "${build[@]}"; do
  name=${spec%%==*}; ver=${spec##*==}
  # Wheel file names normalise '-' to '_'; skip what an earlier run already built.
  ls "$DEST"/"${name//-/_}"-"$ver"-*.whl >/dev/null 2>&1 && continue
  "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w "$DEST" "$spec"
done
# Only pure-Python builds may travel: a wheel built for this machine's CPython 3.11 would not load there.
if ls "$DEST"/*.whl | grep -E -- '-cp3(1[0-13-9]|[0-9])-' ; then
  echo "error: a compiled wheel for another Python is in $DEST (above); remove it and rerun" >&2; exit 1
fi
# One version per package: two stop the whole install on the machine.
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dups" ] || { echo "error: several versions of: $dups in $DEST; remove the stale ones" >&2; exit 1; }

echo "$(ls "$DEST"/*.whl | wc -l) wheels in $DEST: $(du -cb "$DEST"/*.whl | tail -1 | cut -f1 | awk '{printf "%.1f", $1/1048576}') MiB"

model=$("$PY" -c 'from dagster_project.demo.model import build_demo_model; print(build_demo_model().path)' | tail -1)
if ! cmp -s "$model/demo_model_report.json" "$CARRY/demo-model/demo_model_report.json"; then
  rm -rf "$CARRY/demo-model.tmp" && cp -r "$model" "$CARRY/demo-model.tmp"
  rm -rf "$CARRY/demo-model" && mv "$CARRY/demo-model.tmp" "$CARRY/demo-model"
fi
echo "demo model $(basename "$model") in $CARRY/demo-model: $(du -sb "$CARRY/demo-model" | awk '{printf "%.1f", $1/1048576}') MiB"

# What the device tool sends: tracked and untracked-not-ignored files, plus the carried folder.
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -sb "$CARRY" | cut -f1)
total=$((tree + carry))
echo "travels: tree $((tree / 1048576)) MiB + $CARRY $((carry / 1048576)) MiB = $((total / 1048576)) MiB (limit 64 MiB)"
if [ "$total" -gt $((MAX_MIB * 1048576)) ]; then
  echo "error: over ${MAX_MIB} MiB; the device tool refuses more than 64 MiB" >&2; exit 1
fi
