"""Backend-neutral types of the model registry layer (no heavy imports)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

APPROVED_LABEL = "approved"
SOURCE_KIND = "dagster"  # never "kfp": the RHOAI dashboard links "kfp" lineage to pipeline runs


class RegistryError(Exception):
    """Any failure of the registry layer."""


class RegistryAuthError(RegistryError):
    """The registry refused our credentials (HTTP 401/403)."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, or answered 5xx (after bounded retries)."""


class RegistryEndpointError(RegistryError):
    """The URL does not serve a registry API we speak: 404 on every API version, an HTML page, an
    empty or non-JSON body. Not retried: the URL, token or API version has to change."""


KUBEFLOW_AUTH_HINT = "the bearer token (DMC_REGISTRY_TOKEN / service-account token) and its RBAC"
MLFLOW_AUTH_HINT = "MLFLOW_TRACKING_TOKEN / DMC_REGISTRY_TOKEN"


def status_error(registry: str, what: str, status: int, answer: str, auth_hint: str) -> RegistryError | None:
    """The one mapping of an HTTP status onto the registry errors, for every backend and probe:
    401/403 -> RegistryAuthError, 5xx -> RegistryUnavailable (worth a retry), else None.
    `registry` names it ("model registry at URL"), `answer` is what came back ("503 Service Unavailable")."""
    if status in (401, 403):
        return RegistryAuthError(f"{registry} refused the request ({answer}) during {what}: check {auth_hint}")
    if status >= 500:
        return RegistryUnavailable(f"{registry} answered {what} with {answer}; likely cause: the registry behind"
                                   " the route/proxy is down or still starting")
    return None


@dataclass(frozen=True)
class VariantRecord:
    """What the publication asset hands to a backend."""

    model_name: str
    version_name: str
    uri: str
    # RHOAI's vLLM ServingRuntime lists format "vLLM" with no version (see registry/serving.py);
    # the weights' own format (compressed-tensors) is in the `scheme`/library properties.
    model_format_name: str = "vLLM"
    model_format_version: str = ""
    storage_key: str = ""  # name of the data connection (secret) that holds the storage credentials
    description: str = ""
    properties: Mapping[str, str] = field(default_factory=dict)
    source_class: str = "asset-materialization"
    source_group: str = ""
    source_id: str = ""
    source_name: str = ""
    approved: bool = True

    def __post_init__(self) -> None:
        for name in ("model_name", "version_name", "uri"):
            if not getattr(self, name):
                raise ValueError(f"VariantRecord.{name} must not be empty")
        bad = [k for k, v in self.properties.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"VariantRecord.properties must be flat strings; offending keys: {bad}")
        if APPROVED_LABEL in self.properties:
            raise ValueError(f"use VariantRecord.approved, not a {APPROVED_LABEL!r} property")

    def version_properties(self) -> dict[str, str]:
        """customProperties stored on the model version (label included)."""
        props = dict(self.properties)
        if self.approved:
            props[APPROVED_LABEL] = ""
        return props


@dataclass(frozen=True)
class PublishedVersion:
    """What lookups return."""

    model_name: str
    version_name: str
    uri: str
    model_format_name: str
    properties: dict[str, str]
    approved: bool
    archived: bool
    registry_model_id: str
    registry_version_id: str
    registry_artifact_id: str
    source_kind: str
    source_id: str
    source_name: str

    def metric(self, key: str) -> float | None:
        """A numeric property (e.g. "recovery_avg", "eval_wikitext_word_perplexity"), else None."""
        raw = self.properties.get(key)
        if raw is None or raw == "":
            return None
        try:
            value = float(raw)
        except ValueError:
            return None
        return None if math.isnan(value) else value

    @property
    def recipe(self) -> str:
        return self.properties.get("recipe", "")

    @property
    def scheme(self) -> str:
        return self.properties.get("scheme", "")

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class VersionFilter:
    """The one definition of a version lookup, shared by every backend, `dmc` and the Python API.

    Backends narrow on their server with `equalities()` and `approved_only`/`include_archived`;
    `matches` stays the authority for what is returned (numeric bounds, values a server compares
    as text)."""

    approved_only: bool = True
    base_model: str | None = None
    recipe: str | None = None
    scheme: str | None = None
    min_recovery: float | None = None
    include_archived: bool = False

    def __post_init__(self) -> None:
        if self.min_recovery is not None:
            try:
                value = float(self.min_recovery)
            except (TypeError, ValueError):
                raise ValueError(f"VersionFilter.min_recovery must be a number, not {self.min_recovery!r}") from None
            if math.isnan(value):
                raise ValueError("VersionFilter.min_recovery must be a number, not NaN")
            object.__setattr__(self, "min_recovery", value)

    @classmethod
    def of(cls, flt: VersionFilter | None = None, **fields) -> VersionFilter:
        """`flt`, or one built from keyword fields (not both)."""
        if flt is not None and fields:
            raise TypeError("pass a VersionFilter or keyword filters, not both")
        return flt if flt is not None else cls(**fields)

    def equalities(self) -> dict[str, str]:
        """Property -> required value: what every server can filter on by itself."""
        pairs = (("base_model", self.base_model), ("recipe", self.recipe), ("scheme", self.scheme))
        return {k: v for k, v in pairs if v is not None}

    def matches(self, v: PublishedVersion) -> bool:
        if self.approved_only and not v.approved:
            return False
        if not self.include_archived and v.archived:
            return False
        if any(v.properties.get(k) != want for k, want in self.equalities().items()):
            return False
        if self.min_recovery is not None:
            rec = v.metric("recovery_avg")
            if rec is None or rec < self.min_recovery:
                return False
        return True


def sort_versions(versions: Iterable[PublishedVersion]) -> list[PublishedVersion]:
    return sorted(versions, key=lambda v: (v.model_name, v.version_name))


class RegistryBackend(ABC):
    """Publish, revoke and look up compressed variants."""

    url: str = ""

    @abstractmethod
    def publish(self, record: VariantRecord) -> PublishedVersion:
        """Idempotent; completes half-done state (model without version, version without artifact)."""

    @abstractmethod
    def revoke(self, model_name: str, version_name: str) -> PublishedVersion:
        """Remove the "approved" label and archive the version."""

    @abstractmethod
    def get(self, model_name: str, version_name: str) -> PublishedVersion | None: ...

    def list_versions(self, flt: VersionFilter | None = None, /, **fields) -> list[PublishedVersion]:
        """Versions matching `flt` (or the same fields as keywords), sorted by model and version."""
        flt = VersionFilter.of(flt, **fields)
        return sort_versions(v for v in self._candidates(flt) if flt.matches(v))

    @abstractmethod
    def _candidates(self, flt: VersionFilter) -> Iterable[PublishedVersion]:
        """A superset of the versions `flt` matches, narrowed on the server as far as it can."""

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
