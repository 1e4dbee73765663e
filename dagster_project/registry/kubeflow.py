"""Kubeflow / RHOAI Model Registry backend over the `model-registry==0.3.18` client.

The REST API version (v1alpha3 on every GA RHOAI release, v1 upstream >= 0.3.15) is detected once
per connection and the client's route prefix follows it (see kubeflow_api). Publication is check-then-create per object (RegisteredModel -> ModelVersion -> ModelArtifact)
through the client's lower-level async API, so a half-done publication is completed by the next
call and a concurrent publisher's 409 Conflict is answered by re-reading the winner's object.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from .base import APPROVED_LABEL, SOURCE_KIND, PublishedVersion, RegistryBackend, VariantRecord, VersionFilter
from .base import KUBEFLOW_AUTH_HINT, RegistryAuthError, RegistryEndpointError, RegistryError, RegistryUnavailable
from .base import status_error
from .kubeflow_api import api_prefix, detect_api_version, versioned_api_client

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Conflict(Exception):
    """409 from the server (someone else created the object first)."""


class _NotFound(Exception):
    pass


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, RegistryUnavailable)


class KubeflowRegistry(RegistryBackend):
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        author: str = "dagster",
        is_secure: bool | None = None,
        retry_attempts: int = 5,
        retry_initial_wait: float = 0.5,
        retry_max_wait: float = 8.0,
        retry_total_s: float = 25.0,
        request_timeout_s: float = 10.0,
        list_concurrency: int = 16,
        batch_threshold: int = 200,
        mirror_dir: str | Path | None = None,
    ):
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise RegistryError(f"not a model registry URL: {url!r} (expected http(s)://host:port)")
        host = parsed.hostname
        if is_secure is None:
            is_secure = parsed.scheme == "https" or not is_loopback(host)
        port = parsed.port or (443 if is_secure else 8080)
        scheme = "https" if is_secure else "http"
        self.url = f"{scheme}://{host}:{port}"
        self.is_secure = is_secure
        self.author = author
        self._token = token or None
        self._request_timeout = request_timeout_s
        self._list_concurrency = max(1, list_concurrency)
        self._batch_threshold = batch_threshold
        # Lookups answer from a local copy of the listings, caught up on each call (kubeflow_mirror).
        self._mirror_dir = Path(mirror_dir) if mirror_dir else None
        self.last_mirror_sync: dict[str, int] = {}  # listing -> items the last lookup read from the server
        self._retrying = dict(
            stop=stop_after_attempt(max(1, retry_attempts)) | stop_after_delay(retry_total_s),
            wait=wait_exponential(multiplier=retry_initial_wait, max=retry_max_wait),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        self._retry_attempts = retry_attempts
        self._loops = threading.local()
        self._rest = None  # the lookups' HTTP pool, opened on first use
        self._rest_lock = threading.Lock()
        if is_secure and not self._token:
            raise RegistryAuthError(
                f"model registry at {self.url} uses TLS and needs a bearer token: pass token=, set"
                " DMC_REGISTRY_TOKEN, or mount a service-account token file"
            )

        # Once per connection: which API version this server speaks (errors name URL + answer + cause).
        not_served: dict = {}
        self.api_version = self._call(
            lambda: detect_api_version(self.url, self._token, request_timeout_s, not_served=not_served),
            what="connect",
        )
        self.api_prefix = api_prefix(self.api_version)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the client's import-time notices
            # The client's lower-level async API (the high-level ModelRegistry would probe /v1 only).
            self._api = versioned_api_client(
                f"{scheme}://{host}", port, secure=is_secure, token=self._token, version=self.api_version
            )

    # -- plumbing --------------------------------------------------------------------------
    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = getattr(self._loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            self._loops.loop = loop
        return loop

    def _run_coro(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        timeout = timeout or self._request_timeout
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop().run_until_complete(asyncio.wait_for(coro, timeout))
        # Called from inside a running event loop (async caller): run on a helper thread.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: self._loop().run_until_complete(asyncio.wait_for(coro, timeout))).result()

    def _scrub(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        return text

    def _translate(self, exc: BaseException, what: str) -> BaseException:
        """Map client/transport exceptions onto ours (never include the token)."""
        if isinstance(exc, RegistryError | _Conflict | _NotFound):
            return exc  # before the imports below: the connect probe fails without loading the client
        import aiohttp
        import pydantic
        from model_registry.exceptions import StoreError
        from mr_openapi import exceptions as mx

        if isinstance(exc, ValueError | pydantic.ValidationError) and not isinstance(exc, mx.ApiException):
            # 2xx whose body is not the API's JSON (a proxy's HTML page, an empty body) mid-session.
            return RegistryEndpointError(
                f"model registry at {self.url} answered {what} with something that is not the Model Registry"
                f" API's JSON ({type(exc).__name__}: {self._scrub(str(exc)).splitlines()[0][:120]}); likely"
                " cause: a proxy or login page in front of the registry (token expired?) or a wrong URL"
            )
        if isinstance(exc, mx.ConflictException):
            return _Conflict(str(exc.status))
        if isinstance(exc, mx.NotFoundException):
            return _NotFound(str(exc.status))
        if isinstance(exc, mx.ApiException) and exc.status:
            body = " ".join(self._scrub(str(getattr(exc, "body", "") or "")).split())[:80]
            answer = f"{exc.status} {exc.reason}" + (f' ("{body}")' if body and exc.status >= 500 else "")
            err = status_error(f"model registry at {self.url}", what, exc.status, answer, KUBEFLOW_AUTH_HINT)
            if err is not None:
                return err
        if isinstance(exc, mx.ApiException):
            body = self._scrub(str(getattr(exc, "body", "") or ""))[:300]
            return RegistryError(f"model registry at {self.url} rejected {what}: {exc.status} {exc.reason} {body}")
        if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError | asyncio.TimeoutError):
            return RegistryUnavailable(
                f"model registry at {self.url} unreachable during {what}: {type(exc).__name__}:"
                f" {self._scrub(str(exc))[:200]}"
            )
        if isinstance(exc, StoreError):
            return RegistryError(f"model registry at {self.url}: {self._scrub(str(exc))[:300]}")
        return exc

    def _call(self, fn: Callable[[], T], *, what: str) -> T:
        """Run fn with bounded exponential-backoff retries on transient failures."""

        def once() -> T:
            try:
                return fn()
            except BaseException as exc:  # noqa: BLE001 - translated and re-raised
                translated = self._translate(exc, what)
                if translated is exc:
                    raise
                raise translated from None

        attempts = 0
        try:
            for attempt in Retrying(**self._retrying):
                with attempt:
                    attempts += 1
                    return once()
        except RegistryUnavailable as exc:
            raise RegistryUnavailable(f"{exc} (gave up after {attempts} attempt(s))") from None
        except RetryError as exc:  # pragma: no cover - reraise=True makes this unreachable
            raise RegistryUnavailable(f"model registry at {self.url} unavailable during {what}") from exc
        raise AssertionError("unreachable")

    def _acall(self, make_coro: Callable[[], Awaitable[T]], *, what: str) -> T:
        return self._call(lambda: self._run_coro(make_coro()), what=what)

    # -- object helpers --------------------------------------------------------------------
    def _get_rm(self, name: str):
        return self._acall(lambda: self._api.get_registered_model_by_params(name), what=f"get model {name}")

    def _ensure_rm(self, record: VariantRecord):
        from model_registry.types import RegisteredModel

        rm = self._get_rm(record.model_name)
        if rm is not None:
            return rm
        try:
            return self._acall(
                lambda: self._api.upsert_registered_model(RegisteredModel(name=record.model_name, owner=self.author)),
                what=f"create model {record.model_name}",
            )
        except _Conflict:
            rm = self._get_rm(record.model_name)
            if rm is None:
                raise RegistryError(f"409 creating {record.model_name} but it cannot be read back") from None
            return rm

    def _get_mv(self, rm_id: str, version: str):
        return self._acall(
            lambda: self._api.get_model_version_by_params(rm_id, version), what=f"get version {version}"
        )

    def _ensure_mv(self, rm, record: VariantRecord):
        from model_registry.types import ModelVersion, ModelVersionState

        mv = self._get_mv(rm.id, record.version_name)
        if mv is None:
            new = ModelVersion(
                name=record.version_name,
                author=self.author,
                description=record.description or None,
                custom_properties=record.version_properties(),
            )
            try:
                return self._acall(
                    lambda: self._api.upsert_model_version(new, rm.id),
                    what=f"create version {record.model_name}/{record.version_name}",
                )
            except _Conflict:
                mv = self._get_mv(rm.id, record.version_name)
                if mv is None:
                    raise RegistryError(f"409 creating {record.version_name} but it cannot be read back") from None
        if mv.state == ModelVersionState.ARCHIVED:
            log.warning("%s/%s was revoked (archived); publish leaves it as it is", record.model_name, record.version_name)
            return mv
        current = {k: v for k, v in (mv.custom_properties or {}).items()}
        wanted = dict(current)
        wanted.update(record.version_properties())
        if wanted != current or (record.description and not mv.description):
            mv.custom_properties = wanted
            if record.description and not mv.description:
                mv.description = record.description
            mv = self._acall(lambda: self._api.upsert_model_version(mv), what=f"update version {record.version_name}")
        return mv

    def _model_artifact(self, mv_id: str):
        from model_registry.types import ModelArtifact

        arts = self._acall(lambda: self._api.get_model_version_artifacts(mv_id), what=f"list artifacts of {mv_id}")
        return next((a for a in arts if isinstance(a, ModelArtifact)), None)

    def _ensure_artifact(self, mv, record: VariantRecord):
        from model_registry.types import ModelArtifact

        art = self._model_artifact(mv.id)
        if art is None:
            new = ModelArtifact(
                name=artifact_name(record.version_name),
                uri=record.uri,
                description=record.description or None,
                model_format_name=record.model_format_name,
                model_format_version=record.model_format_version or None,
                storage_key=record.storage_key or None,
                storage_path=_storage_path(record.uri),
                model_source_kind=SOURCE_KIND,
                model_source_class=record.source_class or None,
                model_source_group=record.source_group or None,
                model_source_id=record.source_id or None,
                model_source_name=record.source_name or None,
            )
            try:
                art = self._acall(
                    lambda: self._api.upsert_model_version_artifact(new, mv.id),
                    what=f"create artifact of {record.model_name}/{record.version_name}",
                )
            except _Conflict:
                art = self._model_artifact(mv.id)
                if art is None:
                    raise RegistryError("409 creating the model artifact but it cannot be read back") from None
        if art.uri != record.uri:
            raise RegistryError(
                f"{record.model_name}/{record.version_name} is already published with uri {art.uri!r},"
                f" not {record.uri!r}: version names are content-derived, refusing to overwrite"
            )
        return art

    @staticmethod
    def _to_published(model_name: str, rm_id: str, mv, art) -> PublishedVersion:
        from model_registry.types import ModelVersionState

        raw = dict(mv.custom_properties or {})
        return PublishedVersion(
            model_name=model_name,
            version_name=mv.name,
            uri=(art.uri or "") if art else "",
            model_format_name=(art.model_format_name or "") if art else "",
            properties={k: str(v) for k, v in raw.items() if k != APPROVED_LABEL},
            approved=APPROVED_LABEL in raw,
            archived=mv.state == ModelVersionState.ARCHIVED,
            registry_model_id=str(rm_id),
            registry_version_id=str(mv.id),
            registry_artifact_id=str(art.id) if art and art.id else "",
            source_kind=(art.model_source_kind or "") if art else "",
            source_id=(art.model_source_id or "") if art else "",
            source_name=(art.model_source_name or "") if art else "",
        )

    # -- public API ------------------------------------------------------------------------
    def publish(self, record: VariantRecord) -> PublishedVersion:
        rm = self._ensure_rm(record)
        mv = self._ensure_mv(rm, record)
        art = self._ensure_artifact(mv, record)
        return self._to_published(record.model_name, rm.id, mv, art)

    def get(self, model_name: str, version_name: str) -> PublishedVersion | None:
        rm = self._get_rm(model_name)
        if rm is None:
            return None
        mv = self._get_mv(rm.id, version_name)
        if mv is None:
            return None
        return self._to_published(model_name, rm.id, mv, self._model_artifact(mv.id))

    def revoke(self, model_name: str, version_name: str) -> PublishedVersion:
        from model_registry.types import ModelVersionState

        rm = self._get_rm(model_name)
        mv = self._get_mv(rm.id, version_name) if rm is not None else None
        if mv is None:
            raise RegistryError(f"no such version: {model_name}/{version_name}")
        props = {k: v for k, v in (mv.custom_properties or {}).items() if k != APPROVED_LABEL}
        if mv.state != ModelVersionState.ARCHIVED or APPROVED_LABEL in (mv.custom_properties or {}):
            mv.custom_properties = props
            mv.state = ModelVersionState.ARCHIVED
            mv = self._acall(lambda: self._api.upsert_model_version(mv), what=f"revoke {model_name}/{version_name}")
        return self._to_published(model_name, rm.id, mv, self._model_artifact(mv.id))

    def _candidates(self, flt: VersionFilter) -> list[PublishedVersion]:
        query = self.version_query(flt)
        return self._call(lambda: self._read_candidates(flt, query), what="list versions")

    @staticmethod
    def version_query(flt: VersionFilter) -> str | None:
        """The server-side narrowing of `flt` in the registry's filterQuery language: property
        equality, the approval label, the state. The numeric bound is checked here (the server
        would compare the stored strings)."""
        clauses = [f"{key}.string_value = {_quote(value)}" for key, value in flt.equalities().items()]
        if flt.approved_only:
            clauses.append(f'{APPROVED_LABEL}.string_value = ""')
        if not flt.include_archived:
            clauses.append('state = "LIVE"')
        return " AND ".join(clauses) or None

    def _reader(self):
        with self._rest_lock:  # one pool per connection, also when threads share this object
            if self._rest is None:
                from .kubeflow_reads import RestReader

                self._rest = RestReader(self.url + self.api_prefix, self._token, self._request_timeout,
                                        self._list_concurrency)
            return self._rest

    def _read_candidates(self, flt: VersionFilter, query: str | None) -> list[PublishedVersion]:
        # The local copy pays off when the server cannot narrow the query ("all approved": every
        # version and artifact); a property filter is as fast read from the server itself.
        if self._mirror_dir is not None and not flt.equalities():
            return self._candidates_from_mirror(flt)
        rest = self._reader()
        # A query without property filters ("all approved") will need most artifacts: list them
        # beside the versions instead of after them.
        all_artifacts = rest.submit(self._artifacts_by_name) if not flt.equalities() else None
        models = rest.submit(rest.pages, "/registered_models")
        versions = rest.sliced("/model_versions", query)
        candidates = _matching(flt, models.result(), versions)
        if all_artifacts is None and len(candidates) > self._batch_threshold:
            all_artifacts = rest.submit(self._artifacts_by_name)
        by_name = all_artifacts.result() if all_artifacts is not None else {}
        return self._with_artifacts(candidates, by_name)

    def _candidates_from_mirror(self, flt: VersionFilter) -> list[PublishedVersion]:
        """The same answer from the local copy of the listings, brought up to date first."""
        from .kubeflow_mirror import ListingMirror, mirror_file

        rest = self._reader()
        mirror = ListingMirror(mirror_file(self._mirror_dir, rest.api_base, self._token), rest)
        listings = mirror.listings()
        self.last_mirror_sync = dict(mirror.last_sync)
        versions = sorted(listings["model_versions"], key=lambda mv: int(mv["id"]))
        candidates = _matching(flt, listings["registered_models"], versions)
        return self._with_artifacts(candidates, _ours_by_name(listings["model_artifacts"]))

    def _with_artifacts(self, candidates: list[tuple[str, dict]], by_name: dict[str, list[dict]]):
        rest = self._reader()

        def artifact_of(item: tuple[str, dict]) -> dict | None:
            name, mv = item
            for key in (artifact_name(mv["name"]), legacy_artifact_name(name, mv["name"])):
                hits = by_name.get(key, [])
                if len(hits) == 1:
                    return hits[0]
            # Few candidates, or an artifact someone else named: read the version's own artifacts.
            body = rest.get(f"/model_versions/{mv['id']}/artifacts", pageSize="10")
            return next((a for a in body.get("items") or [] if a.get("artifactType") == "model-artifact"), None)

        arts = rest.map(artifact_of, candidates)
        return [_published_from_json(name, mv, art) for (name, mv), art in zip(candidates, arts, strict=True)]

    def _artifacts_by_name(self) -> dict[str, list[dict]]:
        return _ours_by_name(self._reader().sliced("/artifacts", artifactType="model-artifact"))

    def close(self) -> None:
        with self._rest_lock:
            if self._rest is not None:
                self._rest.close()
                self._rest = None


def _matching(flt: VersionFilter, models: list[dict], versions: list[dict]) -> list[tuple[str, dict]]:
    """(registered model name, version JSON) of every version `flt` accepts."""
    names = {str(m["id"]): m["name"] for m in models}
    out = []
    for mv in versions:
        name = names.get(str(mv.get("registeredModelId")), "")
        if flt.matches(_published_from_json(name, mv, None)):
            out.append((name, mv))
    return out


def _ours_by_name(artifacts: list[dict]) -> dict[str, list[dict]]:
    """Our model artifacts (source kind "dagster"), by name. The listing does not say which version
    an artifact belongs to; our version names are content hashes, so a name held by exactly one
    of our artifacts identifies it. Anything else is read from its version."""
    by_name: dict[str, list[dict]] = {}
    for art in artifacts:
        if art.get("modelSourceKind") == SOURCE_KIND:
            by_name.setdefault(art.get("name") or "", []).append(art)
    return by_name


def _meta_value(meta: dict) -> str:
    for key in ("string_value", "double_value", "int_value", "bool_value"):
        if key in meta:
            return str(meta[key])
    return ""


def _published_from_json(model_name: str, mv: dict, art: dict | None) -> PublishedVersion:
    raw = {k: _meta_value(v) for k, v in (mv.get("customProperties") or {}).items()}
    art = art or {}
    return PublishedVersion(
        model_name=model_name,
        version_name=mv["name"],
        uri=art.get("uri") or "",
        model_format_name=art.get("modelFormatName") or "",
        properties={k: v for k, v in raw.items() if k != APPROVED_LABEL},
        approved=APPROVED_LABEL in raw,
        archived=mv.get("state") == "ARCHIVED",
        registry_model_id=str(mv.get("registeredModelId") or ""),
        registry_version_id=str(mv.get("id") or ""),
        registry_artifact_id=str(art.get("id") or ""),
        source_kind=art.get("modelSourceKind") or "",
        source_id=art.get("modelSourceId") or "",
        source_name=art.get("modelSourceName") or "",
    )


def artifact_name(version_name: str) -> str:
    """Names the ModelArtifact as the RHOAI dashboard's registration form does: the version's name.
    odh-dashboard switched from `<model>-<version>-artifact` to `${versionName}` in commit
    0c5a5d9f454cfc9efc413219d075f1905821d22d (2024-11-05, #3377); still so at b9d09633b0 (2026-08-21),
    packages/model-registry/upstream/frontend/src/app/pages/modelRegistry/screens/RegisterModel/utils.ts."""
    return version_name


def legacy_artifact_name(model_name: str, version_name: str) -> str:
    """What this project wrote before (the dashboard's form before 2024-11-05): still matched on read."""
    return f"{model_name}-{version_name}-artifact"


def _storage_path(uri: str) -> str | None:
    """The path inside the bucket / claim, which the dashboard's Deploy form pre-fills."""
    from .serving import storage_fields

    try:
        return storage_fields(uri)[1] or None
    except RegistryError:
        return None  # a local file: not deployable, no storage path


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
