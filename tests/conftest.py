"""Shared fixtures: paths to the real data, a deterministic test image, tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
REALDATA = REPO.parent / "shared" / "realdata"


def synthetic_bgr(height: int = 120, width: int = 160) -> np.ndarray:
    """A deterministic uint8 BGR test image: colour ramps, a disc and fine stripes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    blue = 255 * x / (width - 1)
    green = 127.5 + 127.5 * np.sin(x / 5.0) * np.cos(y / 7.0)
    red = 255 * ((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 3) ** 2)
    return np.clip(np.stack([blue, green, red], axis=-1), 0, 255).astype(np.uint8)


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
