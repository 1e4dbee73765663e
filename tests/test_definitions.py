"""The code location loads fast, without heavy libraries, validates, and its graph is pinned by a snapshot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
ROOT = Path(__file__).parent.parent
HEAVY = ("torch", "transformers", "llmcompressor", "lm_eval", "vllm")


def graph_snapshot() -> dict:
    from dagster_project.definitions import defs

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        spec = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "code_version": node.code_version,
            "partitions": _partitions(node.partitions_def),
            "kinds": sorted(node.kinds),
            "pools": sorted(node.pools) if getattr(node, "pools", None) else [],
            "automation_condition": _condition(node.automation_condition),
            "checks": sorted(c.name for c in node.check_keys),
        }
        assets[key.to_user_string()] = spec
    checks = {}
    for checks_def in defs.asset_checks or []:
        for spec in checks_def.check_specs:
            checks[f"{spec.asset_key.to_user_string()}:{spec.name}"] = {"blocking": spec.blocking}
    return {
        "assets": assets,
        "checks": checks,
        "schedules": {s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone} for s in repo.schedule_defs},
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "resources": sorted(defs.resources or {}),
    }


def _condition(condition) -> str | None:
    if condition is None:
        return None
    cron = getattr(condition, "cron_schedule", None)
    return condition.get_label() or (f"{type(condition).__name__}({cron})" if cron else type(condition).__name__)


def _partitions(pdef) -> str | None:
    if pdef is None:
        return None
    from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition

    if isinstance(pdef, MultiPartitionsDefinition):
        return "multi(" + ",".join(f"{d.name}:{_partitions(d.partitions_def)}" for d in pdef.partitions_defs) + ")"
    if isinstance(pdef, DynamicPartitionsDefinition):
        return f"dynamic({pdef.name})"
    return type(pdef).__name__


def test_definitions_snapshot():
    """Any change to the graph shows as a diff here; accept it with UPDATE_SNAPSHOTS=1."""
    current = graph_snapshot()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    # A missing snapshot fails: writing it here would compare the graph with itself.
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: create it with UPDATE_SNAPSHOTS=1, review, commit"
    assert current == json.loads(SNAPSHOT.read_text()), "definitions changed: review, then UPDATE_SNAPSHOTS=1"


def test_graph_shape():
    snap = graph_snapshot()["assets"]
    assert snap["compressed_model"]["deps"] == ["base_model", "calibration_dataset", "recipe"]
    assert snap["compressed_model"]["partitions"] == "multi(model:dynamic(models),recipe:dynamic(recipes))"
    assert snap["registry_entry"]["deps"] == ["evaluation_report", "hub_release"]
    assert {"loads_and_generates", "recovery_meets_threshold", "size_reduced"} <= set(snap["evaluation_report"]["checks"])
    assert all(c["blocking"] for c in graph_snapshot()["checks"].values())


def test_definitions_import_is_light():
    code = "import sys, dagster_project.definitions; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"heavy modules imported by definitions: {out.stdout}"


def test_importtime_shows_no_torch():
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import dagster_project.definitions"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    modules = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_dagster_definitions_validate(project_state):
    exe = Path(sys.executable).parent / "dagster"
    out = subprocess.run([str(exe), "definitions", "validate", "-m", "dagster_project.definitions"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("field", ["module_name", "code_location_name"])
def test_pyproject_points_at_definitions(field):
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert field in cfg["tool"]["dagster"]
    assert cfg["tool"]["dagster"]["module_name"] == "dagster_project.definitions"
    assert cfg["tool"]["dg"]["project"]["root_module"] == "dagster_project"
