"""ArtifactStore on a local folder, a PVC-like mount, and a real S3 server (SeaweedFS) on loopback."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from dagster_project.artifacts.store import COMPLETE_MARKER, ArtifactStore


def _make_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}')
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return _make_model(tmp_path / "src" / "tiny-llama-w4a16")


@pytest.mark.parametrize("kind", ["local", "pvc"])
def test_filesystem_roundtrip(kind: str, tmp_path: Path, model_dir: Path) -> None:
    root = tmp_path / "models"
    store = ArtifactStore(kind=kind, root=str(root), pvc_claim="dmc-models" if kind == "pvc" else None)
    rel = "compressed/tiny-llama/w4a16"
    assert not store.exists(rel)

    uri = store.put_folder(model_dir, rel)
    expected_uri = (root.resolve() / rel).as_uri() if kind == "local" else f"pvc://dmc-models/{rel}"
    assert uri == expected_uri == store.uri_for(rel)
    assert store.exists(rel)
    assert store.local_path(rel) == root.resolve() / rel
    assert _digests(store.local_path(rel)) == _digests(model_dir)
    assert not [p for p in store.local_path(rel).parent.iterdir() if p.name.startswith(".")]

    out = store.get_folder(rel, tmp_path / "download")
    assert _digests(out) == _digests(model_dir)

    # Replacing keeps exactly the new content.
    (model_dir / "config.json").write_text('{"model_type": "llama", "v": 2}')
    (model_dir / "tokenizer" / "tokenizer.json").unlink()
    store.put_folder(model_dir, rel)
    assert _digests(store.local_path(rel)) == _digests(model_dir)


def test_filesystem_failed_copy_leaves_nothing(tmp_path: Path, model_dir: Path, monkeypatch) -> None:
    store = ArtifactStore(kind="local", root=str(tmp_path / "models"))
    calls = {"n": 0}
    real_copy2 = shutil.copy2

    def flaky_copy2(src, dst, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_copy2(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copy2", flaky_copy2)
    with pytest.raises(OSError, match="disk full"):
        store.put_folder(model_dir, "m/v1")
    assert not store.exists("m/v1")
    assert list((tmp_path / "models" / "m").iterdir()) == []  # no .tmp-* left behind


def test_rejects_paths_outside_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(kind="local", root=str(tmp_path))
    for bad in ["../x", "/etc", "", "a/../../b", ".tmp-x/y", f"a/{COMPLETE_MARKER}"]:
        with pytest.raises(ValueError):
            store.uri_for(bad)
    with pytest.raises(ValueError):
        ArtifactStore(kind="s3", root="s3://bucket/p").local_path("a")
    with pytest.raises(ValueError):
        ArtifactStore(kind="nfs", root=str(tmp_path)).exists("a")


@pytest.fixture
def s3_store(s3_endpoint: str, s3_bucket: str) -> ArtifactStore:
    """A store on the real S3 server (SeaweedFS, tests/resources/conftest.py)."""
    return ArtifactStore(
        kind="s3",
        root=f"s3://{s3_bucket}/dmc",
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        aws_access_key_id="dmc-test",
        aws_secret_access_key="dmc-test",
    )


def test_s3_roundtrip(s3_store: ArtifactStore, model_dir: Path, tmp_path: Path) -> None:
    rel = "compressed/tiny-llama/w4a16"
    assert not s3_store.exists(rel)
    uri = s3_store.put_folder(model_dir, rel)
    assert uri == f"{s3_store.root}/{rel}" == s3_store.uri_for(rel)
    assert s3_store.exists(rel)

    out = s3_store.get_folder(rel, tmp_path / "download")
    assert _digests(out) == _digests(model_dir)
    assert not (out / COMPLETE_MARKER).exists()

    # Re-publishing replaces the folder: stale files disappear.
    (model_dir / "tokenizer" / "tokenizer.json").unlink()
    (model_dir / "extra.txt").write_text("new")
    s3_store.put_folder(model_dir, rel)
    out2 = s3_store.get_folder(rel, tmp_path / "download")
    assert _digests(out2) == _digests(model_dir)
    keys = s3_store._s3().find(s3_store._s3_key(rel))
    assert not any(k.endswith("tokenizer.json") for k in keys)


def test_s3_partial_upload_is_not_an_artifact(s3_store: ArtifactStore, model_dir: Path, tmp_path: Path) -> None:
    rel = "compressed/partial"
    fs = s3_store._s3()
    for p in model_dir.rglob("*"):
        if p.is_file():  # every file, but the writer "crashed" before the marker
            fs.put_file(str(p), f"{s3_store._s3_key(rel)}/{p.relative_to(model_dir).as_posix()}")
    assert fs.find(s3_store._s3_key(rel))
    assert not s3_store.exists(rel)
    with pytest.raises(FileNotFoundError, match=COMPLETE_MARKER):
        s3_store.get_folder(rel, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_s3_detects_corruption(s3_store: ArtifactStore, model_dir: Path, tmp_path: Path) -> None:
    rel = "compressed/corrupt"
    s3_store.put_folder(model_dir, rel)
    s3_store._s3().pipe_file(f"{s3_store._s3_key(rel)}/config.json", b'{"model_type": "gpt2"}!')
    with pytest.raises(OSError, match="mismatch"):
        s3_store.get_folder(rel, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_from_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DMC_ARTIFACT_STORE_KIND", "pvc")
    monkeypatch.setenv("DMC_ARTIFACT_ROOT", str(tmp_path))
    monkeypatch.setenv("DMC_ARTIFACT_PVC_CLAIM", "dmc-models")
    store = ArtifactStore.from_env()
    assert store.uri_for("a/b") == "pvc://dmc-models/a/b"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_single_files(kind: str, request, tmp_path: Path) -> None:
    store = request.getfixturevalue("s3_store") if kind == "s3" else ArtifactStore(kind="local", root=str(tmp_path / "root"))
    src = tmp_path / "record.json"
    src.write_text('{"a": 1}')
    assert not store.get_file("models/m/record.json", tmp_path / "got.json")
    assert not (tmp_path / "got.json").exists()
    store.put_file(src, "models/m/record.json")
    assert store.get_file("models/m/record.json", tmp_path / "got.json")
    assert (tmp_path / "got.json").read_text() == '{"a": 1}'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_step_storage_pulls_inputs_onto_an_empty_disk(s3_store: ArtifactStore, model_dir: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    """Two "pods" (two scratch folders): what one pushes, the other pulls by manifest, once."""
    import shutil

    from dagster_project.artifacts.step import StepStorage

    monkeypatch.setenv("DMC_SCRATCH_DIR", str(tmp_path / "pod-a"))
    a = StepStorage(s3_store)
    folder = a.layout.variant_dir("m", "r")
    shutil.copytree(model_dir, folder)
    a.push_folder(folder)
    a.write_json(a.layout.base_manifest("m"), {"revision": "abc"})

    monkeypatch.setenv("DMC_SCRATCH_DIR", str(tmp_path / "pod-b"))
    b = StepStorage(s3_store)
    assert b.layout.root == tmp_path / "pod-b" and not (tmp_path / "pod-b").exists()
    assert b.read_json(b.layout.base_manifest("m"), "base") == {"revision": "abc"}
    with pytest.raises(FileNotFoundError, match="materialize it first"):
        b.read_json(b.layout.calibration_manifest("m"), "calibration_dataset[m]")
    got = b.pull_folder(b.layout.variant_dir("m", "r"))
    assert _digests(got) == _digests(model_dir)
    # The per-pod cache: an unchanged manifest is not downloaded again.
    (got / "marker-of-this-pod").write_text("x")
    assert (b.pull_folder(got) / "marker-of-this-pod").exists()
    # A new version in the store replaces the pod's copy.
    (model_dir / "config.json").write_text('{"model_type": "llama", "v": 3}')
    s3_store.put_folder(model_dir, "models/m/variants/r")
    again = b.pull_folder(got)
    assert not (again / "marker-of-this-pod").exists() and _digests(again) == _digests(model_dir)
    with pytest.raises(FileNotFoundError, match="_COMPLETE"):
        b.pull_folder(b.layout.variant_dir("m", "missing"))
