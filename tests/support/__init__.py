"""What several test modules share: paths to the stored and the real data, and a deterministic
test image. Weights in the official layout filled with random values: `tests.support.weights`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
REALDATA = REPO.parent / "shared" / "realdata"


def synthetic_bgr(height: int = 120, width: int = 160) -> np.ndarray:
    """A deterministic uint8 BGR test image: colour ramps, a disc and fine stripes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    blue = 255 * x / (width - 1)
    green = 127.5 + 127.5 * np.sin(x / 5.0) * np.cos(y / 7.0)
    red = 255 * ((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 3) ** 2)
    return np.clip(np.stack([blue, green, red], axis=-1), 0, 255).astype(np.uint8)


def cli_stderr(argv, capsys=None) -> tuple[int, str]:
    """Run `anydepth ARGV` and return (exit code, stderr). With `capsys`, in this process (main());
    without, as a real process (`python -m anydepth.cli.main`), for the checks that need one."""
    argv = [str(arg) for arg in argv]
    if capsys is None:
        import subprocess
        import sys

        result = subprocess.run([sys.executable, "-m", "anydepth.cli.main", *argv], capture_output=True, text=True)
        return result.returncode, result.stderr
    from anydepth.cli.main import main

    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def requires(*modules: str):
    """A skip mark for tests that need optional packages, decided without importing them: a module-level
    `pytest.importorskip` would import (seconds for onnxscript or transformers) in every test worker at
    collection, for tests that worker may never run."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")
