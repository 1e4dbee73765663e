"""The approval decision: one function used by the report, the asset checks and publication."""

from __future__ import annotations

from dataclasses import dataclass, field

EVALUATION_FILENAME = "evaluation.json"


@dataclass
class Approval:
    approved: bool
    reasons: list[str]
    checks: dict[str, dict] = field(default_factory=dict)


def decide_approval(
    *, loads: bool, average_recovery: float | None, threshold: float,
    size_bytes: int, base_size_bytes: int, load_error: str | None = None,
) -> Approval:
    checks = {
        "loads_and_generates": {
            "passed": loads,
            "detail": "loads and generates" if loads else f"failed to load or generate: {load_error or 'no tokens'}",
        },
        "recovery_meets_threshold": {
            "passed": average_recovery is not None and average_recovery >= threshold,
            "detail": (f"average recovery {average_recovery:.2f} % vs threshold {threshold:g} %"
                       if average_recovery is not None else "no usable scores (failed, or all near chance)"),
        },
        "size_reduced": {
            "passed": 0 < size_bytes < base_size_bytes,
            "detail": f"{size_bytes / 2**20:.2f} MB vs base {base_size_bytes / 2**20:.2f} MB",
        },
    }
    reasons = [f"{'PASS' if c['passed'] else 'FAIL'} {name}: {c['detail']}" for name, c in checks.items()]
    return Approval(approved=all(c["passed"] for c in checks.values()), reasons=reasons, checks=checks)
