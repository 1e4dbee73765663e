"""The model registry: embedded SQLite by default; Kubeflow / RHOAI Model Registry or MLflow by URL."""

from __future__ import annotations

from dagster import ConfigurableResource


class ModelRegistryResource(ConfigurableResource):
    """`url` empty → the local registry file; `https://…` → Kubeflow / RHOAI Model Registry (API
    v1alpha3 or v1, detected); `mlflow+https://…` → MLflow Model Registry.

    Tokens come from the settings (`DMC_REGISTRY_TOKEN`), another variable named by `token_env_var`,
    or a service-account `token_file` at call time, never from run config, so they cannot reach
    the event log.
    """

    url: str = ""  # empty: $DMC_REGISTRY_URL at call time, else the local registry file
    token_env_var: str = ""  # empty: the settings' registry token
    token_file: str = ""
    author: str = "dagster"
    is_secure: bool | None = None  # None: TLS for remote hosts, plain HTTP on loopback

    def resolved_url(self) -> str:
        """The registry this resource talks to: its `url`, else the settings' (DMC_REGISTRY_URL); "" = local."""
        from dagster_project.settings import load_settings

        return self.url or load_settings().registry.url or ""

    def open(self):
        import os

        from dagster_project.registry import open_registry

        return open_registry(
            url=self.resolved_url(),
            # resolve_token falls back to the settings' DMC_REGISTRY_TOKEN
            token=(os.environ.get(self.token_env_var) if self.token_env_var else None) or None,
            token_file=self.token_file or None,
            author=self.author,
            is_secure=self.is_secure,
        )
