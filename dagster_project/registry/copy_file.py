"""The file behind a lookup's local copy of a registry (kubeflow_mirror, mlflow_mirror).

Its name is a hash of the registry URL and the token (another token may see other things), so the
token itself is never written; a copy that cannot be read is simply read afresh from the server,
and one that cannot be written costs speed, never the lookup.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dagster_project.atomic import write_text_atomic


def copy_path(folder: Path, kind: str, api_base: str, token: str | None) -> Path:
    key = hashlib.sha256(f"{api_base}\n{token or ''}".encode()).hexdigest()[:24]
    return Path(folder) / f"{kind}-{key}.json"


def load_copy(path: Path, fmt: int) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("format") == fmt else None


def save_copy(path: Path, state: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(state, separators=(",", ":")))
    except OSError:
        pass  # a read-only or full disk costs speed, never the lookup
