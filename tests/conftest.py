"""Shared fixtures: paths to the real data, a deterministic test image, tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REALDATA


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
