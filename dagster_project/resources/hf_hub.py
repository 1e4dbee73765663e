"""The Hugging Face Hub: pinned snapshots of base models, model info for the watch sensor."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource


class HubError(RuntimeError):
    pass


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

        path = snapshot_download(
            repo_id=repo_id, revision=revision, local_dir=str(local_dir),
            endpoint=self.endpoint or os.environ.get("HF_ENDPOINT"), token=self.token(),
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.md", "*.jinja", "LICENSE*", "tokenizer*"],
            local_files_only=self.offline,
        )
        return Path(path)
