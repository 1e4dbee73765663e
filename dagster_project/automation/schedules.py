"""The nightly schedule: compress only what is new or stale.

Every night (`DMC_NIGHTLY_CRON`, default `0 2 * * *`, in `DMC_TIMEZONE`, default UTC) the schedule
looks at every wanted (model, recipe) pair — the `recipes:` of each models.yaml entry, plus every
variant that was ever materialized (watch sensor, backfills, clicks) — and requests a
`variant_job` run only for pairs whose variant is

* missing (never materialized), or
* stale: the data versions it was made from changed (`dagster/input_data_version/base_model` or
  `.../calibration_dataset` differ from the upstream's current data version — a new base revision
  or new calibration data), or compressed_model's code version changed.

A night with nothing new requests nothing (SkipReason). Pairs whose base model was never
materialized are skipped with a log line (the watch sensor or a click makes the base).
Evaluation and publication follow through declarative automation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    MultiPartitionKey,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from dagster_project.automation.jobs import default_schedule_status, variant_job
from dagster_project.partitions import model_partitions, recipe_partitions

CRON_ENV = "DMC_NIGHTLY_CRON"
TIMEZONE_ENV = "DMC_TIMEZONE"
DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"

BASE_MODEL = AssetKey("base_model")
CALIBRATION = AssetKey("calibration_dataset")
COMPRESSED = AssetKey("compressed_model")
DATA_VERSION_TAG = "dagster/data_version"
INPUT_VERSION_TAG = "dagster/input_data_version/"
CODE_VERSION_TAG = "dagster/code_version"


def nightly_cron() -> str:
    return os.environ.get(CRON_ENV) or DEFAULT_CRON


def nightly_timezone() -> str:
    return os.environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE


@dataclass(frozen=True)
class Decision:
    model: str
    recipe: str
    action: str  # "request" | "fresh" | "skip"
    reason: str


def _latest_tags(instance, key: AssetKey, partition: str) -> dict[str, str] | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return dict(records[0].asset_materialization.tags or {})


def wanted_pairs(instance) -> list[tuple[str, str]]:
    """models.yaml pairs plus every variant materialized before, limited to existing partitions."""
    from dagster_project.catalog import load_catalog

    pairs: list[tuple[str, str]] = []
    for key, source in sorted(load_catalog().items()):
        pairs += [(key, r) for r in source.recipes]
    for mpk in sorted(instance.get_materialized_partitions(COMPRESSED)):
        model, _, recipe = mpk.partition("|")
        pairs.append((model, recipe))
    models = set(instance.get_dynamic_partitions(model_partitions.name))
    recipes = set(instance.get_dynamic_partitions(recipe_partitions.name))
    return sorted({(m, r) for m, r in pairs if m in models and r in recipes})


def decide(instance, model: str, recipe: str, code_version: str | None) -> Decision:
    base = _latest_tags(instance, BASE_MODEL, model)
    if base is None:
        return Decision(model, recipe, "skip", f"base_model[{model}] was never materialized")
    variant = _latest_tags(instance, COMPRESSED, f"{model}|{recipe}")
    if variant is None:
        return Decision(model, recipe, "request", "missing")
    changed = []
    if variant.get(INPUT_VERSION_TAG + "base_model") != base.get(DATA_VERSION_TAG):
        changed.append(f"base_model {variant.get(INPUT_VERSION_TAG + 'base_model', '?')[:12]} → "
                       f"{base.get(DATA_VERSION_TAG, '?')[:12]}")
    calibration = _latest_tags(instance, CALIBRATION, model)
    recorded = variant.get(INPUT_VERSION_TAG + "calibration_dataset")
    if calibration is not None and recorded is not None and recorded != calibration.get(DATA_VERSION_TAG):
        changed.append("calibration_dataset changed")
    if code_version is not None and variant.get(CODE_VERSION_TAG) not in (None, code_version):
        changed.append(f"code version {variant.get(CODE_VERSION_TAG)} → {code_version}")
    if changed:
        return Decision(model, recipe, "request", "stale: " + "; ".join(changed))
    return Decision(model, recipe, "fresh", "up to date")


def plan_nightly(instance, code_version: str | None = None) -> list[Decision]:
    if code_version is None:
        from dagster_project.assets.compressed_model import CODE_VERSION

        code_version = CODE_VERSION
    return [decide(instance, m, r, code_version) for m, r in wanted_pairs(instance)]


def nightly_run_requests(context: ScheduleEvaluationContext):
    decisions = plan_nightly(context.instance)
    requests = []
    for d in decisions:
        if d.action == "skip":
            context.log.info(f"nightly: {d.model} × {d.recipe} skipped: {d.reason}")
        elif d.action == "request":
            context.log.info(f"nightly: {d.model} × {d.recipe}: {d.reason}")
            requests.append(RunRequest(
                run_key=f"{d.model}|{d.recipe}|nightly",
                partition_key=MultiPartitionKey({"model": d.model, "recipe": d.recipe}),
                tags={"dmc/trigger": "nightly", "dmc/recipe": d.recipe, "dmc/reason": d.reason[:200]},
            ))
    if not requests:
        fresh = sum(d.action == "fresh" for d in decisions)
        return SkipReason(f"nothing new or stale: {fresh} variant(s) up to date, "
                          f"{sum(d.action == 'skip' for d in decisions)} without a base model")
    return requests


@schedule(
    name="nightly_compression",
    job=variant_job,
    cron_schedule=nightly_cron(),
    execution_timezone=nightly_timezone(),
    default_status=default_schedule_status(),
    description="Compresses every wanted (model, recipe) pair whose variant is missing or stale; nothing else.",
)
def nightly_compression(context: ScheduleEvaluationContext):
    return nightly_run_requests(context)
