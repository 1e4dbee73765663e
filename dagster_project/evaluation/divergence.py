"""How far a variant's next-token distribution moved from its base's, token by token.

Near 100 %, perplexity ratios and accuracy over a few hundred items cannot tell close schemes
apart (one next-word item is 0.13 points). Comparing the two models' whole predicted
distributions at every position of the held-out text can: the mean KL divergence
KL(base ‖ variant) and how often both models rank the same next token first (as llama.cpp's
KL-divergence statistics do for its quantizations).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from dagster_project.settings import PACKAGE_DATA

HELDOUT_TEXTS = PACKAGE_DATA / "eval" / "jargon_heldout_ppl.jsonl"  # the texts of dmc_jargon_ppl
DIVERGENCE_TASK = "dmc_jargon_ppl"  # measured for task sets that score those texts


@dataclass(frozen=True)
class Divergence:
    kl_mean: float  # nats per token, KL(base ‖ variant), averaged over every predicted token
    kl_stderr: float  # standard error of that mean over tokens
    top1_agreement: float  # fraction of positions where both models' most likely next token is the same
    tokens: int
    texts: int


def heldout_texts(limit: int | None = None) -> list[str]:
    lines = [line for line in HELDOUT_TEXTS.read_text().splitlines() if line.strip()]
    return [json.loads(line)["text"] for line in lines][:limit]


def load_for_comparison(path: str | Path, device: str = "cpu"):
    """Load as lm-eval's hf backend does (float32, compressed-tensors decompressed by transformers)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return model.to(device).eval()


def divergence_from_base(
    base_path: str | Path, variant_path: str | Path, texts: list[str], device: str = "cpu", batch_size: int = 16,
) -> Divergence:
    """Each text is scored as lm-eval scores it: BOS, then the text's tokens, no other special tokens.
    Texts longer than the model's context are cut into context-sized windows. Windows go through
    in right-padded batches (padding after the text changes no earlier position of a causal model)."""
    import torch
    from transformers import AutoTokenizer

    if not texts:
        raise ValueError("divergence_from_base needs at least one text")
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    base = load_for_comparison(base_path, device)
    variant = load_for_comparison(variant_path, device)
    window = int(getattr(base.config, "max_position_embeddings", 2048) or 2048) - 1
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else bos
    windows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        windows += [[bos, *ids[start:start + window]] for start in range(0, len(ids), window)]
    windows.sort(key=len)  # similar lengths together: little padding

    kl_sum, kl_sq_sum, agree, count = 0.0, 0.0, 0, 0
    with torch.no_grad():
        for first in range(0, len(windows), batch_size):
            batch = windows[first:first + batch_size]
            longest = max(len(w) for w in batch)
            input_ids = torch.tensor([w + [pad] * (longest - len(w)) for w in batch], device=device)
            mask = torch.tensor([[1] * len(w) + [0] * (longest - len(w)) for w in batch], device=device)
            # Position i predicts token i + 1: keep the positions that predict one of the text's tokens.
            scored = mask[:, 1:].bool()
            p_log = torch.log_softmax(base(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float(), dim=-1)
            q_log = torch.log_softmax(variant(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float(), dim=-1)
            p_log, q_log = p_log[scored], q_log[scored]
            kl = (p_log.exp() * (p_log - q_log)).sum(dim=-1).clamp_min(0.0)
            kl_sum += kl.sum().item()
            kl_sq_sum += (kl * kl).sum().item()
            agree += (p_log.argmax(dim=-1) == q_log.argmax(dim=-1)).sum().item()
            count += kl.numel()
    mean = kl_sum / count
    variance = max(0.0, kl_sq_sum / count - mean * mean)
    return Divergence(kl_mean=mean, kl_stderr=math.sqrt(variance / max(1, count - 1)),
                      top1_agreement=agree / count, tokens=count, texts=len(texts))
