"""The CI skip policy itself: under CI=true a skip fails the run unless the allowlist names it."""

import pytest

TINY = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("needs a thing this machine lacks")
"""


@pytest.fixture
def tiny(pytester):
    pytester.makepyfile(test_tiny=TINY)
    return pytester


def _run(pytester, monkeypatch, ci: str | None, allowlist: str | None = None):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    if allowlist is not None:
        path = pytester.path / "allow.txt"
        path.write_text(allowlist)
        monkeypatch.setenv("DMC_SKIP_ALLOWLIST", str(path))
    return pytester.runpytest("-p", "tests.skip_policy", "-p", "no:cacheprovider")


def test_skip_fails_the_run_in_ci(tiny, monkeypatch):
    result = _run(tiny, monkeypatch, "true")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAIL the run (CI=true)*", "SKIPPED test_tiny.py::test_skips: needs a thing*"])


def test_skip_is_reported_but_passes_locally(tiny, monkeypatch):
    result = _run(tiny, monkeypatch, None)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*would fail CI (CI=true)*", "SKIPPED test_tiny.py::test_skips: needs a thing*"])


def test_allowlisted_skip_passes_in_ci(tiny, monkeypatch):
    result = _run(tiny, monkeypatch, "true", "# comment\n^needs a thing :: the machine has none, on purpose\n")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    assert "FAIL the run" not in result.stdout.str()


def test_failures_keep_their_exit_code(pytester, monkeypatch):
    pytester.makepyfile(test_bad="import pytest\ndef test_bad():\n    assert False\n"
                                 "def test_skip():\n    pytest.skip('no reason')\n")
    assert _run(pytester, monkeypatch, "true").ret == pytest.ExitCode.TESTS_FAILED


def test_module_level_skip_counts(pytester, monkeypatch):
    pytester.makepyfile(test_mod="import pytest\npytest.skip('whole module', allow_module_level=True)\n")
    result = _run(pytester, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIPPED test_mod.py: whole module"])


def test_malformed_allowlist_is_an_error(tiny, monkeypatch):
    result = _run(tiny, monkeypatch, "true", "a pattern without a reason\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected '<reason regex> :: <why allowed>'" in result.stderr.str()


def test_repository_allowlist_parses_and_gives_reasons():
    from tests.skip_policy import ALLOWLIST, load_allowlist

    entries = load_allowlist(ALLOWLIST)
    assert entries and all(e.why for e in entries)
