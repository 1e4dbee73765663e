"""CI skip policy (a pytest plugin, loaded by tests/conftest.py).

Under CI=true a skipped test fails the run unless its skip reason matches an entry of
tests/skip_allowlist.txt: a green CI must mean every test ran. Locally skips are only reported,
with a note that CI would fail on them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ALLOWLIST = Path(__file__).with_name("skip_allowlist.txt")
_SEPARATOR = " :: "


@dataclass(frozen=True)
class Allowed:
    pattern: re.Pattern
    why: str


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def load_allowlist(path: Path) -> list[Allowed]:
    """Lines `<regex on the skip reason> :: <why this skip is acceptable in CI>`; # comments."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, why = line.partition(_SEPARATOR)
        if not sep or not pattern.strip() or not why.strip():
            raise pytest.UsageError(f"{path}:{number}: expected '<reason regex> :: <why allowed>', got {line!r}")
        entries.append(Allowed(re.compile(pattern.strip()), why.strip()))
    return entries


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    def __init__(self, allowlist: list[Allowed], enforce: bool):
        self.allowlist = allowlist
        self.enforce = enforce
        self.refused: list[tuple[str, str]] = []

    def _record(self, report) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = _reason(report)
        if not any(a.pattern.search(reason) for a in self.allowlist):
            self.refused.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report) -> None:
        self._record(report)

    def pytest_collectreport(self, report) -> None:  # module-level skips, importorskip
        self._record(report)

    def pytest_sessionfinish(self, session) -> None:
        if self.enforce and self.refused and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.refused:
            return
        verdict = "FAIL the run (CI=true)" if self.enforce else "would fail CI (CI=true)"
        terminalreporter.section(f"skips not in {ALLOWLIST.name}: {verdict}", red=self.enforce, yellow=not self.enforce)
        for nodeid, reason in self.refused:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")


def pytest_configure(config) -> None:
    path = Path(os.environ.get("DMC_SKIP_ALLOWLIST", ALLOWLIST))
    config.pluginmanager.register(SkipPolicy(load_allowlist(path), enforce=in_ci()), "dmc-skip-policy")
