"""The two jobs automation launches: one base model's chain, and one variant (model × recipe).

A Dagster run holds assets of one partitions definition, so a new release takes two runs: the
base job (base_model → calibration_dataset → base_evaluation, partition = model key) and then one
variant job per recipe (compressed_model, partition = model|recipe). Evaluation and publication
follow the variant through declarative automation (see `conditions.py`).
"""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, DefaultSensorStatus, define_asset_job

from dagster_project.settings import load_settings


BASE_ASSETS = ("base_model", "calibration_dataset", "base_evaluation")
VARIANT_ASSETS = ("compressed_model",)

base_model_job = define_asset_job(
    "base_model_job",
    selection=AssetSelection.assets(*BASE_ASSETS),
    description="One base model at a pinned revision: download/build, calibration data, base evaluation.",
)
variant_job = define_asset_job(
    "variant_job",
    selection=AssetSelection.assets(*VARIANT_ASSETS),
    description="One compressed variant (model × recipe); evaluation and publication follow automatically.",
)

# `DMC_AUTOMATION=on` starts the watch sensor and the nightly schedule by default (a deployment);
# off (the default) leaves them stopped until someone turns them on in the UI (a laptop).

def automation_on() -> bool:
    return load_settings().automation.enabled


def default_sensor_status() -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if automation_on() else DefaultSensorStatus.STOPPED


def default_schedule_status() -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if automation_on() else DefaultScheduleStatus.STOPPED
