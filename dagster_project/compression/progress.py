"""Progress of one compression as log lines a person can follow: one line per decoder layer.

llmcompressor reports GPTQ and SparseGPT work per module through loguru ("Quantizing 1 module(s):
['model.layers.0.self_attn.q_proj']"); its calibration passes run layer by layer. Both become one line
per layer here, so a 32-layer model logs ~64 lines over a long run, not hundreds of bars.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from typing import Callable, Iterator

# llmcompressor 0.14's per-module messages (GPTQModifier.compress_module_list, SparseGPT's compress).
_WORK = (
    (re.compile(r"^Quantizing \d+ module\(s\): \[(?P<names>.*)\]"), "GPTQ"),
    (re.compile(r"^Sparsifying (?P<names>\S+) using"), "SparseGPT"),
)
_NAME = re.compile(r"'([^']+)'")


class LayerProgress:
    """Turns per-module events into one log line each time work reaches a new decoder layer."""

    def __init__(self, layer_names: list[str], log: Callable[[str], None]):
        self.layer_names = layer_names
        self.log = log
        self.started = time.perf_counter()
        self.current: dict[str, int] = {}  # algorithm → index of the layer it works on
        self.modules: dict[str, int] = {}
        self.calibrated: set[int] = set()

    def layer_of(self, module_name: str) -> int | None:
        for index, name in enumerate(self.layer_names):
            if module_name == name or module_name.startswith(name + "."):
                return index
        return None

    def calibrating(self, index: int) -> None:
        if index not in self.calibrated:
            self.calibrated.add(index)
            self._line(f"calibration: layer {index + 1}/{len(self.layer_names)} ({self.layer_names[index]})")

    def working(self, algorithm: str, module_names: list[str]) -> None:
        self.modules[algorithm] = self.modules.get(algorithm, 0) + len(module_names)
        for module in module_names:
            index = self.layer_of(module)
            if index is not None and self.current.get(algorithm) != index:
                self.current[algorithm] = index
                self._line(f"{algorithm}: layer {index + 1}/{len(self.layer_names)} ({self.layer_names[index]})")

    def message(self, text: str) -> None:
        for pattern, algorithm in _WORK:
            match = pattern.match(text)
            if match:
                self.working(algorithm, _NAME.findall(match["names"]) or [match["names"]])

    def finish(self) -> None:
        for algorithm, count in self.modules.items():
            self._line(f"{algorithm}: {count} modules done")

    def _line(self, text: str) -> None:
        self.log(f"{text}, {time.perf_counter() - self.started:.0f} s")


def decoder_layers(model) -> list[tuple[str, object]]:
    """(name, module) of the model's repeated blocks: the classes transformers will not split across devices."""
    classes = set(getattr(model, "_no_split_modules", None) or ())
    return [(name, m) for name, m in model.named_modules() if type(m).__name__ in classes]


@contextmanager
def compression_progress(model, log: Callable[[str], None]) -> Iterator[LayerProgress]:
    """Log per-layer progress while llmcompressor runs: calibration passes (forward hooks) and the
    GPTQ / SparseGPT per-module messages (a loguru sink). Data-free recipes log nothing here."""
    from loguru import logger

    layers = decoder_layers(model)
    progress = LayerProgress([name for name, _ in layers], log)
    handles = [module.register_forward_pre_hook(lambda _m, _a, i=i: progress.calibrating(i))
               for i, (_, module) in enumerate(layers)]
    sink = logger.add(lambda message: progress.message(message.record["message"]), level="INFO",
                      filter=lambda record: record["name"].startswith("llmcompressor"))
    try:
        yield progress
        progress.finish()
    finally:
        logger.remove(sink)
        for handle in handles:
            handle.remove()
