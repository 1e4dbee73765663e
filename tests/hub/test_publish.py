"""Publication to the loopback Hub through the real huggingface_hub client."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi, hf_hub_download

from dagster_project.hub import (
    CardInfo,
    HubPermissionError,
    MissingTokenError,
    PublicationError,
    hub_uri,
    parse_card_metadata,
    publish_folder,
    render_model_card,
)

from .conftest import READ_TOKEN, WRITE_TOKEN

REPO = "acme/tiny-llama-w4a16"
RECIPE = """quant_stage:
  quant_modifiers:
    GPTQModifier:
      targets: [Linear]
      scheme: W4A16
      ignore: [lm_head]
"""


def _card_info(**overrides) -> CardInfo:
    values = dict(
        repo_id=REPO,
        base_model="meta/tiny-llama",
        base_revision="0123456789abcdef0123456789abcdef01234567",
        license="llama3.1",
        scheme="W4A16",
        recipe_name="w4a16-gptq",
        recipe_yaml=RECIPE,
        recipe_sha256="f" * 64,
        calibration_hash="9c1d2e3f4a5b6c7d",
        library_versions={"llmcompressor": "0.14.0.1", "compressed-tensors": "0.19.0", "torch": "2.13.0"},
        metrics=[
            ("arc_easy", "acc", 0.612, 0.604, 98.69),
            ("wikitext", "word_perplexity", 12.5, 13.1, 95.42),
        ],
        run_id="4f1c2a9e-0000-4000-8000-000000000001",
        run_url="http://dagster.local/runs/4f1c2a9e-0000-4000-8000-000000000001",
        architecture="LlamaForCausalLM",
        algorithm="gptq",
    )
    values.update(overrides)
    return CardInfo(**values)


@pytest.fixture
def variant_dir(tmp_path) -> Path:
    d = tmp_path / "variant"
    d.mkdir()
    (d / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (d / "tokenizer.json").write_text('{"model": {}}')
    (d / "recipe.yaml").write_text(RECIPE)
    (d / "hub_release.json").write_text('{"published": true}')  # bookkeeping: never uploaded
    (d / ".cache").mkdir()
    (d / ".cache" / "junk").write_text("x")
    return d


def _publish(hub, folder, token=WRITE_TOKEN, **kw):
    kw.setdefault("card_markdown", render_model_card(_card_info()))
    kw.setdefault("commit_message", "w4a16-gptq variant of meta/tiny-llama")
    return publish_folder(folder, REPO, token=token, endpoint=hub.url, retry_wait_s=0.01, **kw)


def test_card_front_matter_and_sections():
    card = render_model_card(_card_info())
    meta = parse_card_metadata(card)
    assert meta["base_model"] == "meta/tiny-llama"
    assert meta["base_model_relation"] == "quantized"
    assert meta["license"] == "llama3.1"
    assert meta["pipeline_tag"] == "text-generation"
    assert meta["library_name"] == "transformers"
    assert {"llmcompressor", "compressed-tensors", "w4a16", "int4"} <= set(meta["tags"])
    for heading in ("## Model Overview", "## Deployment", "## Creation", "## Evaluation", "## Lineage"):
        assert heading in card
    assert f'LLM(model=model_id)' in card and f'model_id = "{REPO}"' in card
    assert f"vllm serve {REPO}" in card
    assert RECIPE.rstrip() in card  # verbatim
    assert "llm-compressor 0.14.0.1" in card
    assert "| arc_easy | acc | 0.612 | 0.604 | 98.7 |" in card
    assert "| wikitext | word_perplexity | 12.5 | 13.1 | 95.4 |" in card
    assert "9c1d2e3f4a5b6c7d" in card and "0123456789abcdef0123456789abcdef01234567" in card
    assert "4f1c2a9e-0000-4000-8000-000000000001" in card
    assert "dagster asset materialize" in card


def test_card_model_index_carries_base_variant_and_recovery():
    """The card's model-index, read back by huggingface_hub's own parser, holds every table row."""
    from huggingface_hub import ModelCard

    info = _card_info()
    card = ModelCard(render_model_card(info))
    got = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    for task, metric, base, variant, recovery in info.metrics:
        assert got[(task, metric)] == variant
        assert got[(task, f"{metric}_base")] == base
        assert got[(task, f"{metric}_recovery")] == pytest.approx(recovery, abs=0.01)
    assert card.data.model_name == REPO.split("/")[-1]


def test_card_without_metrics_has_no_model_index():
    card = render_model_card(_card_info(metrics=[]))
    assert "model-index" not in parse_card_metadata(card)
    assert "No evaluation results were recorded" in card


@pytest.mark.parametrize(
    ("scheme", "tags", "phrase"),
    [
        ("W8A8", {"w8a8", "int8"}, "Activation quantization:** INT8"),
        ("FP8_DYNAMIC", {"fp8"}, "Weight quantization:** FP8"),
        ("W8A16", {"w8a16", "int8"}, "Weight quantization:** INT8"),
        ("my-custom", {"my-custom"}, "`my-custom` scheme"),
    ],
)
def test_card_scheme_specific_parts(scheme, tags, phrase):
    card = render_model_card(_card_info(scheme=scheme))
    assert tags <= set(parse_card_metadata(card)["tags"])
    assert phrase in card


def test_card_redacts_anything_that_looks_like_a_token():
    card = render_model_card(_card_info(recipe_yaml=f"# pushed with {WRITE_TOKEN}\n" + RECIPE))
    assert WRITE_TOKEN not in card and "[redacted]" in card


def test_recipe_with_backticks_keeps_fences_balanced():
    card = render_model_card(_card_info(recipe_yaml="note: |\n  ```not a fence```\n"))
    assert "````yaml" in card


def test_first_publish_then_idempotent_then_change(hub, lfs_only, variant_dir):
    first = _publish(hub, variant_dir)
    assert first.created_commit is True
    # The weights went the way the Hub takes large files: preupload said lfs, then the git-lfs batch
    # API, one PUT to the upload link, one verify; the small files travelled in the commit.
    lfs = [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in hub.requests if "lfs" in r.path]
    assert lfs == [("POST", "batch", 200), ("PUT", "upload", 200), ("POST", "verify", 200)], lfs
    assert first.repo_id == REPO and len(first.commit_sha) == 40
    assert first.url == f"{hub.url}/{REPO}"
    assert first.uri == hub_uri(REPO, first.commit_sha) == f"hf://{REPO}@{first.commit_sha}"

    info = HfApi(endpoint=hub.url, token=WRITE_TOKEN).model_info(REPO)
    assert info.sha == first.commit_sha
    assert info.private is True  # private by default
    assert sorted(s.rfilename for s in info.siblings) == [
        ".gitattributes", "README.md", "config.json", "model.safetensors", "recipe.yaml", "tokenizer.json"
    ]
    # The card on the Hub: front matter as the Hub parses it, and the evaluation table.
    assert info.card_data.base_model == "meta/tiny-llama"
    assert info.card_data.license == "llama3.1"
    assert info.library_name == "transformers" and info.pipeline_tag == "text-generation"
    readme = Path(hf_hub_download(REPO, "README.md", endpoint=hub.url, token=WRITE_TOKEN)).read_text()
    meta = yaml.safe_load(readme.split("---")[1])
    assert set(meta) >= {"base_model", "base_model_relation", "license", "tags", "pipeline_tag", "library_name"}
    assert "| Task | Metric |" in readme and "| arc_easy | acc |" in readme
    assert info.card_data.eval_results and info.card_data.eval_results[0].dataset_name == "arc_easy"

    commits_before = hub.commit_count(REPO)
    created_before = hub.commits_created
    hub.reset_requests()
    second = _publish(hub, variant_dir)
    # The client still asks the batch API, which answers "already stored": no upload.
    assert not [r for r in hub.requests if r.path.endswith(("/upload", "/verify"))], hub.requests
    assert second.created_commit is False
    assert second.commit_sha == first.commit_sha
    assert hub.commit_count(REPO) == commits_before and hub.commits_created == created_before

    (variant_dir / "tokenizer.json").write_text('{"model": {"changed": true}}')
    third = _publish(hub, variant_dir)
    assert third.created_commit is True and third.commit_sha != first.commit_sha
    assert hub.commit_count(REPO) == commits_before + 1
    assert hub.files(REPO)["tokenizer.json"] == b'{"model": {"changed": true}}'
    assert hub.files(REPO, revision=first.commit_sha)["tokenizer.json"] == b'{"model": {}}'

    # A different card alone is a change too; a removed local file is deleted remotely.
    (variant_dir / "recipe.yaml").unlink()
    fourth = _publish(hub, variant_dir, card_markdown=render_model_card(_card_info(run_id="run-2")))
    assert fourth.created_commit is True
    assert "recipe.yaml" not in hub.files(REPO)
    assert b"run-2" in hub.files(REPO)["README.md"]


def test_publish_through_xet(hub, xet_enabled, variant_dir):
    """What users' uploads take (hf_xet installed): the weights go through the Hub's xet write
    token and the CAS (xorbs, shard), not the LFS batch API; a re-publish uploads nothing."""
    import os

    weights = os.urandom(11 * 2**20)  # over the 10 MiB the Hub always stores as LFS/Xet
    (variant_dir / "model.safetensors").write_bytes(weights)
    first = _publish(hub, variant_dir)
    assert first.created_commit is True
    assert not [r for r in hub.requests if "lfs" in r.path], hub.requests
    assert [r.status for r in hub.requests if "/xet-write-token/" in r.path] == [200]
    assert hub.cas.count("POST", "/v1/xorbs/", 200) >= 1
    assert hub.cas.count("POST", "/v2/shards", 200) + hub.cas.count("POST", "/v1/shards", 200) >= 1
    assert hub.files(REPO)["model.safetensors"] == weights
    path = hf_hub_download(REPO, "model.safetensors", endpoint=hub.url, token=WRITE_TOKEN)
    assert Path(path).read_bytes() == weights

    hub.cas.reset_requests()
    second = _publish(hub, variant_dir)
    assert second.created_commit is False and second.commit_sha == first.commit_sha
    assert hub.cas.count("POST", "/v1/xorbs/") == 0


def test_existing_public_repo_with_lfs_weights_is_compared_by_sha256(hub, variant_dir):
    # The server reports *.safetensors as LFS (sha256), the other files by git blob sha1.
    hub.add_model(REPO, variant_dir, private=False)
    hub.add_revision(REPO, {"README.md": render_model_card(_card_info())}, delete=["hub_release.json", ".cache/junk"])
    head = hub.head_sha(REPO)
    pub = _publish(hub, variant_dir)
    assert pub.created_commit is False and pub.commit_sha == head


def test_missing_token_fails_before_any_request(hub, variant_dir):
    hub.reset_requests()
    for token in (None, ""):
        with pytest.raises(MissingTokenError, match="HF_TOKEN is not set; publication needs a write token"):
            _publish(hub, variant_dir, token=token)
    assert hub.request_count == 0


def test_read_only_token_gives_clear_error_without_the_token(hub, variant_dir):
    # Repo exists (created by someone with write access) and does not exist: both must explain.
    for exists in (True, False):
        if exists:
            hub.add_model(REPO, {"config.json": "{}"}, private=True)
        with pytest.raises(HubPermissionError) as exc:
            _publish(hub, variant_dir, token=READ_TOKEN)
        text = "".join(traceback.format_exception(exc.value))
        assert REPO in str(exc.value) and "write" in str(exc.value)
        assert READ_TOKEN not in text and READ_TOKEN not in repr(exc.value)
        hub.delete_model(REPO)


def test_invalid_token_is_reported_without_echoing_it(hub, variant_dir):
    bogus = "hf_thisTokenDoesNotExist0000000000000"
    with pytest.raises(PublicationError) as exc:
        _publish(hub, variant_dir, token=bogus)
    assert "401" in str(exc.value)
    assert bogus not in "".join(traceback.format_exception(exc.value))


def test_token_never_in_card_or_logs(hub, variant_dir, caplog):
    caplog.set_level("DEBUG")
    pub = _publish(hub, variant_dir)
    assert WRITE_TOKEN.encode() not in hub.files(REPO)["README.md"]
    assert all(WRITE_TOKEN.encode() not in data for data in hub.files(REPO, pub.commit_sha).values())
    assert WRITE_TOKEN not in caplog.text


def test_transient_errors_are_retried(hub, variant_dir):
    hub.fail(503, times=2, path_contains="/api/models/")
    pub = _publish(hub, variant_dir)
    assert pub.created_commit is True
    statuses = [r.status for r in hub.requests]
    assert statuses[:2] == [503, 503]


def test_persistent_outage_surfaces_as_publication_error(hub, variant_dir):
    with hub.outage(503), pytest.raises(PublicationError, match="503"):
        _publish(hub, variant_dir, max_attempts=2)


def test_organization_argument(hub, variant_dir):
    pub = publish_folder(
        variant_dir, "tiny-llama-w4a16", token=WRITE_TOKEN, endpoint=hub.url, organization="acme",
        card_markdown=render_model_card(_card_info()), commit_message="m", private=False,
    )
    assert pub.repo_id == REPO
    assert HfApi(endpoint=hub.url).model_info(REPO).private is False
    with pytest.raises(PublicationError):
        publish_folder(variant_dir, "other/x", token=WRITE_TOKEN, endpoint=hub.url, organization="acme",
                       card_markdown="# x", commit_message="m")
