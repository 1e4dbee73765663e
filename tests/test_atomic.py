"""atomic_directory: whole folders or nothing, never a missing target during a replace."""

import pytest

from dagster_project.atomic import atomic_directory


def test_success_renames_into_place(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "half.bin").write_bytes(b"\0" * 10)
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_existing_target_kept_or_replaced(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "v").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "v").write_text("new")
    assert (target / "v").read_text() == "old"  # a concurrent writer won: keep theirs
    with atomic_directory(target, replace=True) as tmp:
        (tmp / "v").write_text("new")
    assert (target / "v").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
