"""The demo task set: next-word items over held-out text only, and token perplexity that is what it says."""

from __future__ import annotations

import json
import math

import pytest

from dagster_project.settings import PACKAGE_DATA


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (PACKAGE_DATA / "eval" / name).read_text().splitlines() if line.strip()]


def test_lastword_items_come_from_held_out_text_and_are_many():
    from dagster_project.demo.corpus import split

    train, heldout = split()
    items = _rows("jargon_heldout_lastword.jsonl")
    # Hundreds of items: at 20 % accuracy the standard error is under 2 points.
    assert len(items) >= 500 and math.sqrt(0.2 * 0.8 / len(items)) < 0.02
    heldout_text = "\n".join(heldout)
    train_text = "\n".join(train)
    for item in items:
        assert item["target"].isalpha() and len(item["target"]) >= 2
        passage = f"{item['context']} {item['target']}"
        assert passage in heldout_text, passage[-80:]
    # and the passages the contexts come from are not in the training text
    assert sum(f"{i['context']} {i['target']}" in train_text for i in items) < len(items) * 0.02


@pytest.mark.slow
def test_token_perplexity_is_the_models_own_token_perplexity(demo_model):
    """lm-eval's bits per byte turned into token perplexity equals exp(mean token NLL) computed
    directly with the model (first token predicted from lm-eval's prefix token: BOS, else EOS)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dagster_project.evaluation.hf_eval import evaluate_hf
    from dagster_project.evaluation.tasks import TaskSet, TaskSpec, add_derived_scores

    limit = 4
    task_set = TaskSet(name="ppl-only", offline=True, tasks=(TaskSpec(name="dmc_jargon_ppl", primary_metric="token_perplexity"),))
    result = add_derived_scores(evaluate_hf(demo_model, task_set, limit=limit), demo_model, limit)
    derived = result.score("dmc_jargon_ppl", "token_perplexity")
    assert derived is not None and not derived.higher_is_better

    model = AutoModelForCausalLM.from_pretrained(demo_model).eval()
    tok = AutoTokenizer.from_pretrained(demo_model)
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id  # = HFLM.prefix_token_id
    nll, count = 0.0, 0
    for row in _rows("jargon_heldout_ppl.jsonl")[:limit]:
        ids = tok(row["text"], add_special_tokens=False)["input_ids"]
        assert len(ids) < model.config.max_position_embeddings  # one window: no rolling overlap to mimic
        inp = torch.tensor([[prefix, *ids]])
        with torch.no_grad():
            logits = model(input_ids=inp).logits[0, :-1]
        nll += torch.nn.functional.cross_entropy(logits, inp[0, 1:], reduction="sum").item()
        count += len(ids)
    direct = math.exp(nll / count)
    assert derived.value == pytest.approx(direct, rel=1e-3), (derived.value, direct)
    # and it is a per-token perplexity: a trained model beats uniform guessing over the vocabulary
    assert 1.0 < direct < model.config.vocab_size
