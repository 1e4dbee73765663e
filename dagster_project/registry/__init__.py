"""Model registry layer: publish approved compressed variants with lineage, and look them up.

    from dagster_project.registry import open_registry
    reg = open_registry()                       # $DMC_REGISTRY_URL, else the local SQLite registry
    reg.list_versions(VersionFilter(base_model="org/base", min_recovery=99))  # or the same as keywords

`open_registry(None | "sqlite:///path" | "/path")` -> LocalRegistry (embedded SQLite);
`open_registry("http(s)://host:port")` -> KubeflowRegistry (Kubeflow / RHOAI Model Registry; REST
API v1alpha3 (every GA RHOAI) or v1, detected per connection, through the `model-registry` client);
`open_registry("mlflow+http(s)://host:port")` -> MlflowRegistry (MLflow Model Registry, official client).
$DMC_REGISTRY_KIND=mlflow selects MLflow for a plain http(s) URL as well.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    APPROVED_LABEL,
    SOURCE_KIND,
    PublishedVersion,
    RegistryAuthError,
    RegistryBackend,
    RegistryEndpointError,
    RegistryError,
    RegistryUnavailable,
    VariantRecord,
    VersionFilter,
)

__all__ = [
    "APPROVED_LABEL",
    "SOURCE_KIND",
    "DEFAULT_SA_TOKEN_FILE",
    "PublishedVersion",
    "RegistryAuthError",
    "RegistryBackend",
    "RegistryEndpointError",
    "RegistryError",
    "RegistryUnavailable",
    "VariantRecord",
    "VersionFilter",
    "open_registry",
    "resolve_token",
]

DEFAULT_SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path


def resolve_token(token: str | None = None, token_file: str | None = None) -> str | None:
    """Argument, then $DMC_REGISTRY_TOKEN, then token_file, then the pod's service-account token."""
    if token:
        return token.strip()
    from dagster_project.settings import load_settings

    configured = load_settings().registry.token
    if configured and configured.get_secret_value().strip():
        return configured.get_secret_value().strip()
    if token_file:
        try:
            return Path(token_file).read_text().strip() or None
        except OSError as exc:
            raise RegistryAuthError(f"cannot read registry token file {token_file}: {exc.strerror}") from None
    default = Path(DEFAULT_SA_TOKEN_FILE)
    if default.is_file():
        try:
            return default.read_text().strip() or None
        except OSError:
            return None
    return None


def open_registry(
    url: str | None = None,
    token: str | None = None,
    token_file: str | None = None,
    author: str = "dagster",
    is_secure: bool | None = None,
    **options,
) -> RegistryBackend:
    """Open the registry named by url (see module docstring).

    Extra keyword options go to the backend (e.g. KubeflowRegistry's retry_attempts,
    retry_initial_wait, retry_max_wait, retry_total_s, request_timeout_s).
    """
    if url is None or url.strip() == "":
        from dagster_project.settings import local_registry_path

        from .local import LocalRegistry

        return LocalRegistry(local_registry_path())
    from dagster_project.settings import load_settings

    settings = load_settings().registry
    url = url.strip()
    if url.startswith(("http://", "https://")) and settings.kind == "mlflow":
        url = "mlflow+" + url
    if url.startswith(("http://", "https://", "mlflow+http://", "mlflow+https://")):
        if "mirror_dir" not in options and settings.mirror:
            from dagster_project.settings import cache_dir

            options["mirror_dir"] = settings.mirror_dir or cache_dir() / "registry-mirror"
    if url.startswith(("mlflow+http://", "mlflow+https://")):
        from .mlflow_registry import MlflowRegistry

        return MlflowRegistry(url, token=resolve_token(token, token_file), **options)
    if url.startswith(("http://", "https://")):
        from .kubeflow import KubeflowRegistry

        # Operators can bound the retries without code: DMC_REGISTRY_RETRY_ATTEMPTS / _INITIAL_WAIT.
        if "retry_attempts" not in options and settings.retry_attempts is not None:
            options["retry_attempts"] = settings.retry_attempts
        if "retry_initial_wait" not in options and settings.retry_initial_wait is not None:
            options["retry_initial_wait"] = settings.retry_initial_wait
        return KubeflowRegistry(
            url,
            token=resolve_token(token, token_file),
            author=author,
            is_secure=is_secure,
            **options,
        )
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") - 1 :] if url.startswith("sqlite:////") else url[len("sqlite:///") :]
        from .local import LocalRegistry

        return LocalRegistry(path)
    if "://" in url:
        raise RegistryError(
            f"unsupported registry URL {url!r}: use http(s)://host:port (Kubeflow), mlflow+http(s)://host:port,"
            " sqlite:///path or a path"
        )
    from .local import LocalRegistry

    return LocalRegistry(url)
