"""Asset backfills: one model's base chain and its variants as one Dagster backfill.

A backfill, unlike a set of runs, knows the order across partitions definitions (base_model[m]
before compressed_model[m|r]) and runs the variants side by side, as many at once as the
`model_compute` pool allows. The backfill daemon executes it (`dagster dev`, `dagster-daemon run`,
or the Helm chart's daemon); the UI shows it under Overview → Backfills.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagster import AssetKey, MultiPartitionKey

from dagster_project.automation.jobs import BASE_ASSETS, VARIANT_ASSETS

RELEASE_TAG = "dmc/release"  # model@sha: one backfill per release, never two at once


def release_partitions(model: str, recipes: Iterable[str], *, with_base: bool) -> dict[str, list[str]]:
    """asset name → partition keys: the base chain (when the base must be made) and the variants."""
    out: dict[str, list[str]] = {}
    if with_base:
        out.update({name: [model] for name in BASE_ASSETS})
    keys = [str(MultiPartitionKey({"model": model, "recipe": r})) for r in recipes]
    if keys:
        out.update({name: keys for name in VARIANT_ASSETS})
    return out


def launch_backfill(instance, asset_graph, partitions: Mapping[str, list[str]], tags: Mapping[str, str],
                    title: str) -> str:
    """Submit an asset backfill (the daemon runs it) and return its id."""
    # Dagster's public API launches asset backfills from the UI/GraphQL or from a sensor's
    # RunRequest.for_asset_graph_subset; schedules cannot return one. This is the call the
    # sensor daemon makes for such a request.
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.definitions.events import AssetKeyPartitionKey
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    targets = {AssetKeyPartitionKey(AssetKey(name), key) for name, keys in partitions.items() for key in keys}
    subset = AssetGraphSubset.from_asset_partition_set(targets, asset_graph)
    backfill_id = make_new_backfill_id()
    instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
        backfill_id=backfill_id, backfill_timestamp=get_current_timestamp(), tags=dict(tags),
        dynamic_partitions_store=instance, asset_graph_subset=subset, title=title, description=None,
        run_config=None,
    ))
    return backfill_id


def backfill_in_progress(instance, release: str) -> bool:
    """True when a backfill for this release (`model@sha`) is still requested or running."""
    from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

    for backfill in instance.get_backfills(filters=BulkActionsFilter(
            statuses=[BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING], tags={RELEASE_TAG: release})):
        if backfill.tags.get(RELEASE_TAG) == release:
            return True
    return False
