"""The demo model is a genuine language model trained here, saved in Hugging Face format."""

import json

import pytest


def test_demo_model_learned_the_corpus(demo_model):
    report = json.loads((demo_model / "demo_model_report.json").read_text())
    # Training must take held-out perplexity far below the untrained model's.
    assert report["trained_perplexity"] < report["untrained_perplexity"] / 5
    assert report["parameters"] > 1_000_000


def test_demo_model_is_hugging_face_format(demo_model):
    from transformers import AutoConfig, AutoTokenizer

    assert list(demo_model.glob("*.safetensors")), "weights must be safetensors"
    config = AutoConfig.from_pretrained(demo_model)
    assert config.architectures == ["LlamaForCausalLM"]
    # Multiples of 128 keep group-size-128 quantization valid for every Linear.
    assert config.hidden_size % 128 == 0 and config.intermediate_size % 128 == 0
    tok = AutoTokenizer.from_pretrained(demo_model)
    rendered = tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)
    assert "hello" in rendered and rendered.rstrip().endswith("<|assistant|>")


def test_demo_model_prefers_real_english_over_shuffled_words(demo_model):
    """On held-out text it never trained on, real word order is far likelier than the same words shuffled."""
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dagster_project.demo.corpus import split

    model = AutoModelForCausalLM.from_pretrained(demo_model)
    tok = AutoTokenizer.from_pretrained(demo_model)
    rng = random.Random(0)
    wins = 0
    heldout = [p for p in split()[1] if len(p.split()) > 20][:20]
    for text in heldout:
        words = text.split()
        rng.shuffle(words)
        losses = []
        for candidate in (text, " ".join(words)):
            ids = tok(candidate, return_tensors="pt")["input_ids"][:, :128]
            with torch.no_grad():
                losses.append(model(input_ids=ids, labels=ids).loss.item())
        wins += losses[0] < losses[1]
    assert wins >= 18, f"real text preferred in only {wins}/20 passages"
    ids = tok("A hacker is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    assert tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_cache_key_changes_with_the_spec():
    from dagster_project.demo.model import DemoModelSpec

    assert DemoModelSpec().content_hash() != DemoModelSpec(train_steps=401).content_hash()
    assert DemoModelSpec().content_hash() == DemoModelSpec().content_hash()


@pytest.mark.slow
def test_build_is_cached(demo_model, monkeypatch):
    """A second build returns the cached folder without training (training would take minutes)."""
    import time

    from dagster_project.demo import model as m

    monkeypatch.setattr(m, "_train", lambda *a, **k: pytest.fail("retrained a cached model"))
    started = time.perf_counter()
    report = m.build_demo_model()
    assert report.path == str(demo_model)
    assert time.perf_counter() - started < 5
