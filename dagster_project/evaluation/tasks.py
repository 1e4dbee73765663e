"""Task sets: the project's offline tasks over shipped data, RedHatAI's OpenLLM v1 set, and quick checks."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from dagster_project.settings import PACKAGE_DATA


class TaskSpec(BaseModel, frozen=True):
    name: str
    num_fewshot: int | None = None
    limit: int | None = None
    primary_metric: str = "acc"
    chance: float | None = None  # score of random guessing, for marking near-chance results


class TaskSet(BaseModel, frozen=True):
    name: str
    tasks: tuple[TaskSpec, ...]
    recovery_threshold: float = Field(default=99.0, description="minimum average recovery %, for approval")
    offline: bool = False


TASK_SETS: dict[str, TaskSet] = {
    "demo": TaskSet(
        name="demo",
        offline=True,
        # The demo model is tiny: INT4 costs it a few % where 7B+ models lose < 1 %.
        recovery_threshold=90.0,
        tasks=(
            TaskSpec(name="dmc_jargon_ppl", primary_metric="word_perplexity"),
            TaskSpec(name="dmc_jargon_cloze", primary_metric="acc", chance=0.25),
        ),
    ),
    "quick": TaskSet(name="quick", recovery_threshold=95.0,
                     tasks=(TaskSpec(name="gsm8k", num_fewshot=5, limit=250, primary_metric="exact_match,strict-match"),)),
    # As on RedHatAI's model cards.
    "openllm-v1": TaskSet(
        name="openllm-v1",
        recovery_threshold=99.0,
        tasks=(
            TaskSpec(name="arc_challenge", num_fewshot=25, primary_metric="acc_norm", chance=0.25),
            TaskSpec(name="gsm8k", num_fewshot=5, primary_metric="exact_match,strict-match"),
            TaskSpec(name="hellaswag", num_fewshot=10, primary_metric="acc_norm", chance=0.25),
            TaskSpec(name="mmlu", num_fewshot=5, primary_metric="acc", chance=0.25),
            TaskSpec(name="truthfulqa_mc2", num_fewshot=0, primary_metric="acc"),
            TaskSpec(name="winogrande", num_fewshot=5, primary_metric="acc", chance=0.5),
        ),
    ),
}

LOWER_IS_BETTER = frozenset({"word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity"})


def offline_task_configs() -> dict[str, dict]:
    """lm-eval task configs over the shipped jsonl files (absolute paths, as lm-eval needs)."""
    eval_dir = PACKAGE_DATA / "eval"
    return {
        "dmc_jargon_ppl": {
            "task": "dmc_jargon_ppl",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(eval_dir / "jargon_heldout_ppl.jsonl")}},
            "test_split": "test",
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"}, {"metric": "bits_per_byte"}],
            "metadata": {"version": 1.0},
        },
        "dmc_jargon_cloze": {
            "task": "dmc_jargon_cloze",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(eval_dir / "jargon_heldout_cloze.jsonl")}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": "{{context}}",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "label",
            "target_delimiter": " ",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
            "metadata": {"version": 1.0},
        },
    }


def write_offline_tasks(directory: Path) -> Path:
    """Write the offline task YAMLs into `directory` for `--include_path` / TaskManager."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, config in offline_task_configs().items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def resolve_task_set(name: str) -> TaskSet:
    if name not in TASK_SETS:
        raise ValueError(f"unknown task set {name!r}; known: {', '.join(sorted(TASK_SETS))}")
    return TASK_SETS[name]


def task_set_fingerprint(task_set: TaskSet) -> str:
    """Changes when the task list or the shipped task data change, so cached scores are not reused."""
    import hashlib
    import json

    digest = hashlib.sha256(task_set.model_dump_json().encode())
    if task_set.offline:
        for name, config in sorted(offline_task_configs().items()):
            digest.update(json.dumps(config, sort_keys=True).encode())
            for path in config["dataset_kwargs"]["data_files"].values():
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]
