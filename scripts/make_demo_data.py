"""Regenerate the small data files the repository ships (run once; outputs are committed).

- data/calibration/jargon-calibration.jsonl: 512 training paragraphs ({"text": ...}).
- data/eval/jargon_heldout_ppl.jsonl: 120 held-out paragraphs for word perplexity.
- data/eval/jargon_heldout_cloze.jsonl: 4-way multiple choice: which ending continues the
  held-out passage; the distractors are the same words in shuffled order, so a model that has
  learned English word order scores far above chance (25 %) and damage to it shows.
"""

import json
import random

from dagster_project.demo.corpus import split
from dagster_project.settings import PACKAGE_DATA


def main() -> None:
    rng = random.Random(42)
    train, heldout = split()
    calib = rng.sample([p for p in train if 200 <= len(p) <= 1500], 512)
    _write(PACKAGE_DATA / "calibration" / "jargon-calibration.jsonl", [{"text": t} for t in calib])
    _write(PACKAGE_DATA / "eval" / "jargon_heldout_ppl.jsonl", [{"text": t} for t in heldout[:120]])

    items = []
    pool = [p for p in heldout if len(p.split()) >= 24]
    for i, passage in enumerate(pool):
        words = passage.split()
        cut = len(words) // 2
        context, ending = " ".join(words[:cut]), " ".join(words[cut:cut + 12])
        distractors = []
        words_end = ending.split()
        while len(distractors) < 3:
            shuffled = words_end[:]
            rng.shuffle(shuffled)
            text = " ".join(shuffled)
            if text != ending and text not in distractors:
                distractors.append(text)
        choices = distractors + [ending]
        rng.shuffle(choices)
        items.append({"context": context, "choices": choices, "label": choices.index(ending)})
    _write(PACKAGE_DATA / "eval" / "jargon_heldout_cloze.jsonl", items)
    print(f"{len(calib)} calibration, {min(120, len(heldout))} ppl, {len(items)} cloze items")


def _write(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
