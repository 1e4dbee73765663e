"""Where heavy work runs: CPU on a laptop, CUDA on GPU nodes, and how many CPU threads a step takes."""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

MODEL_POOL = "model_compute"  # the pool compressed_model, base_evaluation and evaluation_report share


class ComputeResource(ConfigurableResource):
    """`auto` picks CUDA when torch sees a GPU, else CPU."""

    device: str = "auto"
    eval_batch_size: int = 8
    cpu_threads: int = Field(
        default=0, ge=0,
        description="torch threads per model step; 0: the cores this process may use, divided by the "
                    "model_compute pool limit when runs share this machine (local run launcher)")

    def resolve_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch  # lazy: definitions must load without torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def step_threads(self, instance) -> int | None:
        """Threads for this step's torch work, or None to keep torch's default.

        With the local run launcher every run is a process on this machine, so N model steps at once
        (pool limit N) each taking every core only contend: each gets cores / N instead. Runs in
        their own pods (Kubernetes) keep torch's default.
        """
        if self.cpu_threads:
            return self.cpu_threads
        from dagster._core.launcher import DefaultRunLauncher

        if not isinstance(instance.run_launcher, DefaultRunLauncher):
            return None
        limit = instance.event_log_storage.get_concurrency_info(MODEL_POOL).limit
        if not limit or limit <= 1:
            return None
        return max(1, len(os.sched_getaffinity(0)) // limit)

    def limit_threads(self, context) -> None:
        """Apply :meth:`step_threads` to this process (a step's own process under the multiprocess executor)."""
        threads = self.step_threads(context.instance)
        if threads is None:
            return
        import torch

        torch.set_num_threads(threads)
        context.log.info(f"torch threads: {threads} (cores shared by up to "
                         f"{len(os.sched_getaffinity(0)) // threads} model steps at once)")
