"""Timestamp text files and lookups (DSEC µs lists, E2Depth / RAM-Net "index seconds" tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anydepth.errors import FormatError
from anydepth.fileio import check_file, first_line


def seconds_to_us(seconds: np.ndarray) -> np.ndarray:
    """Float seconds -> int64 microseconds, rounded to the nearest µs."""
    return np.rint(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)


def read_timestamp_file(path: str | Path, column: int = -1, seconds: bool = False) -> np.ndarray:
    """A column of a whitespace- or comma-separated text table, as int64 microseconds.

    Lines starting with '#' are skipped (DSEC's test timestamp CSVs). seconds=True: the values are
    float seconds (E2Depth / RAM-Net `timestamps.txt`: "index seconds"); otherwise integer µs (DSEC).
    column: which column holds the time (-1 = last). (N,) int64 µs.
    """
    path = check_file(path)
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise FormatError(f"cannot read the timestamp file ({first_line(error)})", path) from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.replace(",", " ").split()
        try:
            rows.append(fields[column])
        except IndexError:
            raise FormatError(f"line {number} has {len(fields)} column(s), expected column {column}", path) from None
    if not rows:
        raise FormatError("the timestamp file holds no timestamps", path)
    try:
        if seconds:
            values = seconds_to_us(np.array(rows, dtype=np.float64))
        else:
            values = np.rint(np.array(rows, dtype=np.float64)).astype(np.int64)
            if np.abs(values).max() > 2 ** 53:  # beyond exact float64 integers: parse as integers
                values = np.array(rows, dtype=np.int64)
    except ValueError as error:
        raise FormatError(f"a timestamp is not a number ({first_line(error)})", path) from None
    if len(values) > 1 and (np.diff(values) < 0).any():
        index = int(np.argmax(np.diff(values) < 0)) + 1
        raise FormatError(f"timestamps are not sorted (entry {index} goes back in time)", path)
    return values


def nearest_index(timestamps_us: np.ndarray, t_us: int) -> int:
    """Index of the timestamp nearest to t_us in a sorted (K,) array (K > 0); ties go to the earlier."""
    right = int(np.searchsorted(timestamps_us, t_us, side="left"))
    if right == 0:
        return 0
    if right == len(timestamps_us):
        return right - 1
    return right - 1 if t_us - timestamps_us[right - 1] <= timestamps_us[right] - t_us else right
