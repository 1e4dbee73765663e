"""Idempotent publication of a model folder (plus its model card) to the Hugging Face Hub.

Local files are compared with the remote head by content hash (git blob sha1 for regular files,
sha256 for LFS files — what ``model_info(files_metadata=True)`` reports on the real Hub and on
the loopback server), and a commit is created only when something differs. The token is never
logged nor put into an exception message.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)

CARD_FILENAME = "README.md"
# Remote files that the publisher never deletes even if they are not in the local folder.
KEEP_REMOTE = frozenset({".gitattributes"})
# Local files that are never uploaded: bookkeeping written *after* publication, caches, temp files.
DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = ("hub_release.json", ".*", "*/.*", "*.tmp", "*.partial", "*.lock")
# 412: the branch moved between the diff and the commit (parent_commit check): diff again.
TRANSIENT_STATUS = frozenset({408, 412, 429, 500, 502, 503, 504})


class PublicationError(RuntimeError):
    """Publication failed for a reason the operator must fix (token, permissions, repo id)."""


class MissingTokenError(PublicationError):
    pass


class HubPermissionError(PublicationError):
    pass


@dataclass(frozen=True)
class HubPublication:
    repo_id: str
    commit_sha: str
    url: str  # the repo's page
    created_commit: bool

    @property
    def uri(self) -> str:
        return hub_uri(self.repo_id, self.commit_sha)

    @property
    def commit_url(self) -> str:
        return f"{self.url}/commit/{self.commit_sha}"


def hub_uri(repo_id: str, commit_sha: str) -> str:
    """URI recorded in the model registry for a published variant."""
    return f"hf://{repo_id}@{commit_sha}"


@dataclass(frozen=True)
class _LocalFile:
    path_in_repo: str
    source: Path | bytes
    size: int
    sha256: str
    git_sha1: str


def _hash_file(path: Path) -> tuple[int, str, str]:
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return size, sha256.hexdigest(), sha1.hexdigest()


def _hash_bytes(data: bytes) -> tuple[int, str, str]:
    return len(data), hashlib.sha256(data).hexdigest(), hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _ignored(rel: str, patterns: Iterable[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(parts[-1], pat):
            return True
        if pat == ".*" and any(p.startswith(".") for p in parts):
            return True
    return False


def local_files(folder: Path, card_markdown: str, ignore_patterns: Iterable[str] = DEFAULT_IGNORE_PATTERNS) -> dict[str, _LocalFile]:
    """What the repo must contain: the folder's files (minus ignored ones) with the card as README.md."""
    patterns = tuple(ignore_patterns)
    out: dict[str, _LocalFile] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(folder).as_posix()
        if rel == CARD_FILENAME or _ignored(rel, patterns):
            continue
        size, sha256, sha1 = _hash_file(p)
        out[rel] = _LocalFile(rel, p, size, sha256, sha1)
    card = card_markdown.encode("utf-8")
    out[CARD_FILENAME] = _LocalFile(CARD_FILENAME, card, *_hash_bytes(card))
    return out


def _same(local: _LocalFile, sibling) -> bool:
    if sibling is None:
        return False
    if sibling.lfs is not None:
        return sibling.lfs.sha256 == local.sha256 and sibling.lfs.size == local.size
    if sibling.blob_id is not None:
        return sibling.blob_id == local.git_sha1
    return False


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(exc: BaseException) -> bool:
    import httpx

    if isinstance(exc, (httpx.TransportError,)):
        return True
    return _status(exc) in TRANSIENT_STATUS


def _explain(exc: BaseException, repo_id: str) -> PublicationError | None:
    """Map a client error to an operator-facing one (never mentioning the token)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    status = _status(exc)
    if status == 403:
        return HubPermissionError(
            f"The Hub refused to write to {repo_id} (HTTP 403): the token in HF_TOKEN is read-only or has no "
            f"write access to the namespace {repo_id.split('/')[0]!r}. Publication needs a write token."
        )
    if status == 401 and not isinstance(exc, RepositoryNotFoundError):
        return PublicationError(
            f"The Hub rejected the credentials while publishing {repo_id} (HTTP 401): HF_TOKEN is invalid or expired."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return PublicationError(
            f"{repo_id} could not be created or is not visible with the token in HF_TOKEN (HTTP {status})."
        )
    return None


def publish_folder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None,
    endpoint: str | None = None,
    private: bool = True,
    organization: str | None = None,
    card_markdown: str,
    commit_message: str,
    ignore_patterns: Iterable[str] = DEFAULT_IGNORE_PATTERNS,
    delete_stale: bool = True,
    max_attempts: int = 4,
    retry_wait_s: float = 1.0,
    revision: str = "main",
) -> HubPublication:
    """Make ``repo_id`` hold exactly ``folder`` + ``card_markdown`` (as README.md) on ``revision``.

    Creates the repo if needed (``private``), then commits only if some file differs from the
    remote head (``created_commit`` tells which). Remote files absent locally are deleted when
    ``delete_stale`` (``.gitattributes`` is kept). Transient errors (429/5xx/network) are retried
    ``max_attempts`` times with exponential backoff; the commit is made against the head it was
    diffed with (``parent_commit``), so a concurrent push makes the attempt fail and be redone.
    """
    if not token:
        raise MissingTokenError("HF_TOKEN is not set; publication needs a write token")
    folder = Path(folder)
    if not folder.is_dir():
        raise PublicationError(f"{folder} is not a directory")
    if "/" not in repo_id:
        if not organization:
            raise PublicationError(f"repo_id {repo_id!r} has no namespace and no organization was given")
        repo_id = f"{organization}/{repo_id}"
    elif organization and repo_id.split("/")[0] != organization:
        raise PublicationError(f"repo_id {repo_id!r} is not in the organization {organization!r}")

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    ignore_patterns_t = tuple(ignore_patterns)
    files = local_files(folder, card_markdown, ignore_patterns_t)
    api = HfApi(endpoint=endpoint, token=token, library_name="dagster-model-compression")
    repo_url = f"{api.endpoint.rstrip('/')}/{repo_id}"

    @retry(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(max(1, max_attempts)),
        wait=wait_exponential(multiplier=retry_wait_s, min=retry_wait_s, max=30 * retry_wait_s),
        reraise=True,
        before_sleep=lambda rs: logger.warning(
            "Hub call for %s failed (%s); retrying (attempt %d of %d)",
            repo_id, type(rs.outcome.exception()).__name__, rs.attempt_number, max_attempts,
        ),
    )
    def attempt() -> HubPublication:
        try:
            info = api.model_info(repo_id, revision=revision, files_metadata=True)
        except RepositoryNotFoundError:
            # Checked first because create_repo(exist_ok=True) with a read-only token mishandles
            # custom endpoints in huggingface_hub 1.x; only create what does not exist.
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info = api.model_info(repo_id, revision=revision, files_metadata=True)
        head = info.sha
        remote = {s.rfilename: s for s in (info.siblings or [])}
        adds = [f for rel, f in files.items() if not _same(f, remote.get(rel))]
        deletes = (
            [rel for rel in remote if rel not in files and rel not in KEEP_REMOTE and not _ignored(rel, ignore_patterns_t)]
            if delete_stale
            else []
        )
        if not adds and not deletes:
            logger.info("%s@%s already holds these %d files; no commit", repo_id, head, len(files))
            return HubPublication(repo_id, head, repo_url, created_commit=False)
        operations = [
            CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=f.source if isinstance(f.source, bytes) else str(f.source))
            for f in adds
        ] + [CommitOperationDelete(path_in_repo=rel) for rel in deletes]
        logger.info("Publishing %s: %d file(s) changed, %d deleted, on top of %s", repo_id, len(adds), len(deletes), head)
        commit = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message,
            revision=revision,
            parent_commit=head,
        )
        created = commit.oid != head
        return HubPublication(repo_id, commit.oid, repo_url, created_commit=created)

    try:
        return attempt()
    except HfHubHTTPError as exc:
        explained = _explain(exc, repo_id)
        if explained is not None:
            raise explained from None
        raise PublicationError(
            f"Publishing {repo_id} to {api.endpoint} failed (HTTP {_status(exc)}): {type(exc).__name__}"
        ) from exc
