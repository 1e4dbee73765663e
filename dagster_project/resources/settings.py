"""The code location's settings as a resource: assets receive them instead of reading the environment.

`dagster_project/settings.py` stays the one reader of `DMC_*`; this resource asks it when a step
starts (not when the definitions load), so a run always sees the environment it runs in — a pod's
ConfigMap, or a test's monkeypatched variables.
"""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from dagster_project.settings import Settings, load_settings


class SettingsResource(ConfigurableResource):
    """`settings.get()`: the parsed, checked `DMC_*` settings of this step's process."""

    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._settings = load_settings()

    def get(self) -> Settings:
        return self._settings if self._settings is not None else load_settings()
