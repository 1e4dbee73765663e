"""The artifact layout on whatever store is configured.

Local and PVC stores are worked on in place. With S3 the stages work in a local scratch copy
and push finished folders with `ArtifactStore.put_folder` (atomic: a completion marker last).
"""

from __future__ import annotations

from pathlib import Path

from dagster_project.layout import ArtifactLayout
from dagster_project.resources.artifact_store import ArtifactStore
from dagster_project.settings import var_dir


def layout_for(artifacts: ArtifactStore) -> ArtifactLayout:
    if artifacts.kind == "s3":
        return ArtifactLayout(var_dir() / "s3-scratch")
    return ArtifactLayout(artifacts.local_path("models").parent)


def publish_folder(artifacts: ArtifactStore, layout: ArtifactLayout, folder: Path) -> str:
    """URI of a finished folder in the store (uploaded first when the store is S3)."""
    rel = str(Path(folder).resolve().relative_to(layout.root.resolve()))
    if artifacts.kind == "s3":
        return artifacts.put_folder(folder, rel)
    return artifacts.uri_for(rel)
