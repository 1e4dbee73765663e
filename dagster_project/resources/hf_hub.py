"""The Hugging Face Hub: pinned snapshots of base models, model info for the watch sensor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from dagster import ConfigurableResource


class HubError(RuntimeError):
    pass


class HubUnavailable(HubError):
    """The Hub did not answer usefully right now (429, 5xx, timeout, connection, offline mode): retry later."""


class RepoHead(NamedTuple):
    """What the watch sensor needs of a repo: its id, the commit of `main`, the stored bytes (if known)."""

    repo_id: str
    sha: str
    size_bytes: int | None = None


class HuggingFaceHubResource(ConfigurableResource):
    """The token is read from the environment at call time so it never lands in run config."""

    endpoint: str | None = None  # HF_ENDPOINT when unset
    token_env_var: str = "HF_TOKEN"
    offline: bool = False
    # Publication of approved variants (off by default: the demo keeps everything local).
    publish_enabled: bool = False
    publish_organization: str = ""
    publish_private: bool = True

    def publish_repo_id(self, model_key: str, recipe: str) -> str:
        owner = self.publish_organization or "dmc"
        return f"{owner}/{model_key.split('--')[-1]}-{recipe}"

    def token(self) -> str | None:
        return os.environ.get(self.token_env_var) or None

    def api(self):
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint or os.environ.get("HF_ENDPOINT"), token=self.token())

    def resolve_revision(self, repo_id: str, revision: str | None) -> str:
        """Branch / tag / sha → commit sha, with errors that say which input was wrong."""
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

        try:
            info = self.api().model_info(repo_id, revision=revision)
        except GatedRepoError:
            raise HubError(f"{repo_id} is gated or private: set {self.token_env_var} to a token with access") from None
        except RevisionNotFoundError:
            raise HubError(f"revision {revision!r} does not exist in {repo_id}") from None
        except RepositoryNotFoundError:
            hint = "" if self.token() else f" (or it is private and {self.token_env_var} is not set)"
            raise HubError(f"model {repo_id!r} does not exist on the Hub{hint}") from None
        return info.sha

    def snapshot(self, repo_id: str, revision: str, local_dir: Path) -> Path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError

        try:
            path = snapshot_download(
                repo_id=repo_id, revision=revision, local_dir=str(local_dir),
                endpoint=self.endpoint or os.environ.get("HF_ENDPOINT"), token=self.token(),
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.md", "*.jinja", "LICENSE*", "tokenizer*"],
                local_files_only=self.offline,
            )
        except GatedRepoError:  # model_info answers for gated repos; their files need access
            raise HubError(f"{repo_id} is gated or private: set {self.token_env_var} to a token with access") from None
        return Path(path)

    # ---- watch sensor: cheap look-ups of the head commit, errors sorted into gone vs. unavailable ----

    def repo_head(self, repo_id: str, timeout: float = 10.0) -> RepoHead | None:
        """The commit `main` points at; None when the repo does not exist or is not visible to us."""
        from huggingface_hub.errors import RepositoryNotFoundError

        if self.offline:
            raise HubUnavailable("the Hub resource is configured offline")
        try:
            info = self.api().model_info(repo_id, timeout=timeout, expand=["sha", "usedStorage"])
        except RepositoryNotFoundError:  # GatedRepoError is a subclass; model_info needs no access
            return None
        except Exception as exc:
            raise _classify(exc, f"model_info({repo_id})") from None
        if not info.sha:
            raise HubUnavailable(f"model_info({repo_id}) answered without a commit sha")
        return RepoHead(info.id or repo_id, info.sha, getattr(info, "used_storage", None))

    def author_heads(self, author: str, timeout: float = 30.0) -> list[RepoHead]:
        """Every model repo of `author` with the commit `main` points at (one paginated listing).

        The same request as `HfApi.list_models(author=..., expand=["sha", "usedStorage"])`, with
        a timeout: list_models takes none and huggingface_hub 1.x's client waits forever by default,
        which would hang a sensor tick. `paginate` and `build_hf_headers` are what list_models uses,
        both exported by `huggingface_hub.utils`.
        """
        from huggingface_hub import ModelInfo
        from huggingface_hub.utils import build_hf_headers, paginate

        if self.offline:
            raise HubUnavailable("the Hub resource is configured offline")
        api = self.api()
        try:
            items = paginate(
                f"{api.endpoint}/api/models",
                params={"author": author, "expand": ["sha", "usedStorage"]},
                headers=build_hf_headers(token=api.token, library_name=api.library_name,
                                         library_version=api.library_version, user_agent=api.user_agent,
                                         headers=api.headers),
                timeout=timeout,
            )
            out = []
            for item in items:
                info = ModelInfo(**item)
                if info.sha:
                    out.append(RepoHead(info.id, info.sha, getattr(info, "used_storage", None)))
            return out
        except Exception as exc:
            raise _classify(exc, f"list_models(author={author})") from None


def _classify(exc: Exception, what: str) -> HubError:
    """Transient failures (retry next tick) become HubUnavailable; anything else a HubError."""
    import httpx

    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return HubUnavailable(f"{what}: offline mode is enabled (HF_HUB_OFFLINE=1)")
    if isinstance(exc, httpx.TimeoutException):
        return HubUnavailable(f"{what}: timed out ({type(exc).__name__})")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        retry = exc.response.headers.get("Retry-After")
        if status == 429 or status >= 500:
            hint = f", retry after {retry} s" if retry else ""
            return HubUnavailable(f"{what}: HTTP {status}{hint}")
        return HubError(f"{what}: HTTP {status}: {str(exc).splitlines()[0]}")
    if isinstance(exc, (httpx.TransportError, ConnectionError, OSError)):
        return HubUnavailable(f"{what}: cannot reach the Hub ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    return HubError(f"{what}: {type(exc).__name__}: {exc}")
