"""Helpers for the evaluation tests: a user task folder over a tiny local jsonl, the vLLM
stand-in wiring, and materialization through the project's own Definitions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml


FAKE_RUNNER = Path(__file__).with_name("fake_vllm_lm_eval.py")
# 12 four-way items: a held-out passage's real continuation vs the same words shuffled.
TINY_CLOZE = Path(__file__).with_name("data") / "tiny_cloze.jsonl"


@pytest.fixture
def user_tasks(tmp_path) -> Path:
    """`<dir>/tiny_cloze.yaml` over 12 local jsonl items, and `task_sets.yaml` naming set `tiny`."""
    d = tmp_path / "user_tasks"
    d.mkdir()
    (d / "tiny_cloze.jsonl").write_text(TINY_CLOZE.read_text())
    (d / "tiny_cloze.yaml").write_text(yaml.safe_dump({
        "task": "tiny_cloze",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(d / "tiny_cloze.jsonl")}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{context}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "label",
        "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }, sort_keys=False))
    (d / "task_sets.yaml").write_text(yaml.safe_dump({
        "tiny": {"offline": True, "recovery_threshold": 80.0,
                 "tasks": [{"name": "tiny_cloze", "primary_metric": "acc", "chance": 0.25}]},
    }))
    return d


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path) -> Path:
    """Route the vLLM invocation to the stand-in (this Python, the real runner, an HF model)."""
    record = tmp_path / "fake_vllm_record.json"
    monkeypatch.setenv("DMC_VLLM_PYTHON", sys.executable)
    monkeypatch.setenv("DMC_VLLM_RUNNER", str(FAKE_RUNNER))
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(record))
    return record


def eval_run_config(**config) -> dict:
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    ops = {name: {"config": dict(config)} for name in ("base_evaluation", "evaluation_report")}
    return {**quiet, "ops": ops}


def materialize_assets(instance, assets, partition_key, run_config=None, raise_on_error=True):
    from dagster import materialize

    from dagster_project import definitions as d

    config = dict(run_config or {"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    names = {a.node_def.name for a in assets}
    if "ops" in config:
        config["ops"] = {k: v for k, v in config["ops"].items() if k in names}
    return materialize(assets, partition_key=partition_key, instance=instance, resources=d.defs.resources,
                       run_config=config, raise_on_error=raise_on_error)


def add_partitions(instance, model: str, recipes: list[str]) -> None:
    from dagster_project.partitions import model_partitions, recipe_partitions

    instance.add_dynamic_partitions(model_partitions.name, [model])
    instance.add_dynamic_partitions(recipe_partitions.name, recipes)


def variant_key(model: str, recipe: str):
    from dagster import MultiPartitionKey

    return MultiPartitionKey({"model": model, "recipe": recipe})


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())
