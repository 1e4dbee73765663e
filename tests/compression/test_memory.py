"""PeakMemory measures the work inside it, not the process's lifetime peak."""

import time

import pytest

from dagster_project.compression import memory
from dagster_project.compression.memory import PeakMemory

MB = 2**20


def _touch(n_mb: int) -> bytearray:
    buf = bytearray(n_mb * MB)
    buf[::4096] = b"\1" * len(buf[::4096])  # make every page resident
    return buf


@pytest.mark.parametrize("method", ["VmHWM", "sampled"])
def test_second_smaller_allocation_reports_a_smaller_peak(method, monkeypatch):
    if method == "sampled":  # what runs where /proc/self/clear_refs may not be written
        monkeypatch.setattr(memory, "_reset_high_water_mark", lambda: False)
    with PeakMemory() as big:
        buf = _touch(300)
        if method == "sampled":
            time.sleep(0.1)  # let the sampler see it (it samples every 5 ms)
        del buf
    with PeakMemory() as small:
        buf = _touch(40)
        if method == "sampled":
            time.sleep(0.1)
        del buf
    assert big.method == small.method == method
    assert big.increase_mb >= 280, big
    assert 30 <= small.increase_mb < 150, small  # the 300 MB of before is not counted again
    assert big.gpu_mb is None


def _bigger_twin(demo_model, dest):
    """A randomly initialised Llama ~5x the demo model's size, with the demo tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(demo_model)
    config.hidden_size, config.intermediate_size, config.num_hidden_layers = 512, 1536, 6
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(demo_model).save_pretrained(dest)
    return dest


def _compress_in_this_process(demo_model, tmp_path, device):
    from dagster_project.compression.oneshot_runner import compress
    from dagster_project.compression.recipes import resolve_builtin

    big = _bigger_twin(demo_model, tmp_path / "big")
    recipe = resolve_builtin("w4a16-rtn", "LlamaForCausalLM")
    # The bigger one first: a lifetime peak (ru_maxrss) would then report its peak for both.
    first = compress(big, recipe, tmp_path / "v-big", device=device, log=lambda m: None)
    second = compress(demo_model, recipe, tmp_path / "v-small", device=device, log=lambda m: None)
    return first, second


@pytest.mark.slow
def test_two_variants_in_one_process_report_their_own_peak(demo_model, tmp_path):
    import json

    from dagster_project.compression.oneshot_runner import MANIFEST_FILENAME

    big, small = _compress_in_this_process(demo_model, tmp_path, "cpu")
    base_mb = {r.path: r.base_size_bytes / MB for r in (big, small)}
    # Loading the base weights alone raises RSS by at least their size (float32 on CPU).
    assert big.peak_rss_increase_mb >= 0.9 * base_mb[big.path], big
    assert small.peak_rss_increase_mb < big.peak_rss_increase_mb - 0.5 * (base_mb[big.path] - base_mb[small.path])
    manifests = [json.loads((tmp_path / v / MANIFEST_FILENAME).read_text()) for v in ("v-big", "v-small")]
    assert [m["peak_rss_increase_mb"] for m in manifests] == [big.peak_rss_increase_mb, small.peak_rss_increase_mb]
    assert manifests[0]["peak_rss_mb"] != manifests[1]["peak_rss_mb"]
    assert big.peak_gpu_mb is None


@pytest.mark.slow
def test_two_variants_on_gpu_report_their_own_gpu_peak(demo_model, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.max_memory_allocated per variant)")
    big, small = _compress_in_this_process(demo_model, tmp_path, "cuda")
    assert big.peak_gpu_mb >= 0.9 * big.base_size_bytes / MB, big
    assert small.peak_gpu_mb < big.peak_gpu_mb, (small, big)
