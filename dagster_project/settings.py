"""The one reader of `DMC_*` environment variables: `load_settings()` returns them, parsed and checked.

Every knob of the code location is a field below, grouped by what it configures; the README's
"Settings" table lists them all (a test keeps the two in step). Each field names its variable
explicitly (`validation_alias`), so the names the Helm chart, the Makefile and the scripts set are
greppable here. An empty variable counts as unset. A bad value fails with one line naming the
variable. Settings are read again on each call: cheap, and tests change the environment.
Non-`DMC_` variables that a library defines (HF_TOKEN, HF_ENDPOINT, AWS_*, KUBERNETES_*) stay where
that library's idiom reads them; `tests/test_import_boundaries.py` lists those places.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "data"

K8S_PREFIX = "DMC_K8S_"  # placement variables: parsed and checked by k8s.Placement
# The environment to read instead of os.environ (load_settings(environ=...): tests, Helm values).
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("dmc_settings_environ", default=None)


class SettingsError(ValueError):
    """A DMC_* variable holds a value its setting does not accept."""


def env(name: str, default: Any = None, description: str = "", **kw: Any) -> Any:
    return Field(default=default, validation_alias=name, description=description, **kw)


class _Group(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True,
                                      populate_by_name=False)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is not None:
            env_settings.env_vars = {k.lower(): v for k, v in environ.items() if v != ""}
        return (init_settings, env_settings)


class PathSettings(_Group):
    var_dir: Path = env("DMC_VAR_DIR", PROJECT_ROOT / "var", "project-local state: artifacts, local registry, Dagster home")
    cache_dir: Path | None = env("DMC_CACHE_DIR", None, "machine-wide cache (demo model); default $XDG_CACHE_HOME/dmc")
    models_file: Path = env("DMC_MODELS_FILE", PROJECT_ROOT / "models.yaml", "the model catalog")
    watchlist_file: Path = env("DMC_WATCHLIST_FILE", PROJECT_ROOT / "watchlist.yaml", "the Hub watchlist")
    scratch_dir: Path | None = env("DMC_SCRATCH_DIR", None, "scratch root of an S3 store's step; default a fresh temp folder")


class StoreSettings(_Group):
    kind: Literal["local", "pvc", "s3"] = env("DMC_ARTIFACT_STORE_KIND", "local", "artifact store: local, pvc or s3")
    root: str = env("DMC_ARTIFACT_ROOT", "", "store root: folder, PVC mount path or s3://bucket/prefix; default <var>/artifacts")
    pvc_claim: str | None = env("DMC_ARTIFACT_PVC_CLAIM", None, "PVC name, used in pvc:// URIs")
    connection: str = env("DMC_ARTIFACT_CONNECTION", "", "RHOAI data connection of the store, recorded in the registry")
    s3_endpoint_url: str | None = env("DMC_S3_ENDPOINT_URL", None, "S3-compatible endpoint (MinIO, ODF, SeaweedFS)")
    s3_region: str | None = env("DMC_S3_REGION", None, "S3 region")


class RegistrySettings(_Group):
    url: str | None = env("DMC_REGISTRY_URL", None, "model registry URL; unset: the local SQLite registry")
    kind: Literal["", "kubeflow", "mlflow"] = env("DMC_REGISTRY_KIND", "", "mlflow: a plain http(s) URL is MLflow")
    token: SecretStr | None = env("DMC_REGISTRY_TOKEN", None, "bearer token (secret)")
    token_file: str = env("DMC_REGISTRY_TOKEN_FILE", "", "file holding the bearer token (service-account token)")
    db: Path | None = env("DMC_REGISTRY_DB", None, "local SQLite registry file; default <var>/registry.sqlite")
    retry_attempts: int | None = env("DMC_REGISTRY_RETRY_ATTEMPTS", None, "registry client retries", ge=0)
    retry_initial_wait: float | None = env("DMC_REGISTRY_RETRY_INITIAL_WAIT", None, "first retry wait, seconds", ge=0)
    mirror: bool = env("DMC_REGISTRY_MIRROR", True,
                       "Kubeflow and MLflow lookups keep a local copy of the listings, caught up on each lookup (0: read all)")
    mirror_dir: Path | None = env("DMC_REGISTRY_MIRROR_DIR", None, "where that copy lives; default <cache>/registry-mirror")

    @field_validator("kind", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v


class HubSettings(_Group):
    publish: bool = env("DMC_HUB_PUBLISH", False, "1: approved variants are uploaded to the Hub")
    org: str = env("DMC_HUB_ORG", "", "Hub organization the variants are published to")


class ComputeSettings(_Group):
    device: str = env("DMC_DEVICE", "auto", "torch device of compression and hf evaluation (auto, cpu, cuda)")
    executor: Literal["default", "in_process", "multiprocess", "k8s"] = env(
        "DMC_EXECUTOR", "default", "run executor; k8s: one Kubernetes Job per step (the Helm chart sets it)")
    model_compute_limit: int | None = env("DMC_MODEL_COMPUTE_LIMIT", None, "default limit of the model_compute pool")
    vllm_python: str = env("DMC_VLLM_PYTHON", "/opt/vllm/bin/python", "Python of the separate vLLM venv")
    vllm_runner: str | None = env("DMC_VLLM_RUNNER", None, "another vLLM runner script; default the packaged one")


class EvalSettings(_Group):
    limit: int | None = env("DMC_EVAL_LIMIT", None, "examples per task (smoke runs, CI); unset: all", ge=0)
    include_path: str | None = env("DMC_EVAL_INCLUDE_PATH", None, "folder of user lm-eval task YAMLs")


class AutomationSettings(_Group):
    enabled: bool = env("DMC_AUTOMATION", False, "on: the watch sensor and nightly schedule start running")
    watch_interval_seconds: int = env("DMC_WATCH_INTERVAL_SECONDS", 900, "watch sensor interval", ge=1)
    watch_hub_timeout_seconds: float = env("DMC_WATCH_HUB_TIMEOUT_SECONDS", 10.0, "Hub request timeout of the watch", gt=0)
    nightly_cron: str = env("DMC_NIGHTLY_CRON", "0 2 * * *", "cron of the nightly schedule")
    timezone: str = env("DMC_TIMEZONE", "UTC", "timezone of the nightly schedule")
    dagster_url: str = env("DMC_DAGSTER_URL", "http://127.0.0.1:3000", "Dagster UI URL, linked from registry entries")

    @field_validator("enabled", mode="before")
    @classmethod
    def _running(cls, v: Any) -> Any:
        return "on" if isinstance(v, str) and v.strip().lower() == "running" else v


class K8sSettings(_Group):
    config: Path | None = env("DMC_K8S_CONFIG", None, "YAML file of placement fields (then DMC_K8S_<FIELD> overrides)")


GROUPS: dict[str, type[_Group]] = {
    "paths": PathSettings, "store": StoreSettings, "registry": RegistrySettings, "hub": HubSettings,
    "compute": ComputeSettings, "eval": EvalSettings, "automation": AutomationSettings, "k8s": K8sSettings,
}


class Settings(BaseModel):
    """Every DMC_* setting, by group. `placement_variables`: the raw DMC_K8S_<FIELD> values for k8s.Placement."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    paths: PathSettings
    store: StoreSettings
    registry: RegistrySettings
    hub: HubSettings
    compute: ComputeSettings
    eval: EvalSettings
    automation: AutomationSettings
    k8s: K8sSettings
    placement_variables: dict[str, str] = Field(default_factory=dict)


def variable_names() -> dict[str, str]:
    """Every variable the settings read → its description (the README table's rows)."""
    out = {}
    for group in GROUPS.values():
        for field in group.model_fields.values():
            out[str(field.validation_alias)] = field.description or ""
    return out


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from `environ` (default: this process's environment)."""
    source = os.environ if environ is None else environ
    return _load(tuple(sorted((k, v) for k, v in source.items() if k.startswith("DMC_"))))


@functools.lru_cache(maxsize=64)
def _load(variables: tuple[tuple[str, str], ...]) -> Settings:
    """Parsed once per distinct set of DMC_* values (the settings are frozen)."""
    environ = dict(variables)
    token = _ENVIRON.set(environ)
    try:
        groups = {}
        for name, group in GROUPS.items():
            try:
                groups[name] = group()
            except ValidationError as e:
                raise SettingsError(_one_line(e)) from None
    finally:
        _ENVIRON.reset(token)
    placement = {k: v for k, v in environ.items() if k.startswith(K8S_PREFIX) and k != "DMC_K8S_CONFIG"}
    return Settings(**groups, placement_variables=placement)


def _one_line(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        name = ".".join(str(p) for p in err["loc"])
        shown = "" if "TOKEN" in name else f"={err.get('input')!r}"  # secrets never in messages
        parts.append(f"{name}{shown}: {err['msg']}")
    return "; ".join(parts)


# ---- default paths (what most callers need) ----------------------------------------------------

def var_dir() -> Path:
    """Project-local state (artifacts, registry, Dagster home); `DMC_VAR_DIR` moves it."""
    return load_settings().paths.var_dir.resolve()


def artifact_root() -> Path:
    root = load_settings().store.root
    return Path(root).resolve() if root else var_dir() / "artifacts"


def local_registry_path() -> Path:
    db = load_settings().registry.db
    return db.resolve() if db else var_dir() / "registry.sqlite"


def cache_dir() -> Path:
    """Content-addressed cache shared by every clone on the machine (the demo model is built once)."""
    configured = load_settings().paths.cache_dir
    if configured:
        return configured.resolve()
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (xdg / "dmc").resolve()
