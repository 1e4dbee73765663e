"""Peak memory of one piece of work in this process, not the process's lifetime peak.

Several variants may compress in one process (in-process executor, tests): `ru_maxrss` would
report the largest of them for all. On Linux the kernel's high-water mark is reset at the start
(`/proc/self/clear_refs`, "5") and read at the end (`VmHWM`); where that is not allowed a thread
samples RSS every few milliseconds instead. On CUDA the allocator's peak is reset the same way.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc/self")
_SAMPLE_S = 0.005


@dataclass
class PeakMemory:
    """`with PeakMemory(device) as peak: ...`, then `peak.rss_mb`, `peak.increase_mb`, `peak.gpu_mb`."""

    device: str = "cpu"
    start_rss: int = 0
    peak_rss: int = 0
    gpu_peak: int | None = None
    method: str = ""

    def __enter__(self) -> "PeakMemory":
        import psutil

        self._process = psutil.Process()
        self.start_rss = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = None
        if _reset_high_water_mark():
            self.method = "VmHWM"
        else:
            self.method = "sampled"
            self._sampled_peak = self.start_rss
            self._thread = threading.Thread(target=self._sample, name="dmc-peak-rss", daemon=True)
            self._thread.start()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_S):  # a running max: an hours-long run keeps no sample list
            self._sampled_peak = max(self._sampled_peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_rss = max(self._sampled_peak, self._process.memory_info().rss)
        else:
            self.peak_rss = max(_high_water_mark(), self._process.memory_info().rss)
        if self.device.startswith("cuda"):
            import torch

            self.gpu_peak = torch.cuda.max_memory_allocated()

    @property
    def rss_mb(self) -> float:
        return round(self.peak_rss / 2**20, 1)

    @property
    def increase_mb(self) -> float:
        """How far RSS rose above its level at the start: what this work itself needed."""
        return round(max(0, self.peak_rss - self.start_rss) / 2**20, 1)

    @property
    def gpu_mb(self) -> float | None:
        return None if self.gpu_peak is None else round(self.gpu_peak / 2**20, 1)


def _reset_high_water_mark() -> bool:
    try:
        (_PROC / "clear_refs").write_text("5")
        return _high_water_mark() > 0
    except (OSError, ValueError):
        return False


def _high_water_mark() -> int:
    match = re.search(r"^VmHWM:\s+(\d+) kB", (_PROC / "status").read_text(), re.M)
    if not match:
        raise ValueError("no VmHWM in /proc/self/status")
    return int(match.group(1)) * 1024
