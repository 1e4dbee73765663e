"""Read what we published with a client we did not write (plain REST, tests/registry/rest.py) and
find each piece where the RHOAI dashboard reads it:

- version labels: customProperties of type MetadataStringValue with an empty string_value
  (`approved`); other string customProperties are the version's "Properties" (metrics, lineage);
- the model location: the version's (single) ModelArtifact `uri`, with `storageKey`/`storagePath`
  and `modelFormatName`/`modelFormatVersion` used by "Deploy";
- lineage: the artifact's `modelSourceKind`/`modelSourceId`/`modelSourceName` (kind `dagster`,
  never `kfp`, which the dashboard would link to a pipeline run).
"""

from __future__ import annotations

from . import rest
from .conftest import open_fast
from .test_backends import record


def test_plain_rest_client_finds_lineage_metrics_label_and_uri(kubeflow_url, unique):
    rec = record(unique, uri=f"s3://models/{unique}/w4a16?endpoint=http%3A%2F%2Fminio.svc%3A9000&defaultRegion=us-east-1")
    ours = open_fast(kubeflow_url).publish(rec)

    base = rest.api_base(kubeflow_url)
    rm = rest.model_by_name(base, rec.model_name)
    assert rm is not None and rm["id"] == ours.registry_model_id and rm["state"] == "LIVE"
    versions = rest.versions_of(base, rm["id"])
    assert [v["name"] for v in versions] == [rec.version_name]
    mv = versions[0]
    assert mv["state"] == "LIVE" and mv["description"] == rec.description

    props = mv["customProperties"]
    label = props["approved"]
    assert label == {"metadataType": "MetadataStringValue", "string_value": ""}  # shown as a label
    for key in ("eval_wikitext_word_perplexity", "recovery_avg", "base_model", "base_model_revision",
                "recipe_sha256", "calibration_hash", "dagster_run_url"):
        assert props[key] == {"metadataType": "MetadataStringValue", "string_value": rec.properties[key]}, key

    arts = rest.artifacts_of(base, mv["id"])
    assert len(arts) == 1  # the dashboard deploys items[0]
    art = arts[0]
    assert art["artifactType"] == "model-artifact"
    # named as the dashboard's registration form names it: the version's name (odh-dashboard 0c5a5d9f, #3377)
    assert art["name"] == mv["name"] == rec.version_name
    assert art["uri"] == rec.uri
    assert (art["modelSourceKind"], art["modelSourceId"], art["modelSourceName"]) == (
        "dagster", rec.source_id, rec.source_name)
    assert art["modelFormatName"] == rec.model_format_name
