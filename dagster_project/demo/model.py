"""Build the demo model: a small Llama trained here on the shipped corpus, cached by content hash.

Nothing can be downloaded from the Hub on this project's machines, so the demo and the tests
compress a genuine (if tiny) language model made from scratch: BPE tokenizer, chat template,
a few minutes of AdamW on CPU, saved as safetensors in Hugging Face format.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from dagster_project.atomic import atomic_directory
from dagster_project.demo import corpus
from dagster_project.settings import cache_dir

# The cache key covers the builder's own source: any edit to these files builds a new model
# (a hand-bumped version number is forgotten, and CI then keeps testing the old weights).
BUILDER_SOURCES = (Path(__file__), Path(corpus.__file__))

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class DemoModelSpec:
    # Hidden sizes are multiples of 128 so group-size-128 quantization applies to every Linear;
    # a small vocabulary keeps most parameters in the decoder layers that get compressed.
    vocab_size: int = 2048
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    seq_len: int = 128
    batch_size: int = 16
    train_steps: int = 400
    learning_rate: float = 2e-3
    seed: int = 0
    # "cuda" trains on a GPU (scripts/gpu/check.sh trains a ~100 M-parameter model there, in bf16 autocast).
    device: str = "cpu"

    def content_hash(self) -> str:
        spec = asdict(self)
        if spec["device"] == "cpu":  # CPU builds keep the key they had before `device` existed
            del spec["device"]
        payload = json.dumps(
            {"spec": spec, "corpus": corpus.corpus_sha256(), "builder": builder_sha256()},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def builder_sha256() -> str:
    digest = hashlib.sha256()
    for path in BUILDER_SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class DemoModelReport:
    path: str
    content_hash: str
    untrained_perplexity: float
    trained_perplexity: float
    train_seconds: float
    parameters: int


def demo_model_dir(spec: DemoModelSpec | None = None) -> Path:
    spec = spec or DemoModelSpec()
    return cache_dir() / "demo-model" / spec.content_hash()


def build_demo_model(
    spec: DemoModelSpec | None = None,
    log: Callable[[str], None] = print,
) -> DemoModelReport:
    """Return the cached demo model, training it first if this spec was never built."""
    spec = spec or DemoModelSpec()
    target = demo_model_dir(spec)
    report_file = target / "demo_model_report.json"
    if report_file.exists():
        return DemoModelReport(**json.loads(report_file.read_text()))

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    train_text, heldout_text = corpus.split()
    tokenizer = _train_tokenizer(train_text, spec.vocab_size)
    train_ids = _encode(tokenizer, train_text)
    heldout_ids = _encode(tokenizer, heldout_text)
    log(f"demo model {spec.content_hash()}: {len(train_ids):,} training tokens, "
        f"{len(heldout_ids):,} held-out tokens")

    config = LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.seq_len * 4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(spec.device)
    untrained_ppl = _perplexity(model, heldout_ids, spec.seq_len)
    log(f"untrained held-out perplexity {untrained_ppl:,.1f}")

    started = time.perf_counter()
    _train(model, train_ids, spec, log)
    train_seconds = time.perf_counter() - started
    trained_ppl = _perplexity(model, heldout_ids, spec.seq_len)
    log(f"trained held-out perplexity {trained_ppl:,.1f} after {train_seconds:.0f} s")

    report = DemoModelReport(
        path=str(target),
        content_hash=spec.content_hash(),
        untrained_perplexity=round(untrained_ppl, 2),
        trained_perplexity=round(trained_ppl, 2),
        train_seconds=round(train_seconds, 1),
        parameters=sum(p.numel() for p in model.parameters()),
    )
    # Write beside the target and rename: an interrupted build never leaves a half model.
    with atomic_directory(target) as tmp:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(_model_readme(report, spec))
        (tmp / "LICENSE").write_text(
            "Weights trained on The Jargon File 4.4.7 (public domain). Released under Apache-2.0.\n"
        )
        (tmp / "demo_model_report.json").write_text(json.dumps(asdict(report), indent=2))
    return report


def _train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _encode(tokenizer, texts: list[str]):
    import torch

    ids: list[int] = []
    for text in texts:
        ids.append(tokenizer.bos_token_id)
        ids.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def _train(model, ids, spec: DemoModelSpec, log: Callable[[str], None]) -> None:
    import torch

    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
    warmup = max(1, spec.train_steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, spec.train_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    last_log = time.perf_counter()
    for step in range(spec.train_steps):
        starts = torch.randint(0, len(ids) - spec.seq_len - 1, (spec.batch_size,), generator=generator)
        batch = torch.stack([ids[s : s + spec.seq_len] for s in starts]).to(spec.device)
        # bf16 autocast on a GPU only: CPU training stays fp32, as the cached demo model was made.
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=spec.device.startswith("cuda")):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if time.perf_counter() - last_log > 15 or step == spec.train_steps - 1:
            log(f"training step {step + 1}/{spec.train_steps} loss {loss.item():.3f}")
            last_log = time.perf_counter()
    model.eval()


def _perplexity(model, ids, seq_len: int) -> float:
    import torch

    model.eval()
    usable = (len(ids) // seq_len) * seq_len
    windows = ids[:usable].view(-1, seq_len)
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in windows.split(32):
            chunk = chunk.to(model.device)
            loss = model(input_ids=chunk, labels=chunk).loss
            total += loss.item() * chunk.numel()
            count += chunk.numel()
    return math.exp(total / count)


def _model_readme(report: DemoModelReport, spec: DemoModelSpec) -> str:
    return (
        "---\nlicense: apache-2.0\npipeline_tag: text-generation\nlibrary_name: transformers\n---\n"
        "# dmc demo Llama\n\n"
        f"A {report.parameters:,}-parameter Llama trained from scratch on {spec.device.upper()} on The Jargon File "
        "4.4.7 (public domain) by `dagster_project.demo.model`.\n\n"
        f"Held-out perplexity: {report.trained_perplexity} (untrained: {report.untrained_perplexity}).\n\n"
        f"Spec: `{json.dumps(asdict(spec))}`\n"
    )


if __name__ == "__main__":
    print(json.dumps(asdict(build_demo_model()), indent=2))
