"""Tokenized calibration samples: chat template, seed, sample count and max length, content-hashed."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from dagster_project.atomic import atomic_directory
from dagster_project.settings import PACKAGE_DATA

DEFAULT_SOURCE = str(PACKAGE_DATA / "calibration" / "jargon-calibration.jsonl")


class CalibrationSpec(BaseModel, frozen=True):
    # RHOAI's example uses 512 samples × 2048 tokens of ultrachat; the demo uses far fewer.
    source: str = DEFAULT_SOURCE  # local .jsonl / .txt path, or a Hugging Face dataset id
    split: str = "train"
    text_column: str = "text"
    num_samples: int = Field(default=64, ge=1, le=100_000)
    max_seq_length: int = Field(default=256, ge=16, le=131_072)
    seed: int = 42
    apply_chat_template: bool = True


class CalibrationError(ValueError):
    pass


@dataclass
class CalibrationResult:
    path: str
    content_hash: str
    num_samples: int
    total_tokens: int
    mean_tokens: float
    chat_template_applied: bool
    source: str


def build_calibration(spec: CalibrationSpec, tokenizer_dir: Path, output_root: Path) -> CalibrationResult:
    """Tokenize samples and save them (datasets.save_to_disk) under output_root/<content hash>."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    texts, messages = _load_rows(spec)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    use_chat = spec.apply_chat_template and bool(getattr(tokenizer, "chat_template", None))
    input_ids = []
    for text, msgs in zip(texts, messages):
        if use_chat:
            msgs = msgs or [{"role": "user", "content": text}]
            rendered = tokenizer.apply_chat_template(msgs, tokenize=False)
            ids = tokenizer(rendered, add_special_tokens=False, truncation=True, max_length=spec.max_seq_length)["input_ids"]
        else:
            ids = tokenizer(text, truncation=True, max_length=spec.max_seq_length)["input_ids"]
        input_ids.append(ids)

    digest = hashlib.sha256(json.dumps({"spec": spec.model_dump(), "ids": input_ids}).encode()).hexdigest()[:16]
    target = Path(output_root) / digest
    result = CalibrationResult(
        path=str(target), content_hash=digest, num_samples=len(input_ids),
        total_tokens=sum(map(len, input_ids)), mean_tokens=round(sum(map(len, input_ids)) / len(input_ids), 1),
        chat_template_applied=use_chat, source=spec.source,
    )
    if (target / "dmc_calibration.json").exists():
        return result  # same content already saved
    with atomic_directory(target) as tmp:
        ds = Dataset.from_dict({"input_ids": input_ids, "attention_mask": [[1] * len(i) for i in input_ids]})
        ds.save_to_disk(str(tmp / "data"))
        # Flatten: callers load the folder itself.
        for item in (tmp / "data").iterdir():
            os.replace(item, tmp / item.name)
        (tmp / "data").rmdir()
        (tmp / "dmc_calibration.json").write_text(json.dumps(asdict(result), indent=2))
    return result


def _load_rows(spec: CalibrationSpec) -> tuple[list[str], list[list[dict] | None]]:
    import random

    path = Path(spec.source)
    if path.suffix in (".jsonl", ".json", ".txt"):
        if not path.is_file():
            raise CalibrationError(f"calibration file {spec.source!r} does not exist")
        if path.suffix == ".txt":
            rows = [{"text": p.strip()} for p in path.read_text().split("\n\n") if p.strip()]
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        from datasets import load_dataset

        try:
            rows = list(load_dataset(spec.source, split=spec.split))
        except Exception as exc:  # datasets raises many types; the message is what matters
            raise CalibrationError(f"cannot load calibration dataset {spec.source!r}: {exc}") from None
    has_messages = bool(rows) and "messages" in rows[0]
    if not has_messages and (not rows or spec.text_column not in rows[0]):
        cols = sorted(rows[0]) if rows else []
        raise CalibrationError(
            f"calibration data {spec.source!r} has no column {spec.text_column!r} (columns: {cols})"
        )
    if len(rows) < spec.num_samples:
        raise CalibrationError(
            f"calibration data {spec.source!r} has {len(rows)} samples, fewer than the {spec.num_samples} requested"
        )
    rows = random.Random(spec.seed).sample(rows, spec.num_samples)
    texts = [r.get(spec.text_column, "") for r in rows]
    messages = [r.get("messages") if has_messages else None for r in rows]
    return texts, messages
