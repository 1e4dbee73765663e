"""Load time, generation latency and tokens/s with transformers, base and variant on the same hardware."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

PROMPT = "The Jargon File is a glossary of hacker slang. A hacker is"


@dataclass
class SpeedResult:
    load_seconds: float
    latency_seconds: float
    tokens_per_second: float
    new_tokens: int
    sample: str
    device: str


def measure_generation(model_path: Path, device: str = "cpu", new_tokens: int = 32, repeats: int = 3) -> SpeedResult:
    """Greedy generation; the best of `repeats` runs, after one warm-up."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto", device_map=device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    load_seconds = time.perf_counter() - started
    inputs = tokenizer(PROMPT, return_tensors="pt").to(device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                  pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    with torch.no_grad():
        out = model.generate(**inputs, **kwargs)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model.generate(**inputs, **kwargs)
            best = min(best, time.perf_counter() - t0)
    generated = out[0, inputs["input_ids"].shape[1]:]
    return SpeedResult(
        load_seconds=round(load_seconds, 3), latency_seconds=round(best, 4),
        tokens_per_second=round(len(generated) / best, 1), new_tokens=int(len(generated)),
        sample=tokenizer.decode(generated, skip_special_tokens=True), device=device,
    )
