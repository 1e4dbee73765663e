"""Compressed variants: one per base model × recipe, made with llmcompressor.oneshot."""


import hashlib
import json
from pathlib import Path

from dagster import AssetDep, AssetExecutionContext, DataVersion, MaterializeResult, MetadataValue, asset

from dagster_project.compression.catalog import resolve_recipe, user_recipe_path
from dagster_project.compression.recipes import check_device
from dagster_project.compression.oneshot_runner import MANIFEST_FILENAME, compress, is_complete_variant, library_versions
from dagster_project.k8s import op_tags
from dagster_project.partitions import by_model, by_recipe, variant_partitions
from dagster_project.artifacts import ArtifactStore
from dagster_project.artifacts.step import StepStorage
from dagster_project.resources.compute import ComputeResource

CODE_VERSION = "1"


def variant_version(base_revision: str, recipe_sha: str, calibration_hash: str | None, libs: dict[str, str]) -> str:
    """What a variant is made of; equal inputs → equal version → no recompression."""
    payload = json.dumps(
        {"base": base_revision, "recipe": recipe_sha, "calibration": calibration_hash, "libs": libs, "code": CODE_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@asset(
    partitions_def=variant_partitions,
    deps=[
        AssetDep("base_model", partition_mapping=by_model),
        AssetDep("calibration_dataset", partition_mapping=by_model),
        AssetDep("recipe", partition_mapping=by_recipe),
    ],
    group_name="compression",
    code_version=CODE_VERSION,
    kinds={"pytorch"},
    pool="model_compute",
    op_tags=op_tags("compressed_model"),
    description="A compressed-tensors checkpoint that vLLM serves, with its recipe saved beside the weights.",
)
def compressed_model(
    context: AssetExecutionContext,
    artifacts: ArtifactStore,
    compute: ComputeResource,
) -> MaterializeResult:
    model_key, recipe_key = _keys(context)
    store = artifacts.step()
    layout = store.layout
    base = store.read_json(layout.base_manifest(model_key), f"base_model[{model_key}]")
    store.pull_file(user_recipe_path(layout.recipes_dir(), recipe_key))  # a registered user recipe
    # Validate the recipe against the architecture before any weights are loaded.
    recipe = resolve_recipe(layout.recipes_dir(), recipe_key, base["architecture"])
    calibration = None
    if recipe.calibrated:
        calibration = store.read_json(layout.calibration_manifest(model_key), f"calibration_dataset[{model_key}]")
    libs = library_versions()
    version = variant_version(base["revision"], recipe.sha256, calibration and calibration["content_hash"], libs)
    out = layout.variant_dir(model_key, recipe_key)

    device = compute.resolve_device()
    check_device(recipe, device)
    manifest = _existing_manifest(store, out)
    if manifest and manifest.get("version") == version:
        context.log.info(f"variant {model_key} × {recipe_key} is up to date (version {version}): no compression")
        reused = True
        uri = store.uri(out)
    else:
        compute.limit_threads(context)
        calibration_dir = None
        if calibration:
            calibration_dir = (store.pull_folder(layout.root / calibration["store_path"])
                               if store.remote else Path(calibration["path"]))
        compress(
            store.base_folder(base), recipe, out,
            calibration_dir=calibration_dir,
            device=device, log=context.log.info,
            manifest_extra={
                "version": version, "base_model": base.get("repo_id") or model_key,
                "base_revision": base["revision"], "calibration_hash": calibration and calibration["content_hash"],
                "placement": recipe.placement, "calibrated": recipe.calibrated,
            },
        )
        uri = store.push_folder(out)
        manifest = _existing_manifest(store, out)
        reused = False
    return MaterializeResult(
        metadata={
            "recipe": recipe_key,
            "recipe_sha256": recipe.sha256,
            "scheme": recipe.scheme,
            "placement": recipe.placement,
            "base_revision": base["revision"],
            "calibration_hash": manifest.get("calibration_hash") or "none (data-free)",
            "version": version,
            "reused_existing": MetadataValue.bool(reused),
            "wall_seconds": MetadataValue.float(manifest["wall_seconds"]),
            "peak_rss_mb": MetadataValue.float(manifest["peak_rss_mb"]),
            **({"peak_rss_increase_mb": MetadataValue.float(manifest["peak_rss_increase_mb"])}
               if "peak_rss_increase_mb" in manifest else {}),  # absent from variants made before it was measured
            **({"peak_gpu_mb": MetadataValue.float(manifest["peak_gpu_mb"])} if manifest.get("peak_gpu_mb") else {}),
            "size_mb": MetadataValue.float(round(manifest["size_bytes"] / 2**20, 3)),
            "base_size_mb": MetadataValue.float(round(manifest["base_size_bytes"] / 2**20, 3)),
            "compression_ratio": MetadataValue.float(manifest["compression_ratio"]),
            "quantized_modules": MetadataValue.int(manifest["quantized_modules"]),
            **{f"version_{k}": v for k, v in manifest["library_versions"].items()},
            "recipe_yaml": MetadataValue.md(f"```yaml\n{recipe.yaml_text}```"),
            "uri": MetadataValue.url(uri) if "://" in uri else uri,
        },
        data_version=DataVersion(version),
    )


def _keys(context: AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys["model"], keys["recipe"]


def _existing_manifest(store: StepStorage, out: Path) -> dict | None:
    if store.remote:  # the store's copy decides; its weights are pulled only when a step needs them
        return store.read_folder_json(out, MANIFEST_FILENAME, "variant manifest")
    if not is_complete_variant(out):
        return None
    return json.loads((out / MANIFEST_FILENAME).read_text())
