"""MLflow Model Registry backend (OpenShift AI's declared direction, ODH-ADR-ML-0001), through the
official client (`mlflow-skinny`), imported lazily: `import mlflow` costs seconds.

Mapping: RegisteredModel per variant (`<model>-<recipe>`); one MLflow ModelVersion per variant
version, found by its `dmc.version_name` tag (MLflow numbers versions itself); every property as
a tag; approval = tag `approved=true` + alias `approved` on the newest approved version; revoke =
tag `archived=true`, approval tag removed, alias moved. Lineage tags: dagster run id/URL, asset
key, base model + revision, recipe sha, calibration hash (the record's properties and sources).

MLflow has no unique constraint on tags, so concurrent publishers each create a version, then
every publisher keeps the lowest-numbered version carrying the name and deletes its own extra one
(reads also pick the lowest), which converges to one version.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

from .base import APPROVED_LABEL, SOURCE_KIND, PublishedVersion, RegistryBackend, VariantRecord, VersionFilter
from .base import MLFLOW_AUTH_HINT, RegistryAuthError, RegistryEndpointError, RegistryError, RegistryUnavailable
from .base import status_error
from .kubeflow_api import fetch, not_the_api

log = logging.getLogger(__name__)

SCHEME_PREFIX = "mlflow+"
VERSION_TAG = "dmc.version_name"
URI_TAG = "dmc.uri"
ARCHIVED_TAG = "archived"
APPROVED_ALIAS = APPROVED_LABEL
_TRUE = "true"
_SOURCE_TAGS = {  # PublishedVersion / VariantRecord field -> tag
    "model_format_name": "dmc.model_format_name",
    "model_format_version": "dmc.model_format_version",
    "storage_key": "dmc.storage_key",
    "source_kind": "dmc.source_kind",
    "source_class": "dmc.source_class",
    "source_group": "dmc.source_group",
    "source_id": "dmc.source_id",
    "source_name": "dmc.source_name",
}
_RESERVED = {APPROVED_LABEL, ARCHIVED_TAG}
_PROBE = "/api/2.0/mlflow/registered-models/search?max_results=1"
_SEARCH = "/api/2.0/mlflow/model-versions/search"
_OURS = f"tags.`{VERSION_TAG}` LIKE '%'"  # the versions this backend wrote


def _q(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _source_for(uri: str) -> str:
    # The server refuses local paths (file://) as a version source unless they sit inside a run's
    # artifacts; the exact URI is kept in the dmc.uri tag, the source only has to be accepted.
    return "local://" + uri[len("file://") :] if uri.startswith("file://") else uri


class MlflowRegistry(RegistryBackend):
    def __init__(self, url: str, *, token: str | None = None, request_timeout_s: float = 10.0,
                 retry_attempts: int = 5, mirror_dir: str | Path | None = None, **_ignored):
        tracking = url[len(SCHEME_PREFIX):] if url.startswith(SCHEME_PREFIX) else url
        parsed = urlparse(tracking)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise RegistryError(f"not an MLflow registry URL: {url!r} (expected mlflow+http(s)://host:port)")
        self.tracking_uri = tracking.rstrip("/")
        self.url = SCHEME_PREFIX + self.tracking_uri
        # Lookups answer from a local copy of our versions, caught up on each call (mlflow_mirror).
        self._mirror_dir = Path(mirror_dir) if mirror_dir else None
        self._token = token or os.environ.get("MLFLOW_TRACKING_TOKEN")  # names the copy's file, never in it
        self.last_mirror_sync: dict[str, int] = {}  # listing -> items the last lookup read from the server
        if token and not os.environ.get("MLFLOW_TRACKING_TOKEN"):
            os.environ["MLFLOW_TRACKING_TOKEN"] = token  # how the MLflow client takes a bearer token
        self._probe(self._token, request_timeout_s, retry_attempts)
        # Bounded retries inside the client too (its default retries for minutes).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        from mlflow import MlflowClient  # deferred: seconds of import

        self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # -- plumbing --------------------------------------------------------------------------
    def _probe(self, token: str | None, timeout: float, attempts: int) -> None:
        """One clear line for a wrong URL / proxy page / dead server before the client is involved."""
        import time

        probe = self.tracking_uri + _PROBE
        for attempt in range(max(1, attempts)):
            try:
                ans = fetch(probe, token, timeout)
            except OSError as exc:
                err = RegistryUnavailable(f"MLflow registry at {self.tracking_uri} unreachable"
                                          f" ({type(exc).__name__}: {getattr(exc, 'reason', exc)});"
                                          " likely cause: wrong host/port, or the server is down")
            else:
                err = status_error(f"MLflow registry at {self.tracking_uri}", f"GET {probe}", ans.status,
                                   ans.describe().removeprefix("HTTP "), MLFLOW_AUTH_HINT)
                if isinstance(err, RegistryAuthError):
                    raise err
                if ans.status == 200 and isinstance(ans.json(), dict):
                    return
                if ans.status < 500:
                    cause = ("wrong URL (give the MLflow server's base URL, without a path)" if ans.status == 404
                             else None)
                    raise RegistryEndpointError(not_the_api(self.tracking_uri, probe, ans, "MLflow REST", cause))
            if attempt + 1 < attempts:
                time.sleep(min(0.2 * 2**attempt, 2.0))
        raise RegistryUnavailable(f"{err} (gave up after {max(1, attempts)} attempt(s))")

    def _wrap(self, exc: Exception, what: str) -> RegistryError:
        from mlflow.exceptions import MlflowException

        text = " ".join(str(exc).split())[:300]
        if isinstance(exc, MlflowException):
            err = status_error(f"MLflow registry at {self.tracking_uri}", what, exc.get_http_status_code(), text,
                               MLFLOW_AUTH_HINT)
            if err is not None:
                return err
        return RegistryError(f"MLflow registry at {self.tracking_uri}: {what}: {text}")

    def _do(self, what: str, fn, *args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            raise self._wrap(exc, what) from None

    def _versions_named(self, model_name: str, version_name: str) -> list:
        from mlflow.exceptions import MlflowException

        flt = f"name = {_q(model_name)} and tags.`{VERSION_TAG}` = {_q(version_name)}"
        try:
            found = list(self._client.search_model_versions(flt, max_results=100))
        except MlflowException as exc:
            raise self._wrap(exc, f"search {model_name}/{version_name}") from None
        return sorted(found, key=lambda mv: int(mv.version))

    def _tags_for(self, record: VariantRecord) -> dict[str, str]:
        tags = dict(record.properties)
        tags[VERSION_TAG] = record.version_name
        tags[URI_TAG] = record.uri
        for field, tag in _SOURCE_TAGS.items():
            tags[tag] = SOURCE_KIND if field == "source_kind" else str(getattr(record, field) or "")
        if record.approved:
            tags[APPROVED_LABEL] = _TRUE
        return tags

    def _to_published(self, model_name: str, mv) -> PublishedVersion:
        tags = dict(mv.tags or {})
        props = {k: v for k, v in tags.items() if k not in _RESERVED and not k.startswith("dmc.")}
        return PublishedVersion(
            model_name=model_name,
            version_name=tags.get(VERSION_TAG, str(mv.version)),
            uri=tags.get(URI_TAG, mv.source or ""),
            model_format_name=tags.get(_SOURCE_TAGS["model_format_name"], ""),
            properties=props,
            approved=tags.get(APPROVED_LABEL) == _TRUE,
            archived=tags.get(ARCHIVED_TAG) == _TRUE,
            registry_model_id=model_name,
            registry_version_id=str(mv.version),
            registry_artifact_id=mv.source or "",
            source_kind=tags.get(_SOURCE_TAGS["source_kind"], ""),
            source_id=tags.get(_SOURCE_TAGS["source_id"], ""),
            source_name=tags.get(_SOURCE_TAGS["source_name"], ""),
        )

    def _refresh(self, model_name: str, version: str):
        return self._do(f"read {model_name} version {version}", self._client.get_model_version, model_name, version)

    def _touch(self, model_name: str, mv) -> None:
        """Move the version's last-updated time: tag writes do not, and lookups' local copies
        (mlflow_mirror) find changes by it. The description is written back unchanged."""
        self._do(f"touch {model_name} version {mv.version}", self._client.update_model_version, model_name,
                 mv.version, mv.description or "")

    def _place_alias(self, model_name: str, attempts: int = 5) -> None:
        """Alias `approved` -> the newest approved, not archived version; removed when there is none."""
        import time

        from mlflow.exceptions import MlflowException

        flt = f"name = {_q(model_name)} and tags.`{APPROVED_LABEL}` = '{_TRUE}'"
        for attempt in range(attempts):
            live = [mv for mv in self._do("search approved", self._client.search_model_versions, flt, max_results=10000)
                    if (mv.tags or {}).get(ARCHIVED_TAG) != _TRUE]
            # Concurrent publishers of one version name each create a version and then delete all but
            # the lowest: only that keeper may carry the alias (a duplicate may vanish under it).
            keepers: dict[str, object] = {}
            for mv in live:
                name_tag = (mv.tags or {}).get(VERSION_TAG, mv.version)
                if name_tag not in keepers or int(mv.version) < int(keepers[name_tag].version):
                    keepers[name_tag] = mv
            if not keepers:
                try:
                    self._client.delete_registered_model_alias(model_name, APPROVED_ALIAS)
                except MlflowException:
                    pass  # no alias to remove
                return
            newest = max(keepers.values(), key=lambda mv: int(mv.version))
            try:
                self._client.set_registered_model_alias(model_name, APPROVED_ALIAS, newest.version)
                return
            except MlflowException as exc:
                # The version was a peer's duplicate, deleted between our search and the alias: look again.
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST" or attempt == attempts - 1:
                    raise self._wrap(exc, "set alias") from None
                time.sleep(0.1 * (attempt + 1))

    # -- public API ------------------------------------------------------------------------
    def publish(self, record: VariantRecord) -> PublishedVersion:
        from mlflow.exceptions import MlflowException

        name = record.model_name
        try:
            self._client.create_registered_model(name, description=f"{name}: compressed variants (dagster)")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise self._wrap(exc, f"create model {name}") from None
        found = self._versions_named(name, record.version_name)
        if not found:
            mine = self._do(
                f"create version {name}/{record.version_name}", self._client.create_model_version, name,
                _source_for(record.uri), tags=self._tags_for(record), description=record.description or None,
                await_creation_for=0,
            )
            found = self._versions_named(name, record.version_name)
            if found and found[0].version != mine.version:
                # A concurrent publisher got there first: keep theirs (the lowest), drop ours.
                try:
                    self._client.delete_model_version(name, mine.version)
                except MlflowException:
                    pass  # already removed by a peer tidying up
            found = found or [mine]
        mv = found[0]
        tags = dict(mv.tags or {})
        if tags.get(URI_TAG, record.uri) != record.uri:
            raise RegistryError(
                f"{name}/{record.version_name} is already published with uri {tags[URI_TAG]!r},"
                f" not {record.uri!r}: version names are content-derived, refusing to overwrite"
            )
        if tags.get(ARCHIVED_TAG) == _TRUE:
            log.warning("%s/%s was revoked (archived); publish leaves it as it is", name, record.version_name)
            return self._to_published(name, mv)
        changed = False
        for key, value in self._tags_for(record).items():
            if tags.get(key) != value:
                self._do(f"tag {name}/{record.version_name}", self._client.set_model_version_tag,
                         name, mv.version, key, value)
                changed = True
        if record.description and not mv.description:
            self._do("describe version", self._client.update_model_version, name, mv.version, record.description)
            changed = True  # the description write also moved the version's timestamp
        elif changed:
            self._touch(name, mv)
        if record.approved:
            self._place_alias(name)
        return self._to_published(name, self._refresh(name, mv.version) if changed else mv)

    def get(self, model_name: str, version_name: str) -> PublishedVersion | None:
        found = self._versions_named(model_name, version_name)
        return self._to_published(model_name, found[0]) if found else None

    def revoke(self, model_name: str, version_name: str) -> PublishedVersion:
        from mlflow.exceptions import MlflowException

        found = self._versions_named(model_name, version_name)
        if not found:
            raise RegistryError(f"no such version: {model_name}/{version_name}")
        mv = found[0]
        self._do("archive", self._client.set_model_version_tag, model_name, mv.version, ARCHIVED_TAG, _TRUE)
        try:
            self._client.delete_model_version_tag(model_name, mv.version, APPROVED_LABEL)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise self._wrap(exc, "remove approval") from None
        self._touch(model_name, mv)
        self._place_alias(model_name)
        return self._to_published(model_name, self._refresh(model_name, mv.version))

    def _candidates(self, flt: VersionFilter) -> list[PublishedVersion]:
        if self._mirror_dir is not None:
            from .copy_file import copy_path
            from .mlflow_mirror import VersionCopy

            copy = VersionCopy(copy_path(self._mirror_dir, "mlflow", self.tracking_uri, self._token), self._pages,
                               _OURS)
            items = copy.versions()
            self.last_mirror_sync = dict(copy.last_sync)
        else:
            params = {"filter": self.search_filter(flt), "max_results": 10000, "order_by": ["version_number ASC"]}
            items = [mv for page in self._pages(_SEARCH, params, "model_versions") for mv in page]
        seen: dict[tuple[str, str], PublishedVersion] = {}
        for mv in sorted(items, key=lambda mv: (mv["name"], int(mv["version"]))):
            pv = self._to_published(mv["name"], _version_of(mv))
            seen.setdefault((pv.model_name, pv.version_name), pv)  # lowest number wins, as in get()
        return list(seen.values())

    @staticmethod
    def search_filter(flt: VersionFilter) -> str:
        """The server-side narrowing of `flt` (tag equality, approval); the numeric bound is
        checked by the caller (tags are strings)."""
        clauses = [_OURS]
        clauses += [f"tags.`{key}` = {_q(value)}" for key, value in flt.equalities().items()]
        if flt.approved_only:
            clauses.append(f"tags.`{APPROVED_LABEL}` = '{_TRUE}'")
        return " and ".join(clauses)

    def _pages(self, path: str, params: dict, key: str) -> Iterator[list[dict]]:
        """A search listing page by page, through the client's own HTTP layer (auth, TLS, retries),
        read as JSON: the client's protobuf conversion cost ~2.5 s per 900 versions, more than the server."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        token = None
        while True:
            query = {**params, **({"page_token": token} if token else {})}
            try:
                resp = verify_rest_response(http_request(self._host_creds(), path, "GET", params=query), path)
                body = resp.json()
            except MlflowException as exc:
                raise self._wrap(exc, f"read {path}") from None
            except ValueError:
                raise RegistryEndpointError(f"MLflow registry at {self.tracking_uri} answered {path} with"
                                            " something that is not JSON; likely cause: a proxy or login page") from None
            yield body.get(key) or []
            token = body.get("next_page_token")
            if not token:
                return

    def _host_creds(self):
        """What the client itself sends (token, basic auth, TLS settings from the MLFLOW_* env)."""
        from mlflow.utils.credentials import get_default_host_creds

        return get_default_host_creds(self.tracking_uri)


def _version_of(mv: dict) -> SimpleNamespace:
    """A search item (JSON) in the shape of the client's ModelVersion, as far as we read it."""
    return SimpleNamespace(name=mv["name"], version=mv["version"], source=mv.get("source", ""),
                           description=mv.get("description", ""),
                           tags={t["key"]: t.get("value", "") for t in mv.get("tags") or []})
