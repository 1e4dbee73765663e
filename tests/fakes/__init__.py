"""Stand-ins for what cannot run here (the Hugging Face Hub) and a fault-injecting proxy; tests and benchmarks share them.

Nothing here imports torch or any other heavy dependency. Names are imported lazily so that
``python -m tests.fakes.hub_server`` runs cleanly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HubServer", "hub_client_online"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tests.fakes import hub_server

        return getattr(hub_server, name)
    raise AttributeError(name)
