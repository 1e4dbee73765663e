"""Publication of approved variants: the Hugging Face Hub (optional) and the model registry, with lineage."""


import os

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from dagster_project.automation.conditions import publication_condition
from dagster_project.compression.oneshot_runner import MANIFEST_FILENAME
from dagster_project.evaluation.approval import EVALUATION_FILENAME
from dagster_project.k8s import op_tags
from dagster_project.partitions import variant_partitions
from dagster_project.artifacts import ArtifactStore
from dagster_project.artifacts.step import StepStorage
from dagster_project.resources.hf_hub import HuggingFaceHubResource
from dagster_project.resources.model_registry import ModelRegistryResource
from dagster_project.resources.settings import SettingsResource

HUB_FILENAME = "hub_release.json"


class NotApproved(RuntimeError):
    """Raised so that nothing unapproved is ever published, whatever launched the run."""


def _load_approved(context, store: StepStorage) -> tuple[str, str, dict, dict, dict]:
    keys = context.partition_key.keys_by_dimension
    model_key, recipe_key = keys["model"], keys["recipe"]
    layout = store.layout
    vdir = layout.variant_dir(model_key, recipe_key)
    variant = store.read_folder_json(vdir, MANIFEST_FILENAME, "variant manifest")
    if variant is None:
        raise FileNotFoundError(f"compressed_model[{model_key}|{recipe_key}] is missing ({store.uri(vdir)})")
    report = store.read_json(vdir / EVALUATION_FILENAME, f"evaluation_report[{model_key}|{recipe_key}]")
    if report["variant_version"] != variant["version"]:
        raise NotApproved(f"{model_key} × {recipe_key}: the evaluation is for an older variant; re-evaluate first")
    if not report["approval"]["approved"]:
        raise NotApproved(f"{model_key} × {recipe_key} is not approved: " + "; ".join(report["approval"]["reasons"]))
    base = store.read_json(layout.base_manifest(model_key), f"base_model[{model_key}]")
    return model_key, recipe_key, variant, report, base


@asset(
    partitions_def=variant_partitions,
    deps=["evaluation_report"],
    group_name="publication",
    code_version="1",
    kinds={"huggingface"},
    automation_condition=publication_condition,
    op_tags=op_tags("hub_release"),
    description="Pushes an approved variant with a model card to the Hugging Face Hub (when enabled).",
)
def hub_release(context: AssetExecutionContext, artifacts: ArtifactStore, hub: HuggingFaceHubResource,
                settings: SettingsResource) -> MaterializeResult:
    store = artifacts.step()
    model_key, recipe_key, variant, report, base = _load_approved(context, store)
    vdir = store.layout.variant_dir(model_key, recipe_key)
    if not hub.publish_enabled:
        store.write_json(vdir / HUB_FILENAME, {"published": False, "variant_version": variant["version"]})
        return MaterializeResult(metadata={"published": MetadataValue.bool(False),
                                           "reason": "Hub publication disabled (hub.publish_enabled=false)"})
    from dagster_project.hub.model_card import CardInfo, render_model_card
    from dagster_project.hub.publish import publish_folder as push_to_hub

    repo_id = hub.publish_repo_id(model_key, recipe_key)
    store.pull_folder(vdir)
    card = render_model_card(CardInfo(
        repo_id=repo_id, base_model=base.get("repo_id") or model_key, base_revision=base["revision"],
        license=base.get("license") or "other", scheme=variant["scheme"], recipe_name=recipe_key,
        recipe_yaml=(vdir / "recipe.yaml").read_text(), recipe_sha256=variant["recipe_sha256"],
        calibration_hash=variant.get("calibration_hash") or "", library_versions=variant["library_versions"],
        metrics=[(r["task"], r["metric"], r["base"], r["variant"], r["recovery_pct"]) for r in report["recoveries"]],
        run_id=context.run.run_id, run_url=_run_url(settings, context.run.run_id),
    ))
    pub = push_to_hub(
        vdir, repo_id, token=hub.token(), endpoint=hub.endpoint or os.environ.get("HF_ENDPOINT"),
        private=hub.publish_private, card_markdown=card,
        commit_message=f"{recipe_key} variant of {base.get('repo_id') or model_key}@{base['revision'][:12]} (dagster run {context.run.run_id[:8]})",
    )
    store.write_json(vdir / HUB_FILENAME, {"published": True, "repo_id": pub.repo_id, "commit_sha": pub.commit_sha,
                                            "url": pub.url, "variant_version": variant["version"]})
    return MaterializeResult(metadata={
        "published": MetadataValue.bool(True), "repo_id": pub.repo_id, "commit_sha": pub.commit_sha,
        "new_commit": MetadataValue.bool(pub.created_commit), "hub_url": MetadataValue.url(pub.url),
    })


@asset(
    partitions_def=variant_partitions,
    deps=["evaluation_report", hub_release],
    group_name="publication",
    code_version="1",
    kinds={"kubeflow"},
    automation_condition=publication_condition,
    op_tags=op_tags("registry_entry"),
    description="Registers an approved variant with full lineage in the model registry (local or Kubeflow/RHOAI).",
)
def registry_entry(
    context: AssetExecutionContext, artifacts: ArtifactStore, registry: ModelRegistryResource,
    settings: SettingsResource,
) -> MaterializeResult:
    from dagster_project.registry import VariantRecord

    store = artifacts.step()
    model_key, recipe_key, variant, report, base = _load_approved(context, store)
    vdir = store.layout.variant_dir(model_key, recipe_key)
    hub_info = store.read_json_optional(vdir / HUB_FILENAME) or {}
    from dagster_project.registry.serving import hf_uri, s3_uri

    # URIs in the forms RHOAI's Deploy and KServe parse (see dagster_project/registry/serving.py).
    if hub_info.get("published") and hub_info.get("variant_version") == variant["version"]:
        uri = hf_uri(hub_info["repo_id"], hub_info["commit_sha"])
    else:
        uri = store.uri(vdir)  # compressed_model already put the folder in the store
        if artifacts.kind == "s3":
            uri = s3_uri(uri, artifacts.s3_endpoint_url, artifacts.s3_region)
    record = VariantRecord(
        model_name=f"{model_key}-{recipe_key}",
        version_name=f"v-{variant['version'][:12]}",
        uri=uri,
        description=f"{recipe_key} ({variant['scheme']}) of {base.get('repo_id') or model_key}@{base['revision']}",
        properties=lineage_properties(context, model_key, recipe_key, variant, report, base, hub_info,
                                      _run_url(settings, context.run.run_id)),
        source_group=os.environ.get("DAGSTER_DEPLOYMENT", "local") + "/model_compression",
        source_id=context.run.run_id,
        source_name=f"{context.asset_key.to_user_string()}[{context.partition_key}]",
        approved=True,
        storage_key=settings.get().store.connection,  # RHOAI data connection for the store
    )
    published = publish_or_fail(registry, record)
    return MaterializeResult(metadata={
        "registered_model": published.model_name,
        "model_version": published.version_name,
        "registry_version_id": published.registry_version_id,
        "uri": uri,
        "registry": registry.resolved_url() or "local",
        **({"hub_commit": hub_info["commit_sha"]} if hub_info.get("published") else {}),
    })


def publish_or_fail(registry: ModelRegistryResource, record):
    """Publish; a registry failure becomes one clear line in the UI (URL, what came back, likely
    cause) instead of a client traceback."""
    from dagster import Failure

    from dagster_project.registry import RegistryError

    try:
        with registry.open() as reg:
            return reg.publish(record)
    except RegistryError as exc:
        raise Failure(description=f"{type(exc).__name__}: {exc}".replace("\n", " "),
                      metadata={"registry": registry.resolved_url() or "local"}) from None


def lineage_properties(context, model_key, recipe_key, variant, report, base, hub_info,
                       run_url: str) -> dict[str, str]:
    props = {
        "base_model": base.get("repo_id") or model_key,
        "base_model_revision": base["revision"],
        "base_model_source": base["source"],
        "recipe": recipe_key,
        "recipe_sha256": variant["recipe_sha256"],
        "scheme": variant["scheme"],
        "calibration_hash": variant.get("calibration_hash") or "",
        "compression_ratio": f"{variant['compression_ratio']}",
        "size_bytes": str(variant["size_bytes"]),
        "task_set": report["task_set"],
        "recovery_avg": f"{report['average_recovery']}",
        "recovery_threshold": f"{report['threshold']}",
        "dagster_run_id": context.run.run_id,
        "dagster_run_url": run_url,
        "variant_version": variant["version"],
    }
    for lib, ver in variant["library_versions"].items():
        props[f"{lib.replace('-', '_')}_version"] = ver
    for r in report["recoveries"]:
        metric = r["metric"].replace(",", "_").replace("-", "_")
        props[f"eval_{r['task']}_{metric}"] = f"{r['variant']:.6g}"
        props[f"eval_base_{r['task']}_{metric}"] = f"{r['base']:.6g}"
        props[f"recovery_{r['task']}_{metric}"] = f"{r['recovery_pct']}"
    if hub_info.get("published"):
        props["hub_repo"] = hub_info["repo_id"]
        props["hub_commit"] = hub_info["commit_sha"]
    return props


def _run_url(settings: SettingsResource, run_id: str) -> str:
    base = settings.get().automation.dagster_url.rstrip("/")
    return f"{base}/runs/{run_id}"
