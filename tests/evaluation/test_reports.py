"""Report plots render as real PNGs, per variant and per model (model_comparison in Dagster)."""

import base64
import io
import json
import re

import numpy as np
from PIL import Image

from dagster_project.evaluation.recovery import Recovery
from dagster_project.evaluation.report import plot_recovery, plot_recovery_by_variant, plot_score_vs_size

from .conftest import add_partitions, materialize_assets


def _decoded(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(png))
    img.load()
    arr = np.asarray(img.convert("RGB"))
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert arr.std() > 5  # not a blank canvas
    return arr


def _recs(*values):
    return [Recovery(task=f"t{i}", metric="acc", base=0.8, variant=0.8 * v / 100, recovery_pct=v,
                     near_chance=(i == 2), primary=True) for i, v in enumerate(values)]


def test_plots_decode():
    _decoded(plot_recovery(_recs(99.0, 80.0, 101.0), "title", threshold=95))
    _decoded(plot_score_vs_size([{"label": "base", "size_mb": 10, "score": 0.8, "base": True},
                                 {"label": "w4", "size_mb": 3, "score": 0.78}], "acc", "t"))
    grouped = {name: [r.__dict__ for r in _recs(*vals)]
               for name, vals in {"w4a16-rtn": (97, 90, 100), "w8a16-rtn": (99.5, 99, 100), "w2": (20, 5, 50)}.items()}
    arr = _decoded(plot_recovery_by_variant(grouped, "m: recovery per task", threshold=95))
    # three differently coloured series are drawn
    colours = {tuple(c) for c in arr.reshape(-1, 3)[::7]}
    assert len(colours) > 10


def _report(recipe, recs, approved, size=3 * 2**20):
    return {"model": "demo-llama", "recipe": recipe, "variant_version": "v", "task_set": "demo", "task_fingerprint": "f",
            "threshold": 90.0, "average_recovery": sum(r["recovery_pct"] for r in recs) / len(recs),
            "recoveries": recs, "approval": {"approved": approved, "reasons": [], "checks": {}},
            "size_bytes": size, "base_size_bytes": 10 * 2**20, "compression_ratio": 10 * 2**20 / size}


def test_model_comparison_in_dagster(project_state, dagster_instance):
    from dagster import AssetKey

    from dagster_project import definitions as d

    vroot = project_state / "artifacts/models/demo-llama/variants"
    for recipe, (ppl, acc), ok in [("w4a16-rtn", (40.0, 0.95), True), ("w8a16-rtn", (35.0, 0.975), True),
                                   ("w2-rtn", (4000.0, 0.3), False)]:
        recs = [{"task": "dmc_jargon_ppl", "metric": "word_perplexity", "base": 35.0, "variant": ppl,
                 "recovery_pct": round(100 * 35.0 / ppl, 2), "near_chance": False, "primary": True},
                {"task": "dmc_jargon_cloze", "metric": "acc", "base": 0.975, "variant": acc,
                 "recovery_pct": round(100 * acc / 0.975, 2), "near_chance": False, "primary": True}]
        (vroot / recipe).mkdir(parents=True)
        report = _report(recipe, recs, ok)
        if recipe == "w2-rtn":  # reports written before the divergence existed have none: shown as "-"
            report["divergence"] = {"kl_mean": 0.0324, "kl_stderr": 3e-4, "top1_agreement": 0.793,
                                    "tokens": 12635, "texts": 120}
        (vroot / recipe / "evaluation.json").write_text(json.dumps(report))
    # The comparison reads the report of every registered recipe from the store (no listing).
    add_partitions(dagster_instance, "demo-llama", ["w4a16-rtn", "w8a16-rtn", "w2-rtn"])
    assert materialize_assets(dagster_instance, [d.model_comparison], "demo-llama").success

    mdir = project_state / "artifacts/models/demo-llama"
    _decoded((mdir / "comparison.png").read_bytes())
    _decoded((mdir / "recovery_by_variant.png").read_bytes())
    rows = json.loads((mdir / "comparison.json").read_text())["rows"]
    assert {r["recipe"]: r["approved"] for r in rows} == {"w4a16-rtn": True, "w8a16-rtn": True, "w2-rtn": False}

    mat = dagster_instance.get_latest_materialization_event(AssetKey("model_comparison")).asset_materialization
    md = mat.metadata
    assert md["variants"].value == 3
    for key in ("score_vs_size", "recovery_by_variant"):
        uri = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", md[key].value).group(1)
        _decoded(base64.b64decode(uri))
    assert "w2-rtn" in md["comparison"].value
    table = {line.split(" | ")[1]: line for line in md["comparison"].value.splitlines()[2:]}
    assert "| 3.240e-02 | 79.30 |" in table["w2-rtn"] and "| - | - |" in table["w4a16-rtn"]
