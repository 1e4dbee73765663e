"""Shared bits of the benchmarks: a fresh project state, and the one machine-readable result line.

Every benchmark prints, as its last line, ``RESULT {json}`` with name, inputs, measured (text),
goal (text), ratio (float) and ok (bool); `run_all.py` reads that line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}


def fresh_state(prefix: str) -> Path:
    """A new DMC_VAR_DIR with its own DAGSTER_HOME (and the local registry), set in os.environ."""
    tmp = Path(tempfile.mkdtemp(prefix=f"dmc-bench-{prefix}-"))
    var = tmp / "var"
    home = var / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ.update(DMC_VAR_DIR=str(var), DAGSTER_HOME=str(home), **OFFLINE_ENV)
    for k in ("DMC_REGISTRY_URL", "DMC_ARTIFACT_ROOT", "DMC_REGISTRY_DB", "DMC_MODELS_FILE", "DMC_HUB_PUBLISH"):
        os.environ.pop(k, None)
    return var


def report(name: str, inputs: str, measured: str, goal: str, ratio: float, ok: bool) -> None:
    print("RESULT " + json.dumps({"name": name, "inputs": inputs, "measured": measured, "goal": goal,
                                  "ratio": round(ratio, 4), "ok": bool(ok)}), flush=True)
