"""The code location: every asset, check, resource, sensor and schedule, wired in one place."""

import gc
import os

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus
from dagster import Definitions

# Dagster's import leaves a large heap of objects that live as long as the process; a full garbage
# collection during the rest of this load scanned them all (68 ms measured, a quarter of this
# package's load). Frozen, they are left out of every later collection.
gc.freeze()

from dagster_project.assets.base_model import base_model
from dagster_project.assets.calibration_dataset import calibration_dataset
from dagster_project.assets.compressed_model import compressed_model
from dagster_project.assets.evaluation import (
    base_evaluation,
    evaluation_report,
    loads_and_generates,
    model_comparison,
    recovery_meets_threshold,
    size_reduced,
)
from dagster_project.assets.publication import hub_release, registry_entry
from dagster_project.assets.recipe_catalog import recipe
from dagster_project.automation.catalog_sensor import catalog_sensor
from dagster_project.automation.jobs import base_model_job, variant_job
from dagster_project.automation.schedules import nightly_compression
from dagster_project.automation.watch_sensor import hub_watch_sensor
from dagster_project.automation.recipe_registration import register_recipe_job
from dagster_project.deployment import executor, vllm_pipes_client
from dagster_project.artifacts import ArtifactStore
from dagster_project.resources.compute import ComputeResource
from dagster_project.resources.hf_hub import HuggingFaceHubResource
from dagster_project.resources.model_registry import ModelRegistryResource
from dagster_project.resources.settings import SettingsResource
from dagster_project.settings import load_settings

settings = load_settings()

defs = Definitions(
    assets=[recipe, base_model, calibration_dataset, compressed_model, base_evaluation, evaluation_report,
            model_comparison, hub_release, registry_entry],
    asset_checks=[loads_and_generates, recovery_meets_threshold, size_reduced],
    jobs=[base_model_job, variant_job, register_recipe_job],
    schedules=[nightly_compression],
    sensors=[
        catalog_sensor,
        hub_watch_sensor,
        # Evaluation and publication follow each new variant (automation conditions on those assets).
        AutomationConditionSensorDefinition(
            "variant_follow_up", target=AssetSelection.all(), default_status=DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30, use_user_code_server=True,
        ),
    ],
    # DMC_EXECUTOR=k8s (set by the Helm chart): one Job per step, placed by each asset's op tags.
    executor=executor(),
    resources={
        "artifacts": ArtifactStore.from_env(),
        "compute": ComputeResource(device=settings.compute.device),
        "hub": HuggingFaceHubResource(
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            publish_enabled=settings.hub.publish,
            publish_organization=settings.hub.org,
        ),
        "registry": ModelRegistryResource(token_file=settings.registry.token_file),
        # DMC_* settings as each step's process sees them (assets never read the environment).
        "settings": SettingsResource(),
        # Runs the vLLM evaluation in its own environment (evaluation backend "vllm"):
        # a PipesK8sClient pod in the eval image on Kubernetes, a subprocess elsewhere.
        "vllm_pipes": vllm_pipes_client(),
    },
)
