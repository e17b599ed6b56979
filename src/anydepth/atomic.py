"""Atomic file writes: nothing half-written is ever left at the target path."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call write(temporary path) for a temporary file in the target's folder (same suffix, so
    writers that pick a format from the extension work), then os.replace it onto `path`. On any
    failure the temporary file is removed and `path` keeps its old content. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def json_ready(value):
    """`value` as plain JSON data: tuples -> lists, numpy scalars -> Python numbers, NaN and
    infinities -> None (null), paths and other objects -> str."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_json(path: str | Path, value) -> Path:
    """Write `json_ready(value)` atomically, indented (strict JSON: no NaN)."""
    text = json.dumps(json_ready(value), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda temporary: Path(temporary).write_text(text))
