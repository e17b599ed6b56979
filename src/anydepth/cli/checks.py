"""The checks every subcommand runs on its arguments before any work starts (output paths, devices,
positive numbers) and the flags several subcommands share. Each failure is an `InputError` naming the option and the value, so the user
sees one line and nothing has been written yet (these checks create nothing)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from anydepth.errors import InputError


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists (`.` for a relative path with none)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_creatable(path: Path, option: str, what: str) -> None:
    """`path` does not exist: its nearest existing ancestor must be a folder we may write into."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise InputError(f"{option} {path}: cannot create this {what}, {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create this {what}, the folder {ancestor} is not writable")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """An output folder: an existing writable folder, or one that can be created (its nearest
    existing ancestor is a writable folder). Creates nothing."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{option} {path}: is a file; expected a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option} {path}: the folder is not writable")
        return path
    _check_creatable(path, option, "folder")
    return path


def check_output_file(path: str | Path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """An output file: not a folder, with one of `suffixes` (lower case, with the dot; any when
    empty), writable if it exists, else creatable. Creates nothing."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{option} {path}: must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; expected a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise InputError(f"{option} {path}: the file is not writable")
        return path
    _check_creatable(path, option, "file")
    return path


def resolve_device(name: str, option: str = "--device") -> str:
    """`auto` -> `cuda` when this machine has a CUDA device, else `cpu`; any other name is checked
    against this machine (a misspelt name, `cuda` without a GPU, `cuda:3` with one GPU are errors)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"{option} {name!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return name
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"{option} {name}: this machine has no CUDA device; use cpu (or auto)")
        if device.index is not None and device.index >= count:
            raise InputError(f"{option} {name}: this machine has {count} CUDA device{'s' if count > 1 else ''} "
                             f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
        return name
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"{option} {name}: MPS is not available on this machine; use cpu (or auto)")
        return name
    raise InputError(f"{option} {name}: {device.type} devices are not supported; use auto, cpu, cuda or cuda:N")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (e.g. --window-ms, --fps)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (e.g. --window-events, --bins)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_repair(parser) -> None:
    """--repair, for subcommands that open one recording (readers' repair=True)."""
    parser.add_argument("--repair", action="store_true",
                        help="sort unsorted timestamps and drop events outside the sensor instead of stopping "
                             "(loads the whole recording)")
