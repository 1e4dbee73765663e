"""Where each stage's files live under the artifact root (folders, never pickles)."""

from __future__ import annotations

from pathlib import Path


class ArtifactLayout:
    def __init__(self, root: Path):
        self.root = Path(root)

    def model_dir(self, model: str) -> Path:
        return self.root / "models" / model

    def base_manifest(self, model: str) -> Path:
        return self.model_dir(model) / "base_model.json"

    def base_dir(self, model: str, revision: str) -> Path:
        return self.model_dir(model) / "base" / revision

    def calibration_root(self, model: str) -> Path:
        return self.model_dir(model) / "calibration"

    def calibration_manifest(self, model: str) -> Path:
        return self.model_dir(model) / "calibration.json"

    def variant_dir(self, model: str, recipe: str) -> Path:
        return self.model_dir(model) / "variants" / recipe

    def base_eval(self, model: str, revision: str, task_set: str) -> Path:
        return self.model_dir(model) / "base_eval" / f"{revision}-{task_set}.json"

    def recipes_dir(self) -> Path:
        return self.root / "recipes"
