"""The shipped public-domain corpus (Jargon File 4.4.7), cleaned and split train / held-out."""

from __future__ import annotations

import gzip
import hashlib
import re
from functools import lru_cache

from dagster_project.settings import PACKAGE_DATA

CORPUS_FILE = PACKAGE_DATA / "corpus" / "jargon-4.4.7.txt.gz"
HELDOUT_FRACTION = 0.05

# The text edition draws tables with box characters; they carry no language.
_BOX = re.compile(r"[\u2500-\u257f]+")
_SPACES = re.compile(r"[ \t]+")


@lru_cache(maxsize=1)
def paragraphs() -> tuple[str, ...]:
    raw = gzip.decompress(CORPUS_FILE.read_bytes()).decode("utf-8")
    raw = _BOX.sub(" ", raw)
    out = []
    for block in re.split(r"\n\s*\n", raw):
        text = _SPACES.sub(" ", " ".join(line.strip() for line in block.splitlines())).strip()
        if len(text) >= 40:  # drop headings, page furniture and empty table cells
            out.append(text)
    return tuple(out)


def split() -> tuple[list[str], list[str]]:
    """Deterministic split: the last 5 % of paragraphs are never trained on."""
    paras = list(paragraphs())
    cut = int(len(paras) * (1 - HELDOUT_FRACTION))
    return paras[:cut], paras[cut:]


def corpus_sha256() -> str:
    return hashlib.sha256(CORPUS_FILE.read_bytes()).hexdigest()
