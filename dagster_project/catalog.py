"""Which base models exist: the model catalog (models.yaml) and partition-key conventions.

A partition key names one base model. Catalog entries give a key a source; keys that are not in
the catalog but look like `org--name` mean the Hugging Face repo `org/name` (the watch sensor
adds such keys for new releases).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from dagster_project.settings import PROJECT_ROOT

MODEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DEMO_MODEL_KEY = "demo-llama"
# Run tag with the commit sha the watch sensor saw; base_model pins a Hub source to it.
REVISION_TAG = "dmc/revision"


class CatalogError(ValueError):
    pass


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
            if not self.repo_id or not HF_REPO_ID.match(self.repo_id) or ".." in self.repo_id:
                raise ValueError(f"model {self.key!r}: repo_id {self.repo_id!r} is not a Hugging Face repo id 'org/name'")
        if self.source == "local" and not self.path:
            raise ValueError(f"model {self.key!r}: a local source needs `path`")
        return self


def validate_model_key(key: str) -> str:
    if not key or not MODEL_KEY.match(key) or ".." in key:
        raise CatalogError(
            f"invalid model key {key!r}: use letters, digits, '.', '_' or '-' (no '/', no '..'); "
            "a Hugging Face repo 'org/name' becomes the key 'org--name'"
        )
    return key


def key_for_repo(repo_id: str) -> str:
    if not HF_REPO_ID.match(repo_id or "") or ".." in repo_id:
        raise CatalogError(f"{repo_id!r} is not a Hugging Face repo id 'org/name'")
    return repo_id.replace("/", "--")


def catalog_path() -> Path:
    return Path(os.environ.get("DMC_MODELS_FILE", PROJECT_ROOT / "models.yaml"))


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
    if "--" in key:
        from dagster_project.automation.watchlist import watched_task_set

        org, _, name = key.partition("--")
        repo_id = f"{org}/{name}"
        task_set = watched_task_set(repo_id)
        return ModelSource(key=key, source="hf", repo_id=repo_id, revision=revision or None,
                           **({"task_set": task_set} if task_set else {}))
    raise CatalogError(f"unknown model {key!r}: not in {catalog_path()} and not an 'org--name' Hub key")
