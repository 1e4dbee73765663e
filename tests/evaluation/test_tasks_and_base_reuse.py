"""User task folders (`include_path`) and the base model evaluated once per (revision, task set)."""

import io
import re

import pytest

from dagster_project.evaluation.tasks import resolve_task_set, task_set_fingerprint

from .conftest import add_partitions, eval_run_config, materialize_assets, read, variant_key


def test_user_task_set_resolves_and_fingerprints(user_tasks):
    ts = resolve_task_set("tiny", user_tasks)
    assert ts.offline and ts.recovery_threshold == 80.0
    assert [(t.name, t.primary_metric, t.chance) for t in ts.tasks] == [("tiny_cloze", "acc", 0.25)]
    before = task_set_fingerprint(ts, user_tasks)
    assert before == task_set_fingerprint(ts, user_tasks)
    data = user_tasks / "tiny_cloze.jsonl"
    data.write_text(data.read_text().splitlines()[0] + "\n")  # the data changed: cached scores are stale
    assert task_set_fingerprint(ts, user_tasks) != before
    with pytest.raises(ValueError, match="include_path"):
        resolve_task_set("tiny")
    (user_tasks / "task_sets.yaml").write_text("demo:\n  tasks: [x]\n")
    with pytest.raises(ValueError, match="built in"):
        resolve_task_set("demo", user_tasks)


def test_user_task_yaml_with_lm_eval(demo_model, user_tasks):
    """The user's YAML over the local jsonl runs in real lm-eval next to the shipped tasks."""
    from dagster_project.evaluation.hf_eval import evaluate_hf

    progress: list[str] = []
    result = evaluate_hf(demo_model, resolve_task_set("tiny", user_tasks), include_path=str(user_tasks),
                         log=progress.append)
    # Progress per batch of requests: the first batch and the total, at most one line per 10 s between.
    assert progress[0].startswith("lm-eval loglikelihood: batch 1/"), progress
    total = re.match(r"lm-eval loglikelihood: (\d+) requests in (\d+) batches", progress[-1])
    assert total and int(total[1]) >= 12 and 1 <= int(total[2]) <= int(total[1]), progress
    acc = result.score("tiny_cloze", "acc")
    assert acc is not None and acc.higher_is_better and 0.25 < acc.value <= 1.0
    assert result.raw["tiny_cloze"]["sample_len"] == 12  # every item of the user's jsonl was evaluated


@pytest.mark.slow
def test_base_evaluated_once_and_reused_by_every_variant(demo_model, project_state, dagster_instance, user_tasks,
                                                         monkeypatch):
    from PIL import Image

    from dagster_project import definitions as d
    from dagster_project.evaluation import hf_eval

    calls = []
    real = hf_eval.evaluate_hf

    def counting(model_path, *args, **kwargs):
        calls.append(str(model_path))
        return real(model_path, *args, **kwargs)

    monkeypatch.setattr(hf_eval, "evaluate_hf", counting)
    model, recipes = "demo-llama", ["w4a16-rtn", "w8a16-rtn"]
    add_partitions(dagster_instance, model, recipes)
    cfg = eval_run_config(task_set="tiny", include_path=str(user_tasks))
    assert materialize_assets(dagster_instance, [d.base_model, d.base_evaluation], model, cfg).success
    base_root = project_state / "artifacts/models" / model / "base_eval"
    (base_file,) = [p for p in base_root.glob("*-tiny-*.json") if not p.name.endswith(".lm_eval.json")]
    mtime = base_file.stat().st_mtime_ns
    base_path = read(project_state / "artifacts/models" / model / "base_model.json")["path"]
    assert calls == [base_path]

    for recipe in recipes:
        # A re-materialization of the base (as a backfill would do) reuses the stored scores ...
        res = materialize_assets(dagster_instance, [d.base_evaluation], model, cfg)
        assert "already evaluated on tiny" in "\n".join(
            e.user_message for e in dagster_instance.all_logs(res.run_id))
        # ... and every variant is compared with that one base evaluation.
        assert materialize_assets(dagster_instance, [d.compressed_model, d.evaluation_report],
                                  variant_key(model, recipe), cfg).success
    assert calls.count(base_path) == 1 and len(calls) == 3
    assert base_file.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in base_root.iterdir()) == sorted([base_file.name,
                                                                  base_file.with_suffix(".lm_eval.json").name])

    base_scores = read(base_file)["eval"]["scores"]
    for recipe in recipes:
        vdir = project_state / "artifacts/models" / model / "variants" / recipe
        report = read(vdir / "evaluation.json")
        assert report["task_set"] == "tiny" and report["include_path"] == str(user_tasks)
        (rec,) = [r for r in report["recoveries"] if r["primary"]]
        assert (rec["task"], rec["metric"]) == ("tiny_cloze", "acc")
        assert rec["base"] == next(s["value"] for s in base_scores if s["metric"] == "acc")
        assert report["average_recovery"] == rec["recovery_pct"]
        assert read(vdir / "lm_eval_results.json")["results"]["tiny_cloze"]["acc,none"] == rec["variant"]
        png = Image.open(io.BytesIO((vdir / "recovery.png").read_bytes()))
        png.load()
        assert png.size[0] > 100 and png.size[1] > 100
