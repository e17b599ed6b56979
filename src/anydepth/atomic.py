"""Atomic file writes: nothing half-written is ever left at the target path.

A write goes to a temporary file beside the target, named by one rule that no user file follows:
`.<target name>.<8 random characters>.partial<target suffix>` (e.g. `.last.pt.k3j9_x0a.partial.pt`),
then is renamed onto the target. A process killed with SIGKILL cannot remove its temporary; the
process that owns the targets removes such leftovers when it starts again
(`remove_stale_temporaries`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

TEMPORARY_MARK = ".partial"
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}" + re.escape(TEMPORARY_MARK) + r"(?P<suffix>\.[^.]*)?$")


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call write(temporary path) for a temporary file in the target's folder (same suffix, so
    writers that pick a format from the extension work), then os.replace it onto `path`. On any
    failure the temporary file is removed and `path` keeps its old content. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_MARK + path.suffix)
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


def temporary_target(name: str) -> str | None:
    """The target file name when `name` is the name of an `atomic_write` temporary, else None."""
    match = _TEMPORARY.match(name)
    if match is None or (match["suffix"] or "") != Path(match["target"]).suffix:
        return None
    return match["target"]


def remove_stale_temporaries(folder: str | Path, owns: Callable[[str], bool] = lambda target: True,
                             recursive: bool = False) -> list[Path]:
    """Delete the `atomic_write` temporaries in `folder` (and below it with `recursive`) whose target
    name `owns(target)` accepts: what a killed writer left. Only the process that writes those
    targets may call this, when no write of its own is under way. Returns the paths removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.rglob(".*") if recursive else folder.glob(".*")):
        target = temporary_target(path.name)
        if target is not None and path.is_file() and owns(target):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
