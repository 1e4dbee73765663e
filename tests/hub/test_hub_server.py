"""The loopback Hub against the real, unmodified huggingface_hub client."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.fakes import HubServer

from .conftest import READ_TOKEN, WRITE_TOKEN

CARD = "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\ntags: [llmcompressor]\n---\n# m\n"


def _folder(root: Path, files: dict[str, bytes | str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def test_create_upload_and_model_info(hub, tmp_path):
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    url = api.create_repo("acme/tiny", private=True)
    assert url.repo_id == "acme/tiny"
    assert api.create_repo("acme/tiny", exist_ok=True).repo_id == "acme/tiny"  # 409 handled
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("acme/tiny")
    assert exc.value.response.status_code == 409

    folder = _folder(
        tmp_path / "up",
        {"config.json": "{}", "model.safetensors": b"\x00" * 4096, "README.md": CARD, "sub/extra.txt": "x"},
    )
    info_commit = api.upload_folder(folder_path=folder, repo_id="acme/tiny", commit_message="add model")
    assert len(info_commit.oid) == 40

    info = api.model_info("acme/tiny", files_metadata=True)
    assert info.sha == info_commit.oid
    assert info.private is True
    assert info.library_name == "transformers"
    assert info.pipeline_tag == "text-generation"
    assert "llmcompressor" in info.tags
    assert info.card_data.license == "apache-2.0"
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {".gitattributes", "config.json", "model.safetensors", "README.md", "sub/extra.txt"}
    assert siblings["model.safetensors"].lfs.size == 4096  # reported as LFS, like the Hub
    assert siblings["config.json"].lfs is None and siblings["config.json"].size == 2
    assert sorted(api.list_repo_files("acme/tiny")) == sorted(siblings)
    # repo_info at an explicit revision, and commit history
    assert api.model_info("acme/tiny", revision=info.sha).sha == info.sha
    commits = api.list_repo_commits("acme/tiny")
    assert [c.title for c in commits] == ["add model", "initial commit"]

    # Uploading identical content: the client skips unchanged files and makes no commit.
    before = hub.commits_created
    again = api.upload_folder(folder_path=folder, repo_id="acme/tiny", commit_message="same")
    assert again.oid == info.sha and hub.commits_created == before


def test_create_commit_add_and_delete(hub):
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    hub.add_model("acme/ops", {"a.txt": "a", "dir/b.txt": "b", "dir/c.txt": "c"})
    api.create_commit(
        "acme/ops",
        operations=[
            CommitOperationAdd("new.txt", b"new"),
            CommitOperationDelete("a.txt"),
            CommitOperationDelete("dir/", is_folder=True),
        ],
        commit_message="ops",
    )
    assert hub.files("acme/ops") == {".gitattributes": hub.files("acme/ops")[".gitattributes"], "new.txt": b"new"}
    with pytest.raises(EntryNotFoundError):
        api.delete_file("missing.txt", "acme/ops")


def test_list_models_author_search_and_pagination(tmp_path, hf_isolated):
    with HubServer(tmp_path / "state", page_size=3) as hub:
        for i in range(7):
            hub.add_model(f"org-a/model-{i}", {"config.json": "{}"}, pipeline_tag="text-generation")
        hub.add_model("org-b/other", {"config.json": "{}"})
        hub.add_model("org-a/secret", {"config.json": "{}"}, private=True)
        api = HfApi(endpoint=hub.url)
        ids = [m.id for m in api.list_models(author="org-a")]
        assert ids == [f"org-a/model-{i}" for i in range(7)]  # 3 pages, private one hidden
        assert [m.id for m in api.list_models(author="org-a", limit=2)] == ["org-a/model-0", "org-a/model-1"]
        assert [m.id for m in api.list_models(search="other")] == ["org-b/other"]
        full = list(api.list_models(author="org-b", full=True))
        assert full[0].sha == hub.head_sha("org-b/other")
        assert [m.sha for m in api.list_models(author="org-b", expand=["sha"])] == [hub.head_sha("org-b/other")]


def test_download_and_snapshot_at_revision(hub, tmp_path):
    old = hub.add_model("acme/rev", {"config.json": '{"v": 1}', "w.safetensors": b"old"})
    new = hub.add_revision("acme/rev", {"config.json": '{"v": 2}'}, delete=["w.safetensors"])
    assert old != new and hub.commit_count("acme/rev") == 3

    p = hf_hub_download("acme/rev", "config.json", endpoint=hub.url)
    assert Path(p).read_text() == '{"v": 2}'
    p_old = hf_hub_download("acme/rev", "config.json", revision=old, endpoint=hub.url)
    assert Path(p_old).read_text() == '{"v": 1}'

    snap = Path(snapshot_download("acme/rev", revision=old, endpoint=hub.url))
    assert snap.name == old
    assert (snap / "w.safetensors").read_bytes() == b"old"
    local = Path(snapshot_download("acme/rev", local_dir=tmp_path / "local", endpoint=hub.url))
    assert sorted(p.name for p in local.iterdir() if not p.name.startswith(".c")) == [".gitattributes", "config.json"]

    with pytest.raises(EntryNotFoundError):
        hf_hub_download("acme/rev", "nope.json", endpoint=hub.url)


def test_gated_private_and_missing(tmp_path, hf_isolated):
    allowed = "hf_allowed_reader_token_000000000000"
    other = "hf_other_reader_token_00000000000000"
    with HubServer(tmp_path / "state", tokens={allowed: "read", other: "read", WRITE_TOKEN: "write"}) as hub:
        hub.add_model("vendor/gated", {"config.json": "{}"}, gated="manual", gated_allow=[allowed])
        hub.add_model("vendor/private", {"config.json": "{}"}, private=True)

        # Metadata of a gated repo is public; its files are not.
        assert HfApi(endpoint=hub.url).model_info("vendor/gated").gated == "manual"
        with pytest.raises(GatedRepoError):
            hf_hub_download("vendor/gated", "config.json", endpoint=hub.url)
        with pytest.raises(GatedRepoError) as exc:
            hf_hub_download("vendor/gated", "config.json", endpoint=hub.url, token=other)
        assert exc.value.response.status_code == 403
        assert Path(hf_hub_download("vendor/gated", "config.json", endpoint=hub.url, token=allowed)).exists()

        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=hub.url).model_info("vendor/private")
        assert HfApi(endpoint=hub.url, token=allowed).model_info("vendor/private").private is True
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=hub.url, token=allowed).model_info("vendor/does-not-exist")
        with pytest.raises(RepositoryNotFoundError):
            snapshot_download("vendor/does-not-exist", endpoint=hub.url)
        with pytest.raises(RevisionNotFoundError):
            HfApi(endpoint=hub.url).model_info("vendor/private", revision="v9", token=allowed)
        with pytest.raises(RevisionNotFoundError):
            hf_hub_download("vendor/private", "config.json", revision="nope", endpoint=hub.url, token=allowed)
        # An unknown token is rejected as invalid credentials, not as a missing repo.
        with pytest.raises(HfHubHTTPError) as exc:
            HfApi(endpoint=hub.url, token="hf_unknown_token_value").model_info("vendor/gated")
        assert exc.value.response.status_code == 401
        assert not isinstance(exc.value, RepositoryNotFoundError)


def test_read_only_token_cannot_write(hub, tmp_path):
    hub.add_model("acme/ro", {"config.json": "{}"})
    api = HfApi(endpoint=hub.url, token=READ_TOKEN)
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="acme/ro")
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("acme/new-one")
    assert exc.value.response.status_code == 403
    # (create_repo(exist_ok=True) with a read-only token falls back to repo_info and then builds
    # RepoUrl without the custom endpoint: huggingface_hub 1.33 raises HfUriError on any non-HF
    # host there, so the publisher checks model_info before create_repo.)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("acme/ro")
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=hub.url).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="acme/ro")
    assert exc.value.response.status_code == 401
    assert hub.commit_count("acme/ro") == 2


def test_failure_switch_and_request_counter(hub):
    hub.add_model("acme/up", {"config.json": "{}"})
    api = HfApi(endpoint=hub.url)
    hub.reset_requests()
    hub.fail(503)
    with pytest.raises(HfHubHTTPError) as exc:
        api.model_info("acme/up")
    assert exc.value.response.status_code == 503
    hub.fail(429, retry_after=7, times=1)
    with pytest.raises(HfHubHTTPError) as exc:
        api.model_info("acme/up")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "7"
    assert api.model_info("acme/up").sha == hub.head_sha("acme/up")  # times=1: recovered
    with hub.outage():
        with pytest.raises(HfHubHTTPError):
            api.model_info("acme/up")
    assert api.model_info("acme/up").sha
    assert [r.status for r in hub.requests] == [503, 429, 200, 503, 200]
    assert hub.request_count == 5


def test_two_hundred_model_infos_one_request_each(hub):
    """Each lookup is one GET that answers 200 (no retries, no redirects); speed: bench_test_goals.py."""
    for i in range(200):
        hub.add_model(f"bulk/m{i:03d}", {"config.json": "{}"})
    api = HfApi(endpoint=hub.url)
    hub.reset_requests()
    shas = [api.model_info(f"bulk/m{i:03d}").sha for i in range(200)]
    assert len(set(shas)) == 200
    assert hub.request_count == 200
    assert {r.status for r in hub.requests} == {200}


def test_state_survives_restart(tmp_path, hf_isolated):
    with HubServer(tmp_path / "state", tokens={WRITE_TOKEN: "write"}) as hub:
        HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo("acme/persist")
        sha = HfApi(endpoint=hub.url, token=WRITE_TOKEN).upload_file(
            path_or_fileobj=b"data", path_in_repo="f.bin", repo_id="acme/persist"
        ).oid
    with HubServer(tmp_path / "state") as hub2:
        assert HfApi(endpoint=hub2.url).model_info("acme/persist").sha == sha
        assert hub2.files("acme/persist")["f.bin"] == b"data"


def test_refs_tags_settings_and_paths_info(hub):
    sha = hub.add_model("acme/misc", {"config.json": "{}", "weights/model.safetensors": b"w"})
    api = hub.api(WRITE_TOKEN)
    api.create_tag("acme/misc", tag="v1")
    api.create_branch("acme/misc", branch="dev")
    refs = api.list_repo_refs("acme/misc")
    assert [t.name for t in refs.tags] == ["v1"] and refs.tags[0].target_commit == sha
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert api.model_info("acme/misc", revision="v1").sha == sha
    api.update_repo_settings("acme/misc", private=True, gated="auto")
    info = api.model_info("acme/misc")
    assert info.private is True and info.gated == "auto"
    paths = {p.path: p for p in api.get_paths_info("acme/misc", ["config.json", "weights"])}
    assert paths["config.json"].size == 2 and type(paths["weights"]).__name__ == "RepoFolder"
    tree = list(api.list_repo_tree("acme/misc", recursive=False))
    assert sorted(e.path for e in tree) == [".gitattributes", "config.json", "weights"]
    assert hub.env(WRITE_TOKEN)["HF_ENDPOINT"] == hub.url


def test_server_and_publisher_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, tests.fakes.hub_server, dagster_project.hub; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lfs_upload_links_check_content_and_are_single_use(hub):
    """The LFS side of the upload path refuses what the real storage would: content that does not
    hash to the announced oid, a reused upload link, a verify for an object never stored."""
    import hashlib

    import httpx

    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo("acme/lfs", private=True)
    data = b"weights" * 1000
    oid = hashlib.sha256(data).hexdigest()
    auth = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    batch = httpx.post(f"{hub.url}/acme/lfs.git/info/lfs/objects/batch", headers=auth, json={
        "operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
        "objects": [{"oid": oid, "size": len(data)}]}).json()
    actions = batch["objects"][0]["actions"]
    assert httpx.post(actions["verify"]["href"], headers=auth, json={"oid": oid, "size": len(data)}).status_code == 404
    assert httpx.put(actions["upload"]["href"], content=data[:-1] + b"X").status_code == 400
    again = httpx.post(f"{hub.url}/acme/lfs.git/info/lfs/objects/batch", headers=auth, json={
        "operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()["objects"][0]["actions"]
    assert httpx.put(again["upload"]["href"], content=data).status_code == 200
    assert httpx.put(again["upload"]["href"], content=data).status_code == 403  # single use
    assert httpx.post(again["verify"]["href"], headers=auth, json={"oid": oid, "size": len(data)}).status_code == 200
    stored = httpx.post(f"{hub.url}/acme/lfs.git/info/lfs/objects/batch", headers=auth, json={
        "operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()["objects"][0]
    assert "actions" not in stored  # already stored: the client skips it
    read_only = httpx.post(f"{hub.url}/acme/lfs.git/info/lfs/objects/batch",
                           headers={"Authorization": f"Bearer {READ_TOKEN}"},
                           json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]})
    assert read_only.status_code == 403


# ---------------------------------------------------------------------- Xet (hf_xet's upload path)


def _xet_folder(root: Path) -> dict[str, bytes]:
    """A >10 MiB random file (stored uncompressed), float weights (ByteGrouping4-LZ4 chunks), text
    in an LFS-pattern file (LZ4 chunks) and a small file that travels in the commit."""
    import math
    import os
    import struct

    files = {
        "big.bin": os.urandom(10 * 2**20 + 12345),
        "model.safetensors": struct.pack("<65536f", *(math.sin(i / 50) for i in range(65536))),
        "vocab.bin": "".join(f"token {i}: id={i * 7919 % 10007} piece=w{i % 97}\n" for i in range(8000)).encode(),
        "config.json": '{"architectures": ["LlamaForCausalLM"]}',
    }
    _folder(root, files)
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


def test_xet_upload_folder_round_trip(hub, xet_enabled, tmp_path):
    """With hf_xet enabled (what users get), large files go through the Xet token + CAS endpoints,
    never the LFS batch API; the stand-in rebuilds them from xorbs + shard and serves them over
    plain HTTP."""
    import hashlib

    import httpx

    from tests.fakes.xet_cas import parse_xorb

    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_repo("acme/xet", private=True)
    local = _xet_folder(tmp_path / "up")
    hub.reset_requests()
    hub.cas.reset_requests()
    commit = api.upload_folder(folder_path=tmp_path / "up", repo_id="acme/xet", commit_message="xet upload")

    hub_calls = [(r.method, r.path, r.status) for r in hub.requests]
    assert ("GET", "/api/models/acme/xet/xet-write-token/main", 200) in hub_calls, hub_calls
    assert not [c for c in hub_calls if "lfs" in c[1]], hub_calls  # no git-lfs batch / upload / verify
    cas = hub.cas
    assert cas.count("POST", "/v1/xorbs/", 200) >= 1, cas.requests
    assert cas.count("POST", "/v2/shards", 200) + cas.count("POST", "/v1/shards", 200) >= 1, cas.requests
    assert cas.count("POST", "/v1/xorb-grants/", 404) == cas.count("POST", "/v1/xorbs/")  # grant first, then direct
    assert all(r.status in (200, 404) for r in cas.requests), cas.requests
    # Every compression scheme hf_xet writes was decoded: none, LZ4, ByteGrouping4-LZ4.
    schemes = {s for x in cas.xorbs for s in parse_xorb((cas.root / "xorbs" / x).read_bytes())[0].schemes}
    assert schemes == {0, 1, 2}, schemes
    assert set(cas.files_stored) == {hashlib.sha256(local[f]).hexdigest()
                                     for f in ("big.bin", "model.safetensors", "vocab.bin")}

    stored = hub.files("acme/xet")
    assert {f: stored[f] for f in local} == local
    info = api.model_info("acme/xet", files_metadata=True)
    assert info.sha == commit.oid
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["big.bin"].lfs.sha256 == hashlib.sha256(local["big.bin"]).hexdigest()
    assert siblings["big.bin"].size == len(local["big.bin"])
    for name, data in local.items():
        path = hf_hub_download("acme/xet", name, endpoint=hub.url, token=WRITE_TOKEN)
        assert Path(path).read_bytes() == data, name
    head = httpx.head(f"{hub.url}/acme/xet/resolve/main/big.bin", headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
    assert head.status_code == 200 and "x-xet-hash" not in head.headers  # downloads stay plain HTTP

    # Unchanged content: preupload's sha256 oids let the client skip everything; no new commit.
    before, xorbs_before = hub.commits_created, cas.xorbs
    cas.reset_requests()
    again = api.upload_folder(folder_path=tmp_path / "up", repo_id="acme/xet", commit_message="same")
    assert again.oid == commit.oid and hub.commits_created == before
    assert cas.xorbs == xorbs_before and cas.count("POST", "/v1/xorbs/") == 0


def test_lfs_is_used_when_xet_is_disabled(hub, lfs_only, tmp_path):
    api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
    api.create_repo("acme/plain")
    data = b"\x01\x02" * 4096
    _folder(tmp_path / "up", {"model.safetensors": data})
    api.upload_folder(folder_path=tmp_path / "up", repo_id="acme/plain")
    assert [r.path.rsplit("/", 1)[-1] for r in hub.requests if "lfs" in r.path] == ["batch", "upload", "verify"]
    assert not [r for r in hub.requests if "xet" in r.path] and not hub.cas.requests
    assert hub.files("acme/plain")["model.safetensors"] == data


def _xorb(chunks: list[bytes]) -> bytes:
    """A xorb as hf_xet sends it: uncompressed chunks, each behind its 8-byte header, no footer."""
    out = b""
    for c in chunks:
        n = len(c).to_bytes(3, "little")
        out += bytes([0]) + n + bytes([0]) + n + c
    return out


def _shard(segments: list[tuple[str, int, int, int]], sha256: str) -> bytes:
    """A one-file shard: header, file info (segments of (xorb hash, bytes, chunk start, chunk end)
    + sha256 metadata extension), bookend."""
    import secrets
    import struct

    from tests.fakes.xet_cas import SHARD_HEADER_TAG, hash_raw

    out = SHARD_HEADER_TAG + struct.pack("<QQ", 2, 0)
    out += secrets.token_bytes(32) + struct.pack("<IIQ", 1 << 30, len(segments), 0)
    for xorb_hash, nbytes, start, end in segments:
        out += hash_raw(xorb_hash) + struct.pack("<IIII", 0, nbytes, start, end)
    out += hash_raw(sha256) + bytes(16)
    return out + b"\xff" * 32 + bytes(16)


def test_xet_tokens_and_cas_refuse_what_the_real_services_would(hub):
    """Token endpoints need the right Hub token; the CAS wants the token the Hub issued (401
    otherwise, 403 for a read token on an upload) and refuses shards it cannot rebuild or whose
    sha256 does not match the content."""
    import hashlib
    import json
    import secrets

    import httpx

    HfApi(endpoint=hub.url, token=WRITE_TOKEN).create_repo("acme/cas", private=True)
    base = f"{hub.url}/api/models/acme/cas"
    hub_auth = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    read_auth = {"Authorization": f"Bearer {READ_TOKEN}"}
    assert httpx.get(f"{base}/xet-write-token/main").status_code == 401
    assert httpx.get(f"{base}/xet-write-token/main", headers=read_auth).status_code == 403
    assert httpx.get(f"{base}/xet-write-token/nope", headers=hub_auth).status_code == 404
    read = httpx.get(f"{base}/xet-read-token/main", headers=read_auth)
    assert read.status_code == 200
    resp = httpx.get(f"{base}/xet-write-token/main", headers=hub_auth)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"casUrl", "accessToken", "exp"}
    assert resp.headers["X-Xet-Cas-Url"] == body["casUrl"] == hub.cas.endpoint
    assert resp.headers["X-Xet-Access-Token"] == body["accessToken"]
    assert int(resp.headers["X-Xet-Token-Expiration"]) == body["exp"]
    cas, token = body["casUrl"], body["accessToken"]

    chunks = [secrets.token_bytes(1000), secrets.token_bytes(777)]
    xorb = _xorb(chunks)
    xorb_hash = secrets.token_hex(32)
    url = f"{cas}/v1/xorbs/default/{xorb_hash}"
    assert httpx.post(url, content=xorb).status_code == 401
    assert httpx.post(url, content=xorb, headers={"Authorization": "Bearer not-issued"}).status_code == 401
    assert httpx.post(url, content=xorb, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}).status_code == 401
    read_token = read.json()["accessToken"]
    assert httpx.post(url, content=xorb, headers={"Authorization": f"Bearer {read_token}"}).status_code == 403
    hub.cas.token_ttl_s = -1
    expired, _ = hub.cas.issue_token("write")
    hub.cas.token_ttl_s = 3600
    assert httpx.post(url, content=xorb, headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert not hub.cas.has_xorb(xorb_hash)

    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(url, content=xorb[:-1], headers=auth).status_code == 400  # truncated chunk
    assert httpx.post(f"{cas}/v1/xorb-grants/default/{xorb_hash}", headers=auth, json={}).status_code == 404
    assert httpx.get(f"{cas}/v1/chunks/default/{xorb_hash}", headers=auth).status_code == 404
    assert httpx.post(url, content=xorb, headers=auth).json() == {"was_inserted": True}
    assert httpx.post(url, content=xorb, headers=auth).json() == {"was_inserted": False}

    data = b"".join(chunks)
    sha = hashlib.sha256(data).hexdigest()

    def frames(shard: bytes) -> list[dict]:
        r = httpx.post(f"{cas}/v2/shards", content=shard, headers=auth)
        assert r.status_code == 200
        return [json.loads(line) for line in r.text.splitlines()]

    missing = _shard([(secrets.token_hex(32), len(data), 0, 2)], sha)
    assert frames(missing)[-1]["type"] == "error"
    assert httpx.post(f"{cas}/v1/shards", content=missing, headers=auth).status_code == 400
    wrong_sha = _shard([(xorb_hash, len(data), 0, 2)], hashlib.sha256(b"other").hexdigest())
    assert "sha256" in frames(wrong_sha)[-1]["message"]
    wrong_range = _shard([(xorb_hash, len(data), 0, 3)], sha)
    assert frames(wrong_range)[-1]["type"] == "error"
    assert not hub._blob_path(sha).exists()
    assert frames(_shard([(xorb_hash, 1000, 0, 1), (xorb_hash, len(data), 0, 2)],
                         hashlib.sha256(chunks[0] + data).hexdigest()))[-1] == {"type": "result"}
    assert hub._read_blob(hashlib.sha256(chunks[0] + data).hexdigest()) == chunks[0] + data
    assert httpx.post(f"{cas}/v1/shards", content=_shard([(xorb_hash, len(data), 0, 2)], sha),
                      headers=auth).json() == {"result": 1}
    assert hub._read_blob(sha) == data
