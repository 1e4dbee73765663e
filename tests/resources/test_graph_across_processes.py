"""The whole demo graph with each step in its own process and its own empty scratch folder.

`dagster asset materialize` runs each selection with the multiprocess executor
(`DMC_EXECUTOR=multiprocess`): every step is a fresh Python process, so with an S3 store it starts
on an empty disk (its own `dmc-scratch-*` folder) and finds its inputs only in the store — here
a real S3 server (SeaweedFS, `scripts/s3_server.sh`) on loopback. The same run against a local
folder store must pass too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL, RECIPE = "demo-llama", "w4a16-rtn"
KEY = "dmc-test"  # = conftest.S3_KEY


def _materialize(env: dict, select: str, partition: str, config: dict | None = None) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "dagster_project.definitions",
         "--select", select, "--partition", partition, *(["--config-json", json.dumps(config)] if config else [])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, f"{select} [{partition}] failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"


def run_graph(tmp_path: Path, store_env: dict[str, str]) -> tuple[dict, object]:
    from dagster import DagsterInstance

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DMC_ARTIFACT", "DMC_S3_", "DMC_K8S_", "DMC_REGISTRY_URL", "DMC_SCRATCH"))}
    env.update(store_env, DMC_EXECUTOR="multiprocess", DAGSTER_HOME=str(home), DMC_VAR_DIR=str(tmp_path / "var"),
               TMPDIR=str(tmp_path / "tmp"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_EVALUATE_OFFLINE="1", TQDM_DISABLE="1",
               DMC_EVAL_LIMIT="40")  # what moves between steps matters here, not the scores' precision
    (tmp_path / "tmp").mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("models", [MODEL])
    instance.add_dynamic_partitions("recipes", [RECIPE])

    _materialize(env, "base_model,calibration_dataset,base_evaluation", MODEL)
    # A low threshold: 40 items are too few to decide approval, and publication needs it.
    low = {"evaluation_report": {"config": {"recovery_threshold": 1}}}
    _materialize(env, "compressed_model,evaluation_report,hub_release,registry_entry", f"{MODEL}|{RECIPE}",
                 {"ops": low})
    _materialize(env, "model_comparison", MODEL)
    return env, instance


def _step_pids(instance) -> dict[str, int]:
    from dagster import DagsterEventType, EventRecordsFilter

    records = instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_START))
    return {r.event_log_entry.step_key: r.event_log_entry.dagster_event.pid for r in records}


def _check_outcome(instance, tmp_path: Path) -> None:
    from dagster import AssetKey

    pids = _step_pids(instance)
    assert set(pids) >= {"base_model", "calibration_dataset", "base_evaluation", "compressed_model",
                         "evaluation_report", "hub_release", "registry_entry", "model_comparison"}
    assert len(set(pids.values())) == len(pids), f"steps shared a process: {pids}"
    assert os.getpid() not in pids.values()
    entry = instance.get_latest_materialization_event(AssetKey("registry_entry")).asset_materialization
    assert entry.partition == f"{MODEL}|{RECIPE}"
    # Each step's scratch folder went with its process.
    assert not list((tmp_path / "tmp").glob("dmc-scratch-*"))


@pytest.mark.timeout(1800)
def test_graph_on_real_s3_each_step_on_an_empty_disk(demo_model, s3_endpoint, s3_bucket, tmp_path, monkeypatch):
    import s3fs

    bucket = s3_bucket
    store_env = {"DMC_ARTIFACT_STORE_KIND": "s3", "DMC_ARTIFACT_ROOT": f"s3://{bucket}/dmc",
                 "DMC_S3_ENDPOINT_URL": s3_endpoint, "DMC_S3_REGION": "us-east-1",
                 "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": KEY}
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # restored after run_graph changes it
    env, instance = run_graph(tmp_path, store_env)
    _check_outcome(instance, tmp_path)

    fs = s3fs.S3FileSystem(key=KEY, secret=KEY, endpoint_url=s3_endpoint, skip_instance_cache=True)
    prefix = f"{bucket}/dmc/models/{MODEL}"
    variant = f"{prefix}/variants/{RECIPE}"
    manifest = json.loads(fs.cat_file(f"{variant}/_COMPLETE"))
    assert any(name.endswith(".safetensors") for name in manifest["files"])
    assert json.loads(fs.cat_file(f"{variant}/evaluation.json"))["approval"]["approved"] is True
    base = json.loads(fs.cat_file(f"{prefix}/base_model.json"))
    assert fs.exists(f"{bucket}/dmc/{base['store_path']}/_COMPLETE")
    calibration = json.loads(fs.cat_file(f"{prefix}/calibration.json"))
    assert fs.exists(f"{bucket}/dmc/{calibration['store_path']}/_COMPLETE")
    assert fs.exists(f"{prefix}/comparison.json")
    # Nothing was written to a local artifact folder: the store is the only thing steps share.
    assert not (tmp_path / "var" / "artifacts").exists()

    from dagster import AssetKey

    uri = instance.get_latest_materialization_event(AssetKey("registry_entry")).asset_materialization.metadata["uri"]
    assert uri.value.startswith(f"s3://{bucket}/dmc/models/{MODEL}/variants/{RECIPE}")


@pytest.mark.timeout(1800)
def test_graph_on_a_local_store_each_step_in_its_own_process(demo_model, tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    env, instance = run_graph(tmp_path, {"DMC_ARTIFACT_STORE_KIND": "local", "DMC_ARTIFACT_ROOT": str(root)})
    _check_outcome(instance, tmp_path)
    report = json.loads((root / "models" / MODEL / "variants" / RECIPE / "evaluation.json").read_text())
    assert report["approval"]["approved"] is True
