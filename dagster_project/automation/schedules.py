"""The nightly schedule: find new releases, then compress only what is new or stale.

Every night (`DMC_NIGHTLY_CRON`, default `0 2 * * *`, in `DMC_TIMEZONE`, default UTC):

1. **New releases.** It asks the Hub for the head commit of every repo on the watchlist (the same
   look-up as the watch sensor, which stays available for faster reaction). For each repo whose
   base_model does not hold that commit, or whose recipes lack a variant made from it, it pins
   the commit and launches one asset backfill (`automation/backfills.py`): base_model →
   calibration_dataset → base_evaluation at that commit, then compressed_model for every recipe
   that needs it, side by side up to the `model_compute` pool limit. A release whose backfill is
   still running is left alone. A Hub that cannot be reached is logged; step 2 still runs.
2. **Stale variants.** It looks at every other wanted (model, recipe) pair — the `recipes:` of
   each models.yaml entry, plus every variant that was ever materialized (watch sensor,
   backfills, clicks) — and requests a `variant_job` run only for pairs whose variant is

* missing (never materialized), or
* stale: the data versions it was made from changed (`dagster/input_data_version/base_model` or
  `.../calibration_dataset` differ from the upstream's current data version — a new base revision
  or new calibration data), or compressed_model's code version changed.

A night with nothing new requests nothing (SkipReason). Pairs whose base model was never
materialized are skipped with a log line (the watch sensor, a release backfill or a click makes
the base). Evaluation and publication follow through declarative automation.
"""

from __future__ import annotations

import hashlib
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

from dagster_project.artifacts import ArtifactStore
from dagster_project.automation.jobs import default_schedule_status, variant_job
from dagster_project.partitions import model_partitions, recipe_partitions
from dagster_project.resources.hf_hub import HuggingFaceHubResource
from dagster_project.settings import load_settings

BASE_MODEL = AssetKey("base_model")
CALIBRATION = AssetKey("calibration_dataset")
COMPRESSED = AssetKey("compressed_model")
DATA_VERSION_TAG = "dagster/data_version"
INPUT_VERSION_TAG = "dagster/input_data_version/"
CODE_VERSION_TAG = "dagster/code_version"


def nightly_cron() -> str:
    return load_settings().automation.nightly_cron


def nightly_timezone() -> str:
    return load_settings().automation.timezone


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
    from dagster_project.models.catalog import load_catalog

    pairs: list[tuple[str, str]] = []
    for key, source in sorted(load_catalog().items()):
        pairs += [(key, r) for r in source.recipes]
    for mpk in sorted(instance.get_materialized_partitions(COMPRESSED)):
        model, _, recipe = mpk.partition("|")
        pairs.append((model, recipe))
    models = set(instance.get_dynamic_partitions(model_partitions.name))
    recipes = set(instance.get_dynamic_partitions(recipe_partitions.name))
    return sorted({(m, r) for m, r in pairs if m in models and r in recipes})


def recorded_as(data_version: str | None) -> set[str]:
    """The values a downstream step may record as `dagster/input_data_version/<upstream>` for an
    upstream partition whose data version is `data_version`. For a partitioned upstream Dagster
    records the sha256 of its dependency partitions' data versions joined (here one partition:
    the model), not the version itself (dagster/_core/execution/context/data_version_cache.py);
    the plain value is what it records when the upstream is not partitioned in the step's job."""
    if data_version is None:
        return set()
    return {data_version, hashlib.sha256(data_version.encode()).hexdigest()}


def decide(instance, model: str, recipe: str, code_version: str | None) -> Decision:
    base = _latest_tags(instance, BASE_MODEL, model)
    if base is None:
        return Decision(model, recipe, "skip", f"base_model[{model}] was never materialized")
    variant = _latest_tags(instance, COMPRESSED, f"{model}|{recipe}")
    if variant is None:
        return Decision(model, recipe, "request", "missing")
    changed = []
    if variant.get(INPUT_VERSION_TAG + "base_model") not in recorded_as(base.get(DATA_VERSION_TAG)):
        changed.append(f"base_model {variant.get(INPUT_VERSION_TAG + 'base_model', '?')[:12]} → "
                       f"{base.get(DATA_VERSION_TAG, '?')[:12]}")
    calibration = _latest_tags(instance, CALIBRATION, model)
    recorded = variant.get(INPUT_VERSION_TAG + "calibration_dataset")
    if calibration is not None and recorded is not None and \
            recorded not in recorded_as(calibration.get(DATA_VERSION_TAG)):
        changed.append("calibration_dataset changed")
    if code_version is not None and variant.get(CODE_VERSION_TAG) not in (None, code_version):
        changed.append(f"code version {variant.get(CODE_VERSION_TAG)} → {code_version}")
    if changed:
        return Decision(model, recipe, "request", "stale: " + "; ".join(changed))
    return Decision(model, recipe, "fresh", "up to date")


def plan_nightly(instance, code_version: str | None) -> list[Decision]:
    """`code_version`: compressed_model's, as the loaded definitions declare it (None: not compared)."""
    return [decide(instance, m, r, code_version) for m, r in wanted_pairs(instance)]


@dataclass(frozen=True)
class ReleaseCheck:
    models: frozenset[str]  # watched models: step 2 leaves them to the release backfills
    launched: tuple[str, ...]  # one line per backfill launched
    note: str = ""  # why the Hub could not be asked, if so


def check_releases(context: ScheduleEvaluationContext, hub: HuggingFaceHubResource, watchlist=None,
                   recipes_dir=None) -> ReleaseCheck:
    """Step 1: one backfill per watched repo whose head commit is not fully compressed yet."""
    from dagster_project.automation.backfills import (
        RELEASE_TAG, backfill_in_progress, launch_backfill, release_partitions)
    from dagster_project.automation.watch_sensor import SOURCE_TAG, base_state, hub_timeout, pairs_to_request, poll_hub
    from dagster_project.models.watchlist import WatchlistError, load_watchlist
    from dagster_project.models.keys import REVISION_TAG
    from dagster_project.resources.hf_hub import HubUnavailable

    log, instance = context.log, context.instance
    recipes_dir = recipes_dir or ArtifactStore.from_env().layout().recipes_dir()
    try:
        watchlist = watchlist if watchlist is not None else load_watchlist(recipes_dir=recipes_dir)
    except WatchlistError as exc:
        log.error(str(exc))
        return ReleaseCheck(frozenset(), (), f"watchlist invalid: {exc}")
    if not watchlist.entries:
        return ReleaseCheck(frozenset(), ())
    try:
        targets = poll_hub(hub, watchlist, log, hub_timeout())
    except HubUnavailable as exc:
        log.warning(f"nightly: Hub unavailable, releases not checked tonight: {exc}")
        return ReleaseCheck(frozenset(), (), f"Hub unavailable: {exc}")
    except Exception as exc:  # never crash the schedule on a Hub surprise
        log.warning(f"nightly: Hub look-up failed: {type(exc).__name__}: {exc}")
        return ReleaseCheck(frozenset(), (), f"Hub look-up failed: {type(exc).__name__}: {exc}")

    launched = []
    for repo_id, (target, head) in sorted(targets.items()):
        model, sha = target.model_key, head.sha
        release = f"{model}@{sha}"
        if backfill_in_progress(instance, release):
            log.info(f"nightly: {repo_id}@{sha[:12]}: its backfill is still running")
            continue
        # Schedules cannot return partition requests: add them here, before the backfill names them.
        if not instance.has_dynamic_partition(model_partitions.name, model):
            instance.add_dynamic_partitions(model_partitions.name, [model])
        known = set(instance.get_dynamic_partitions(recipe_partitions.name))
        if missing := [r for r in target.recipes if r not in known]:
            instance.add_dynamic_partitions(recipe_partitions.name, missing)
        with_base = base_state(instance, model).revision != sha
        recipes = [r for r, _ in pairs_to_request(instance, model, target.recipes, sha)]
        if not with_base and not recipes:
            continue  # this commit is compressed with every recipe
        backfill_id = launch_backfill(
            instance, context.repository_def.asset_graph, release_partitions(model, recipes, with_base=with_base),
            tags={REVISION_TAG: sha, SOURCE_TAG: "nightly", RELEASE_TAG: release},
            title=f"nightly: {repo_id}@{sha[:12]}",
        )
        line = (f"{repo_id}@{sha[:12]}: backfill {backfill_id} ({'base, ' if with_base else ''}"
                f"{', '.join(recipes) or 'no variants'})")
        log.info(f"nightly: {line}")
        launched.append(line)
    return ReleaseCheck(frozenset(t.model_key for t, _ in targets.values()), tuple(launched))


def nightly_run_requests(context: ScheduleEvaluationContext, hub: HuggingFaceHubResource | None = None):
    releases = check_releases(context, hub) if hub is not None else ReleaseCheck(frozenset(), ())
    # The code version comes from the loaded definitions, not from importing the asset module.
    code_version = context.repository_def.asset_graph.get(COMPRESSED).code_version
    decisions = [d for d in plan_nightly(context.instance, code_version) if d.model not in releases.models]
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
        if releases.launched:
            # The backfills are the night's work; a schedule can only report them in its skip message.
            return SkipReason(f"launched {len(releases.launched)} release backfill(s): "
                              + "; ".join(releases.launched) + f"; {fresh} other variant(s) up to date")
        return SkipReason(f"nothing new or stale: {fresh} variant(s) up to date, "
                          f"{sum(d.action == 'skip' for d in decisions)} without a base model"
                          + (f"; releases not checked: {releases.note}" if releases.note else ""))
    return requests


@schedule(
    name="nightly_compression",
    job=variant_job,
    cron_schedule=nightly_cron(),
    execution_timezone=nightly_timezone(),
    default_status=default_schedule_status(),
    description="Checks the watchlist for new Hub releases (one backfill each: base and variants), then "
                "compresses every other wanted (model, recipe) pair whose variant is missing or stale.",
)
def nightly_compression(context: ScheduleEvaluationContext, hub: HuggingFaceHubResource):
    return nightly_run_requests(context, hub)
