"""VersionFilter: the one lookup definition shared by every backend, `dmc` and the Python API."""

from __future__ import annotations

import dataclasses

import pytest

from dagster_project.registry import PublishedVersion, VersionFilter, open_registry

from .test_backends import record


def version(**overrides) -> PublishedVersion:
    base = dict(model_name="m", version_name="v-1", uri="pvc://c/m", model_format_name="vLLM",
                properties={"base_model": "org/b", "recipe": "w4a16-rtn", "scheme": "W4A16", "recovery_avg": "99.0"},
                approved=True, archived=False, registry_model_id="1", registry_version_id="2",
                registry_artifact_id="3", source_kind="dagster", source_id="", source_name="")
    base.update(overrides)
    return PublishedVersion(**base)


def test_defaults_select_approved_live_versions():
    flt = VersionFilter()
    assert flt.matches(version())
    assert not flt.matches(version(approved=False))
    assert not flt.matches(version(archived=True))
    assert VersionFilter(approved_only=False, include_archived=True).matches(version(approved=False, archived=True))


def test_equalities_and_numeric_bound():
    v = version()
    assert VersionFilter(base_model="org/b", recipe="w4a16-rtn", scheme="W4A16").matches(v)
    assert VersionFilter(base_model="org/b", recipe="w4a16-rtn").equalities() == {"base_model": "org/b",
                                                                                  "recipe": "w4a16-rtn"}
    assert not VersionFilter(recipe="other").matches(v)
    assert VersionFilter(min_recovery=99).matches(v)
    assert not VersionFilter(min_recovery=99.01).matches(v)
    # "100.0" < "99.0" as text: the bound is numeric, which is why servers only narrow by equality
    assert VersionFilter(min_recovery="99.5").matches(version(properties={"recovery_avg": "100.0"}))
    assert not VersionFilter(min_recovery=0).matches(version(properties={"recovery_avg": "nan"}))


def test_bad_values_fail_at_construction_and_the_filter_is_frozen():
    with pytest.raises(ValueError, match="min_recovery must be a number"):
        VersionFilter(min_recovery="high")
    with pytest.raises(ValueError, match="NaN"):
        VersionFilter(min_recovery=float("nan"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        VersionFilter().recipe = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="not both"):
        VersionFilter.of(VersionFilter(), recipe="x")


def test_value_object_and_keywords_give_the_same_lookup(tmp_path):
    reg = open_registry(f"sqlite:///{tmp_path}/r.sqlite")
    for i, rec_val in enumerate(("98.0", "99.5", "100.2")):
        reg.publish(record("vf", f"v-00000000000{i}", properties={"recovery_avg": rec_val}))
    flt = VersionFilter(base_model="org/base-vf", min_recovery=99)
    assert [v.version_name for v in reg.list_versions(flt)] == ["v-000000000001", "v-000000000002"]
    assert reg.list_versions(flt) == reg.list_versions(base_model="org/base-vf", min_recovery=99)
