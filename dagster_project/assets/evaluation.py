"""Evaluation: lm-eval on base (once per task set) and on each variant, recovery, speed, size, approval."""


import base64
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    PipesClient,
    ResourceParam,
    asset,
    asset_check,
)
from pydantic import Field

from dagster_project.automation.conditions import comparison_condition, evaluation_condition
from dagster_project.models.catalog import resolve_model
from dagster_project.compression.oneshot_runner import MANIFEST_FILENAME
from dagster_project.evaluation.approval import EVALUATION_FILENAME, Approval, decide_approval
from dagster_project.evaluation.tasks import resolve_task_set, task_set_fingerprint
from dagster_project.k8s import load_placement, op_tags
from dagster_project.partitions import by_model, model_partitions, recipe_partitions, variant_partitions
from dagster_project.artifacts import ArtifactStore
from dagster_project.artifacts.step import StepStorage
from dagster_project.resources.compute import ComputeResource
from dagster_project.resources.vllm_pipes import VllmConfig
from dagster_project.resources.settings import SettingsResource

CODE_VERSION = "1"
LM_EVAL_RESULTS_FILENAME = "lm_eval_results.json"  # lm-eval's own results dict, beside evaluation.json


class EvaluationConfig(Config):
    task_set: str = Field(default="", description="empty: the model's task set from models.yaml")
    limit: int | None = Field(default=None, ge=1, description="cap examples per task (smoke runs)")
    recovery_threshold: float | None = Field(default=None, gt=0, le=200, description="override the task set's")
    backend: Literal["hf", "vllm"] = Field(
        # The chart's default (DMC_K8S_EVALUATION_BACKEND) also decides where the step pod runs.
        default=load_placement().evaluation_backend,
        description="hf: lm-eval in this process; vllm: lm-eval + vLLM in its own environment via Pipes")
    include_path: str = Field(
        default="", description="folder of user lm-eval task YAMLs (and task_sets.yaml); empty: $DMC_EVAL_INCLUDE_PATH")
    vllm: VllmConfig = Field(default_factory=VllmConfig)


def _task_set_name(model_key: str, config: EvaluationConfig) -> str:
    return config.task_set or resolve_model(model_key).task_set


def _with_settings(config: EvaluationConfig, settings: SettingsResource) -> EvaluationConfig:
    """The run config, its unset include path and example limit taken from the settings
    (DMC_EVAL_INCLUDE_PATH; DMC_EVAL_LIMIT for smoke runs and CI)."""
    ev = settings.get().eval
    return config.model_copy(update={"include_path": config.include_path or ev.include_path or "",
                                     "limit": config.limit or ev.limit or None})


def _include_path(config: EvaluationConfig) -> str | None:
    return config.include_path or None


def _limit(config: EvaluationConfig) -> int | None:
    """Examples per task (None: all)."""
    return config.limit or None


def _vllm_settings(config: EvaluationConfig):
    from dagster_project.resources.vllm_pipes import VllmSettings

    return VllmSettings(**config.vllm.model_dump())


def _eval_key(task_set, fingerprint: str, config: EvaluationConfig) -> str:
    """Cache key of scores: task set + data fingerprint, plus what else changes them (backend
    and its settings, example limit). The plain hf run keeps the historical key."""
    key = f"{task_set.name}-{fingerprint}"
    if config.backend == "vllm":
        settings = _vllm_settings(config).model_dump_json().encode()
        key += f"-vllm{hashlib.sha256(settings).hexdigest()[:6]}"
    if _limit(config):
        key += f"-limit{_limit(config)}"
    return key


def _run_evaluation(context, config: EvaluationConfig, vllm_pipes, model_path: Path, task_set,
                    results_path: Path, device: str, batch_size: int, store: StepStorage, fingerprint: str):
    """(EvalResult, speed dict) with the configured backend. The raw lm-eval results land in `results_path`."""
    from dagster_project.evaluation.speed import measure_generation
    from dagster_project.evaluation.tasks import add_derived_scores

    include = _include_path(config)
    if config.backend == "vllm":
        from dagster_project.evaluation.tasks import write_task_dir
        from dagster_project.resources.vllm_pipes import evaluate_vllm

        # Shipped tasks with their data on the artifact store, so that a pod sees them too.
        task_dir = write_task_dir(store.layout.root / "eval_tasks" / f"{task_set.name}-{fingerprint}")
        result, speed, _ = evaluate_vllm(
            context, vllm_pipes, model_path, task_set, results_path,
            include_paths=[str(task_dir), *([include] if include else [])], limit=_limit(config),
            settings=_vllm_settings(config),
        )
        if results_path.is_file():
            store.push_file(results_path)
        return add_derived_scores(result, model_path, _limit(config)), speed
    from dagster_project.evaluation.hf_eval import evaluate_hf

    speed = asdict(measure_generation(model_path, device=device))
    result = evaluate_hf(model_path, task_set, device=device, batch_size=batch_size, include_path=include,
                         limit=_limit(config), log=context.log.info)
    store.write_json(results_path, {"results": result.raw, "backend": "hf", "lm_eval_version": result.lm_eval_version,
                                    "eval_seconds": result.eval_seconds, "model_path": str(model_path)})
    return add_derived_scores(result, model_path, _limit(config)), speed


@asset(
    partitions_def=model_partitions,
    deps=["base_model"],
    group_name="evaluation",
    code_version=CODE_VERSION,
    kinds={"python"},
    pool="model_compute",
    op_tags=op_tags("base_evaluation"),
    description="lm-eval scores and generation speed of the base model; computed once per revision and task set.",
)
def base_evaluation(
    context: AssetExecutionContext, config: EvaluationConfig, artifacts: ArtifactStore, compute: ComputeResource,
    vllm_pipes: ResourceParam[PipesClient], settings: SettingsResource,
) -> MaterializeResult:
    config = _with_settings(config, settings)
    from dagster_project.evaluation.hf_eval import EvalResult

    key = context.partition_key
    store = artifacts.step()
    layout = store.layout
    base = store.read_json(layout.base_manifest(key), f"base_model[{key}]")
    include = _include_path(config)
    task_set = resolve_task_set(_task_set_name(key, config), include)
    fingerprint = task_set_fingerprint(task_set, include)
    path = layout.base_eval(key, base["revision"], _eval_key(task_set, fingerprint, config))
    data = store.read_json_optional(path)
    if data is not None:
        context.log.info(f"base {key}@{base['revision']} already evaluated on {task_set.name}: reusing {path}")
        result = EvalResult.from_json(json.dumps(data["eval"]))
    else:
        device = "cuda" if config.backend == "vllm" else compute.resolve_device()
        context.log.info(f"evaluating base {key} on {task_set.name} ({config.backend}, {device})")
        result, speed = _run_evaluation(context, config, vllm_pipes, store.base_folder(base), task_set,
                                        path.with_suffix(".lm_eval.json"), device, compute.eval_batch_size,
                                        store, fingerprint)
        data = {"eval": json.loads(result.to_json()), "speed": speed, "revision": base["revision"],
                "backend": config.backend}
        store.write_json(path, data)
    return MaterializeResult(
        metadata={
            "task_set": task_set.name,
            "backend": data.get("backend", "hf"),
            "scores": MetadataValue.md(_scores_table(result)),
            "tokens_per_second": MetadataValue.float(float((data["speed"] or {}).get("tokens_per_second") or 0.0)),
            "eval_seconds": MetadataValue.float(result.eval_seconds),
            "path": MetadataValue.path(store.uri(path) if store.remote else str(path)),
        },
        data_version=DataVersion(f"{base['revision']}-{_eval_key(task_set, fingerprint, config)}"),
    )


@asset(
    partitions_def=variant_partitions,
    deps=["compressed_model", AssetDep(base_evaluation, partition_mapping=by_model)],
    group_name="evaluation",
    code_version=CODE_VERSION,
    kinds={"python"},
    pool="model_compute",
    automation_condition=evaluation_condition,
    op_tags=op_tags("evaluation_report"),
    description="Variant vs base on the same tasks and hardware: recovery per task, size, speed; decides approval.",
)
def evaluation_report(
    context: AssetExecutionContext, config: EvaluationConfig, artifacts: ArtifactStore, compute: ComputeResource,
    vllm_pipes: ResourceParam[PipesClient], settings: SettingsResource,
) -> MaterializeResult:
    config = _with_settings(config, settings)
    from dagster_project.evaluation.hf_eval import EvalResult
    from dagster_project.evaluation.recovery import average_recovery, compare
    from dagster_project.evaluation.report import plot_recovery, recovery_table

    keys = context.partition_key.keys_by_dimension
    model_key, recipe_key = keys["model"], keys["recipe"]
    store = artifacts.step()
    layout = store.layout
    base = store.read_json(layout.base_manifest(model_key), f"base_model[{model_key}]")
    variant_dir = layout.variant_dir(model_key, recipe_key)
    variant = store.read_folder_json(variant_dir, MANIFEST_FILENAME, "variant manifest")
    if variant is None:
        raise FileNotFoundError(f"compressed_model[{model_key}|{recipe_key}] is missing ({store.uri(variant_dir)}): "
                                "materialize it first")
    include = _include_path(config)
    task_set = resolve_task_set(_task_set_name(model_key, config), include)
    threshold = config.recovery_threshold or task_set.recovery_threshold
    fingerprint = task_set_fingerprint(task_set, include)
    eval_key = _eval_key(task_set, fingerprint, config)
    base_data = store.read_json(layout.base_eval(model_key, base["revision"], eval_key),
                                f"base_evaluation[{model_key}] ({config.backend}, {eval_key})")
    base_eval = EvalResult.from_json(json.dumps(base_data["eval"]))

    report_path = variant_dir / EVALUATION_FILENAME
    previous = store.read_json_optional(report_path)
    device = "cuda" if config.backend == "vllm" else compute.resolve_device()
    if (previous and previous.get("variant_version") == variant["version"]
            and previous.get("task_fingerprint") == fingerprint
            and previous.get("eval_key", f"{task_set.name}-{fingerprint}") == eval_key):
        context.log.info("variant already evaluated on this task set: reusing scores")
        var_eval = EvalResult.from_json(json.dumps(previous["eval"]))
        speed, load_error = previous.get("speed"), previous.get("load_error")
        divergence = previous.get("divergence")
        if divergence is None and _measures_divergence(config, task_set) and load_error is None:
            divergence = _divergence(context, store, base, store.pull_folder(variant_dir), config, device)
    else:
        context.log.info(f"evaluating {model_key} × {recipe_key} on {task_set.name} ({config.backend}, {device})")
        var_eval, speed, load_error = None, None, None
        model_dir = store.pull_folder(variant_dir)  # a store failure fails the step, not the variant
        try:
            var_eval, speed = _run_evaluation(context, config, vllm_pipes, model_dir, task_set,
                                              variant_dir / LM_EVAL_RESULTS_FILENAME, device,
                                              compute.eval_batch_size, store, fingerprint)
        except Exception as exc:  # a variant that cannot load or run is reported, not crashed on
            load_error = f"{type(exc).__name__}: {exc}"
            context.log.error(f"variant failed to load or generate: {load_error}")
        divergence = None
        if load_error is None and _measures_divergence(config, task_set):
            divergence = _divergence(context, store, base, model_dir, config, device)

    recoveries = compare(base_eval, var_eval, task_set) if var_eval else []
    avg = average_recovery(recoveries)
    approval: Approval = decide_approval(
        loads=load_error is None and bool(speed and speed.get("new_tokens")),
        average_recovery=avg, threshold=threshold,
        size_bytes=variant["size_bytes"], base_size_bytes=variant["base_size_bytes"],
        load_error=load_error,
    )
    report = {
        "model": model_key, "recipe": recipe_key, "variant_version": variant["version"],
        "task_set": task_set.name, "task_fingerprint": fingerprint, "threshold": threshold, "average_recovery": avg,
        "recoveries": [asdict(r) for r in recoveries], "approval": asdict(approval), "divergence": divergence,
        "eval": json.loads(var_eval.to_json()) if var_eval else None, "speed": speed, "load_error": load_error,
        "base_speed": base_data.get("speed"), "size_bytes": variant["size_bytes"],
        "base_size_bytes": variant["base_size_bytes"], "compression_ratio": variant["compression_ratio"],
        "scheme": variant.get("scheme"), "recipe_sha256": variant["recipe_sha256"],
        "backend": config.backend, "eval_key": eval_key, "limit": _limit(config), "include_path": include,
        "lm_eval_results": LM_EVAL_RESULTS_FILENAME if (variant_dir / LM_EVAL_RESULTS_FILENAME).is_file() else None,
    }
    store.write_json(report_path, report)

    metadata = {
        "task_set": task_set.name,
        "backend": config.backend,
        "average_recovery_pct": MetadataValue.float(avg if avg is not None else 0.0),
        "threshold_pct": MetadataValue.float(threshold),
        "approved": MetadataValue.bool(approval.approved),
        "approval_reasons": MetadataValue.md("\n".join(f"- {r}" for r in approval.reasons)),
        "recovery": MetadataValue.md(recovery_table(recoveries) if recoveries else "no scores (variant failed)"),
        **_divergence_metadata(divergence),
        "size_mb": MetadataValue.float(round(variant["size_bytes"] / 2**20, 3)),
        "compression_ratio": MetadataValue.float(variant["compression_ratio"]),
        "results_json": MetadataValue.path(store.uri(report_path) if store.remote else str(report_path)),
    }
    if speed and base_data.get("speed"):
        bs = base_data["speed"]
        metadata["speed"] = MetadataValue.md(
            "| | load s | latency s | tokens/s |\n|---|---:|---:|---:|\n"
            f"| base | {bs['load_seconds']} | {bs['latency_seconds']} | {bs['tokens_per_second']} |\n"
            f"| variant | {speed['load_seconds']} | {speed['latency_seconds']} | {speed['tokens_per_second']} |"
        )
        metadata["sample_generation"] = speed.get("sample", "")
    if recoveries:
        png = plot_recovery(recoveries, f"{model_key} × {recipe_key}: recovery per task", threshold)
        store.write_bytes(variant_dir / "recovery.png", png)
        metadata["recovery_plot"] = MetadataValue.md(_img(png))
    return MaterializeResult(metadata=metadata, data_version=DataVersion(f"{variant['version']}-{fingerprint}"))


def _measures_divergence(config: EvaluationConfig, task_set) -> bool:
    """Divergence from the base is measured in this process over the held-out texts of the shipped
    perplexity task, so only for the hf backend and task sets that score those texts (the demo)."""
    from dagster_project.evaluation.divergence import DIVERGENCE_TASK

    return config.backend == "hf" and any(t.name == DIVERGENCE_TASK for t in task_set.tasks)


def _divergence(context, store: StepStorage, base: dict, model_dir: Path, config: EvaluationConfig,
                device: str) -> dict:
    from dagster_project.evaluation.divergence import divergence_from_base, heldout_texts

    result = divergence_from_base(store.base_folder(base), model_dir, heldout_texts(_limit(config)), device=device)
    context.log.info(f"divergence from base: KL {result.kl_mean:.5f} nats/token, "
                     f"top-1 agreement {100 * result.top1_agreement:.2f} % over {result.tokens} tokens")
    return asdict(result)


def _divergence_metadata(divergence: dict | None) -> dict:
    if not divergence:
        return {}
    return {
        "kl_vs_base_nats_per_token": MetadataValue.float(divergence["kl_mean"]),
        "top1_agreement_pct": MetadataValue.float(round(100 * divergence["top1_agreement"], 2)),
    }


def _report_for(context, artifacts: ArtifactStore) -> dict | None:
    keys = context.partition_key.keys_by_dimension
    store = artifacts.step()
    return store.read_json_optional(store.layout.variant_dir(keys["model"], keys["recipe"]) / EVALUATION_FILENAME)


def _check(report: dict | None, name: str) -> AssetCheckResult:
    if report is None:
        return AssetCheckResult(passed=False, description="no evaluation report on disk")
    check = report["approval"]["checks"][name]
    return AssetCheckResult(passed=check["passed"], description=check["detail"], severity=AssetCheckSeverity.ERROR,
                            metadata={"variant_version": report["variant_version"]})


@asset_check(asset=evaluation_report, blocking=True, op_tags=op_tags("checks"),
             description="The variant loads and generates text.")
def loads_and_generates(context, artifacts: ArtifactStore) -> AssetCheckResult:
    return _check(_report_for(context, artifacts), "loads_and_generates")


@asset_check(asset=evaluation_report, blocking=True, op_tags=op_tags("checks"),
             description="Average recovery meets the task set's threshold.")
def recovery_meets_threshold(context, artifacts: ArtifactStore) -> AssetCheckResult:
    return _check(_report_for(context, artifacts), "recovery_meets_threshold")


@asset_check(asset=evaluation_report, blocking=True, op_tags=op_tags("checks"),
             description="Weights are smaller than the base's.")
def size_reduced(context, artifacts: ArtifactStore) -> AssetCheckResult:
    return _check(_report_for(context, artifacts), "size_reduced")


@asset(
    partitions_def=model_partitions,
    deps=[AssetDep("evaluation_report", partition_mapping=by_model)],
    group_name="evaluation",
    code_version=CODE_VERSION,
    kinds={"python"},
    automation_condition=comparison_condition,
    op_tags=op_tags("model_comparison"),
    description="All variants of one base model side by side: table, score-vs-size and recovery-per-task plots.",
)
def model_comparison(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    from dagster_project.evaluation.report import plot_recovery_by_variant, plot_score_vs_size, variants_table

    key = context.partition_key
    store = artifacts.step()
    layout = store.layout
    rows, points = [], []
    base_point = None
    per_variant: dict[str, list[dict]] = {}
    thresholds = set()
    # Every registered recipe's report, read from the store (no listing needed).
    for recipe_key in sorted(context.instance.get_dynamic_partitions(recipe_partitions.name)):
        r = store.read_json_optional(layout.variant_dir(key, recipe_key) / EVALUATION_FILENAME)
        if r is None:
            continue
        primary = next((x for x in r["recoveries"] if x["primary"]), None)
        rows.append({
            "model": key, "recipe": r["recipe"], "size_mb": r["size_bytes"] / 2**20, "ratio": r["compression_ratio"],
            "metric": f"{primary['task']}/{primary['metric']}" if primary else "-",
            "base": primary["base"] if primary else float("nan"), "variant": primary["variant"] if primary else float("nan"),
            "recovery": r["average_recovery"] or 0.0, "approved": r["approval"]["approved"],
            "kl": (r.get("divergence") or {}).get("kl_mean"), "top1": (r.get("divergence") or {}).get("top1_agreement"),
        })
        if r["recoveries"]:
            per_variant[r["recipe"]] = r["recoveries"]
            thresholds.add(r["threshold"])
        if primary:
            points.append({"label": r["recipe"], "size_mb": r["size_bytes"] / 2**20, "score": primary["variant"]})
            base_point = {"label": "base", "size_mb": r["base_size_bytes"] / 2**20, "score": primary["base"], "base": True}
    metadata = {"variants": MetadataValue.int(len(rows)), "comparison": MetadataValue.md(variants_table(rows))}
    if points and base_point:
        metric = next(x for x in rows if x["metric"] != "-")["metric"]
        png = plot_score_vs_size([base_point, *points], metric, f"{key}: {metric} vs size")
        store.write_bytes(layout.model_dir(key) / "comparison.png", png)
        metadata["score_vs_size"] = MetadataValue.md(_img(png))
    if per_variant:
        png = plot_recovery_by_variant(per_variant, f"{key}: recovery per task",
                                       thresholds.pop() if len(thresholds) == 1 else None)
        store.write_bytes(layout.model_dir(key) / "recovery_by_variant.png", png)
        metadata["recovery_by_variant"] = MetadataValue.md(_img(png))
    store.write_json(layout.model_dir(key) / "comparison.json", {"rows": rows})
    return MaterializeResult(metadata=metadata)


def _scores_table(result) -> str:
    lines = ["| task | metric | value | stderr |", "|---|---|---:|---:|"]
    for s in result.scores:
        lines.append(f"| {s.task} | {s.metric} | {s.value:.4g} | {'' if s.stderr is None else f'{s.stderr:.3g}'} |")
    return "\n".join(lines)


def _img(png: bytes) -> str:
    # The Dagster UI renders markdown images; a data URI keeps the plot inside the event log.
    return f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})"
