"""Where heavy work runs: CPU on a laptop, CUDA on GPU nodes."""

from __future__ import annotations

from dagster import ConfigurableResource


class ComputeResource(ConfigurableResource):
    """`auto` picks CUDA when torch sees a GPU, else CPU."""

    device: str = "auto"
    eval_batch_size: int = 8

    def resolve_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch  # lazy: definitions must load without torch

        return "cuda" if torch.cuda.is_available() else "cpu"
