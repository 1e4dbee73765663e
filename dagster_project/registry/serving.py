"""Registry entries a user can deploy from RHOAI, and the KServe InferenceService for one.

What the consumers parse (researched in opendatahub-io/odh-dashboard and kserve/kserve):
- The RHOAI dashboard pre-fills an S3 connection for "Deploy" from the artifact URI
  `s3://<bucket>/<path>?endpoint=<url-encoded endpoint>&defaultRegion=<region>` (its
  uriToObjectStorageFields needs endpoint, bucket and path) and from `storageKey` (the connection
  secret's name); it shows `pvc://<claim>/<path>`, `oci://...` and KServe's
  `hf://<org>/<model>[:<revision>]` as they are.
- KServe picks the runtime whose `supportedModelFormats` name matches the predictor's
  `modelFormat.name` (case-insensitive); RHOAI's vLLM ServingRuntime templates list `vLLM` with
  no version, so a version given on our side would stop the match: model format `vLLM`, no version.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlencode, urlparse

from .base import PublishedVersion, RegistryError

MODEL_FORMAT_NAME = "vLLM"  # what RHOAI's vLLM ServingRuntime templates list in supportedModelFormats
MODEL_FORMAT_VERSION = ""  # none: the templates carry no version, and KServe then matches any
DEFAULT_RUNTIME = "vllm-runtime"
RUNTIMES = {"vllm": DEFAULT_RUNTIME}


def s3_uri(bucket_and_key: str, endpoint: str | None, region: str | None) -> str:
    """s3://bucket/key, plus the query the dashboard reads to pre-fill a connection."""
    base = bucket_and_key if bucket_and_key.startswith("s3://") else f"s3://{bucket_and_key}"
    base = base.split("?", 1)[0]
    query = {}
    if endpoint:
        query["endpoint"] = endpoint
        if region:
            query["defaultRegion"] = region
    return f"{base}?{urlencode(query, quote_via=quote)}" if query else base


def hf_uri(repo_id: str, revision: str | None = None) -> str:
    """KServe's form: hf://<org>/<model>[:<revision>]."""
    return f"hf://{repo_id}" + (f":{revision}" if revision else "")


def storage_fields(uri: str) -> tuple[str, str]:
    """(storage URI KServe downloads, storage path) of a registered URI; raises for local files."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        path = parsed.path.lstrip("/")
        return f"s3://{parsed.netloc}/{path}", path
    if parsed.scheme == "pvc":
        return uri, parsed.path.lstrip("/")
    if parsed.scheme in ("hf", "oci"):
        return uri, ""
    raise RegistryError(
        f"{uri!r} cannot be deployed by KServe: publish from a PVC or S3 artifact store"
        " (DMC_ARTIFACT_STORE_KIND=pvc|s3), or to the Hub (hf://)"
    )


def s3_endpoint(uri: str) -> tuple[str | None, str | None]:
    q = parse_qs(urlparse(uri).query)
    return (q.get("endpoint") or [None])[0], (q.get("defaultRegion") or [None])[0]


def _k8s_name(text: str) -> str:
    name = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return name[:63].rstrip("-") or "model"


def inference_service(
    v: PublishedVersion,
    *,
    runtime: str = "vllm",
    gpus: int = 1,
    namespace: str | None = None,
    storage_key: str | None = None,
) -> dict:
    """A KServe v1beta1 InferenceService serving one registered version with the vLLM runtime."""
    if v.archived or not v.approved:
        raise RegistryError(f"{v.model_name}/{v.version_name} is {'revoked' if v.archived else 'not approved'}:"
                            " refusing to print a deployment for it")
    storage_uri, path = storage_fields(v.uri)
    model: dict = {
        "modelFormat": {"name": MODEL_FORMAT_NAME},
        "runtime": RUNTIMES.get(runtime, runtime),
        "args": [f"--served-model-name={v.model_name}"],
    }
    if storage_key and v.uri.startswith("s3://"):
        model["storage"] = {"key": storage_key, "path": path}  # the data connection holds the credentials
    else:
        model["storageUri"] = storage_uri
    if gpus:
        model["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"nvidia.com/gpu": str(gpus)}}
    name = _k8s_name(f"{v.model_name}-{v.version_name}")
    metadata: dict = {
        "name": name,
        "labels": {
            "opendatahub.io/dashboard": "true",
            # how the RHOAI dashboard links a deployment to its registry entry
            "modelregistry.opendatahub.io/registered-model-id": v.registry_model_id,
            "modelregistry.opendatahub.io/model-version-id": v.registry_version_id,
        },
        "annotations": {
            "openshift.io/display-name": f"{v.model_name} {v.version_name}",
            "serving.kserve.io/deploymentMode": "RawDeployment",
            "dmc/registered-uri": v.uri,
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": {"minReplicas": 1, "model": model}},
    }
    if gpus:
        isvc["spec"]["predictor"]["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return isvc
