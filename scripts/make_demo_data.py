"""Regenerate the small data files the repository ships (run once; outputs are committed).

- data/calibration/jargon-calibration.jsonl: 512 training paragraphs ({"text": ...}).
- data/eval/jargon_heldout_ppl.jsonl: 120 held-out paragraphs for token perplexity / bits per byte.
- data/eval/jargon_heldout_lastword.jsonl: LAMBADA-style next-word items over every held-out
  paragraph: the passage up to a word, and that word as the target. Several cut points per
  passage give hundreds of items (a standard error of ~2 points on accuracy), and greedy
  whole-word accuracy moves with small changes to the logits, which is what quantization does.
"""

import json
import random
import re

from dagster_project.demo.corpus import split
from dagster_project.settings import PACKAGE_DATA

MIN_CONTEXT_WORDS = 12  # enough text for the model to have something to go on
STRIDE = 10  # words between cut points in one passage
MAX_CONTEXT_CHARS = 400  # keeps every item inside the demo model's 128-token training window
_WORD = re.compile(r"[A-Za-z]{2,}")


def main() -> None:
    rng = random.Random(42)
    train, heldout = split()
    calib = rng.sample([p for p in train if 200 <= len(p) <= 1500], 512)
    _write(PACKAGE_DATA / "calibration" / "jargon-calibration.jsonl", [{"text": t} for t in calib])
    _write(PACKAGE_DATA / "eval" / "jargon_heldout_ppl.jsonl", [{"text": t} for t in heldout[:120]])
    items = lastword_items(heldout)
    _write(PACKAGE_DATA / "eval" / "jargon_heldout_lastword.jsonl", items)
    print(f"{len(calib)} calibration, {min(120, len(heldout))} ppl, {len(items)} last-word items")


def lastword_items(passages: list[str]) -> list[dict]:
    """{"context", "target"}: the target is the alphabetic head of the next word (punctuation after
    it stays out), so scoring asks only "which word comes next"."""
    items = []
    for passage in passages:
        words = passage.split(" ")
        for cut in range(MIN_CONTEXT_WORDS, len(words), STRIDE):
            head = _WORD.match(words[cut])
            if not head:
                continue
            context = " ".join(words[:cut])[-MAX_CONTEXT_CHARS:]
            context = context[context.find(" ") + 1:] if len(context) == MAX_CONTEXT_CHARS else context
            items.append({"context": context, "target": head.group(0)})
    return items


def _write(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
