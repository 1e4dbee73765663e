"""Partition-key conventions: what a model key may look like, and how a Hub repo becomes one.

A partition key names one base model. Keys not in the catalog that look like `org--name` mean the
Hugging Face repo `org/name` (the watch sensor adds such keys for new releases).
"""

from __future__ import annotations

import re

MODEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DEMO_MODEL_KEY = "demo-llama"
# Run tag with the commit sha the watch sensor saw; base_model pins a Hub source to it.
REVISION_TAG = "dmc/revision"


class CatalogError(ValueError):
    pass


def is_repo_id(repo_id: str | None) -> bool:
    return bool(HF_REPO_ID.match(repo_id or "")) and ".." not in (repo_id or "")


def validate_model_key(key: str) -> str:
    if not key or not MODEL_KEY.match(key) or ".." in key:
        raise CatalogError(
            f"invalid model key {key!r}: use letters, digits, '.', '_' or '-' (no '/', no '..'); "
            "a Hugging Face repo 'org/name' becomes the key 'org--name'"
        )
    return key


def key_for_repo(repo_id: str) -> str:
    if not is_repo_id(repo_id):
        raise CatalogError(f"{repo_id!r} is not a Hugging Face repo id 'org/name'")
    return repo_id.replace("/", "--")


def repo_for_key(key: str) -> str | None:
    """The Hub repo an `org--name` key stands for (None: not such a key)."""
    if "--" not in key:
        return None
    org, _, name = key.partition("--")
    return f"{org}/{name}"
