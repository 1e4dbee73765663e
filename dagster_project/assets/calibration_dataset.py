"""Calibration data: tokenized samples for one base model's tokenizer, content-hashed."""


from pathlib import Path

from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, MetadataValue, asset
from pydantic import Field

from dagster_project.calibration.build import DEFAULT_SOURCE, CalibrationSpec, build_calibration
from dagster_project.k8s import op_tags
from dagster_project.partitions import model_partitions
from dagster_project.artifacts import ArtifactStore


class CalibrationConfig(Config):
    source: str = Field(default=DEFAULT_SOURCE, description="local .jsonl/.txt file or Hugging Face dataset id")
    split: str = "train"
    text_column: str = "text"
    num_samples: int = Field(default=64, description="RHOAI default 512; small for the demo")
    max_seq_length: int = Field(default=256, description="RHOAI default 2048; small for the demo")
    seed: int = 42


@asset(
    partitions_def=model_partitions,
    deps=["base_model"],
    group_name="models",
    code_version="1",
    kinds={"huggingface"},
    op_tags=op_tags("calibration_dataset"),
    description="Tokenized calibration samples (chat template applied when the tokenizer has one).",
)
def calibration_dataset(
    context: AssetExecutionContext, config: CalibrationConfig, artifacts: ArtifactStore
) -> MaterializeResult:
    key = context.partition_key
    store = artifacts.step()
    layout = store.layout
    base = store.read_json(layout.base_manifest(key), f"base_model[{key}]")
    spec = CalibrationSpec(**config.model_dump())  # validates ranges before loading anything
    result = build_calibration(spec, tokenizer_dir=store.base_folder(base), output_root=layout.calibration_root(key))
    store.push_folder(Path(result.path))
    store.write_json(layout.calibration_manifest(key), {**result.__dict__, "base_revision": base["revision"],
                                                        "store_path": store.rel(result.path)})
    return MaterializeResult(
        metadata={
            "content_hash": result.content_hash,
            "num_samples": MetadataValue.int(result.num_samples),
            "total_tokens": MetadataValue.int(result.total_tokens),
            "mean_tokens": MetadataValue.float(result.mean_tokens),
            "chat_template_applied": MetadataValue.bool(result.chat_template_applied),
            "seed": MetadataValue.int(spec.seed),
            "source": spec.source,
            "path": MetadataValue.path(result.path),
        },
        data_version=DataVersion(result.content_hash),
    )
