"""A local copy of a Kubeflow Model Registry's listings, brought up to date by asking only for what changed.

Why: a v0.3.14 server answers a listing with one SQL query per item, so reading 1,000 versions and
their artifacts takes ~1.5 s however the client asks (see kubeflow_reads). The registry never
deletes registered models or versions (it archives them, which updates them), and every write sets
`lastUpdateTimeSinceEpoch`, so a copy plus `filterQuery=lastUpdateTimeSinceEpoch > T` is exact:
a lookup then costs a few small requests instead of the whole listing.

Guards: the overlap re-reads 2 s before the newest change (writes that commit out of timestamp order); the
lowest id's creation time must still match (a registry rebuilt behind the same URL is read
afresh); after `max_age_s` everything is read again (an artifact some other tool deleted).
The file (copy_file.py) holds registry metadata only, never the token.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .copy_file import copy_path, load_copy, save_copy
from .kubeflow_reads import RestReader

FORMAT = 1
OVERLAP_MS = 2_000
MAX_AGE_S = 600.0
# name -> (path, query parameters) of each listing a lookup reads
LISTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "registered_models": ("/registered_models", {}),
    "model_versions": ("/model_versions", {}),
    "model_artifacts": ("/artifacts", {"artifactType": "model-artifact"}),
}


def mirror_file(folder: Path, api_base: str, token: str | None) -> Path:
    return copy_path(folder, "kubeflow", api_base, token)


class ListingMirror:
    def __init__(self, path: Path, rest: RestReader, max_age_s: float = MAX_AGE_S):
        self.path = path
        self.rest = rest
        self.max_age_s = max_age_s
        self.last_sync: dict[str, int] = {}  # listing -> items read from the server in the last sync

    def listings(self) -> dict[str, list[dict]]:
        """Every item of each listing, as the server has it now."""
        state = self._load()
        fresh = state is not None and time.time() - state["full_read_at"] < self.max_age_s
        names = list(LISTINGS)
        # The listings side by side, each on its own thread (each fans out on the reader's pool).
        with ThreadPoolExecutor(len(names), thread_name_prefix="registry-mirror") as listing_threads:
            if fresh:
                parts = list(listing_threads.map(lambda name: self._catch_up(name, state["listings"][name]), names))
            if not fresh or any(part is None for part in parts):
                # no copy, an old one, or one that no longer matches the server: read every listing
                started = time.time()
                parts = list(listing_threads.map(self._read_all, names))
                state = {"format": FORMAT, "full_read_at": started}
        listings = dict(zip(names, parts, strict=True))
        new_state = {**state, "listings": listings}
        if new_state != state:  # a lookup with nothing new writes nothing
            self._save(new_state)
        return {name: list(part["items"].values()) for name, part in listings.items()}

    # -- one listing -----------------------------------------------------------------------
    def _read_all(self, name: str) -> dict:
        path, params = LISTINGS[name]
        items = self.rest.sliced(path, **params)
        self.last_sync[name] = len(items)
        return _listing({str(item["id"]): item for item in items})

    def _catch_up(self, name: str, copy: dict) -> dict | None:
        """The copy plus what changed since it was read; None when the copy is no longer of this server."""
        path, params = LISTINGS[name]
        first = self.rest.get(path, pageSize="1", orderBy="ID", sortOrder="ASC", **params).get("items") or []
        if [_identity(item) for item in first] != ([copy["first"]] if copy["first"] else []):
            return None
        since = max(0, copy["high_water_ms"] - OVERLAP_MS)
        changed = self.rest.pages(path, f"lastUpdateTimeSinceEpoch > {since}", **params)
        self.last_sync[name] = len(changed)
        return _listing({**copy["items"], **{str(item["id"]): item for item in changed}})

    # -- the file --------------------------------------------------------------------------
    def _load(self) -> dict | None:
        state = load_copy(self.path, FORMAT)
        return state if state is not None and set(state.get("listings", {})) == set(LISTINGS) else None

    def _save(self, state: dict) -> None:
        save_copy(self.path, state)


def _identity(item: dict) -> list[str]:
    return [str(item.get("id")), str(item.get("createTimeSinceEpoch"))]


def _listing(items: dict[str, dict]) -> dict:
    first = min(items.values(), key=lambda item: int(item["id"]), default=None)
    high = max((int(item.get("lastUpdateTimeSinceEpoch") or 0) for item in items.values()), default=0)
    return {"items": items, "first": _identity(first) if first else None, "high_water_ms": high}
