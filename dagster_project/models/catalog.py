"""Which base models exist: the model catalog (models.yaml).

Catalog entries give a model key a source; keys not in the catalog that look like `org--name`
mean the Hugging Face repo `org/name`, with the task set the watchlist gives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from dagster_project.models.keys import (
    DEMO_MODEL_KEY,
    CatalogError,
    is_repo_id,
    repo_for_key,
    validate_model_key,
)
from dagster_project.models.watchlist import watched_task_set
from dagster_project.settings import load_settings


class ModelSource(BaseModel, frozen=True):
    key: str
    source: Literal["demo", "local", "hf"]
    repo_id: str | None = None
    revision: str | None = Field(default=None, description="branch, tag or commit sha; resolved to a sha")
    path: str | None = None
    license: str | None = None
    task_set: str = "demo"
    recipes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> "ModelSource":
        validate_model_key(self.key)
        if self.source == "hf":
            if not is_repo_id(self.repo_id):
                raise ValueError(f"model {self.key!r}: repo_id {self.repo_id!r} is not a Hugging Face repo id 'org/name'")
        if self.source == "local" and not self.path:
            raise ValueError(f"model {self.key!r}: a local source needs `path`")
        return self


def catalog_path() -> Path:
    return load_settings().paths.models_file


def load_catalog(path: Path | None = None) -> dict[str, ModelSource]:
    path = path or catalog_path()
    if not path.exists():
        return {DEMO_MODEL_KEY: ModelSource(key=DEMO_MODEL_KEY, source="demo")}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        entries = [ModelSource(**e) for e in doc.get("models", [])]
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise CatalogError(f"model catalog {path} is invalid: {exc}") from None
    return {e.key: e for e in entries}


def resolve_model(key: str, catalog: dict[str, ModelSource] | None = None, revision: str | None = None) -> ModelSource:
    """`revision` (the `dmc/revision` run tag) pins a Hub source to the commit the watch sensor saw."""
    validate_model_key(key)
    catalog = load_catalog() if catalog is None else catalog
    if key in catalog:
        source = catalog[key]
        return source.model_copy(update={"revision": revision}) if revision and source.source == "hf" else source
    repo_id = repo_for_key(key)
    if repo_id:
        task_set = watched_task_set(repo_id)
        return ModelSource(key=key, source="hf", repo_id=repo_id, revision=revision or None,
                           **({"task_set": task_set} if task_set else {}))
    raise CatalogError(f"unknown model {key!r}: not in {catalog_path()} and not an 'org--name' Hub key")
