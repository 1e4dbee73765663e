"""Each step's view of the artifact store: where its files are, and how inputs and outputs move.

Local and PVC stores are worked on in place: every step sees the same folder. With S3 each step
works in its own scratch folder (a pod's empty disk): it pulls the inputs it reads — JSON
records, and whole folders by their `_COMPLETE` manifests — and pushes what it writes (folders
atomically, marker last; single files with one PUT). Folders already pulled or pushed by this
process are reused while the store's manifest is unchanged (a per-pod cache).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_project.artifacts.layout import ArtifactLayout
from dagster_project.atomic import write_bytes_atomic, write_json_atomic
from dagster_project.settings import load_settings

if TYPE_CHECKING:
    from dagster_project.artifacts import ArtifactStore

_scratch: dict[int, Path] = {}


def scratch_dir() -> Path:
    """This process's scratch root for an S3 store: `$DMC_SCRATCH_DIR`, else a fresh temp folder.

    One per process: with the multiprocess or Kubernetes executor each step starts empty, and
    nothing but the store passes between steps."""
    configured = load_settings().paths.scratch_dir
    if configured:
        return configured.resolve()
    pid = os.getpid()
    if pid not in _scratch:
        _scratch[pid] = Path(tempfile.mkdtemp(prefix="dmc-scratch-"))
        atexit.register(shutil.rmtree, _scratch[pid], True)
    return _scratch[pid]


class StepStorage:
    """Reads pull from the store and writes push to it (S3); on a filesystem both are in place.

    Made by `ArtifactStore.step()`."""

    def __init__(self, artifacts: ArtifactStore):
        self.artifacts = artifacts
        self.remote = artifacts.kind == "s3"
        root = scratch_dir() if self.remote else artifacts.local_path("models").parent
        self.layout = ArtifactLayout(root)

    def rel(self, path: Path | str) -> str:
        return Path(path).resolve().relative_to(self.layout.root.resolve()).as_posix()

    def uri(self, path: Path | str) -> str:
        return self.artifacts.uri_for(self.rel(path))

    # ---- single files (JSON records, plots) ------------------------------------------------

    def pull_file(self, path: Path) -> bool:
        """Make `path` current from the store; False when the store has no such file."""
        if not self.remote:
            return Path(path).is_file()
        return self.artifacts.get_file(self.rel(path), path)

    def push_file(self, path: Path) -> None:
        if self.remote:
            self.artifacts.put_file(path, self.rel(path))

    def read_json(self, path: Path, what: str) -> dict:
        if not self.pull_file(path):
            raise FileNotFoundError(f"{what} is missing ({self.uri(path)}): materialize it first")
        return json.loads(Path(path).read_text())

    def read_json_optional(self, path: Path) -> dict | None:
        return json.loads(Path(path).read_text()) if self.pull_file(path) else None

    def write_json(self, path: Path, data: dict) -> None:
        write_json_atomic(path, data)
        self.push_file(path)

    def write_bytes(self, path: Path, data: bytes) -> None:
        write_bytes_atomic(path, data)
        self.push_file(path)

    # ---- folders (models, calibration sets) -------------------------------------------------

    def _sidecar(self, folder: Path) -> Path:
        return folder.parent / f".{folder.name}.complete.json"

    def has_folder(self, folder: Path) -> bool:
        return self.artifacts.exists(self.rel(folder))

    def pull_folder(self, folder: Path) -> Path:
        """The complete folder at `folder`, downloaded unless this process already holds that version."""
        folder = Path(folder)
        if not self.remote:
            return folder
        rel = self.rel(folder)
        manifest = self.artifacts.folder_manifest(rel)
        if manifest is None:
            raise FileNotFoundError(f"{self.artifacts.uri_for(rel)} is missing or partial (no _COMPLETE marker)")
        sidecar = self._sidecar(folder)
        if folder.is_dir() and sidecar.is_file() and json.loads(sidecar.read_text()) == manifest:
            return folder
        self.artifacts.get_folder(rel, folder)
        sidecar.write_text(json.dumps(manifest, sort_keys=True))
        return folder

    def push_folder(self, folder: Path) -> str:
        """Publish a finished folder (S3: atomically, marker last); returns its URI."""
        folder = Path(folder)
        rel = self.rel(folder)
        if not self.remote:
            return self.artifacts.uri_for(rel)
        uri = self.artifacts.put_folder(folder, rel)
        self._sidecar(folder).write_text(json.dumps(self.artifacts.folder_manifest(rel), sort_keys=True))
        return uri

    def read_folder_json(self, folder: Path, name: str, what: str) -> dict | None:
        """A file inside a complete folder, without pulling the folder (None: no complete folder)."""
        folder = Path(folder)
        if self.remote and not self.has_folder(folder):
            return None
        path = folder / name
        if not self.pull_file(path):
            return None
        return json.loads(path.read_text())

    # ---- base model ---------------------------------------------------------------------------

    def base_folder(self, base: dict) -> Path:
        """The base model's folder as recorded by base_model (pulled into scratch with S3)."""
        if self.remote:
            return self.pull_folder(self.layout.root / base["store_path"])
        return Path(base["path"])
