"""Embedded registry: one SQLite file, same model as Kubeflow (model -> version -> artifact)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .base import (
    APPROVED_LABEL,
    SOURCE_KIND,
    PublishedVersion,
    RegistryBackend,
    RegistryError,
    VariantRecord,
    VersionFilter,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models(id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    approved    INTEGER NOT NULL DEFAULT 0,
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    UNIQUE (model_id, name)
);
CREATE TABLE IF NOT EXISTS artifacts (
    id                   INTEGER PRIMARY KEY,
    version_id           INTEGER NOT NULL UNIQUE REFERENCES versions(id),
    uri                  TEXT NOT NULL,
    model_format_name    TEXT NOT NULL,
    model_format_version TEXT NOT NULL,
    source_kind          TEXT NOT NULL,
    source_class         TEXT NOT NULL,
    source_group         TEXT NOT NULL,
    source_id            TEXT NOT NULL,
    source_name          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS properties (
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS properties_key_value ON properties (key, value, version_id);
CREATE INDEX IF NOT EXISTS versions_state ON versions (approved, archived);
"""

_SELECT = """
SELECT v.id, m.id, m.name, v.name, v.approved, v.archived,
       a.id, a.uri, a.model_format_name, a.source_kind, a.source_id, a.source_name
FROM versions v
JOIN models m ON m.id = v.model_id
LEFT JOIN artifacts a ON a.version_id = v.id
"""


def _enable_wal(con: sqlite3.Connection) -> None:
    """Switching to WAL takes an exclusive lock and SQLite does not wait on a busy handler for it:
    two processes opening a new registry at once get "database is locked". Retry, bounded (~10 s)."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

    def locked(exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    for attempt in Retrying(retry=retry_if_exception(locked), stop=stop_after_attempt(100), wait=wait_fixed(0.1),
                            reraise=True):
        with attempt:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")


class LocalRegistry(RegistryBackend):
    """SQLite-backed registry; safe across threads and processes (WAL + IMMEDIATE transactions)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            self._con().executescript(SCHEMA)  # idempotent DDL; executescript manages its own commit
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot initialise local registry {self.path}: {exc}") from exc

    # -- connection handling -------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
                _enable_wal(con)
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise RegistryError(f"cannot open local registry {self.path}: {exc}") from exc
            self._local.con = con
        return con

    @contextmanager
    def _tx(self):
        con = self._con()
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise RegistryError(f"local registry {self.path} is locked or unreadable: {exc}") from exc
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- writes --------------------------------------------------------------------------
    def publish(self, record: VariantRecord) -> PublishedVersion:
        now = time.time()
        try:
            with self._tx() as con:
                con.execute("INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)", (record.model_name, now))
                (model_id,) = con.execute("SELECT id FROM models WHERE name = ?", (record.model_name,)).fetchone()
                row = con.execute(
                    "SELECT id, archived FROM versions WHERE model_id = ? AND name = ?", (model_id, record.version_name)
                ).fetchone()
                if row is None:
                    cur = con.execute(
                        "INSERT INTO versions (model_id, name, description, approved, archived, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, 0, ?, ?)",
                        (model_id, record.version_name, record.description, int(record.approved), now, now),
                    )
                    version_id, archived = cur.lastrowid, 0
                else:
                    version_id, archived = row
                if archived:
                    log.warning(
                        "%s/%s was revoked (archived); publish leaves it as it is",
                        record.model_name,
                        record.version_name,
                    )
                else:
                    self._sync_properties(con, version_id, record, now)
                art = con.execute("SELECT uri FROM artifacts WHERE version_id = ?", (version_id,)).fetchone()
                if art is None:
                    con.execute(
                        "INSERT INTO artifacts (version_id, uri, model_format_name, model_format_version, source_kind,"
                        " source_class, source_group, source_id, source_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            version_id,
                            record.uri,
                            record.model_format_name,
                            record.model_format_version,
                            SOURCE_KIND,
                            record.source_class,
                            record.source_group,
                            record.source_id,
                            record.source_name,
                        ),
                    )
                elif art[0] != record.uri:
                    raise RegistryError(
                        f"{record.model_name}/{record.version_name} is already published with uri {art[0]!r},"
                        f" not {record.uri!r}: version names are content-derived, refusing to overwrite"
                    )
        except sqlite3.Error as exc:
            raise RegistryError(f"local registry {self.path}: {exc}") from exc
        got = self.get(record.model_name, record.version_name)
        assert got is not None
        return got

    def _sync_properties(self, con: sqlite3.Connection, version_id: int, record: VariantRecord, now: float) -> None:
        current = dict(con.execute("SELECT key, value FROM properties WHERE version_id = ?", (version_id,)))
        wanted = dict(record.properties)
        changes = [(version_id, k, v) for k, v in wanted.items() if current.get(k) != v]
        if changes:
            con.executemany("INSERT OR REPLACE INTO properties (version_id, key, value) VALUES (?, ?, ?)", changes)
        if record.approved and APPROVED_LABEL not in current:
            con.execute("INSERT INTO properties VALUES (?, ?, '')", (version_id, APPROVED_LABEL))
        con.execute(
            "UPDATE versions SET approved = approved OR ?, description = CASE WHEN description = '' THEN ? ELSE description END,"
            " updated_at = CASE WHEN ? THEN ? ELSE updated_at END WHERE id = ?",
            (int(record.approved), record.description, bool(changes), now, version_id),
        )

    def revoke(self, model_name: str, version_name: str) -> PublishedVersion:
        with self._tx() as con:
            row = con.execute(
                "SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id WHERE m.name = ? AND v.name = ?",
                (model_name, version_name),
            ).fetchone()
            if row is None:
                raise RegistryError(f"no such version: {model_name}/{version_name}")
            con.execute("DELETE FROM properties WHERE version_id = ? AND key = ?", (row[0], APPROVED_LABEL))
            con.execute(
                "UPDATE versions SET approved = 0, archived = 1, updated_at = ? WHERE id = ?", (time.time(), row[0])
            )
        got = self.get(model_name, version_name)
        assert got is not None
        return got

    # -- reads ---------------------------------------------------------------------------
    def _build(self, con: sqlite3.Connection, rows: list[tuple]) -> list[PublishedVersion]:
        if not rows:
            return []
        props: dict[int, dict[str, str]] = {r[0]: {} for r in rows}
        ids = list(props)
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 900]
            q = f"SELECT version_id, key, value FROM properties WHERE version_id IN ({','.join('?' * len(chunk))})"
            for vid, k, val in con.execute(q, chunk):
                props[vid][k] = val
        out = []
        for vid, mid, mname, vname, approved, archived, aid, uri, fmt, kind, sid, sname in rows:
            p = props[vid]
            out.append(
                PublishedVersion(
                    model_name=mname,
                    version_name=vname,
                    uri=uri or "",
                    model_format_name=fmt or "",
                    properties={k: v for k, v in p.items() if k != APPROVED_LABEL},
                    approved=APPROVED_LABEL in p,
                    archived=bool(archived),
                    registry_model_id=str(mid),
                    registry_version_id=str(vid),
                    registry_artifact_id="" if aid is None else str(aid),
                    source_kind=kind or "",
                    source_id=sid or "",
                    source_name=sname or "",
                )
            )
        return out

    def get(self, model_name: str, version_name: str) -> PublishedVersion | None:
        con = self._con()
        rows = con.execute(_SELECT + " WHERE m.name = ? AND v.name = ?", (model_name, version_name)).fetchall()
        found = self._build(con, rows)
        return found[0] if found else None

    def _candidates(self, flt: VersionFilter) -> list[PublishedVersion]:
        where, args = [], []
        if flt.approved_only:
            where.append("EXISTS (SELECT 1 FROM properties p WHERE p.version_id = v.id AND p.key = ?)")
            args.append(APPROVED_LABEL)
        if not flt.include_archived:
            where.append("v.archived = 0")
        for key, value in flt.equalities().items():
            where.append("EXISTS (SELECT 1 FROM properties p WHERE p.version_id = v.id AND p.key = ? AND p.value = ?)")
            args += [key, value]
        if flt.min_recovery is not None:
            where.append(
                "EXISTS (SELECT 1 FROM properties p WHERE p.version_id = v.id AND p.key = 'recovery_avg'"
                " AND CAST(p.value AS REAL) >= ?)"
            )
            args.append(flt.min_recovery)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        con = self._con()
        return self._build(con, con.execute(sql, args).fetchall())
