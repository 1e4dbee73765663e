"""Idempotent publication of a model folder (plus its model card) to the Hugging Face Hub.

``HfApi.upload_folder`` does the diffing: the Hub's preupload answer gives each remote file's oid
(git blob sha1, or sha256 for LFS files), the client drops unchanged files and makes no commit when
nothing differs, and ``delete_patterns`` removes remote files absent locally (``.gitattributes`` is
kept). The token is never logged nor put into an exception message.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)

CARD_FILENAME = "README.md"
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


def _ignored(rel: str, patterns: Iterable[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(parts[-1], pat):
            return True
        if pat == ".*" and any(p.startswith(".") for p in parts):
            return True
    return False


def stage_upload(folder: Path, card_markdown: str, staging: Path,
                 ignore_patterns: Iterable[str] = DEFAULT_IGNORE_PATTERNS) -> list[str]:
    """What the repo must contain, laid out in `staging` for upload_folder: links to the folder's files
    (minus ignored ones) and the card as README.md. Returns the paths in the repo."""
    patterns = tuple(ignore_patterns)
    paths = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if not p.is_file() or rel == CARD_FILENAME or _ignored(rel, patterns):
            continue
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).symlink_to(p.resolve())
        paths.append(rel)
    (staging / CARD_FILENAME).write_text(card_markdown, encoding="utf-8")
    return [*paths, CARD_FILENAME]


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

    import tempfile

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

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
            head = api.model_info(repo_id, revision=revision).sha
        except RepositoryNotFoundError:
            # Checked first because create_repo(exist_ok=True) with a read-only token mishandles
            # custom endpoints in huggingface_hub 1.x; only create what does not exist.
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            head = api.model_info(repo_id, revision=revision).sha
        with tempfile.TemporaryDirectory(prefix="dmc-hub-upload-") as staging:
            paths = stage_upload(folder, card_markdown, Path(staging), ignore_patterns)
            logger.info("Publishing %s: %d file(s) on top of %s", repo_id, len(paths), head)
            # parent_commit: a concurrent push makes this attempt fail (412) and be redone.
            commit = api.upload_folder(
                repo_id=repo_id, folder_path=staging, revision=revision, commit_message=commit_message,
                parent_commit=head, delete_patterns="*" if delete_stale else None,
            )
        created = commit.oid != head
        if not created:
            logger.info("%s@%s already holds these %d files; no commit", repo_id, head, len(paths))
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
