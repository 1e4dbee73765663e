"""Test helpers that ship with the package so tests and benchmarks can share them.

Nothing here imports torch or any other heavy dependency. Names are imported lazily so that
``python -m dagster_project.testing.hub_server`` runs cleanly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HubServer", "hub_client_online"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dagster_project.testing import hub_server

        return getattr(hub_server, name)
    raise AttributeError(name)
