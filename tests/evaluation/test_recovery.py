"""Recovery per task and on average, from lm-eval's own results dicts (as simple_evaluate returns them)."""

import pytest

from dagster_project.evaluation.hf_eval import EvalResult, parse_results
from dagster_project.evaluation.recovery import average_recovery, compare, recovery_pct
from dagster_project.evaluation.tasks import TaskSet, TaskSpec, resolve_task_set


def lm_eval_out(arc_norm, arc_norm_err, gsm_strict, wikitext_ppl, wino):
    """The shape of lm-eval 0.4.13's `simple_evaluate(...)` output (results + higher_is_better)."""
    return {
        "results": {
            "arc_challenge": {"alias": "arc_challenge", "acc,none": arc_norm - 0.02, "acc_stderr,none": arc_norm_err,
                              "acc_norm,none": arc_norm, "acc_norm_stderr,none": arc_norm_err},
            "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": gsm_strict, "exact_match_stderr,strict-match": 0.0117,
                      "exact_match,flexible-extract": gsm_strict + 0.01,
                      "exact_match_stderr,flexible-extract": 0.0118},
            "wikitext": {"alias": "wikitext", "word_perplexity,none": wikitext_ppl,
                         "word_perplexity_stderr,none": "N/A", "byte_perplexity,none": 1.5,
                         "byte_perplexity_stderr,none": "N/A", "bits_per_byte,none": 0.58,
                         "bits_per_byte_stderr,none": "N/A"},
            "winogrande": {"alias": "winogrande", "acc,none": wino, "acc_stderr,none": 0.014},
            "dmc_jargon_cloze": {"name": "dmc_jargon_cloze", "alias": "dmc_jargon_cloze", "sample_len": 160,
                                 "acc,none": 0.975, "acc_stderr,none": 0.0124},
        },
        "higher_is_better": {
            "arc_challenge": {"acc": True, "acc_norm": True},
            "gsm8k": {"exact_match": True},
            "wikitext": {"word_perplexity": False, "byte_perplexity": False, "bits_per_byte": False},
            "winogrande": {"acc": True},
            "dmc_jargon_cloze": {"acc": True},
        },
    }


TASKS = TaskSet(name="t", recovery_threshold=99.0, tasks=(
    TaskSpec(name="arc_challenge", num_fewshot=25, primary_metric="acc_norm", chance=0.25),
    TaskSpec(name="gsm8k", num_fewshot=5, primary_metric="exact_match,strict-match"),
    TaskSpec(name="wikitext", primary_metric="word_perplexity"),
    TaskSpec(name="winogrande", num_fewshot=5, primary_metric="acc", chance=0.5),
))


def _result(out) -> EvalResult:
    return EvalResult(model_path="/m", task_set="t", scores=parse_results(out), eval_seconds=1.0)


def test_parse_results_flattens_lm_eval_keys():
    scores = {(s.task, s.metric): s for s in parse_results(lm_eval_out(0.6, 0.014, 0.55, 10.0, 0.75))}
    assert scores[("arc_challenge", "acc_norm")].stderr == 0.014
    assert scores[("gsm8k", "exact_match,strict-match")].value == 0.55
    assert ("gsm8k", "exact_match,flexible-extract") in scores
    ppl = scores[("wikitext", "word_perplexity")]
    assert ppl.stderr is None and ppl.higher_is_better is False  # "N/A" stderr; lower is better
    assert not any(m in ("alias", "name", "sample_len") or "_stderr" in m for _, m in scores)


def test_recovery_per_task_and_average():
    base = _result(lm_eval_out(0.60, 0.014, 0.50, 10.0, 0.75))
    variant = _result(lm_eval_out(0.57, 0.014, 0.49, 12.5, 0.72))
    recs = {(r.task, r.metric): r for r in compare(base, variant, TASKS)}
    assert recs[("arc_challenge", "acc_norm")].recovery_pct == 95.0
    assert recs[("gsm8k", "exact_match,strict-match")].recovery_pct == 98.0
    assert recs[("wikitext", "word_perplexity")].recovery_pct == 80.0  # 10 / 12.5: perplexity went up
    assert recs[("winogrande", "acc")].recovery_pct == 96.0
    assert recs[("arc_challenge", "acc")].primary is False
    assert recs[("dmc_jargon_cloze", "acc")].recovery_pct == 100.0 and not recs[("dmc_jargon_cloze", "acc")].primary
    # Average over primary metrics only.
    assert average_recovery(list(recs.values())) == pytest.approx((95 + 98 + 80 + 96) / 4, abs=0.01)


def test_perplexity_improvement_counts_above_100():
    assert recovery_pct(10.0, 8.0, higher_is_better=False) == 125.0
    assert recovery_pct(10.0, 0.0, higher_is_better=False) == 0.0
    assert recovery_pct(0.0, 0.3, higher_is_better=True) == 0.0


def test_near_chance_marked_and_left_out_of_the_average():
    # A base scoring 0.26 ± 0.0128 on 4-way arc is indistinguishable from guessing (0.25).
    base = _result(lm_eval_out(0.26, 0.0128, 0.50, 10.0, 0.51))
    variant = _result(lm_eval_out(0.30, 0.0128, 0.45, 10.0, 0.50))
    recs = {(r.task, r.metric): r for r in compare(base, variant, TASKS)}
    assert recs[("arc_challenge", "acc_norm")].near_chance and recs[("winogrande", "acc")].near_chance
    assert not recs[("gsm8k", "exact_match,strict-match")].near_chance  # no chance level given
    assert not recs[("wikitext", "word_perplexity")].near_chance  # lower-is-better: never "near chance"
    assert average_recovery(list(recs.values())) == pytest.approx((90.0 + 100.0) / 2)
    # All primaries near chance → no usable average (approval fails on "no usable scores").
    only = TaskSet(name="x", tasks=(TaskSpec(name="winogrande", primary_metric="acc", chance=0.5),))
    assert average_recovery(compare(base, variant, only)) is None


def test_near_chance_uses_two_standard_errors():
    ts = resolve_task_set("openllm-v1")
    out = lm_eval_out(0.28, 0.02, 0.5, 10.0, 0.75)  # 0.25 + 2 × 0.02 = 0.29 ≥ 0.28
    recs = {(r.task, r.metric): r for r in compare(_result(out), _result(out), ts)}
    assert recs[("arc_challenge", "acc_norm")].near_chance
    out = lm_eval_out(0.28, 0.005, 0.5, 10.0, 0.75)  # margin is at least 0.02: 0.27 < 0.28
    recs = {(r.task, r.metric): r for r in compare(_result(out), _result(out), ts)}
    assert not recs[("arc_challenge", "acc_norm")].near_chance


def test_metric_missing_from_variant_is_skipped():
    base = _result(lm_eval_out(0.6, 0.014, 0.5, 10.0, 0.75))
    out = lm_eval_out(0.6, 0.014, 0.5, 10.0, 0.75)
    del out["results"]["gsm8k"]
    recs = compare(base, _result(out), TASKS)
    assert not any(r.task == "gsm8k" for r in recs)
