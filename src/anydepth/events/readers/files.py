"""Opening event files safely: existence checks and HDF5 access with one-line errors."""

from __future__ import annotations

from pathlib import Path

import hdf5plugin  # noqa: F401  (registers the Blosc filter before h5py opens DSEC files)
import h5py
import numpy as np

from anydepth.errors import FormatError, InputError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (h5py messages span several)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def check_file(path: str | Path) -> Path:
    """InputError if `path` is not an existing file, FormatError if it is empty."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a file", path)
    if path.stat().st_size == 0:
        raise FormatError("empty file (0 bytes)", path)
    return path


def has_hdf5_signature(path: Path) -> bool:
    """True when the HDF5 signature is at offset 0, 512, 1024, 2048... (HDF5 user blocks)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        while offset + 8 <= size:
            handle.seek(offset)
            if handle.read(8) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def open_hdf5(path: str | Path) -> h5py.File:
    """Open an HDF5 file for reading, with one-line FormatErrors for empty, foreign, truncated or
    corrupt files."""
    path = check_file(path)
    if not has_hdf5_signature(path):
        raise FormatError("not an HDF5 file (no HDF5 signature; another format, or a damaged header)", path)
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise FormatError(f"cannot open the HDF5 file, truncated or corrupt ({first_line(error)})", path) from None


def require_dataset(h5file: h5py.File, key: str, path: Path, ndim: int | None = None) -> h5py.Dataset:
    """The dataset `key`, or a FormatError naming the missing key (or its wrong rank)."""
    try:
        node = h5file.get(key)
    except (OSError, ValueError, KeyError) as error:
        raise FormatError(f"cannot read '{key}' ({first_line(error)})", path) from None
    if node is None:
        raise FormatError(f"missing dataset '{key}'", path)
    if not isinstance(node, h5py.Dataset):
        raise FormatError(f"'{key}' is a group, expected a dataset", path)
    if ndim is not None and node.ndim != ndim:
        raise FormatError(f"'{key}' has shape {node.shape}, expected {ndim} dimension(s)", path)
    return node


def read_dataset(dataset: h5py.Dataset, selection, path: Path) -> np.ndarray:
    """dataset[selection] with HDF5 read failures (missing filter, corrupt chunk) as FormatError."""
    try:
        return np.asarray(dataset[selection])
    except (OSError, ValueError, RuntimeError) as error:
        raise FormatError(f"cannot read '{dataset.name}' ({first_line(error)})", path) from None
