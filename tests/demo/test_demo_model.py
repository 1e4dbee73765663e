"""The demo model is a genuine language model trained here, saved in Hugging Face format."""

import json
import math

import pytest


def _heldout_perplexity(model, tok, seq_len: int = 128) -> float:
    """Held-out perplexity measured here, independently of the builder's own code."""
    import torch

    from dagster_project.demo.corpus import split

    ids: list[int] = []
    for text in split()[1]:
        ids += [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    windows = torch.tensor(ids[: len(ids) // seq_len * seq_len]).view(-1, seq_len)
    total = 0.0
    with torch.no_grad():
        for chunk in windows.split(32):
            total += model(input_ids=chunk, labels=chunk).loss.item() * chunk.numel()
    return math.exp(total / windows.numel())


def test_demo_model_learned_the_corpus(demo_model):
    """Re-measured on the cached weights: held-out perplexity far below an untrained twin's."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model)
    trained = _heldout_perplexity(AutoModelForCausalLM.from_pretrained(demo_model).eval(), tok)
    torch.manual_seed(0)
    untrained_model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(demo_model)).eval()
    untrained = _heldout_perplexity(untrained_model, tok)
    assert trained < untrained / 5, (trained, untrained)
    assert sum(p.numel() for p in untrained_model.parameters()) > 1_000_000
    # The cached report states what the weights really do (it feeds the model card).
    report = json.loads((demo_model / "demo_model_report.json").read_text())
    assert report["trained_perplexity"] == pytest.approx(trained, rel=0.02)


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


def test_cache_key_covers_the_builder_source(tmp_path, monkeypatch):
    """Editing the builder's code builds a new model; nobody has to remember to bump a version."""
    from dagster_project.demo import model as m

    before = m.DemoModelSpec().content_hash()
    edited = tmp_path / "model.py"
    edited.write_bytes(m.BUILDER_SOURCES[0].read_bytes() + b"\n# a change to the training code\n")
    monkeypatch.setattr(m, "BUILDER_SOURCES", (edited, *m.BUILDER_SOURCES[1:]))
    assert m.DemoModelSpec().content_hash() != before
    assert {p.name for p in m.BUILDER_SOURCES} >= {"model.py", "corpus.py"}


@pytest.mark.slow
def test_build_is_cached(demo_model, monkeypatch):
    """A second build returns the cached folder without training or measuring anything."""
    from dagster_project.demo import model as m

    monkeypatch.setattr(m, "_train", lambda *a, **k: pytest.fail("retrained a cached model"))
    monkeypatch.setattr(m, "_train_tokenizer", lambda *a, **k: pytest.fail("retrained the tokenizer"))
    monkeypatch.setattr(m, "_perplexity", lambda *a, **k: pytest.fail("re-measured a cached model"))
    report = m.build_demo_model()
    assert report.path == str(demo_model)
