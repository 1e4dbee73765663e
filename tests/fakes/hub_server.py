"""A loopback server that speaks the subset of the Hugging Face Hub HTTP API our code uses.

The unmodified ``huggingface_hub`` 1.x client works against it when pointed at ``server.url``
(``HfApi(endpoint=server.url)`` or ``HF_ENDPOINT``):

* ``model_info`` / ``repo_info`` (``/api/models/{repo}`` and ``/revision/{rev}``, ``blobs=True``,
  ``expand=[...]``), ``list_models`` (``author``, ``search``, ``filter``, ``limit``, ``sort``,
  ``full``, ``cardData``, ``expand``; paginated with a GitHub-style ``Link`` header),
  ``list_repo_tree`` / ``list_repo_files`` / ``get_paths_info``, ``list_repo_commits``,
  ``list_repo_refs``;
* ``hf_hub_download`` / ``snapshot_download`` (``HEAD`` + ``GET /{repo}/resolve/{rev}/{file}``
  with ``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``, ``Content-Length``, ``Range``);
* ``create_repo`` (409 when it exists), ``delete_repo``, ``update_repo_settings``,
  ``create_tag``, ``create_branch``, ``upload_file`` / ``upload_folder`` / ``create_commit``
  as the Hub answers them: ``/preupload`` says ``lfs`` for files that ``.gitattributes`` sends to
  LFS or that are 10 MiB or larger (with the stored sha256 as their oid, so unchanged files are
  skipped); small files travel base64 in the NDJSON ``/commit`` body, ``lfs`` files as
  ``lfsFile`` entries (sha256 oid + size) whose content must already be stored. That content
  arrives one of two ways, as on the Hub:

  - **Xet** (what huggingface_hub 1.x uses whenever ``hf_xet`` is installed):
    ``GET /api/models/{repo}/xet-write-token/{revision}`` (write token required) and
    ``.../xet-read-token/{revision}`` answer ``{"casUrl", "accessToken", "exp"}`` plus the
    ``X-Xet-Cas-Url`` / ``X-Xet-Access-Token`` / ``X-Xet-Token-Expiration`` headers; ``casUrl``
    points at a loopback CAS (:class:`tests.fakes.xet_cas.XetCasServer`, started and stopped with
    this server, state under ``root_dir/xet``) that takes the xorbs and shards hf_xet uploads,
    rebuilds each file from them, checks its sha256 and puts it in this server's blob store;
  - **git-LFS** (with ``HF_HUB_DISABLE_XET=1``, or an upload from a buffered file object): the
    batch API (``/{repo}.git/info/lfs/objects/batch``), a PUT to a one-time upload link and
    ``verify``.

  Downloads never advertise Xet (no ``X-Xet-Hash``): clients fetch ``/resolve`` over plain HTTP.
  ``/api/validate-yaml``, ``/api/whoami-v2``.

Errors carry the headers the client turns into typed exceptions (``X-Error-Code``:
``RepoNotFound``, ``GatedRepo``, ``RevisionNotFound``, ``EntryNotFound``). Tokens come from a
table ``{token: "read" | "write"}``. A failure switch answers 503 / 429 (+ ``Retry-After``) to
simulate an outage, and every request is counted.

State lives in ``root_dir`` (content-addressed blobs plus one JSON file per repo), so a new
server over the same directory sees the same repos. Standard library + PyYAML only: never
import torch here.

Note: the client refuses every request while ``HF_HUB_OFFLINE=1`` was set when it was
imported; wrap client calls in :func:`hub_client_online`.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fnmatch
import hashlib
import itertools
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import yaml

from tests.fakes.loopback import LoopbackHandler, LoopbackServer, RecordedRequest
from tests.fakes.xet_cas import XetCasServer

READ = "read"
WRITE = "write"

# Files the server *reports* as LFS (tree / siblings / ETag), like the Hub's default
# .gitattributes. Storage and upload stay "regular" either way.
DEFAULT_LFS_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.gguf",
    "*.onnx",
    "*.h5",
    "*.msgpack",
    "*.tar.gz",
    "*.zip",
)

_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in DEFAULT_LFS_PATTERNS).encode()

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_STREAM_THRESHOLD = 8 * 1024 * 1024  # bigger bodies are streamed from disk


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as ``oid`` / ``blobId``)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_front_matter(text: str) -> dict | None:
    """YAML front matter of a model card, or None. Raises yaml.YAMLError / ValueError if invalid."""
    if not text.startswith("---"):
        return None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            data = yaml.safe_load("\n".join(lines[1:i])) or {}
            if not isinstance(data, dict):
                raise ValueError("metadata must be a YAML mapping")
            return data
    raise ValueError("unterminated YAML front matter")


class HubError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class _Auth:
    present: bool
    role: str | None  # None if absent or invalid

    @property
    def valid(self) -> bool:
        return self.role is not None

    @property
    def can_write(self) -> bool:
        return self.role == WRITE


class HubServer(LoopbackServer):
    """Threaded loopback Hub. Use as a context manager or call :meth:`start` / :meth:`stop`.

    ``tokens`` maps a token string to ``"read"`` or ``"write"``. Every valid token belongs to
    one user, ``user``, who may write to any namespace (organizations are not modelled).
    """

    def __init__(
        self,
        root_dir: str | os.PathLike,
        tokens: Mapping[str, str] | None = None,
        *,
        user: str = "loopback-user",
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
        lfs_patterns: tuple[str, ...] = DEFAULT_LFS_PATTERNS,
    ) -> None:
        self.root = Path(root_dir)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self.tokens: dict[str, str] = {}
        for tok, role in (tokens or {}).items():
            if role not in (READ, WRITE):
                raise ValueError(f"token role must be 'read' or 'write', got {role!r}")
            self.tokens[tok] = role
        self.user = user
        self.page_size = page_size
        self.lfs_patterns = tuple(lfs_patterns)
        self._bind(host, port)
        # The Xet storage the xet-*-token endpoints point at; rebuilt files land in our blob store.
        self.cas = XetCasServer(self.root / "xet", blob_sink=self._put_blob, host=host)
        self._lock = threading.RLock()
        self._lfs_tickets: dict[str, tuple[str, int]] = {}  # one-time upload links from the LFS batch API
        self._repos: dict[str, dict] = {}
        self._card_cache: dict[str, dict | None] = {}
        self._counter = itertools.count()
        self._requests: list[RecordedRequest] = []
        self._failure: dict | None = None
        self.commits_created = 0  # commits created through the HTTP API
        self._load()

    @property
    def endpoint(self) -> str:
        return self.url

    def start(self):
        self.cas.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self.cas.stop()

    def api(self, token: str | None = None):
        """An ``HfApi`` bound to this server (``token=None``: anonymous)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.url, token=token if token is not None else False)

    def env(self, token: str | None = None) -> dict[str, str]:
        """Environment for a subprocess (dagster CLI, benchmark) that should talk to this server."""
        env = {"HF_ENDPOINT": self.url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    # ------------------------------------------------------------------ counters / failures
    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @contextlib.contextmanager
    def outage(self, status: int = 503, *, retry_after: int | None = None) -> Iterator[None]:
        self.fail(status, retry_after=retry_after)
        try:
            yield
        finally:
            self.recover()

    # ------------------------------------------------------------------ persistence
    def _repo_file(self, repo_id: str) -> Path:
        ns, name = repo_id.split("/", 1)
        return self.root / "repos" / ns / f"{name}.json"

    def _load(self) -> None:
        for path in sorted((self.root / "repos").glob("*/*.json")):
            data = json.loads(path.read_text())
            self._repos[data["id"]] = data

    def _save(self, repo: dict) -> None:
        path = self._repo_file(repo["id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{threading.get_ident()}")
        tmp.write_text(json.dumps(repo))
        os.replace(tmp, path)

    def _put_blob(self, data: bytes) -> list:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / sha256
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return [sha256, len(data), git_blob_sha1(data)]

    def _blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _read_blob(self, sha256: str) -> bytes:
        return self._blob_path(sha256).read_bytes()

    # ------------------------------------------------------------------ test helpers
    @staticmethod
    def _check_repo_id(repo_id: str) -> None:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p) for p in parts):
            raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}")

    def _files_from(self, files: Mapping[str, bytes | str] | str | os.PathLike) -> dict[str, list]:
        out: dict[str, list] = {}
        if isinstance(files, Mapping):
            for rel, content in files.items():
                data = content.encode() if isinstance(content, str) else bytes(content)
                out[_clean_path(rel)] = self._put_blob(data)
        else:
            folder = Path(files)
            if not folder.is_dir():
                raise ValueError(f"{folder} is not a directory")
            for p in sorted(folder.rglob("*")):
                if p.is_file() and ".cache" not in p.relative_to(folder).parts and ".git" not in p.parts:
                    out[p.relative_to(folder).as_posix()] = self._put_blob(p.read_bytes())
        return out

    def add_model(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str] | str | os.PathLike | None = None,
        *,
        private: bool = False,
        gated: bool | str = False,
        gated_allow: list[str] | None = None,
        author: str | None = None,
        library_name: str | None = None,
        pipeline_tag: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        commit_message: str = "Upload model",
        downloads: int = 0,
        likes: int = 0,
    ) -> str:
        """Create a repo holding ``files`` (a dict path → bytes/str, or a folder). Returns the head sha.

        ``gated`` may be True/"auto"/"manual". ``gated_allow`` lists tokens that were granted access
        (None: every valid token).
        """
        self._check_repo_id(repo_id)
        with self._lock:
            if repo_id in self._repos:
                raise ValueError(f"{repo_id} already exists; use add_revision")
            repo = self._new_repo(repo_id, private=private, author=author)
            repo.update(
                gated=("auto" if gated is True else (gated or False)),
                gated_allow=list(gated_allow) if gated_allow is not None else None,
                library_name=library_name,
                pipeline_tag=pipeline_tag,
                extra_tags=list(tags),
                downloads=downloads,
                likes=likes,
            )
            if files is not None:
                tree = dict(self._head_files(repo, "main"))
                tree.update(self._files_from(files))
                self._commit(repo, "main", tree, commit_message, "")
            self._save(repo)
            return repo["branches"]["main"]

    def add_revision(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str] | str | os.PathLike | None = None,
        *,
        delete: list[str] | tuple[str, ...] = (),
        branch: str = "main",
        replace: bool = False,
        commit_message: str = "Update model",
    ) -> str:
        """Commit ``files`` on top of ``branch`` (or replace its whole tree). Returns the new sha."""
        with self._lock:
            repo = self._require(repo_id)
            tree = {} if replace else dict(self._head_files(repo, branch))
            for path in delete:
                tree.pop(_clean_path(path), None)
            if files is not None:
                tree.update(self._files_from(files))
            sha = self._commit(repo, branch, tree, commit_message, "")
            self._save(repo)
            return sha

    def create_tag(self, repo_id: str, tag: str, revision: str = "main") -> str:
        with self._lock:
            repo = self._require(repo_id)
            sha = self._resolve(repo, revision)
            repo["tags"][tag] = sha
            self._save(repo)
            return sha

    def set_visibility(
        self, repo_id: str, *, private: bool | None = None, gated: bool | str | None = None
    ) -> None:
        with self._lock:
            repo = self._require(repo_id)
            if private is not None:
                repo["private"] = bool(private)
            if gated is not None:
                repo["gated"] = "auto" if gated is True else (gated or False)
            self._save(repo)

    def delete_model(self, repo_id: str) -> None:
        with self._lock:
            self._repos.pop(repo_id, None)
            with contextlib.suppress(FileNotFoundError):
                self._repo_file(repo_id).unlink()

    def has_model(self, repo_id: str) -> bool:
        with self._lock:
            return repo_id in self._repos

    @property
    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._repos)

    def head_sha(self, repo_id: str, revision: str = "main") -> str:
        with self._lock:
            return self._resolve(self._require(repo_id), revision)

    def commit_count(self, repo_id: str, revision: str = "main") -> int:
        """Number of commits in the history of ``revision`` (the repo's initial commit included)."""
        with self._lock:
            repo = self._require(repo_id)
            return len(self._history(repo, self._resolve(repo, revision)))

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self._lock:
            repo = self._require(repo_id)
            tree = repo["commits"][self._resolve(repo, revision)]["files"]
            return {p: self._read_blob(e[0]) for p, e in tree.items()}

    def repo_state(self, repo_id: str) -> dict:
        with self._lock:
            return copy.deepcopy(self._require(repo_id))

    # ------------------------------------------------------------------ model
    def _require(self, repo_id: str) -> dict:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise KeyError(f"no such repo: {repo_id}")
        return repo

    def _new_repo(self, repo_id: str, *, private: bool, author: str | None = None) -> dict:
        ns = repo_id.split("/")[0]
        now = _now_iso()
        repo = {
            "id": repo_id,
            "_id": hashlib.sha1(f"{repo_id}{now}".encode()).hexdigest()[:24],
            "author": author or ns,
            "private": bool(private),
            "gated": False,
            "gated_allow": None,
            "created_at": now,
            "library_name": None,
            "pipeline_tag": None,
            "extra_tags": [],
            "downloads": 0,
            "likes": 0,
            "branches": {},
            "tags": {},
            "commits": {},
        }
        self._repos[repo_id] = repo
        # Like the Hub: a new repo starts with one commit holding .gitattributes.
        self._commit(repo, "main", {".gitattributes": self._put_blob(_GITATTRIBUTES)}, "initial commit", "")
        return repo

    def _commit(self, repo: dict, branch: str, files: dict[str, list], title: str, message: str) -> str:
        parent = repo["branches"].get(branch)
        date = _now_iso()
        seed = json.dumps([repo["id"], parent, sorted(files.items()), title, message, date, next(self._counter)])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo["commits"][sha] = {
            "id": sha,
            "parent": parent,
            "title": title,
            "message": message,
            "date": date,
            "author": self.user,
            "files": dict(sorted(files.items())),
        }
        repo["branches"][branch] = sha
        return sha

    def _head_files(self, repo: dict, branch: str) -> dict[str, list]:
        sha = repo["branches"].get(branch)
        return repo["commits"][sha]["files"] if sha else {}

    def _history(self, repo: dict, sha: str | None) -> list[dict]:
        out = []
        while sha:
            c = repo["commits"][sha]
            out.append(c)
            sha = c["parent"]
        return out

    def _resolve(self, repo: dict, revision: str) -> str:
        rev = revision
        for prefix in ("refs/heads/", "refs/tags/"):
            if rev.startswith(prefix):
                rev = rev[len(prefix):]
        if rev in repo["branches"]:
            return repo["branches"][rev]
        if rev in repo["tags"]:
            return repo["tags"][rev]
        if rev in repo["commits"]:
            return rev
        if re.fullmatch(r"[0-9a-f]{7,39}", rev):
            matches = [c for c in repo["commits"] if c.startswith(rev)]
            if len(matches) == 1:
                return matches[0]
        raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")

    def _is_lfs(self, path: str) -> bool:
        name = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in self.lfs_patterns)

    def _card(self, commit: dict) -> dict | None:
        entry = commit["files"].get("README.md")
        if entry is None:
            return None
        sha256 = entry[0]
        if sha256 not in self._card_cache:
            try:
                self._card_cache[sha256] = _parse_front_matter(self._read_blob(sha256).decode("utf-8", "replace"))
            except (yaml.YAMLError, ValueError):
                self._card_cache[sha256] = None
        return self._card_cache[sha256]

    def _last_commit_for(self, repo: dict, head: str, path: str) -> dict:
        history = self._history(repo, head)
        entry = history[0]["files"].get(path)
        last = history[0]
        for c in history[1:]:
            if c["files"].get(path) != entry:
                break
            last = c
        return {"id": last["id"], "title": last["title"], "date": last["date"]}


def _clean_path(path: str) -> str:
    p = str(path).replace("\\", "/")
    if p.startswith("/") or not p or any(part in ("", ".", "..") for part in p.split("/")):
        raise HubError(400, f"Invalid path: {path!r}")
    return p


# ---------------------------------------------------------------------- HTTP layer

_API_REPO_RE = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(.*))?$")
_LFS_BATCH_RE = re.compile(r"^/([^/]+)/([^/]+?)(?:\.git)?/info/lfs/objects/batch$")
_LFS_OBJECT_RE = re.compile(r"^/lfs/objects/([0-9a-f]{64})/(upload|verify)$")
# The Hub stores a file through LFS when .gitattributes says so or when it is this large.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_RESOLVE_RE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on")


class _Handler(LoopbackHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1.0"

    # ------------------------------------------------------------------ plumbing
    @property
    def hub(self) -> HubServer:
        return self.server.owner  # type: ignore[attr-defined]

    def _auth(self) -> _Auth:
        header = self.headers.get("Authorization")
        if not header:
            return _Auth(False, None)
        token = header[7:].strip() if header.lower().startswith("bearer ") else header.strip()
        return _Auth(True, self.hub.tokens.get(token))

    def _send(
        self,
        status: int,
        body: bytes | None = b"",
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
        file_path: Path | None = None,
        file_range: tuple[int, int] | None = None,
    ) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        length = len(body or b"") if file_path is None else (file_range[1] - file_range[0])
        self.send_header("Content-Length", str(length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n")
        head = b"".join(self._headers_buffer)
        self._headers_buffer = []
        if self.command == "HEAD":
            self.wfile.write(head)
        elif file_path is None:
            self.wfile.write(head + (body or b""))
        else:
            start, end = file_range  # type: ignore[misc]
            with open(file_path, "rb") as fh:
                fh.seek(start)
                if length <= _STREAM_THRESHOLD:
                    self.wfile.write(head + fh.read(length))
                else:
                    self.wfile.write(head)
                    left = length
                    while left > 0:
                        chunk = fh.read(min(1 << 20, left))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        left -= len(chunk)
        self.wfile.flush()

    def _json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, err: HubError) -> None:
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message
        self._json(err.status, {"error": err.message}, headers=headers)

    def _dispatch(self, method: str) -> None:
        self._status = 500
        body = self._read_body()
        split = urlsplit(self.path)
        raw_path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            failure = self.hub._take_failure(raw_path)
            if failure is not None:
                headers = {}
                if failure["retry_after"] is not None:
                    headers["Retry-After"] = str(failure["retry_after"])
                msg = "Service Unavailable" if failure["status"] == 503 else "Simulated Hub failure"
                raise HubError(failure["status"], msg, headers=headers)
            self._route(method, raw_path, query, body)
        except HubError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: make it visible, never hang the client
            self._error(HubError(500, f"Internal error in loopback hub: {type(exc).__name__}: {exc}"))
        finally:
            self.hub._record(method, raw_path, self._status)

    def _route(self, method: str, path: str, q: dict[str, list[str]], body: bytes) -> None:
        hub = self.hub
        auth = self._auth()
        if auth.present and not auth.valid:
            raise HubError(401, "Invalid credentials in Authorization header")

        if path == "/api/models" and method in ("GET", "HEAD"):
            return self._list_models(q, auth)
        if path == "/api/whoami-v2" and method == "GET":
            if not auth.valid:
                raise HubError(401, "Invalid credentials in Authorization header")
            return self._json(
                200,
                {
                    "type": "user",
                    "id": hashlib.sha1(hub.user.encode()).hexdigest()[:24],
                    "name": hub.user,
                    "fullname": hub.user,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": auth.role}},
                },
            )
        if path == "/api/validate-yaml" and method == "POST":
            return self._validate_yaml(body)
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(body, auth)
        if path == "/api/repos/delete" and method == "DELETE":
            return self._delete_repo(body, auth)

        m = _LFS_BATCH_RE.match(path)
        if m and method == "POST":
            return self._lfs_batch(f"{unquote(m[1])}/{unquote(m[2])}", body, auth)
        m = _LFS_OBJECT_RE.match(path)
        if m:
            return self._lfs_object(m[1], m[2], method, q, body, auth)

        m = _API_REPO_RE.match(path)
        if m:
            repo_type, ns, name, rest = m.groups()
            repo_id = f"{unquote(ns)}/{unquote(name)}"
            if repo_type != "models":
                raise HubError(404, "Repository not found", code="RepoNotFound")
            parts = [unquote(p) for p in rest.split("/")] if rest else []
            return self._repo_api(method, repo_id, parts, q, body, auth)

        m = _RESOLVE_RE.match(path)
        if m and method in ("GET", "HEAD"):
            repo_type, ns, name, rev, filename = m.groups()
            if repo_type:
                raise HubError(404, "Repository not found", code="RepoNotFound")
            return self._resolve_file(f"{unquote(ns)}/{unquote(name)}", unquote(rev), unquote(filename), auth)

        raise HubError(404, f"Not found: {method} {path}")

    # ------------------------------------------------------------------ access control
    def _readable_repo(self, repo_id: str, auth: _Auth, *, files: bool = False) -> dict:
        repo = self.hub._repos.get(repo_id)
        if repo is None or (repo["private"] and not auth.valid):
            raise HubError(404 if auth.valid else 401, "Repository not found", code="RepoNotFound")
        if files and repo["gated"]:
            allow = repo.get("gated_allow")
            token = self._token()
            if not auth.valid:
                raise HubError(
                    401, f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in.", code="GatedRepo"
                )
            if allow is not None and token not in allow:
                raise HubError(
                    403, f"Access to model {repo_id} is restricted and you are not in the authorized list.", code="GatedRepo"
                )
        return repo

    def _token(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        return header[7:].strip() if header.lower().startswith("bearer ") else (header.strip() or None)

    def _require_write(self, auth: _Auth, what: str) -> None:
        if not auth.present:
            raise HubError(401, f"You must be authenticated to {what}")
        if not auth.can_write:
            raise HubError(403, f"You don't have the rights to {what}: this token is read-only")

    # ------------------------------------------------------------------ JSON builders
    def _file_entry(self, path: str, entry: list, *, expand: bool, repo: dict | None = None, head: str | None = None) -> dict:
        sha256, size, gsha1 = entry
        out: dict[str, Any] = {"type": "file", "size": size, "path": path}
        if self.hub._is_lfs(path):
            pointer = lfs_pointer(sha256, size)
            out["oid"] = git_blob_sha1(pointer)
            out["lfs"] = {"oid": sha256, "size": size, "pointerSize": len(pointer)}
        else:
            out["oid"] = gsha1
        if expand and repo is not None and head is not None:
            out["lastCommit"] = self.hub._last_commit_for(repo, head, path)
        return out

    def _model_json(self, repo: dict, sha: str, *, blobs: bool = False, card: bool = True) -> dict:
        hub = self.hub
        commit = repo["commits"][sha]
        card_data = hub._card(commit)
        library_name = (card_data or {}).get("library_name") or repo.get("library_name")
        pipeline_tag = (card_data or {}).get("pipeline_tag") or repo.get("pipeline_tag")
        tags: list[str] = []
        card_tags = (card_data or {}).get("tags") or []
        if isinstance(card_tags, str):
            card_tags = [card_tags]
        for t in [*([library_name] if library_name else []), *card_tags, *repo.get("extra_tags", [])]:
            if isinstance(t, str) and t not in tags:
                tags.append(t)
        if card_data:
            base = card_data.get("base_model")
            relation = card_data.get("base_model_relation")
            for b in [base] if isinstance(base, str) else (base or []):
                tag = f"base_model:{relation}:{b}" if relation else f"base_model:{b}"
                for t in (f"base_model:{b}", tag):
                    if t not in tags:
                        tags.append(t)
            lic = card_data.get("license")
            if isinstance(lic, str) and f"license:{lic}" not in tags:
                tags.append(f"license:{lic}")
        siblings = []
        for path, entry in commit["files"].items():
            if blobs:
                f = self._file_entry(path, entry, expand=False)
                s: dict[str, Any] = {"rfilename": path, "size": entry[1], "blobId": f["oid"]}
                if "lfs" in f:
                    s["lfs"] = {"size": entry[1], "sha256": entry[0], "pointerSize": f["lfs"]["pointerSize"]}
                siblings.append(s)
            else:
                siblings.append({"rfilename": path})
        out: dict[str, Any] = {
            "_id": repo["_id"],
            "id": repo["id"],
            "modelId": repo["id"],
            "author": repo["author"],
            "sha": sha,
            "lastModified": commit["date"],
            "createdAt": repo["created_at"],
            "private": repo["private"],
            "gated": repo["gated"],
            "disabled": False,
            "downloads": repo.get("downloads", 0),
            "likes": repo.get("likes", 0),
            "trendingScore": 0,
            "library_name": library_name,
            "tags": tags,
            "pipeline_tag": pipeline_tag,
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(e[1] for e in commit["files"].values()),
        }
        if card and card_data is not None:
            out["cardData"] = card_data
        if library_name is None:
            del out["library_name"]
        if pipeline_tag is None:
            del out["pipeline_tag"]
        return out

    @staticmethod
    def _expand(q: dict[str, list[str]]) -> list[str]:
        return q.get("expand", []) + q.get("expand[]", [])

    @staticmethod
    def _only(obj: dict, fields: list[str]) -> dict:
        keep = {"_id", "id", *fields}
        return {k: v for k, v in obj.items() if k in keep}

    # ------------------------------------------------------------------ handlers
    def _list_models(self, q: dict[str, list[str]], auth: _Auth) -> None:
        hub = self.hub
        author = (q.get("author") or [None])[0]
        searches = [s.lower() for s in q.get("search", []) if s]
        filters = q.get("filter", [])
        pipeline_tag = (q.get("pipeline_tag") or [None])[0]
        gated = (q.get("gated") or [None])[0]
        limit = int(q["limit"][0]) if q.get("limit") else None
        full = _truthy((q.get("full") or [None])[0])
        with_card = _truthy((q.get("cardData") or [None])[0])
        expand = self._expand(q)
        sort = (q.get("sort") or [None])[0]
        direction = (q.get("direction") or ["-1"])[0]
        cursor = int(q["cursor"][0]) if q.get("cursor") else 0

        with hub._lock:
            items = []
            for repo_id in sorted(hub._repos):
                repo = hub._repos[repo_id]
                if repo["private"] and not auth.valid:
                    continue
                if author and repo["author"] != author and repo_id.split("/")[0] != author:
                    continue
                if any(s not in repo_id.lower() for s in searches):
                    continue
                if gated is not None and bool(repo["gated"]) != _truthy(gated):
                    continue
                info = self._model_json(repo, repo["branches"]["main"])
                if pipeline_tag and info.get("pipeline_tag") != pipeline_tag:
                    continue
                if filters and not all(f in info["tags"] or f == info.get("library_name") for f in filters):
                    continue
                items.append(info)
        if sort in ("lastModified", "createdAt", "downloads", "likes", "trendingScore", "id"):
            items.sort(key=lambda i: i.get(sort) or 0, reverse=(direction == "-1"))

        def shape(info: dict) -> dict:
            if expand:
                return self._only(info, expand)
            if full:
                out = {k: v for k, v in info.items() if k != "cardData" or with_card}
                return out
            basic = ["modelId", "likes", "downloads", "trendingScore", "private", "tags", "pipeline_tag",
                     "library_name", "createdAt"]
            if with_card:
                basic.append("cardData")
            return self._only(info, basic)

        headers = {}
        if limit is not None:
            page = items[cursor : cursor + limit]
        else:
            page = items[cursor : cursor + hub.page_size]
            if cursor + hub.page_size < len(items):
                params = [(k, v) for k, vs in q.items() if k != "cursor" for v in vs]
                params.append(("cursor", str(cursor + hub.page_size)))
                headers["Link"] = f'<{hub.url}/api/models?{urlencode(params)}>; rel="next"'
        self._json(200, [shape(i) for i in page], headers=headers)

    def _repo_api(
        self, method: str, repo_id: str, parts: list[str], q: dict[str, list[str]], body: bytes, auth: _Auth
    ) -> None:
        hub = self.hub
        op = parts[0] if parts else ""
        if method in ("GET", "HEAD"):
            with hub._lock:
                repo = self._readable_repo(repo_id, auth)
                if op == "" or (op == "revision" and len(parts) == 2):
                    sha = hub._resolve(repo, parts[1] if op == "revision" else "main")
                    info = self._model_json(repo, sha, blobs=_truthy((q.get("blobs") or [None])[0]))
                    expand = self._expand(q)
                    return self._json(200, self._only(info, expand) if expand else info)
                if op == "tree" and len(parts) >= 2:
                    return self._tree(repo, parts[1], "/".join(parts[2:]), q)
                if op == "commits" and len(parts) == 2:
                    sha = hub._resolve(repo, parts[1])
                    return self._json(
                        200,
                        [
                            {
                                "id": c["id"],
                                "title": c["title"],
                                "message": c["message"],
                                "date": c["date"],
                                "authors": [{"user": c["author"]}],
                            }
                            for c in hub._history(repo, sha)
                        ],
                    )
                if op in ("xet-write-token", "xet-read-token") and len(parts) in (1, 2):
                    return self._xet_token(repo, op, parts[1] if len(parts) == 2 else None, auth)
                if op == "refs":
                    def ref(kind: str, name: str, sha: str) -> dict:
                        return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

                    return self._json(
                        200,
                        {
                            "branches": [ref("heads", n, s) for n, s in sorted(repo["branches"].items())],
                            "tags": [ref("tags", n, s) for n, s in sorted(repo["tags"].items())],
                            "converts": [],
                            "pullRequests": [],
                        },
                    )
            raise HubError(404, f"Not found: {method} /api/models/{repo_id}/{'/'.join(parts)}")

        if method == "POST" and op == "paths-info" and len(parts) == 2:
            form = parse_qs(body.decode(), keep_blank_values=True)
            with hub._lock:
                repo = self._readable_repo(repo_id, auth)
                sha = hub._resolve(repo, parts[1])
                files = repo["commits"][sha]["files"]
                expand = _truthy((form.get("expand") or [None])[0])
                out = []
                for p in form.get("paths", []):
                    p = p.strip("/")
                    if p in files:
                        out.append(self._file_entry(p, files[p], expand=expand, repo=repo, head=sha))
                    elif any(f.startswith(p + "/") for f in files):
                        out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p})
                return self._json(200, out)

        if method == "POST" and op == "preupload" and len(parts) == 2:
            return self._preupload(repo_id, parts[1], body, auth)
        if method == "POST" and op == "commit" and len(parts) == 2:
            return self._commit(repo_id, parts[1], q, body, auth)
        if method == "POST" and op in ("tag", "branch") and len(parts) == 2:
            payload = json.loads(body or b"{}")
            with hub._lock:
                repo = self._readable_repo(repo_id, auth)
                self._require_write(auth, f"create a {op} in {repo_id}")
                if op == "tag":
                    sha = hub._resolve(repo, parts[1])
                    tag = payload["tag"]
                    if tag in repo["tags"]:
                        raise HubError(409, f"Tag {tag} already exists")
                    repo["tags"][tag] = sha
                else:
                    branch = parts[1]
                    if branch in repo["branches"]:
                        raise HubError(409, f"Branch {branch} already exists")
                    repo["branches"][branch] = hub._resolve(repo, payload.get("startingPoint") or "main")
                hub._save(repo)
            return self._json(200, {"success": True})
        if method == "PUT" and op == "settings":
            payload = json.loads(body or b"{}")
            with hub._lock:
                repo = self._readable_repo(repo_id, auth)
                self._require_write(auth, f"change the settings of {repo_id}")
                if "private" in payload:
                    repo["private"] = bool(payload["private"])
                if payload.get("visibility") in ("private", "public"):
                    repo["private"] = payload["visibility"] == "private"
                if "gated" in payload:
                    repo["gated"] = payload["gated"] or False
                hub._save(repo)
            return self._json(200, {"success": True})
        raise HubError(404, f"Not found: {method} /api/models/{repo_id}/{'/'.join(parts)}")

    def _xet_token(self, repo: dict, op: str, revision: str | None, auth: _Auth) -> None:
        """A short-lived CAS token, in the JSON body (hf_xet reads it) and the headers
        (huggingface_hub's ``parse_xet_connection_info_from_headers`` reads them)."""
        hub = self.hub
        write = op == "xet-write-token"
        if write:
            self._require_write(auth, f"upload to {repo['id']}")
        else:
            self._readable_repo(repo["id"], auth, files=True)
        if revision not in (None, "None"):  # "None": a token for a pull request not created yet
            hub._resolve(repo, revision)
        token, exp = hub.cas.issue_token("write" if write else "read", repo["id"])
        self._json(
            200,
            {"casUrl": hub.cas.endpoint, "accessToken": token, "exp": exp},
            headers={"X-Xet-Cas-Url": hub.cas.endpoint, "X-Xet-Access-Token": token,
                     "X-Xet-Token-Expiration": str(exp)},
        )

    def _tree(self, repo: dict, revision: str, prefix: str, q: dict[str, list[str]]) -> None:
        hub = self.hub
        sha = hub._resolve(repo, revision)
        files = repo["commits"][sha]["files"]
        recursive = _truthy((q.get("recursive") or [None])[0])
        expand = _truthy((q.get("expand") or [None])[0])
        prefix = prefix.strip("/")
        base = prefix + "/" if prefix else ""
        if prefix and prefix not in files and not any(f.startswith(base) for f in files):
            raise HubError(404, f"{prefix} does not exist on {revision}", code="EntryNotFound",
                           headers={"X-Repo-Commit": sha})
        if prefix in files:  # listing a file path: the Hub answers with that file
            entries = [self._file_entry(prefix, files[prefix], expand=expand, repo=repo, head=sha)]
        else:
            dirs: set[str] = set()
            file_entries = []
            for path, entry in files.items():
                if not path.startswith(base):
                    continue
                rel = path[len(base):]
                segs = rel.split("/")
                for i in range(1, len(segs)):
                    if recursive or i == 1:
                        dirs.add(base + "/".join(segs[:i]))
                if recursive or len(segs) == 1:
                    file_entries.append(self._file_entry(path, entry, expand=expand, repo=repo, head=sha))
            dir_entries = [
                {"type": "directory", "oid": hashlib.sha1(f"{sha}:{d}".encode()).hexdigest(), "size": 0, "path": d}
                for d in sorted(dirs)
            ]
            entries = dir_entries + file_entries
        cursor = int(q["cursor"][0]) if q.get("cursor") else 0
        page = entries[cursor : cursor + hub.page_size]
        headers = {}
        if cursor + hub.page_size < len(entries):
            params = [(k, v) for k, vs in q.items() if k != "cursor" for v in vs]
            params.append(("cursor", str(cursor + hub.page_size)))
            enc_rev = quote(revision, safe="")
            enc_path = "/" + quote(prefix, safe="") if prefix else ""
            headers["Link"] = f'<{hub.url}/api/models/{repo["id"]}/tree/{enc_rev}{enc_path}?{urlencode(params)}>; rel="next"'
        self._json(200, page, headers=headers)

    def _validate_yaml(self, body: bytes) -> None:
        payload = json.loads(body or b"{}")
        try:
            _parse_front_matter(payload.get("content", ""))
        except (yaml.YAMLError, ValueError) as exc:
            return self._json(400, {"errors": [{"message": f"Invalid YAML metadata: {exc}"}], "warnings": []})
        return self._json(200, {"errors": [], "warnings": []})

    def _create_repo(self, body: bytes, auth: _Auth) -> None:
        hub = self.hub
        payload = json.loads(body or b"{}")
        self._require_write(auth, "create a repository")
        repo_type = payload.get("type") or "model"
        if repo_type != "model":
            raise HubError(400, "The loopback hub only hosts model repositories")
        name = payload.get("name") or ""
        org = payload.get("organization") or hub.user
        repo_id = name if "/" in name else f"{org}/{name}"
        try:
            HubServer._check_repo_id(repo_id)
        except ValueError as exc:
            raise HubError(400, str(exc)) from None
        private = payload.get("private")
        if payload.get("visibility") in ("private", "public"):
            private = payload["visibility"] == "private"
        with hub._lock:
            if repo_id in hub._repos:
                # The Hub's 409 body carries the repo url; create_repo(exist_ok=True) reads it.
                return self._json(
                    409,
                    {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"},
                    headers={"X-Error-Message": "You already created this model repo"},
                )
            repo = hub._new_repo(repo_id, private=bool(private))
            hub._save(repo)
        self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo["_id"]})

    def _delete_repo(self, body: bytes, auth: _Auth) -> None:
        hub = self.hub
        payload = json.loads(body or b"{}")
        self._require_write(auth, "delete a repository")
        name = payload.get("name") or ""
        org = payload.get("organization") or hub.user
        repo_id = name if "/" in name else f"{org}/{name}"
        with hub._lock:
            if repo_id not in hub._repos:
                raise HubError(404, "Repository not found", code="RepoNotFound")
            hub.delete_model(repo_id)
        self._json(200, {})

    def _preupload(self, repo_id: str, revision: str, body: bytes, auth: _Auth) -> None:
        hub = self.hub
        payload = json.loads(body or b"{}")
        with hub._lock:
            repo = self._readable_repo(repo_id, auth)
            self._require_write(auth, f"upload to {repo_id}")
            sha = hub._resolve(repo, revision)
            files = repo["commits"][sha]["files"]
            out = []
            for f in payload.get("files", []):
                path = f.get("path", "")
                existing = files.get(path)
                lfs = hub._is_lfs(path) or int(f.get("size") or 0) >= LFS_SIZE_THRESHOLD
                out.append(
                    {
                        "path": path,
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        # What the client compares with its own oid to drop unchanged files.
                        "oid": (existing[0] if lfs else existing[2]) if existing else None,
                    }
                )
        self._json(200, {"files": out, "commitOid": sha})

    def _lfs_batch(self, repo_id: str, body: bytes, auth: _Auth) -> None:
        """The git-lfs batch API: one upload (and verify) action per object the store lacks.

        Upload links carry a one-time ticket instead of the token, as the Hub's presigned storage
        URLs do; objects already stored get no actions (the client skips them)."""
        hub = self.hub
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload":
            raise HubError(400, "The loopback hub's LFS batch API accepts uploads only")
        if "basic" not in (payload.get("transfers") or ["basic"]):
            raise HubError(400, "The loopback hub offers the 'basic' LFS transfer only")
        with hub._lock:
            self._readable_repo(repo_id, auth)
            self._require_write(auth, f"upload to {repo_id}")
            objects = []
            for obj in payload.get("objects", []):
                oid, size = str(obj.get("oid", "")), obj.get("size")
                if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
                    objects.append({"oid": oid, "size": size or 0, "error": {"code": 422, "message": "invalid oid or size"}})
                    continue
                stored = hub._blob_path(oid)
                if stored.exists() and stored.stat().st_size == size:
                    objects.append({"oid": oid, "size": size})
                    continue
                ticket = secrets.token_urlsafe(16)
                hub._lfs_tickets[ticket] = (oid, size)
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": f"{hub.url}/lfs/objects/{oid}/upload?ticket={ticket}"},
                    "verify": {"href": f"{hub.url}/lfs/objects/{oid}/verify"},
                }})
        self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_object(self, oid: str, action: str, method: str, q: dict[str, list[str]], body: bytes, auth: _Auth) -> None:
        hub = self.hub
        if action == "upload" and method == "PUT":
            with hub._lock:
                expected = hub._lfs_tickets.pop((q.get("ticket") or [""])[0], None)
            if expected is None or expected[0] != oid:
                raise HubError(403, "Invalid or used upload ticket")
            if len(body) != expected[1] or hashlib.sha256(body).hexdigest() != oid:
                raise HubError(400, f"Uploaded content does not match oid {oid} and size {expected[1]}")
            hub._put_blob(body)
            return self._send(200, b"")
        if action == "verify" and method == "POST":
            if not auth.valid:
                raise HubError(401, "Invalid credentials in Authorization header")
            claimed = json.loads(body or b"{}")
            stored = hub._blob_path(oid)
            if claimed.get("oid") != oid or not stored.exists() or stored.stat().st_size != claimed.get("size"):
                raise HubError(404, f"LFS object {oid} is not stored with size {claimed.get('size')}")
            return self._json(200, {"success": True})
        raise HubError(405, f"{method} is not allowed on {action}")

    def _commit(self, repo_id: str, revision: str, q: dict[str, list[str]], body: bytes, auth: _Auth) -> None:
        hub = self.hub
        if _truthy((q.get("create_pr") or [None])[0]):
            raise HubError(400, "Pull requests are not supported by the loopback hub")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        title = header.get("summary") or ""
        if not title:
            raise HubError(400, "Commit summary is required")
        with hub._lock:
            repo = self._readable_repo(repo_id, auth)
            self._require_write(auth, f"push to {repo_id}")
            if revision not in repo["branches"]:
                raise HubError(404, f"Invalid rev id: {revision} is not a branch", code="RevisionNotFound")
            head = repo["branches"][revision]
            parent = header.get("parentCommit")
            if parent and not head.startswith(parent):
                raise HubError(412, f"A commit has happened since {parent}. Please refresh and try again.")
            tree = dict(repo["commits"][head]["files"])
            for item in lines[1:]:
                key, value = item.get("key"), item.get("value") or {}
                if key == "file":
                    path = _clean_path(value["path"])
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, "Only base64-encoded files are supported")
                    tree[path] = hub._put_blob(base64.b64decode(value["content"]))
                elif key == "lfsFile":
                    path = _clean_path(value["path"])
                    oid = value.get("oid", "")
                    if not re.fullmatch(r"[0-9a-f]{64}", oid) or not hub._blob_path(oid).exists():
                        raise HubError(422, f"LFS object {oid} was never uploaded")
                    data = hub._read_blob(oid)
                    if value.get("size") is not None and value["size"] != len(data):
                        raise HubError(422, f"LFS object {oid} has size {len(data)}, not {value['size']}")
                    tree[path] = [oid, len(data), git_blob_sha1(data)]
                elif key == "deletedFile":
                    path = value["path"]
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                    del tree[path]
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    victims = [p for p in tree if p.startswith(prefix)]
                    if not victims:
                        raise HubError(404, f"A folder with this name doesn't exist: {value['path']}", code="EntryNotFound")
                    for p in victims:
                        del tree[p]
                else:
                    raise HubError(400, f"Unsupported commit operation: {key}")
            sha = hub._commit(repo, revision, tree, title, header.get("description") or "")
            hub.commits_created += 1
            hub._save(repo)
        self._json(
            200,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{hub.url}/{repo_id}/commit/{sha}",
                "commitMessage": title,
                "hookOutput": "",
                "pullRequestUrl": None,
            },
        )

    def _resolve_file(self, repo_id: str, revision: str, filename: str, auth: _Auth) -> None:
        hub = self.hub
        with hub._lock:
            repo = self._readable_repo(repo_id, auth, files=True)
            sha = hub._resolve(repo, revision)
            entry = repo["commits"][sha]["files"].get(filename)
        if entry is None:
            raise HubError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": sha})
        sha256, size, gsha1 = entry
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if hub._is_lfs(filename):
            headers["ETag"] = f'"{sha256}"'
            headers["X-Linked-Etag"] = f'"{sha256}"'
            headers["X-Linked-Size"] = str(size)
        else:
            headers["ETag"] = f'"{gsha1}"'
        start, end, status = 0, size, 200
        rng = self.headers.get("Range")
        if rng and self.command == "GET":
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m:
                a, b = m.groups()
                if a == "" and b:  # suffix range
                    start, end = max(0, size - int(b)), size
                else:
                    start = int(a or 0)
                    end = min(size, int(b) + 1) if b else size
                if start >= size and size > 0:
                    raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{max(start, end - 1)}/{size}"
        self._send(
            status,
            None,
            headers=headers,
            content_type="application/octet-stream",
            file_path=hub._blob_path(sha256),
            file_range=(start, end),
        )


@contextlib.contextmanager
def hub_client_online() -> Iterator[None]:
    """Let the huggingface_hub client make requests even if HF_HUB_OFFLINE=1 was set at import.

    Only the client's module-level flag is toggled (and restored); use it around calls that
    target a loopback server.
    """
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


HubServer.handler = _Handler


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.hub_server --root DIR [--port N] [--token TOKEN:write]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Loopback Hugging Face Hub for tests and demos")
    parser.add_argument("--root", required=True, help="state directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[], help="TOKEN:read or TOKEN:write (repeatable)")
    args = parser.parse_args(argv)
    tokens = {}
    for spec in args.token:
        tok, _, role = spec.rpartition(":")
        tokens[tok] = role
    server = HubServer(args.root, tokens=tokens, host=args.host, port=args.port).start()
    print(server.url, flush=True)  # the only output: never echo tokens
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
