"""The one way files and folders are written: beside their target, renamed into place when complete.

A killed process leaves only a `.tmp-*` sibling that nothing reads; a reader never sees half a file
or half a folder. (The vLLM runner keeps a three-line copy: it runs as a plain script in another
environment, without this package.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target`; an existing `target` is moved aside first (and put back if the rename fails)."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = target.with_name(f"{OLD_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; on success it becomes `target`, on any error it is removed.

    If `target` appeared meanwhile (a concurrent writer finished first) it is kept unless `replace`;
    a replaced folder is moved aside before the swap, so `target` never goes missing.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}-", dir=target.parent))
    try:
        yield tmp
        if not target.exists():
            os.replace(tmp, target)
        elif replace:
            _swap_in(tmp, target)
        else:
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_directory(src: Path, target: Path) -> None:
    """Copy a folder to `target`, replacing what was there, all or nothing."""
    if not Path(src).is_dir():
        raise NotADirectoryError(src)
    with atomic_directory(target, replace=True) as tmp:
        shutil.copytree(src, tmp, copy_function=shutil.copy2, dirs_exist_ok=True)  # copy2 looked up per call: tests can fail it


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path of `target` to write; on success it replaces `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{TMP_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str))
