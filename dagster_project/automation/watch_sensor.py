"""Watches the Hugging Face Hub for new releases of the models in the watchlist.

Each tick reads the head commit of every watched repo (`model_info`) and lists the repos of every
watched author (`list_models(author=...)`, filtered by the entry's glob). For a new repo or a new
commit:

1. the model partition `org--name` and the entry's recipe partitions are added;
2. unless base_model[org--name] already holds that commit, one `base_model_job` run is requested
   (run key `model|base|sha`, tag `dmc/revision=sha` so base_model downloads exactly that commit);
3. once base_model holds the commit (a later tick), one `variant_job` run per (model, recipe) pair
   that is missing or was made from another revision (run key `model|recipe|sha`: the same pair at
   the same revision is never requested twice), tagged with the revision. Step pods are placed by
   the assets' own op tags (dagster_project/k8s.py), the same as for runs launched any other way.

Evaluation and publication follow through declarative automation. The cursor is JSON:
`{"repos": {repo_id: sha}, "waiting": {repo_id: sha}}` (`waiting`: base run requested, pairs not
yet). A Hub that rate-limits, fails (5xx), times out or cannot be reached ends the tick with a
SkipReason and the cursor unchanged: the next tick retries.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    MultiPartitionKey,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from dagster_project.artifacts import ArtifactStore
from dagster_project.automation.jobs import base_model_job, default_sensor_status, variant_job
from dagster_project.models.watchlist import WatchlistError, WatchTarget, load_watchlist
from dagster_project.models.keys import REVISION_TAG
from dagster_project.partitions import model_partitions, recipe_partitions
from dagster_project.resources.hf_hub import HubError, HubUnavailable, HuggingFaceHubResource, RepoHead
from dagster_project.settings import load_settings

POLL_THREADS = 8

BASE_MODEL = AssetKey("base_model")
CALIBRATION = AssetKey("calibration_dataset")
COMPRESSED = AssetKey("compressed_model")
SOURCE_TAG = "dmc/trigger"
RECIPE_TAG = "dmc/recipe"


@dataclass
class WatchCursor:
    repos: dict[str, str] = field(default_factory=dict)    # repo → sha handled (requests made)
    waiting: dict[str, str] = field(default_factory=dict)  # repo → sha whose base run is pending

    @classmethod
    def parse(cls, raw: str | None) -> WatchCursor:
        if not raw:
            return cls()
        try:
            doc = json.loads(raw)
            return cls(repos=dict(doc.get("repos", {})), waiting=dict(doc.get("waiting", {})))
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor means "seen nothing": run keys still prevent repeats

    def dump(self) -> str:
        return json.dumps({"repos": dict(sorted(self.repos.items())), "waiting": dict(sorted(self.waiting.items()))},
                          sort_keys=True)


def interval_seconds() -> int:
    return load_settings().automation.watch_interval_seconds


def hub_timeout() -> float:
    return load_settings().automation.watch_hub_timeout_seconds


# ------------------------------------------------------------------ Hub polling


def poll_hub(hub: HuggingFaceHubResource, watchlist, log, timeout: float) -> dict[str, tuple[WatchTarget, RepoHead]]:
    """repo → (what to do, head). Raises HubUnavailable on the first transient Hub failure."""
    heads: dict[str, RepoHead] = {}
    repos = watchlist.explicit_repos()
    if repos:
        with ThreadPoolExecutor(max_workers=min(POLL_THREADS, len(repos))) as pool:
            futures = [pool.submit(hub.repo_head, r, timeout) for r in repos]
            try:
                for repo, fut in zip(repos, futures):
                    try:
                        head = fut.result()
                    except HubUnavailable:
                        raise
                    except HubError as exc:  # 401/403 and the like: this repo only
                        log.warning(f"watch: {repo}: {exc}")
                        continue
                    if head is None:
                        log.warning(f"watch: {repo} does not exist on the Hub (or is private): skipped")
                        continue
                    heads[head.repo_id] = head
            except HubUnavailable:
                for f in futures:
                    f.cancel()
                raise
    for author in watchlist.authors():
        try:
            listed = hub.author_heads(author, timeout=max(timeout, 30.0))
        except HubUnavailable:
            raise
        except HubError as exc:
            log.warning(f"watch: author {author}: {exc}")
            continue
        for head in listed:
            heads.setdefault(head.repo_id, head)
    out: dict[str, tuple[WatchTarget, RepoHead]] = {}
    for repo_id, head in heads.items():
        target = watchlist.target_for(repo_id)
        if target is not None:
            out[repo_id] = (target, head)
    return out


# ------------------------------------------------------------------ instance look-ups


def _latest(instance, key: AssetKey, partition: str):
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def _meta(record, name: str):
    if record is None or record.asset_materialization is None:
        return None
    value = record.asset_materialization.metadata.get(name)
    return getattr(value, "value", value)


@dataclass
class BaseState:
    revision: str | None
    run_id: str | None
    calibrated_ready: bool  # calibration_dataset was made after this base_model


def base_state(instance, model: str) -> BaseState:
    base = _latest(instance, BASE_MODEL, model)
    if base is None:
        return BaseState(None, None, False)
    calib = _latest(instance, CALIBRATION, model)
    return BaseState(_meta(base, "revision"), base.run_id,
                     calib is not None and calib.storage_id > base.storage_id)


def _run_finished(instance, run_id: str | None) -> bool:
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is None or run.is_finished


def pairs_to_request(instance, model: str, recipes, sha: str) -> list[tuple[str, str]]:
    """(recipe, why) for pairs with no variant yet, or a variant made from another revision."""
    out = []
    for recipe in recipes:
        rec = _latest(instance, COMPRESSED, MultiPartitionKey({"model": model, "recipe": recipe}))
        if rec is None:
            out.append((recipe, "missing"))
        elif _meta(rec, "base_revision") != sha:
            out.append((recipe, f"stale (made from {str(_meta(rec, 'base_revision'))[:12]})"))
    return out


# ------------------------------------------------------------------ one tick


def evaluate_watch(context: SensorEvaluationContext, hub: HuggingFaceHubResource, watchlist=None,
                   recipes_dir: Path | None = None):
    log = context.log
    recipes_dir = recipes_dir or ArtifactStore.from_env().layout().recipes_dir()
    try:
        watchlist = watchlist if watchlist is not None else load_watchlist(recipes_dir=recipes_dir)
    except WatchlistError as exc:
        log.error(str(exc))
        return SkipReason(f"watchlist invalid: {exc}")
    if not watchlist.entries:
        return SkipReason("the watchlist is empty")

    cursor = WatchCursor.parse(context.cursor)
    original_cursor = cursor.dump()
    try:
        targets = poll_hub(hub, watchlist, log, hub_timeout())
    except HubUnavailable as exc:
        log.warning(f"watch: Hub unavailable, nothing changed, retrying next tick: {exc}")
        return SkipReason(f"Hub unavailable: {exc}")
    except Exception as exc:  # never crash the sensor on a Hub surprise
        log.warning(f"watch: Hub look-up failed: {type(exc).__name__}: {exc}")
        return SkipReason(f"Hub look-up failed: {type(exc).__name__}: {exc}")

    instance = context.instance
    new_models: list[str] = []
    new_recipes: list[str] = []
    run_requests: list[RunRequest] = []
    notes: list[str] = []
    todo = sorted((repo_id, t, h) for repo_id, (t, h) in targets.items()
                  if cursor.repos.get(repo_id) != h.sha or repo_id in cursor.waiting)
    if todo:  # a few batched queries per tick, whatever the number of repos
        known_models = set(instance.get_dynamic_partitions(model_partitions.name))
        known_recipes = set(instance.get_dynamic_partitions(recipe_partitions.name))
        base_ids = instance.get_latest_storage_id_by_partition(
            BASE_MODEL, DagsterEventType.ASSET_MATERIALIZATION, partitions={t.model_key for _, t, _ in todo})
    for repo_id, target, head in todo:
        model, sha = target.model_key, head.sha
        if model not in known_models and model not in new_models:
            new_models.append(model)
        for r in target.recipes:
            if r not in new_recipes and r not in known_recipes:
                new_recipes.append(r)
        if model not in base_ids and cursor.waiting.get(repo_id) == sha:
            continue  # base run requested, nothing materialized yet
        state = base_state(instance, model) if model in base_ids else BaseState(None, None, False)
        if state.revision != sha:
            if cursor.waiting.get(repo_id) != sha:
                run_requests.append(RunRequest(
                    run_key=f"{model}|base|{sha}", job_name=base_model_job.name, partition_key=model,
                    tags={REVISION_TAG: sha, SOURCE_TAG: "watch"},
                ))
                notes.append(f"{repo_id}@{sha[:12]}: base run")
            cursor.waiting[repo_id] = sha
            cursor.repos[repo_id] = sha
            continue
        if not state.calibrated_ready and any(_needs_calibration(recipes_dir, r) for r in target.recipes) \
                and not _run_finished(instance, state.run_id):
            cursor.waiting[repo_id] = sha  # calibration_dataset is still being made in the base run
            cursor.repos[repo_id] = sha
            continue
        for recipe, why in pairs_to_request(instance, model, target.recipes, sha):
            run_requests.append(RunRequest(
                run_key=f"{model}|{recipe}|{sha}", job_name=variant_job.name,
                partition_key=MultiPartitionKey({"model": model, "recipe": recipe}),
                tags={REVISION_TAG: sha, SOURCE_TAG: "watch", RECIPE_TAG: recipe},
            ))
            notes.append(f"{model} × {recipe}@{sha[:12]}: {why}")
        cursor.repos[repo_id] = sha
        cursor.waiting.pop(repo_id, None)

    for n in notes:
        log.info(f"watch: {n}")
    partition_requests = [
        *([model_partitions.build_add_request(new_models)] if new_models else []),
        *([recipe_partitions.build_add_request(new_recipes)] if new_recipes else []),
    ]
    if not run_requests and not partition_requests:
        waiting = len(cursor.waiting)
        reason = f"{len(targets)} watched repo(s), nothing new" + (
            f"; {waiting} waiting for their base_model run" if waiting else "")
        if cursor.dump() != original_cursor:
            return SensorResult(skip_reason=reason, cursor=cursor.dump())
        return SkipReason(reason)
    return SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests,
                        cursor=cursor.dump())


def _needs_calibration(recipes_dir: Path, recipe: str) -> bool:
    from dagster_project.compression.catalog import resolve_recipe
    from dagster_project.compression.recipes import RecipeError

    try:
        return resolve_recipe(recipes_dir, recipe, None).calibrated
    except RecipeError:
        return False


@sensor(
    name="hub_watch_sensor",
    jobs=[base_model_job, variant_job],
    minimum_interval_seconds=interval_seconds(),
    default_status=default_sensor_status(),
    description="Polls the Hugging Face Hub for the watchlist's repos; new revisions → base and variant runs.",
)
def hub_watch_sensor(context: SensorEvaluationContext, hub: HuggingFaceHubResource):
    return evaluate_watch(context, hub)
