"""Base models: a Hub repo pinned to a commit, a local / PVC folder, or the demo model built here."""


import hashlib
import json
import shutil
from pathlib import Path

from dagster import AssetExecutionContext, DataVersion, MaterializeResult, MetadataValue, asset

from dagster_project.atomic import atomic_directory
from dagster_project.models.keys import REVISION_TAG
from dagster_project.models.catalog import ModelSource, resolve_model
from dagster_project.k8s import op_tags
from dagster_project.partitions import model_partitions
from dagster_project.artifacts import ArtifactStore
from dagster_project.artifacts.step import StepStorage
from dagster_project.resources.hf_hub import HuggingFaceHubResource

CODE_VERSION = "1"


@asset(
    partitions_def=model_partitions,
    group_name="models",
    code_version=CODE_VERSION,
    kinds={"huggingface", "pytorch"},
    op_tags=op_tags("base_model"),
    description="A base model pinned to a revision (commit sha or content hash), stored as a folder.",
)
def base_model(
    context: AssetExecutionContext, hub: HuggingFaceHubResource, artifacts: ArtifactStore
) -> MaterializeResult:
    key = context.partition_key
    source = resolve_model(key, revision=context.run.tags.get(REVISION_TAG))
    store = artifacts.step()
    layout = store.layout
    folder, revision = _fetch(context, source, hub, store)
    info = describe_model_folder(folder)
    manifest = {"key": key, "source": source.source, "repo_id": source.repo_id, "revision": revision,
                "path": str(folder), **info, "license": source.license or info.get("license")}
    if store.remote:  # later steps start on an empty disk: the folder goes to the store
        stored = layout.base_dir(key, revision)
        if folder.resolve() != stored.resolve() and not store.has_folder(stored):
            shutil.rmtree(stored, ignore_errors=True)
            shutil.copytree(folder, stored)
        if not store.has_folder(stored):
            store.push_folder(stored)
        manifest["store_path"] = store.rel(stored)
    store.write_json(layout.base_manifest(key), manifest)
    return MaterializeResult(
        metadata={
            "source": source.source,
            "repo_id": source.repo_id or "",
            "revision": revision,
            "architecture": info["architecture"],
            "parameters": MetadataValue.int(info["parameters"]),
            "size_mb": MetadataValue.float(round(info["size_bytes"] / 2**20, 2)),
            "license": manifest["license"] or "unknown",
            "path": MetadataValue.path(str(folder)),
        },
        data_version=DataVersion(revision),
    )


def _fetch(context, source: ModelSource, hub: HuggingFaceHubResource, store: StepStorage) -> tuple[Path, str]:
    if source.source == "demo":
        from dagster_project.demo.model import build_demo_model

        report = build_demo_model(log=context.log.info)
        context.log.info(
            f"demo model: held-out perplexity {report.trained_perplexity} (untrained {report.untrained_perplexity})"
        )
        return Path(report.path), report.content_hash
    if source.source == "local":
        folder = Path(source.path).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"model {source.key!r}: {folder} has no config.json (not a Hugging Face model folder)")
        return folder, folder_content_hash(folder)
    revision = hub.resolve_revision(source.repo_id, source.revision)
    target = store.layout.base_dir(source.key, revision)
    if store.remote and store.has_folder(target):
        return store.pull_folder(target), revision
    if not (target / "config.json").is_file():
        context.log.info(f"downloading {source.repo_id}@{revision}")
        with atomic_directory(target, replace=True) as tmp:
            hub.snapshot(source.repo_id, revision, tmp)
            shutil.rmtree(tmp / ".cache", ignore_errors=True)
    return target, revision


def describe_model_folder(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    weights = list(folder.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"{folder} has no .safetensors weights")
    params = 0
    for w in weights:
        params += _safetensors_param_count(w)
    licence = None
    readme = folder / "README.md"
    if readme.is_file() and readme.read_text(errors="ignore").startswith("---"):
        import yaml

        try:
            front = yaml.safe_load(readme.read_text().split("---")[1]) or {}
            licence = front.get("license")
        except yaml.YAMLError:
            pass
    return {
        "architecture": (config.get("architectures") or ["unknown"])[0],
        "model_type": config.get("model_type", "unknown"),
        "parameters": params,
        "size_bytes": sum(w.stat().st_size for w in weights),
        "license": licence,
    }


def _safetensors_param_count(path: Path) -> int:
    """Read the safetensors header only (the safetensors library; no tensor is loaded): a corrupt or
    truncated file fails here, before any compression."""
    from math import prod

    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return sum(prod(f.get_slice(name).get_shape()) for name in f.keys())
    except SafetensorError as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ")
        if "incomplete metadata" in reason:  # e.g. an interrupted download or copy
            raise ValueError(f"{path} is truncated: its header describes more bytes than the file has ({reason})") from None
        raise ValueError(f"{path} is not a valid safetensors file ({reason})") from None


def folder_content_hash(folder: Path) -> str:
    """A revision for local folders: sha256 over file names and contents."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
