"""Markdown tables and PNG plots for the Dagster UI."""

from __future__ import annotations

import io
from typing import Iterable

from dagster_project.evaluation.recovery import Recovery


def recovery_table(recoveries: Iterable[Recovery]) -> str:
    lines = ["| task | metric | base | compressed | recovery % |", "|---|---|---:|---:|---:|"]
    for r in recoveries:
        flag = " (near chance)" if r.near_chance else ""
        lines.append(f"| {r.task} | {r.metric} | {r.base:.5g} | {r.variant:.5g} | {r.recovery_pct:.2f}{flag} |")
    return "\n".join(lines)


def variants_table(rows: list[dict]) -> str:
    """rows: model, recipe, size_mb, ratio, metric, base, variant, recovery, approved, and optionally
    kl (KL(base ‖ variant), nats per token) and top1 (agreement with the base's top token, 0..1)."""
    lines = [
        "| model | recipe | size MB | ratio | metric | base | variant | KL vs base | top-1 agree % | recovery % | approved |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        kl = "-" if r.get("kl") is None else f"{r['kl']:.3e}"
        top1 = "-" if r.get("top1") is None else f"{100 * r['top1']:.2f}"
        lines.append(
            f"| {r['model']} | {r['recipe']} | {r['size_mb']:.2f} | {r['ratio']:.2f}x | {r['metric']} | "
            f"{r['base']:.5g} | {r['variant']:.5g} | {kl} | {top1} | {r['recovery']:.2f} | "
            f"{'yes' if r['approved'] else 'no'} |"
        )
    return "\n".join(lines)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plot_recovery(recoveries: list[Recovery], title: str, threshold: float | None = None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.task}\n{r.metric}" for r in recoveries]
    values = [r.recovery_pct for r in recoveries]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(values)), 3.2))
    colors = ["#999999" if r.near_chance else ("#2a9d8f" if threshold is None or r.recovery_pct >= threshold else "#e76f51") for r in recoveries]
    ax.bar(labels, values, color=colors)
    if threshold is not None:
        ax.axhline(threshold, color="#264653", linestyle="--", linewidth=1, label=f"threshold {threshold:g} %")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_ylabel("recovery %")
    ax.set_ylim(0, max(110, max(values, default=0) * 1.05))
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=7)
    return _png(fig)


def plot_score_vs_size(points: list[dict], metric: str, title: str) -> bytes:
    """points: label, size_mb, score (the base included)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for p in points:
        ax.scatter(p["size_mb"], p["score"], s=40, color="#264653" if p.get("base") else "#2a9d8f")
        ax.annotate(p["label"], (p["size_mb"], p["score"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("weights size (MB)")
    from dagster_project.evaluation.tasks import LOWER_IS_BETTER

    better = "lower" if metric.split("/")[-1].split(",")[0] in LOWER_IS_BETTER else "higher"
    ax.set_ylabel(f"{metric} ({better} is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_recovery_by_variant(variants: dict[str, list[dict]], title: str, threshold: float | None = None) -> bytes:
    """Grouped bars: one group per task (its primary metric), one bar per variant.

    variants: recipe → recoveries as stored in evaluation.json (dicts with task, metric,
    recovery_pct, near_chance, primary). Near-chance bars are hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys: list[tuple[str, str]] = []
    for recs in variants.values():
        for r in recs:
            if r.get("primary") and (r["task"], r["metric"]) not in keys:
                keys.append((r["task"], r["metric"]))
    names = list(variants)
    n = max(1, len(names))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(4.5, 1.0 + 0.5 * n * max(1, len(keys))), 3.4))
    cmap = plt.get_cmap("tab10")
    top = 0.0
    for i, name in enumerate(names):
        by_key = {(r["task"], r["metric"]): r for r in variants[name]}
        xs, ys, hatches = [], [], []
        for j, key in enumerate(keys):
            r = by_key.get(key)
            if r is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(r["recovery_pct"])
            hatches.append("//" if r.get("near_chance") else "")
        bars = ax.bar(xs, ys, width=width * 0.95, color=cmap(i % 10), label=name)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        top = max([top, *ys])
    if threshold is not None:
        ax.axhline(threshold, color="#264653", linestyle="--", linewidth=1, label=f"threshold {threshold:g} %")
    ax.set_xticks(range(len(keys)), [f"{t}\n{m}" for t, m in keys], fontsize=7)
    ax.set_ylabel("recovery %")
    ax.set_ylim(0, max(110, top * 1.05))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
