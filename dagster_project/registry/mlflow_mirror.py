"""A local copy of this project's versions in an MLflow registry, caught up on each lookup by
asking only for what changed.

Why: the server needs ~1.3 s to answer a listing of 1,000 versions whatever the client does (mlflow
3.17.2 builds an ORM object per tag row, ~16,000 of them, then JSON), so "all approved" cannot be
read from it in 0.3 s.

What moves which timestamp (mlflow 3.17.2 SqlAlchemyStore): creating a version, deleting one and
`update_model_version` set the version's `last_updated_timestamp`; creating or deleting a version
also sets its registered model's. Setting or deleting a TAG or an alias sets neither. Hence:
- a catch-up reads the registered models (one small listing) and re-reads the versions of every
  model that appeared, vanished or changed (new or deleted versions); beside that, the versions
  ordered by `last_updated_timestamp` newest first, back to OVERLAP_MS before the newest the copy holds;
- this backend touches a version (`update_model_version`) after every tag change it makes
  (publish, revoke), so changes made through dmc are seen by the next lookup;
- a tag edited by another tool (by hand in MLflow's UI) moves no timestamp: it is seen once the
  copy is read afresh, after `max_age_s` (default 600 s). `DMC_REGISTRY_MIRROR=0` reads the server
  on every lookup; `get()` (serve, publish) always reads the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .copy_file import load_copy, save_copy
from .mlflow_registry import _q

FORMAT = 1
OVERLAP_MS = 2_000  # re-read changes this close to the newest one (commits land out of timestamp order)
MAX_AGE_S = 600.0
CHANGED_PAGE = 25
MAX_MODEL_REREADS = 8  # more changed models than this: one read of every version is cheaper
MODELS = "/api/2.0/mlflow/registered-models/search"
VERSIONS = "/api/2.0/mlflow/model-versions/search"

# pages(path, params, key) -> the listing's pages, one list of JSON items each, read lazily
Pages = Callable[[str, dict, str], Iterator[list[dict]]]


def _ms(item: dict, key: str) -> int:
    return int(item.get(key) or 0)


def _key(mv: dict) -> str:
    return f"{mv['name']}\n{mv['version']}"


class VersionCopy:
    def __init__(self, path: Path, pages: Pages, ours: str, max_age_s: float = MAX_AGE_S):
        self.path = path
        self.pages = pages
        self.ours = ours  # the search filter that selects this project's versions
        self.max_age_s = max_age_s
        self.last_sync: dict[str, int] = {}  # what the last lookup read from the server, in items

    def versions(self) -> list[dict]:
        """Every version `ours` selects, as the server has it now (raw JSON items)."""
        self.last_sync = {}
        state = load_copy(self.path, FORMAT)
        fresh = state is not None and time.time() - state.get("full_read_at", 0) < self.max_age_s
        new = self._catch_up(state) if fresh else None
        if new is None:
            new = self._read_all()
        if new != state:  # a lookup with nothing new writes nothing
            save_copy(self.path, new)
        return list(new["versions"].values())

    # -- reads -----------------------------------------------------------------------------
    def _models(self) -> dict[str, list[int]]:
        items = [m for page in self.pages(MODELS, {"max_results": 1000}, "registered_models") for m in page]
        self.last_sync["registered_models"] = len(items)
        return {m["name"]: [_ms(m, "creation_timestamp"), _ms(m, "last_updated_timestamp")] for m in items}

    def _all_versions(self, flt: str) -> list[dict]:
        params = {"filter": flt, "max_results": 10000, "order_by": ["version_number ASC"]}
        return [mv for page in self.pages(VERSIONS, params, "model_versions") for mv in page]

    def _changed_since(self, since_ms: int) -> list[dict]:
        params = {"filter": self.ours, "max_results": CHANGED_PAGE, "order_by": ["last_updated_timestamp DESC"]}
        out: list[dict] = []
        for page in self.pages(VERSIONS, params, "model_versions"):
            out += [mv for mv in page if _ms(mv, "last_updated_timestamp") > since_ms]
            if not page or _ms(page[-1], "last_updated_timestamp") <= since_ms:
                break
        return out

    def _read_all(self) -> dict:
        started = time.time()
        # Models first: a version deleted after this listing bumps its model past what the copy
        # records, so the next lookup re-reads that model.
        models = self._models()
        versions = self._all_versions(self.ours)
        self.last_sync["model_versions"] = len(versions)
        return _state(started, models, {_key(mv): mv for mv in versions})

    def _catch_up(self, state: dict) -> dict | None:
        since = max(0, state["high_water_ms"] - OVERLAP_MS)
        with ThreadPoolExecutor(MAX_MODEL_REREADS + 1, thread_name_prefix="registry-mirror") as pool:
            # Side by side: a version touched after `changed` was read is newer than the copy's
            # high water mark, so the next lookup reads it whatever the order here.
            changed = pool.submit(self._changed_since, since)
            models = self._models()
            old = state.get("models", {})
            stale = sorted(name for name, stamps in models.items() if old.get(name) != stamps)
            if len(stale) > MAX_MODEL_REREADS:
                return None
            reread = list(pool.map(lambda name: self._all_versions(f"name = {_q(name)} and {self.ours}"), stale))
            changed = changed.result()
        dropped = (set(old) - set(models)) | set(stale)
        versions = {k: mv for k, mv in state["versions"].items() if mv["name"] not in dropped}
        for part in reread:
            versions.update({_key(mv): mv for mv in part})
        # A changed model's re-read (made after the models listing) is its whole truth: `changed` may
        # predate a deletion in it and must not bring the deleted version back.
        versions.update({_key(mv): mv for mv in changed if mv["name"] not in dropped})
        self.last_sync["model_versions"] = sum(map(len, reread)) + len(changed)
        return _state(state["full_read_at"], models, versions)


def _state(full_read_at: float, models: dict, versions: dict) -> dict:
    high = max((_ms(mv, "last_updated_timestamp") for mv in versions.values()), default=0)
    return {"format": FORMAT, "full_read_at": full_read_at, "models": models, "versions": versions,
            "high_water_ms": high}
