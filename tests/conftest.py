"""Shared fixtures: paths to the real data, a deterministic test image, tiny checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one thread per worker, or the workers fight for the cores
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest  # noqa: E402

from tests.support import REALDATA


@pytest.fixture
def device() -> str:
    """The device tests run their networks on: cpu (`benchmarks/gpu_check.py` runs the cuda-marked
    tests, tests/test_cuda.py, on a GPU)."""
    return "cpu"


@pytest.fixture
def dtype():
    """The float type of tensors built in tests (float32, as the networks)."""
    import torch

    return torch.float32


@pytest.fixture
def one_thread():
    """Small convolutions on a shared 2-core machine are ~50x faster on one torch thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA
