"""Test helpers that ship with the package so tests and benchmarks can share them.

Nothing here imports torch or any other heavy dependency.
"""

from dagster_project.testing.hub_server import HubServer, hub_client_online

__all__ = ["HubServer", "hub_client_online"]
