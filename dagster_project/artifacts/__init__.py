"""The artifact store: where every stage's files live and how they move between steps.

`ArtifactStore` (the Dagster resource) is the only entry point: `store.layout()` names the paths,
`store.step()` is one step's view (pull inputs, push outputs; S3 works in a scratch folder).
"""

from dagster_project.artifacts.store import ArtifactStore

__all__ = ["ArtifactStore"]
