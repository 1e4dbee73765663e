"""Recovery of a compressed variant against its base, per metric and on average."""

from __future__ import annotations

from dataclasses import dataclass

from dagster_project.evaluation.hf_eval import EvalResult
from dagster_project.evaluation.tasks import TaskSet


@dataclass
class Recovery:
    task: str
    metric: str
    base: float
    variant: float
    recovery_pct: float
    near_chance: bool
    primary: bool


def recovery_pct(base: float, variant: float, higher_is_better: bool) -> float:
    """100 = as good as base. Lower-is-better metrics (perplexity) invert the ratio."""
    if higher_is_better:
        return 100.0 * variant / base if base else 0.0
    return 100.0 * base / variant if variant else 0.0


def compare(base: EvalResult, variant: EvalResult, task_set: TaskSet) -> list[Recovery]:
    out = []
    primaries = {(t.name, t.primary_metric) for t in task_set.tasks}
    chance = {t.name: t.chance for t in task_set.tasks}
    for score in base.scores:
        other = variant.score(score.task, score.metric)
        if other is None:
            continue
        c = chance.get(score.task)
        # Within two standard errors of random guessing, a "recovery" means nothing.
        margin = 2 * (score.stderr or 0.0)
        near = c is not None and score.higher_is_better and score.value <= c + max(margin, 0.02)
        out.append(Recovery(
            task=score.task, metric=score.metric, base=score.value, variant=other.value,
            recovery_pct=round(recovery_pct(score.value, other.value, score.higher_is_better), 2),
            near_chance=near, primary=(score.task, score.metric) in primaries,
        ))
    return out


def average_recovery(recoveries: list[Recovery]) -> float | None:
    """Mean recovery over the primary metrics that are not near chance."""
    usable = [r.recovery_pct for r in recoveries if r.primary and not r.near_chance]
    return round(sum(usable) / len(usable), 2) if usable else None
