"""The arithmetic a network runs in: fp32, or bf16/fp16 through autocast.

`autocast(device, precision)` is the one place reduced precision is switched on. Inside it, matrix
products and convolutions run in the reduced type while PyTorch's autocast keeps the operations
that lose accuracy (softmax, normalisation layers, reductions, losses) in float32; callers convert
what leaves the network back to float32 (`.float()`) before it becomes depth, a loss or a metric.
bf16 runs on CPUs and GPUs (fastest where the CPU has AVX-512 BF16 or AMX); fp16 only on CUDA.
"""

from __future__ import annotations

import contextlib

import torch

from anydepth.errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _device_type(device) -> str:
    return torch.device(device).type if not isinstance(device, torch.device) else device.type


def check_precision(precision: str, device, option: str = "precision") -> None:
    """Raise an `InputError` for an unknown precision, or fp16 on a device that is not CUDA."""
    if precision not in PRECISIONS:
        raise InputError(f"{option} {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and _device_type(device) != "cuda":
        raise InputError(f"{option} fp16 runs on CUDA only (CPUs have no fast fp16); use bf16 or fp32 on {device}")


def autocast(device, precision: str = "fp32"):
    """Context manager: the network calls inside run at `precision` on `device` (a no-op for fp32)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = _device_type(device)
    return torch.autocast(device_type, dtype=DTYPES[precision])
