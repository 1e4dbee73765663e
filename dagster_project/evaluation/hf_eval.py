"""lm-eval's `hf` backend, in-process: same environment as compression (CPU here, GPU when present)."""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from dagster_project.evaluation.tasks import TaskSet, write_offline_tasks


@dataclass
class TaskScore:
    task: str
    metric: str
    value: float
    stderr: float | None
    higher_is_better: bool


@dataclass
class EvalResult:
    model_path: str
    task_set: str
    scores: list[TaskScore]
    eval_seconds: float
    backend: str = "hf"
    device: str = "cpu"
    lm_eval_version: str = ""
    raw: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> "EvalResult":
        data = json.loads(text)
        data["scores"] = [TaskScore(**s) for s in data["scores"]]
        return cls(**data)

    def score(self, task: str, metric: str) -> TaskScore | None:
        return next((s for s in self.scores if s.task == task and s.metric == metric), None)


def hf_model_args(model_path: Path, dtype: str = "float32", batch_size: str | int = 8) -> str:
    # `device` must not appear here too: simple_evaluate raises TypeError when it is in both.
    return f"pretrained={model_path},dtype={dtype}"


def evaluate_hf(
    model_path: Path,
    task_set: TaskSet,
    device: str = "cpu",
    batch_size: int | str = 8,
    include_path: str | None = None,
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalResult:
    import lm_eval
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    from lm_eval.models.huggingface import HFLM

    from dagster_project.evaluation.vllm_runner import watch_batches

    # The same construction simple_evaluate does for model="hf", with a progress line per batch of requests.
    lm = HFLM.create_from_arg_string(
        hf_model_args(model_path), {"batch_size": batch_size, "max_batch_size": None, "device": device})
    watch_batches(lm, log or (lambda _: None))
    with tempfile.TemporaryDirectory(prefix="dmc-tasks-") as tmp:
        paths = [str(write_offline_tasks(Path(tmp)))]
        if include_path:
            paths.append(include_path)
        # Indexing lm-eval's built-in tasks costs seconds; offline task sets do without them.
        manager = TaskManager(include_path=paths, include_defaults=not task_set.offline)
        by_shots: dict[int | None, list[str]] = {}
        for spec in task_set.tasks:
            by_shots.setdefault(spec.num_fewshot, []).append(spec.name)
        merged: dict = {"results": {}, "higher_is_better": {}}
        for shots, names in by_shots.items():
            task_limit = limit or next((t.limit for t in task_set.tasks if t.name in names and t.limit), None)
            out = lm_eval.simple_evaluate(
                model=lm,
                tasks=names,
                num_fewshot=shots,
                batch_size=batch_size,
                device=device,
                limit=task_limit,
                task_manager=manager,
                random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234,
                log_samples=False,
            )
            merged["results"].update(out["results"])
            merged["higher_is_better"].update(out.get("higher_is_better", {}))
    scores = parse_results(merged)
    from importlib.metadata import version

    return EvalResult(
        model_path=str(model_path), task_set=task_set.name, scores=scores,
        eval_seconds=round(time.perf_counter() - started, 2), device=device,
        lm_eval_version=version("lm-eval"), raw=merged["results"],
    )


def parse_results(results: dict) -> list[TaskScore]:
    """Flatten lm-eval's results dict ('acc,none', 'acc_stderr,none', ...) into TaskScores."""
    from dagster_project.evaluation.tasks import LOWER_IS_BETTER

    scores = []
    for task, metrics in results.get("results", {}).items():
        hib = results.get("higher_is_better", {}).get(task, {})
        for key, value in metrics.items():
            if "_stderr" in key or key in ("alias", "sample_len", "samples") or not isinstance(value, (int, float)):
                continue
            metric, _, filt = key.partition(",")
            name = metric if filt in ("", "none") else f"{metric},{filt}"
            stderr = metrics.get(f"{metric}_stderr,{filt}" if filt else f"{metric}_stderr")
            higher = hib.get(metric, metric not in LOWER_IS_BETTER)
            scores.append(TaskScore(
                task=task, metric=name, value=float(value),
                stderr=float(stderr) if isinstance(stderr, (int, float)) and not math.isnan(stderr) else None,
                higher_is_better=bool(higher),
            ))
    return scores
