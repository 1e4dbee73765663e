"""The settings object (dagster_project/settings.py): documented in full, and strict with bad values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dagster_project.k8s import Placement
from dagster_project.settings import GROUPS, SettingsError, load_settings, variable_names

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(r"^\| `(DMC_[A-Z0-9_]+)` \|(?: `([a-z0-9_.]+)` \|)?", re.M)


def readme_rows() -> dict[str, str | None]:
    """Variable → the `setting` column of the README's Configuration tables."""
    text = README.read_text()
    start = text.index("## Configuration\n")
    section = text[start:text.index("\n## ", start + 1)]
    return {m.group(1): m.group(2) for m in ROW.finditer(section)}


def test_every_setting_is_in_the_readme_table_and_nothing_else_is():
    documented = readme_rows()
    settings = {str(f.validation_alias): f"{g}.{name}"
                for g, cls in GROUPS.items() for name, f in cls.model_fields.items()}
    placement = set(Placement.env_names().values())
    assert set(settings) == set(variable_names())
    missing = sorted((set(settings) | placement) - set(documented))
    unknown = sorted(set(documented) - set(settings) - placement)
    assert missing == [], f"settings missing from the README's Configuration tables: {missing}"
    assert unknown == [], f"README rows naming no setting: {unknown}"
    wrong = {v: (documented[v], s) for v, s in settings.items() if documented[v] != s}
    assert wrong == {}, f"README 'setting' column differs from the model: {wrong}"


def test_a_bad_value_fails_with_one_line_naming_the_variable():
    with pytest.raises(SettingsError) as info:
        load_settings({"DMC_REGISTRY_RETRY_ATTEMPTS": "three"})
    message = str(info.value)
    assert "\n" not in message and message.startswith("DMC_REGISTRY_RETRY_ATTEMPTS='three': ")
    with pytest.raises(SettingsError, match=r"^DMC_EXECUTOR='k9s': .*'k8s'"):
        load_settings({"DMC_EXECUTOR": "k9s"})


def test_a_bad_token_is_named_but_never_echoed():
    with pytest.raises(SettingsError) as info:
        load_settings({"DMC_REGISTRY_TOKEN": "tok-canary", "DMC_REGISTRY_KIND": "zookeeper"})
    assert "DMC_REGISTRY_KIND='zookeeper'" in str(info.value)
    assert "tok-canary" not in str(info.value)


def test_values_come_from_the_process_environment_and_empty_means_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("DMC_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("DMC_EVAL_LIMIT", "7")
    monkeypatch.setenv("DMC_DEVICE", "")
    s = load_settings()
    assert (s.paths.var_dir, s.eval.limit, s.compute.device) == (tmp_path, 7, "auto")
    monkeypatch.setenv("DMC_EVAL_LIMIT", "8")  # read again: tests and long-lived processes see changes
    assert load_settings().eval.limit == 8


def test_an_explicit_environment_replaces_the_process_one(monkeypatch):
    monkeypatch.setenv("DMC_EXECUTOR", "multiprocess")
    assert load_settings({}).compute.executor == "default"
    assert load_settings({"DMC_EXECUTOR": "k8s"}).compute.executor == "k8s"
    assert load_settings({"DMC_K8S_GPU_COUNT": "2"}).placement_variables == {"DMC_K8S_GPU_COUNT": "2"}
