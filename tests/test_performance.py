"""How fast a run goes (lmscale.training.performance): a GPU's peak by its name, model FLOPs utilisation, and
whether a run compiles its step. MFU in the train log: test_outputs."""

from __future__ import annotations

import pytest

from lmscale.training.performance import gpu_peak, mfu, should_compile


def test_a_gpus_peak_is_found_by_the_longest_name_it_matches():
    assert gpu_peak("NVIDIA H100 PCIe") == 756e12 and gpu_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_peak("NVIDIA A100-SXM4-80GB") == 312e12 and gpu_peak("NVIDIA A10") == 125e12
    assert gpu_peak("NVIDIA L40S") == 362e12 and gpu_peak("NVIDIA L40") == 181e12
    assert gpu_peak("Tesla T4") is None


def test_mfu_is_the_share_of_the_peak_and_unknown_without_one():
    assert mfu(1e12, 4e12) == 0.25
    assert mfu(1e12, None) is None


def test_auto_compiles_on_cuda_and_on_the_cpu_where_it_pays():
    small, large = 128 * 16 * 2, 1024 * 80 * 2  # activations per step: the default's s1 and s6
    assert should_compile("auto", "cuda", 10, small, compiled_before=False)[0]
    assert not should_compile("auto", "cpu", 1_000, small, compiled_before=False)[0]
    assert not should_compile("auto", "cpu", 10_000, small, compiled_before=False)[0]
    assert should_compile("auto", "cpu", 10_000, small, compiled_before=True)[0]  # a warm cache pays sooner
    assert should_compile("auto", "cpu", 10_000, large, compiled_before=False)[0]
    assert not should_compile("auto", "mps", 10**6, large, compiled_before=True)[0]
    # YAML reads a bare on/off as true/false.
    assert [should_compile(setting, "cpu", 1, 1.0, False)[0] for setting in ("on", True, "off", False)] == \
        [True, True, False, False]
    with pytest.raises(ValueError, match="train.compile must be one of auto, on, off"):
        should_compile("fast", "cpu", 1, 1.0, False)
