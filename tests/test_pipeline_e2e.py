"""The whole graph on the demo model through Dagster: base → calibration → variants → evaluation →
approval checks → registry, then a lookup; an unchanged re-run does no compression work."""

import json
import subprocess
import sys

import pytest

from dagster_project.demo_run import materialize_variant_graph

RECIPES = ["w4a16-rtn", "w4a16-gptq"]


@pytest.fixture(scope="module")
def graph_run(demo_model, tmp_path_factory):
    """One full materialization shared by the tests below (it is the expensive part)."""
    import os

    from dagster import DagsterInstance

    var = tmp_path_factory.mktemp("e2e") / "var"
    home = var / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"DMC_VAR_DIR": str(var), "DAGSTER_HOME": str(home)}
    saved = {k: os.environ.get(k) for k in [*env, "DMC_REGISTRY_URL", "DMC_ARTIFACT_ROOT"]}
    os.environ.update(env)
    os.environ.pop("DMC_REGISTRY_URL", None)  # the embedded registry; the Kubeflow one has its own tests
    os.environ.pop("DMC_ARTIFACT_ROOT", None)
    try:
        with DagsterInstance.get() as instance:
            outcome = materialize_variant_graph(instance, "demo-llama", RECIPES, log=lambda m: None)
            yield instance, var, outcome
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _latest(instance, asset: str, partition: str):
    from dagster import AssetKey

    record = instance.fetch_materializations(
        __import__("dagster").AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records[0]
    return record.asset_materialization


def test_every_stage_materialized_and_approved(graph_run):
    instance, var, outcome = graph_run
    assert outcome == {r: True for r in RECIPES}
    for recipe in RECIPES:
        part = f"demo-llama|{recipe}"
        for asset in ("compressed_model", "evaluation_report", "registry_entry"):
            assert _latest(instance, asset, part) is not None
        report = json.loads((var / "artifacts/models/demo-llama/variants" / recipe / "evaluation.json").read_text())
        assert report["approval"]["approved"], report["approval"]["reasons"]
        assert report["average_recovery"] >= report["threshold"]
        assert {r["task"] for r in report["recoveries"]} == {"dmc_jargon_ppl", "dmc_jargon_lastword"}


def test_evaluation_logs_progress_per_batch_of_requests(graph_run):
    instance, _, _ = graph_run
    messages = [e.user_message for run in instance.get_runs() for e in instance.all_logs(run.run_id)
                if e.dagster_event is None]
    batches = [m for m in messages if m.startswith("lm-eval loglikelihood: batch ")]
    finished = [m for m in messages if m.startswith("lm-eval loglikelihood: ") and " requests in " in m]
    # The base and each variant are evaluated: each evaluation logs its first batch and its total.
    assert len(batches) >= 1 + len(RECIPES) and len(finished) >= 1 + len(RECIPES), messages


def test_registry_holds_lineage(graph_run):
    from dagster_project.registry import open_registry

    _, var, _ = graph_run
    versions = {v.properties["recipe"]: v for v in open_registry(str(var / "registry.sqlite")).list_versions()}
    assert set(versions) == set(RECIPES)
    gptq = versions["w4a16-gptq"]
    assert gptq.source_kind == "dagster"
    for key in ("base_model", "base_model_revision", "recipe_sha256", "calibration_hash", "dagster_run_url",
                "llmcompressor_version", "eval_dmc_jargon_ppl_token_perplexity", "recovery_avg"):
        assert gptq.properties.get(key), key
    assert gptq.properties["calibration_hash"] and not versions["w4a16-rtn"].properties["calibration_hash"]
    assert gptq.uri.startswith("file://") and gptq.uri.endswith("variants/w4a16-gptq")


def test_lookup_cli_returns_the_approved_variants(graph_run):
    _, var, _ = graph_run
    env = {**__import__("os").environ, "DMC_VAR_DIR": str(var)}
    env.pop("DMC_REGISTRY_URL", None)
    out = subprocess.run([sys.executable, "-m", "dagster_project.cli", "models", "list", "--json"],
                         capture_output=True, text=True, env=env, check=True)
    assert sorted(v["properties"]["recipe"] for v in json.loads(out.stdout)) == sorted(RECIPES)
    miss = subprocess.run([sys.executable, "-m", "dagster_project.cli", "models", "list", "--recipe", "fp8-dynamic"],
                          capture_output=True, text=True, env=env)
    assert miss.returncode == 1


def test_unchanged_rematerialization_does_no_compression_work(graph_run):
    instance, var, _ = graph_run
    variant = var / "artifacts/models/demo-llama/variants/w4a16-gptq"
    weights = sorted(variant.glob("*.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in weights}
    materialize_variant_graph(instance, "demo-llama", ["w4a16-gptq"], log=lambda m: None)
    mat = _latest(instance, "compressed_model", "demo-llama|w4a16-gptq")
    assert mat.metadata["reused_existing"].value is True
    assert {p: p.stat().st_mtime_ns for p in weights} == before, "weights were rewritten"


def test_plots_and_tables_are_in_the_metadata(graph_run):
    instance, _, _ = graph_run
    report = _latest(instance, "evaluation_report", "demo-llama|w4a16-rtn")
    assert "| task | metric | base | compressed | recovery % |" in report.metadata["recovery"].value
    assert report.metadata["recovery_plot"].value.startswith("![plot](data:image/png;base64,")
    comparison = _latest(instance, "model_comparison", "demo-llama")
    assert "w4a16-gptq" in comparison.metadata["comparison"].value
