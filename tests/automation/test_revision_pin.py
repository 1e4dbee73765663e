"""The revision the sensor saw reaches base_model: a run tag pins the download to that commit."""

from __future__ import annotations

import json

from dagster import materialize

from dagster_project.assets.base_model import base_model
from dagster_project.models.keys import REVISION_TAG
from dagster_project.models.catalog import resolve_model
from dagster_project.artifacts import ArtifactStore
from dagster_project.resources.hf_hub import HuggingFaceHubResource


def test_resolve_model_pins_hub_sources_and_takes_the_watchlist_task_set(write_watchlist):
    write_watchlist("watch:\n  - author: acme\n    recipes: [w4a16-rtn]\n    task_set: quick\n")
    src = resolve_model("acme--tiny", revision="a" * 40)
    assert (src.source, src.repo_id, src.revision, src.task_set) == ("hf", "acme/tiny", "a" * 40, "quick")
    assert resolve_model("other--x").task_set == "demo" and resolve_model("other--x").revision is None
    assert resolve_model("demo-llama", revision="b" * 40).revision is None  # only Hub sources take a pin


def test_base_model_downloads_the_tagged_revision(hub, demo_model, dagster_instance, write_watchlist):
    write_watchlist("watch:\n  - repo: acme/tiny\n    recipes: [w4a16-rtn]\n")
    first = hub.add_model("acme/tiny", demo_model)
    latest = hub.add_revision("acme/tiny", {"README.md": "---\nlicense: apache-2.0\n---\nnewer\n"})
    assert first != latest
    dagster_instance.add_dynamic_partitions("models", ["acme--tiny"])
    res = materialize(
        [base_model], partition_key="acme--tiny", instance=dagster_instance, tags={REVISION_TAG: first},
        resources={"hub": HuggingFaceHubResource(endpoint=hub.url), "artifacts": ArtifactStore.from_env()},
    )
    assert res.success
    meta = res.asset_materializations_for_node("base_model")[0].metadata
    assert meta["revision"].value == first  # not `main`, which moved on
    manifest = json.loads(ArtifactStore.from_env().layout().base_manifest("acme--tiny").read_text())
    assert manifest["revision"] == first and manifest["repo_id"] == "acme/tiny"
