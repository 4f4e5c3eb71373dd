"""How fast a run goes: peak FLOP/s of a device, model FLOPs utilisation, and when to compile.

MFU here is the nanoGPT-style ratio of the model's FLOP/s, 6 x N_total per
token trained (every parameter, the head included; attention's own
score-and-mix FLOPs not counted), to the device's peak: a GPU's dense bf16
tensor-core peak from a small table, a CPU's fp32 matmul rate measured in the
same process with the run's threads (the best a dense matmul reaches there).

`torch.compile` costs seconds before the first step (tens of seconds with an
empty cache: inductor writes and builds C++ or Triton kernels) and saves a
share of every step. Compiled graphs go to inductor's on-disk caches
(TORCHINDUCTOR_CACHE_DIR, by default /tmp/torchinductor_<user>), so a second
run of the same shape loads them instead of building them; `auto` weighs what
a CPU run should save against what compiling should cost, cold or warm.
"""

from __future__ import annotations

import time
from pathlib import Path

COMPILE_SETTINGS = ("auto", "on", "off")

# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from the vendors' data sheets, matched
# against torch.cuda.get_device_name() in this order (longest names first: "A100" before "A10").
GPU_BF16_PEAK = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM and NVL boards report "H100 80GB HBM3" and the like
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("A10", 125e12),
    ("L4", 121e12),
)

# torch.compile on the CPU, measured with one thread on the default study's sizes and a 4M-parameter
# shape at context 128 (docs/performance.md): a compiled step saves ~2 ms of fixed cost plus
# ~3e-8 s per activation a step passes through its layers (tokens per step x width x depth: the
# elementwise and normalisation work that compiling fuses; matmuls run as fast either way), and
# compiling a shape costs ~40 s the first time on a machine (inductor writes and builds ~30 C++
# kernels) and ~5 s once inductor's cache holds it.
CPU_STEP_SAVING_SECONDS = 2e-3
CPU_SAVING_SECONDS_PER_ACTIVATION = 3e-8
CPU_COLD_COMPILE_SECONDS = 40.0
CPU_WARM_COMPILE_SECONDS = 5.0


def gpu_peak(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name, or None when it is not in the table."""
    for key, peak in GPU_BF16_PEAK:
        if key in device_name:
            return peak
    return None


def cpu_matmul_peak(seconds: float = 0.3, size: int = 384) -> float:
    """FLOP/s of an fp32 matmul on the CPU with the current torch threads: the best of short repeats.

    One matmul of 384 takes ~1 ms on a core, shorter than the time slice of a busy machine, so
    some repeats run whole; longer ones measured a third of the peak beside other jobs.
    """
    # deferred: torch takes seconds; the workflow imports this module (through lmscale.training) when it plans
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size ** 3 / (time.perf_counter() - started))
    return best


def device_peak(device) -> tuple[float | None, str]:
    """(peak FLOP/s, where it comes from) of a torch device; (None, why) when unknown."""
    # deferred: torch takes seconds; the workflow imports this module (through lmscale.training) when it plans
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak(name)
        return peak, (f"{name}: dense bf16 peak (table)" if peak else f"{name}: not in lmscale's table of peaks")
    if device.type == "cpu":
        return cpu_matmul_peak(), f"fp32 matmul measured with {torch.get_num_threads()} thread(s)"
    return None, f"{device.type}: no known peak"


def mfu(flops_per_second: float, peak: float | None) -> float | None:
    return flops_per_second / peak if peak else None


def should_compile(setting: str | bool, device_type: str, steps: int, activations_per_step: int,
                   compiled_before: bool) -> tuple[bool, str]:
    """Whether a run compiles its step, and why: `on`, `off` (or YAML's true, false), or under
    `auto` on CUDA always and on the CPU when the seconds it should save (steps x the measured
    saving per step; `activations_per_step` is tokens per step x width x depth) exceed what
    compiling should cost (cold, or warm when this machine compiled the same step before)."""
    setting = {True: "on", False: "off"}.get(setting, setting) if isinstance(setting, bool) else setting
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"train.compile must be one of {', '.join(COMPILE_SETTINGS)}, got {setting!r}")
    if setting != "auto":
        return setting == "on", f"compile: {setting}"
    if device_type == "cuda":
        return True, "compile: auto, on CUDA"
    if device_type != "cpu":
        return False, f"compile: auto, not on {device_type}"
    saving = steps * (CPU_STEP_SAVING_SECONDS + CPU_SAVING_SECONDS_PER_ACTIVATION * activations_per_step)
    cost = CPU_WARM_COMPILE_SECONDS if compiled_before else CPU_COLD_COMPILE_SECONDS
    verdict = saving > cost
    return verdict, (f"compile: auto, {'on' if verdict else 'off'}: it should save ~{saving:.0f} s of "
                     f"{steps} CPU steps and cost ~{cost:.0f} s ({'warm' if compiled_before else 'cold'} cache)")


def compile_cache() -> Path:
    """The folder of inductor's caches (TORCHINDUCTOR_CACHE_DIR, by default /tmp/torchinductor_<user>)."""
    # deferred: torch takes seconds; the workflow imports this module when it plans
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir())


def compile_marker(key: str) -> Path:
    """A file beside inductor's caches that says this machine compiled the step `key` before (so
    that its graphs are likely in the cache); the cache and the markers go away together."""
    return compile_cache() / "lmscale" / f"{key}.json"
