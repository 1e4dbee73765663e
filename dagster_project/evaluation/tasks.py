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
        # Token perplexity says how much of the distribution survives; next-word accuracy over 774
        # held-out items (greedy, whole word) says whether the model's top guesses do.
        recovery_threshold=98.0,
        tasks=(
            TaskSpec(name="dmc_jargon_ppl", primary_metric="token_perplexity"),
            TaskSpec(name="dmc_jargon_lastword", primary_metric="acc", chance=0.0),
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

LOWER_IS_BETTER = frozenset({"word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity",
                             "token_perplexity"})


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
            # Word perplexity is left out: over this tiny model's vocabulary it runs to 5 digits and
            # says less than token perplexity (derived below) and bits per byte.
            "metric_list": [
                {"metric": "bits_per_byte", "aggregation": "bits_per_byte", "higher_is_better": False},
            ],
            "metadata": {"version": 1.0},
        },
        # LAMBADA-style: the passage so far, then the next word; acc = the greedy continuation is
        # exactly that word. (No target perplexity: lm-eval bootstraps its stderr with 100,000
        # resamples, a minute of CPU per evaluation here; token perplexity covers likelihood.)
        "dmc_jargon_lastword": {
            "task": "dmc_jargon_lastword",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(eval_dir / "jargon_heldout_lastword.jsonl")}},
            "test_split": "test",
            "output_type": "loglikelihood",
            # The space goes at the end of the context: lm-eval moves it into the continuation, so
            # the model scores " word" as it was trained (its target_delimiter is not applied here).
            "doc_to_text": "{{context}} ",
            "doc_to_target": "{{target}}",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            ],
            "metadata": {"version": 1.0},
        },
    }


def token_perplexity(model_path: str | Path, bits_per_byte: float, limit: int | None = None) -> float:
    """Token-level perplexity of `dmc_jargon_ppl`, from lm-eval's bits per byte.

    lm-eval has no per-token metric for `loglikelihood_rolling`, but bits per byte is the summed
    log-likelihood over the documents' bytes: over the token count of the model's own tokenizer
    instead (no special tokens, as lm-eval scores them) it is the token perplexity."""
    import json
    import math

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    path = PACKAGE_DATA / "eval" / "jargon_heldout_ppl.jsonl"
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()][:limit]
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return math.exp(bits_per_byte * math.log(2) * n_bytes / n_tokens)


def add_derived_scores(result, model_path: str | Path, limit: int | None = None):
    """Add `dmc_jargon_ppl/token_perplexity` to an EvalResult that scored bits per byte (either backend)."""
    from dagster_project.evaluation.hf_eval import TaskScore

    bpb = result.score("dmc_jargon_ppl", "bits_per_byte")
    if bpb is not None and result.score("dmc_jargon_ppl", "token_perplexity") is None:
        result.scores.append(TaskScore(task="dmc_jargon_ppl", metric="token_perplexity",
                                       value=token_perplexity(model_path, bpb.value, limit), stderr=None,
                                       higher_is_better=False))
    return result


def write_offline_tasks(directory: Path) -> Path:
    """Write the offline task YAMLs into `directory` for `--include_path` / TaskManager."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, config in offline_task_configs().items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


USER_TASK_SETS_FILE = "task_sets.yaml"


def load_user_task_sets(include_path: str | Path | None) -> dict[str, TaskSet]:
    """Task sets defined next to a user's lm-eval task YAMLs, in `<include_path>/task_sets.yaml`:

        my-domain:
          offline: true            # local data only: lm-eval's built-in tasks are not indexed
          recovery_threshold: 97
          tasks:
            - {name: my_task, primary_metric: acc, chance: 0.25, num_fewshot: 0}
    """
    if not include_path:
        return {}
    path = Path(include_path) / USER_TASK_SETS_FILE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    data = data.get("task_sets", data)
    out = {}
    for name, spec in data.items():
        if name in TASK_SETS:
            raise ValueError(f"{path}: task set {name!r} is built in; choose another name")
        spec = dict(spec)
        tasks = tuple(TaskSpec(**t) if isinstance(t, dict) else TaskSpec(name=str(t)) for t in spec.pop("tasks"))
        out[name] = TaskSet(name=name, tasks=tasks, **spec)
    return out


def resolve_task_set(name: str, include_path: str | Path | None = None) -> TaskSet:
    user = load_user_task_sets(include_path)
    if name in user:
        return user[name]
    if name not in TASK_SETS:
        known = sorted(TASK_SETS) + sorted(user)
        raise ValueError(f"unknown task set {name!r}; known: {', '.join(known)}"
                         + ("" if include_path else " (user task sets need include_path)"))
    return TASK_SETS[name]


def _referenced_data_files(config_text: str) -> list[Path]:
    """Absolute `data_files` of a task YAML (best effort: lm-eval YAMLs may hold custom tags)."""

    class _Loose(yaml.SafeLoader):
        pass

    _Loose.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        config = yaml.load(config_text, Loader=_Loose) or {}
    except yaml.YAMLError:
        return []
    files = ((config.get("dataset_kwargs") or {}) if isinstance(config, dict) else {}).get("data_files") or {}
    values = files.values() if isinstance(files, dict) else [files]
    out = []
    for v in values:
        for item in (v if isinstance(v, list) else [v]):
            if isinstance(item, str) and Path(item).is_absolute() and Path(item).is_file():
                out.append(Path(item))
    return out


def task_set_fingerprint(task_set: TaskSet, include_path: str | Path | None = None) -> str:
    """Changes when the task list or the task data change, so cached scores are not reused.

    Covers the shipped offline tasks and, with `include_path`, every file of the user's task
    folder plus the local data files its YAMLs point to."""
    import hashlib
    import json

    digest = hashlib.sha256(task_set.model_dump_json().encode())
    if task_set.offline:
        for name, config in sorted(offline_task_configs().items()):
            digest.update(json.dumps(config, sort_keys=True).encode())
            for path in config["dataset_kwargs"]["data_files"].values():
                digest.update(Path(path).read_bytes())
    if include_path:
        root = Path(include_path)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            data = path.read_bytes()
            digest.update(str(path.relative_to(root)).encode() + b"\0" + data)
            if path.suffix in (".yaml", ".yml"):
                for ref in _referenced_data_files(data.decode(errors="replace")):
                    if root not in ref.parents:
                        digest.update(str(ref).encode() + b"\0" + ref.read_bytes())
    return digest.hexdigest()[:12]


def write_task_dir(directory: Path) -> Path:
    """The shipped offline tasks with their data copied beside them, for another process or pod
    (the vLLM runner) whose Python has no `dagster_project` data of the same path."""
    import os
    import shutil

    directory = Path(directory)
    if (directory / ".complete").is_file():
        return directory
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    for name, config in offline_task_configs().items():
        sources = config["dataset_kwargs"]["data_files"]
        config = {**config, "dataset_kwargs": {"data_files": {}}}
        for split, src in sources.items():
            dest = directory / "data" / Path(src).name
            shutil.copyfile(src, tmp / "data" / Path(src).name)
            config["dataset_kwargs"]["data_files"][split] = str(dest.resolve())
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp / ".complete").write_text("")
    try:
        tmp.rename(directory)
    except OSError:  # another step wrote it first
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
