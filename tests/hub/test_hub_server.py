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
