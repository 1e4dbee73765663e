"""Where things live by default on a laptop; every path can be overridden by environment."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "data"


def var_dir() -> Path:
    """Project-local state (artifacts, registry, Dagster home); `DMC_VAR_DIR` moves it."""
    return Path(os.environ.get("DMC_VAR_DIR", PROJECT_ROOT / "var")).resolve()


def artifact_root() -> Path:
    return Path(os.environ.get("DMC_ARTIFACT_ROOT", var_dir() / "artifacts")).resolve()


def local_registry_path() -> Path:
    return Path(os.environ.get("DMC_REGISTRY_DB", var_dir() / "registry.sqlite")).resolve()


def cache_dir() -> Path:
    """Content-addressed cache shared by every clone on the machine (the demo model is built once)."""
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("DMC_CACHE_DIR", xdg / "dmc")).resolve()
