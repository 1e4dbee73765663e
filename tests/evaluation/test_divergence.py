"""Divergence from the base (KL, top-1 agreement): zero for the base itself, equal to an independent
computation for a perturbed copy, and growing with the perturbation."""

from __future__ import annotations

import pytest


def _perturbed_copy(demo_model, out, scale: float, seed: int = 0):
    """The demo model with Gaussian noise (scale × each weight's std) on every decoder Linear."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(demo_model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".layers." in name and name.endswith("proj.weight"):
                param.add_(torch.randn(param.shape, generator=gen) * param.std() * scale)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(demo_model).save_pretrained(out)
    return out


@pytest.mark.slow
def test_base_against_itself_has_no_divergence(demo_model):
    from dagster_project.evaluation.divergence import divergence_from_base, heldout_texts

    result = divergence_from_base(demo_model, demo_model, heldout_texts(6))
    assert result.kl_mean == pytest.approx(0.0, abs=1e-6)
    assert result.top1_agreement == 1.0
    assert result.texts == 6 and result.tokens > 6 * 10


@pytest.mark.slow
def test_divergence_matches_a_direct_computation_and_grows_with_damage(demo_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dagster_project.evaluation.divergence import divergence_from_base, heldout_texts

    texts = heldout_texts(6)
    small = _perturbed_copy(demo_model, tmp_path / "small", 0.05)
    large = _perturbed_copy(demo_model, tmp_path / "large", 0.3)
    got_small = divergence_from_base(demo_model, small, texts)
    got_large = divergence_from_base(demo_model, large, texts)

    # Independent computation with torch's own kl_div over the same token positions.
    tok = AutoTokenizer.from_pretrained(demo_model)
    base = AutoModelForCausalLM.from_pretrained(demo_model).eval()
    variant = AutoModelForCausalLM.from_pretrained(small).eval()
    total, agree, count = 0.0, 0, 0
    for text in texts:
        inp = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            p = torch.log_softmax(base(input_ids=inp).logits[0, :-1], dim=-1)
            q = torch.log_softmax(variant(input_ids=inp).logits[0, :-1], dim=-1)
        total += torch.nn.functional.kl_div(q, p, log_target=True, reduction="sum").item()
        agree += (p.argmax(-1) == q.argmax(-1)).sum().item()
        count += p.shape[0]
    assert got_small.tokens == count
    # Batched and padded there, one text at a time here: equal up to float rounding (a near-tie
    # between two top tokens may flip one position).
    assert got_small.kl_mean == pytest.approx(total / count, rel=1e-3)
    assert got_small.top1_agreement == pytest.approx(agree / count, abs=2 / count)

    assert 0 < got_small.kl_mean < got_large.kl_mean
    assert 1.0 > got_small.top1_agreement > got_large.top1_agreement
    assert got_small.kl_stderr > 0
