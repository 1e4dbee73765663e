"""The Hub watch sensor against the loopback Hub, through the real huggingface_hub client."""

from __future__ import annotations

import json
import time

import pytest
from dagster import AssetMaterialization, build_sensor_context

from dagster_project.automation.watch_sensor import WatchCursor, hub_watch_sensor
from dagster_project.models.keys import REVISION_TAG
from dagster_project.k8s import K8S_CONFIG_TAG
from dagster_project.resources.hf_hub import HuggingFaceHubResource

FILES = {"config.json": json.dumps({"architectures": ["LlamaForCausalLM"]}), "model.safetensors": b"\0" * 64}

WATCH_TWO = """
watch:
  - repo: acme/tiny-chat
    recipes: [w4a16-rtn, w4a16-gptq]
    task_set: quick
"""


@pytest.fixture
def instance(dagster_instance):
    # A persistent (SQLite) instance: sensors resolve dynamic partitions through its instance ref.
    return dagster_instance


def tick(instance, endpoint: str, cursor: str | None = None):
    """One sensor evaluation, then apply its partition requests as the daemon would."""
    from dagster_project.definitions import defs

    ctx = build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
                               resources={"hub": HuggingFaceHubResource(endpoint=endpoint)})
    data = hub_watch_sensor.evaluate_tick(ctx)
    for req in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return data


def base_made(instance, model: str, sha: str, calibration: bool = True):
    instance.report_runless_asset_event(AssetMaterialization("base_model", partition=model, metadata={"revision": sha}))
    if calibration:
        instance.report_runless_asset_event(AssetMaterialization("calibration_dataset", partition=model))


def variant_made(instance, model: str, recipe: str, sha: str):
    instance.report_runless_asset_event(AssetMaterialization(
        "compressed_model", partition=f"{model}|{recipe}", metadata={"base_revision": sha}))


def test_new_release_then_missing_pairs_then_nothing(hub, instance, write_watchlist):
    write_watchlist(WATCH_TWO)
    sha = hub.add_model("acme/tiny-chat", FILES)
    model = "acme--tiny-chat"

    # 1. a new repo: partitions and one base run pinned to the commit the sensor saw
    first = tick(instance, hub.url)
    assert [r.run_key for r in first.run_requests] == [f"{model}|base|{sha}"]
    base_req = first.run_requests[0]
    assert base_req.job_name == "base_model_job" and base_req.partition_key == model
    assert base_req.tags[REVISION_TAG] == sha
    assert instance.has_dynamic_partition("models", model)
    assert {"w4a16-rtn", "w4a16-gptq"} <= set(instance.get_dynamic_partitions("recipes"))
    assert json.loads(first.cursor)["waiting"] == {"acme/tiny-chat": sha}

    # 2. base run not finished yet: nothing new is requested
    waiting = tick(instance, hub.url, first.cursor)
    assert not waiting.run_requests and "waiting" in waiting.skip_message

    # 3. base_model holds the commit: exactly the missing pairs, pinned, placed
    base_made(instance, model, sha)
    variant_made(instance, model, "w4a16-rtn", sha)  # this pair already exists at this revision
    second = tick(instance, hub.url, waiting.cursor or first.cursor)
    assert [r.run_key for r in second.run_requests] == [f"{model}|w4a16-gptq|{sha}"]
    req = second.run_requests[0]
    assert req.job_name == "variant_job"
    assert req.partition_key == f"{model}|w4a16-gptq"
    assert req.tags[REVISION_TAG] == sha
    assert K8S_CONFIG_TAG not in req.tags  # placement comes from the assets' op tags (k8s.py)
    assert json.loads(second.cursor) == {"repos": {"acme/tiny-chat": sha}, "waiting": {}}

    # 4. nothing changed on the Hub → nothing requested, cursor unchanged
    variant_made(instance, model, "w4a16-gptq", sha)
    third = tick(instance, hub.url, second.cursor)
    assert not third.run_requests and third.skip_message and "nothing new" in third.skip_message
    assert third.cursor in (None, second.cursor)


def test_new_revision_makes_every_pair_stale(hub, instance, write_watchlist):
    write_watchlist(WATCH_TWO)
    model = "acme--tiny-chat"
    old = hub.add_model("acme/tiny-chat", FILES)
    cursor = WatchCursor(repos={"acme/tiny-chat": old}).dump()
    instance.add_dynamic_partitions("models", [model])
    instance.add_dynamic_partitions("recipes", ["w4a16-rtn", "w4a16-gptq"])
    base_made(instance, model, old)
    for r in ("w4a16-rtn", "w4a16-gptq"):
        variant_made(instance, model, r, old)
    assert not tick(instance, hub.url, cursor).run_requests

    new = hub.add_revision("acme/tiny-chat", {"model.safetensors": b"\1" * 64})
    data = tick(instance, hub.url, cursor)
    assert [r.run_key for r in data.run_requests] == [f"{model}|base|{new}"]
    base_made(instance, model, new)
    data = tick(instance, hub.url, data.cursor)
    assert sorted(r.run_key for r in data.run_requests) == sorted(
        [f"{model}|w4a16-gptq|{new}", f"{model}|w4a16-rtn|{new}"])
    assert not any(K8S_CONFIG_TAG in r.tags for r in data.run_requests)
    assert all(r.tags[REVISION_TAG] == new for r in data.run_requests)


def test_author_listing_with_glob_pattern(hub, instance, write_watchlist):
    write_watchlist("""
watch:
  - author: acme
    pattern: "Llama-3.*-Instruct"
    recipes: [w8a16-rtn]
""")
    for repo in ["acme/Llama-3.1-8B-Instruct", "acme/Llama-3.1-8B", "acme/Llama-3.2-1B-Instruct",
                 "acme/Mistral-7B-Instruct", "other/Llama-3.1-8B-Instruct"]:
        hub.add_model(repo, FILES)
    for i in range(30):  # more than one page of the listing (page_size=25)
        hub.add_model(f"acme/filler-{i}", FILES)
    data = tick(instance, hub.url)
    keys = sorted(r.partition_key for r in data.run_requests)
    assert keys == ["acme--Llama-3.1-8B-Instruct", "acme--Llama-3.2-1B-Instruct"]
    assert sorted(instance.get_dynamic_partitions("models")) == keys
    listings = [r for r in hub.requests if r.path == "/api/models"]
    assert len(listings) == 2  # two pages of one listing; no model_info per repo
    assert not [r for r in hub.requests if r.path.startswith("/api/models/")]


@pytest.mark.parametrize("status,retry_after", [(503, None), (500, None), (429, 30)])
def test_hub_errors_skip_without_crash(hub, instance, write_watchlist, status, retry_after):
    write_watchlist(WATCH_TWO + "  - author: acme\n    recipes: [w4a16-rtn]\n")
    hub.add_model("acme/tiny-chat", FILES)
    cursor = WatchCursor(repos={"acme/tiny-chat": "0" * 40}).dump()
    hub.fail(status, retry_after=retry_after)
    data = tick(instance, hub.url, cursor)
    assert data.run_requests == [] and not data.dynamic_partitions_requests
    assert data.skip_message.startswith("Hub unavailable") and f"HTTP {status}" in data.skip_message
    if retry_after:
        assert "retry after 30 s" in data.skip_message
    assert data.cursor in (None, cursor)  # unchanged: the next tick retries
    hub.recover()
    assert tick(instance, hub.url, cursor).run_requests  # and the Hub is back


def test_hub_down_or_hung(instance, write_watchlist, hf_isolated, closed_port, silent_port, monkeypatch):
    write_watchlist(WATCH_TWO)
    down = tick(instance, f"http://127.0.0.1:{closed_port}")
    assert not down.run_requests and "cannot reach the Hub" in down.skip_message

    monkeypatch.setenv("DMC_WATCH_HUB_TIMEOUT_SECONDS", "0.5")
    started = time.monotonic()
    hung = tick(instance, f"http://127.0.0.1:{silent_port}")
    assert time.monotonic() - started < 60  # timeout bound, wide: without the 0.5 s timeout the tick would hang
    assert not hung.run_requests and "timed out" in hung.skip_message


def test_offline_client_and_unknown_repo(hub, instance, write_watchlist, monkeypatch):
    write_watchlist("watch:\n  - repos: [acme/gone, acme/here]\n    recipes: [w4a16-rtn]\n")
    here = hub.add_model("acme/here", FILES)
    data = tick(instance, hub.url)  # a missing repo is skipped, the others proceed
    assert [r.run_key for r in data.run_requests] == [f"acme--here|base|{here}"]

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = tick(instance, hub.url)
    assert not offline.run_requests and "offline" in offline.skip_message


def test_invalid_watchlist_is_a_skip_with_the_reason(hub, instance, write_watchlist):
    write_watchlist("watch:\n  - repo: acme/x\n    recipes: [no-such-recipe]\n")
    data = tick(instance, hub.url)
    assert not data.run_requests
    assert "watchlist invalid" in data.skip_message and "no-such-recipe" in data.skip_message
