"""Model folders shared between step pods: a local folder, a mounted PVC, or S3-compatible storage.

Folders move as folders (safetensors, configs, tokenizers), never pickled. Writes are atomic:
on a filesystem a temporary sibling is renamed into place; on S3 a `_COMPLETE` manifest is
written last and readers only trust prefixes that carry it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import Field

from dagster_project.atomic import OLD_PREFIX, TMP_PREFIX, atomic_directory, atomic_file, copy_directory
from dagster_project.settings import load_settings

if TYPE_CHECKING:
    from dagster_project.artifacts.layout import ArtifactLayout
    from dagster_project.artifacts.step import StepStorage

COMPLETE_MARKER = "_COMPLETE"
_CHUNK = 8 * 1024 * 1024


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _clean_relpath(relpath: str) -> str:
    rel = PurePosixPath(str(relpath).replace("\\", "/"))
    parts = [p for p in rel.parts if p not in ("", ".")]
    if rel.is_absolute() or not parts or any(p == ".." for p in parts):
        raise ValueError(f"artifact path must be relative and inside the store: {relpath!r}")
    if any(p.startswith((TMP_PREFIX, OLD_PREFIX)) or p == COMPLETE_MARKER for p in parts):
        raise ValueError(f"artifact path uses a reserved name: {relpath!r}")
    return "/".join(parts)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


class ArtifactStore(ConfigurableResource):
    """Stores model folders under `root`; `kind` is local, pvc or s3."""

    kind: str = Field(default="local", description='"local" | "pvc" | "s3"')
    root: str = Field(
        default="",
        description="local folder, PVC mount path, or s3://bucket/prefix; empty = settings.artifact_root()",
    )
    pvc_claim: str | None = Field(default=None, description="PVC name, used in pvc:// URIs")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, ODF, Ceph RGW)")
    s3_region: str | None = None
    aws_access_key_id: str | None = Field(default=None, description='wire with EnvVar("AWS_ACCESS_KEY_ID")')
    aws_secret_access_key: str | None = Field(default=None, description='wire with EnvVar("AWS_SECRET_ACCESS_KEY")')
    verify_checksums: bool = Field(default=True, description="sha256 every file into the S3 manifest and check it on download")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ArtifactStore:
        """Store configured by `DMC_ARTIFACT_*` variables (set by the Helm chart)."""
        from dagster import EnvVar

        settings = load_settings(environ).store
        kwargs: dict[str, Any] = {
            "kind": settings.kind,
            "root": settings.root,
            "pvc_claim": settings.pvc_claim,
            "s3_endpoint_url": settings.s3_endpoint_url,
            "s3_region": settings.s3_region,
        }
        # Credentials stay EnvVar references (boto3's names), resolved by Dagster, never copied.
        has_keys = ("AWS_ACCESS_KEY_ID" in environ) if environ is not None else ("AWS_ACCESS_KEY_ID" in os.environ)
        if settings.kind == "s3" and has_keys:
            kwargs["aws_access_key_id"] = EnvVar("AWS_ACCESS_KEY_ID")
            kwargs["aws_secret_access_key"] = EnvVar("AWS_SECRET_ACCESS_KEY")
        return cls(**kwargs)

    # ---- layout and the step's view ---------------------------------------------------------

    def step(self) -> StepStorage:
        """This step's view: reads pull from the store and writes push to it (in place on a filesystem)."""
        from dagster_project.artifacts.step import StepStorage

        return StepStorage(self)

    def layout(self) -> ArtifactLayout:
        """Where each stage's files live, as this process sees them (S3: under its scratch folder)."""
        return self.step().layout

    # ---- paths -----------------------------------------------------------------------------

    def _check_kind(self) -> str:
        if self.kind not in ("local", "pvc", "s3"):
            raise ValueError(f"unknown artifact store kind {self.kind!r}")
        if self.kind == "s3" and not self.root.startswith("s3://"):
            raise ValueError(f"s3 artifact store root must start with s3://, got {self.root!r}")
        if self.kind == "pvc" and not self.root:
            raise ValueError("pvc artifact store needs root = the PVC mount path")
        return self.kind

    def _fs_root(self) -> Path:
        if self.root:
            return Path(self.root).expanduser().resolve()
        from dagster_project.settings import artifact_root

        return artifact_root()

    def _s3_key(self, rel: str) -> str:
        return f"{self.root[len('s3://'):].rstrip('/')}/{rel}"

    def local_path(self, relpath: str) -> Path:
        """Filesystem path of an artifact (local and pvc kinds only)."""
        if self._check_kind() == "s3":
            raise ValueError("an s3 artifact store has no local path; use get_folder()")
        return self._fs_root() / _clean_relpath(relpath)

    def uri_for(self, relpath: str) -> str:
        """Stable URI for metadata and the model registry."""
        rel = _clean_relpath(relpath)
        kind = self._check_kind()
        if kind == "s3":
            return f"s3://{self._s3_key(rel)}"
        if kind == "pvc":
            claim = self.pvc_claim or self._fs_root().name
            return f"pvc://{claim}/{rel}"
        return (self._fs_root() / rel).as_uri()

    # ---- S3 ----------------------------------------------------------------------------------

    def _s3(self):
        import s3fs  # heavy (aiobotocore); only S3 users pay for it

        client_kwargs: dict[str, Any] = {}
        if self.s3_region:
            client_kwargs["region_name"] = self.s3_region
        return s3fs.S3FileSystem(
            key=self.aws_access_key_id or None,
            secret=self.aws_secret_access_key or None,
            endpoint_url=self.s3_endpoint_url or None,
            client_kwargs=client_kwargs,
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def _manifest(self, folder: Path) -> dict[str, Any]:
        files = {}
        for path in _files_under(folder):
            entry: dict[str, Any] = {"size": path.stat().st_size}
            if self.verify_checksums:
                entry["sha256"] = _sha256(path)
            files[path.relative_to(folder).as_posix()] = entry
        return {"format": 1, "files": files}

    def _read_manifest(self, fs, key: str) -> dict[str, Any] | None:
        marker = f"{key}/{COMPLETE_MARKER}"
        if not fs.exists(marker):
            return None
        return json.loads(fs.cat_file(marker))

    # ---- API ---------------------------------------------------------------------------------

    def put_folder(self, local_dir: str | os.PathLike[str], relpath: str) -> str:
        """Publish a folder atomically under `relpath`, replacing what was there; returns its URI."""
        src = Path(local_dir)
        if not src.is_dir():
            raise NotADirectoryError(src)
        rel = _clean_relpath(relpath)
        if self._check_kind() == "s3":
            fs = self._s3()
            key = self._s3_key(rel)
            manifest = self._manifest(src)
            # Readers must stop trusting the old content before any of it changes.
            if fs.exists(f"{key}/{COMPLETE_MARKER}"):
                fs.rm_file(f"{key}/{COMPLETE_MARKER}")
            if fs.exists(key):
                fs.rm(key, recursive=True)
            for name in manifest["files"]:
                fs.put_file(str(src / name), f"{key}/{name}")
            fs.pipe_file(f"{key}/{COMPLETE_MARKER}", json.dumps(manifest, sort_keys=True).encode())
        else:
            copy_directory(src, self._fs_root() / rel)
        return self.uri_for(rel)

    def get_folder(self, relpath: str, local_dir: str | os.PathLike[str]) -> Path:
        """Copy a complete artifact into `local_dir` (replaced atomically); returns that path."""
        rel = _clean_relpath(relpath)
        dest = Path(local_dir).resolve()
        if self._check_kind() != "s3":
            src = self._fs_root() / rel
            if not self.exists(rel):
                raise FileNotFoundError(self.uri_for(rel))
            copy_directory(src, dest)
            return dest

        fs = self._s3()
        key = self._s3_key(rel)
        manifest = self._read_manifest(fs, key)
        if manifest is None:
            raise FileNotFoundError(f"{self.uri_for(rel)} (no {COMPLETE_MARKER} marker: missing or partial upload)")
        with atomic_directory(dest, replace=True) as tmp:
            for name, entry in manifest["files"].items():
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{key}/{name}", str(target))
                if target.stat().st_size != entry["size"]:
                    raise OSError(f"size mismatch for {name}: {target.stat().st_size} != {entry['size']}")
                if self.verify_checksums and "sha256" in entry and _sha256(target) != entry["sha256"]:
                    raise OSError(f"sha256 mismatch for {name}")
        return dest

    def folder_manifest(self, relpath: str) -> dict[str, Any] | None:
        """S3: the `_COMPLETE` manifest of a complete folder (None: missing or partial)."""
        if self._check_kind() != "s3":
            raise ValueError("folder manifests exist on s3 artifact stores only")
        return self._read_manifest(self._s3(), self._s3_key(_clean_relpath(relpath)))

    def put_file(self, local_file: str | os.PathLike[str], relpath: str) -> str:
        """Publish one small file (a JSON record, a plot); an S3 PUT replaces an object atomically."""
        src = Path(local_file)
        if not src.is_file():
            raise FileNotFoundError(src)
        rel = _clean_relpath(relpath)
        if self._check_kind() == "s3":
            self._s3().put_file(str(src), self._s3_key(rel))
        else:
            dest = self._fs_root() / rel
            if dest.resolve() != src.resolve():
                with atomic_file(dest) as tmp:
                    shutil.copy2(src, tmp)
        return self.uri_for(rel)

    def get_file(self, relpath: str, local_file: str | os.PathLike[str]) -> bool:
        """Copy one file to `local_file` (written atomically); False when the store has none."""
        rel = _clean_relpath(relpath)
        dest = Path(local_file)
        if self._check_kind() != "s3":
            src = self._fs_root() / rel
            if not src.is_file():
                return False
            with atomic_file(dest) as tmp:
                shutil.copy2(src, tmp)
            return True
        fs = self._s3()
        try:
            with atomic_file(dest) as tmp:  # no object: get_file raises, or writes nothing and the rename does
                fs.get_file(self._s3_key(rel), str(tmp))
        except FileNotFoundError:
            return False
        return True

    def exists(self, relpath: str) -> bool:
        """True only for complete artifacts (S3: marker present; filesystem: renamed into place)."""
        rel = _clean_relpath(relpath)
        if self._check_kind() == "s3":
            return self._s3().exists(f"{self._s3_key(rel)}/{COMPLETE_MARKER}")
        return (self._fs_root() / rel).is_dir()
