"""Plain event files for user data: `.npz` and `.h5` with x, y, t, p arrays, and `.txt` lines.

- `.npz`: arrays `x`, `y`, `t`, `p` (t in µs unless `time_unit` says otherwise); the sensor size from
  an array `sensor_size` (height, width) or scalars `height` and `width`. Loaded into memory.
- `.h5` / `.hdf5`: datasets `x`, `y`, `t`, `p` at the root or in a group `events/`; the sensor size
  from attributes `sensor_size` or `height` / `width` (root or group). Read lazily (binary search).
- `.txt` (Event Camera Dataset, Mueggler et al. 2017): one event per line "t x y p", t in seconds,
  p 0/1 (or -1/1); an optional first line "width height" (rpg_e2vid convention). Loaded into memory.
Polarity may be 0/1, -1/+1 or boolean. When neither the caller nor the file gives the sensor size,
it is inferred as (max y + 1, max x + 1) and `reader.sensor_size_inferred` is True.
"""

from __future__ import annotations

import itertools
import warnings
import zipfile
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import Arrays, EventReader, InMemoryEventReader, search_sorted_lazily
from anydepth.fileio import check_file, closing_on_error, first_line, open_hdf5, open_npz, read_dataset, require_dataset

TIME_UNITS_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "ns": None}  # ns: integer division by 1000
KEYS = ("x", "y", "t", "p")


def to_microseconds(t: np.ndarray, unit: str) -> np.ndarray:
    """Timestamps in `unit` ("s", "ms", "us", "ns") -> int64 µs (floats rounded to the nearest µs)."""
    if unit not in TIME_UNITS_US:
        raise InputError(f"time unit must be one of {sorted(TIME_UNITS_US)}, got {unit!r}")
    t = np.asarray(t)
    if t.dtype.kind == "f" and len(t) and not np.isfinite(t).all():
        raise FormatError("timestamps contain NaN or infinity")
    if unit == "ns":
        return (t // 1000).astype(np.int64) if t.dtype.kind in "iu" else np.rint(t / 1000.0).astype(np.int64)
    if t.dtype.kind in "iu":
        return t.astype(np.int64) * TIME_UNITS_US[unit]
    if t.dtype.kind != "f":
        raise FormatError(f"timestamps have type {t.dtype}, expected numbers")
    return np.rint(t.astype(np.float64) * TIME_UNITS_US[unit]).astype(np.int64)


def _times_us(t: np.ndarray, unit: str, path: Path) -> np.ndarray:
    """`to_microseconds` with its FormatError naming the file."""
    try:
        return to_microseconds(t, unit)
    except FormatError as error:
        raise FormatError(str(error), path) from None


def _infer_sensor_size(x: np.ndarray, y: np.ndarray, path: Path) -> tuple[int, int]:
    if not len(x):
        raise FormatError("no events and no sensor size: pass sensor_size=(height, width)", path)
    if min(x.min(), y.min()) < 0:
        raise FormatError("negative coordinates", path)
    return int(np.ceil(y.max())) + 1, int(np.ceil(x.max())) + 1


def _sensor_from_values(values: dict, path: Path) -> tuple[int, int] | None:
    """(height, width) from `sensor_size` or `height`/`width` entries, None if absent."""
    try:
        for key in ("sensor_size", "sensor_resolution"):  # sensor_resolution: event_utils HDF5
            if key in values:
                height, width = (int(v) for v in np.asarray(values[key]).reshape(-1)[:2])
                return height, width
        if "height" in values and "width" in values:
            return int(np.asarray(values["height"]).reshape(())), int(np.asarray(values["width"]).reshape(()))
    except (TypeError, ValueError):
        raise FormatError("unreadable sensor size (expected sensor_size = (height, width))", path) from None
    return None


class NpzEventReader(InMemoryEventReader):
    """`.npz` with arrays x, y, t, p, held in memory (see module docstring)."""

    format_name = "npz"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, time_unit: str = "us",
                 repair: bool = False):
        path = check_file(path)
        try:
            with open_npz(path) as archive:
                missing = [key for key in KEYS if key not in archive.files]
                if missing:
                    raise FormatError(f"missing array '{missing[0]}' (found: {', '.join(archive.files) or 'none'})", path)
                arrays = {key: archive[key] for key in archive.files if key in KEYS + ("sensor_size", "height", "width")}
        except FormatError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
            raise FormatError(f"not a readable .npz archive, truncated or corrupt ({first_line(error)})", path) from None
        x, y, t, p = (arrays[key] for key in KEYS)
        size = sensor_size or _sensor_from_values(arrays, path)
        self.sensor_size_inferred = size is None
        super().__init__(path, size or _infer_sensor_size(x, y, path))
        self._hold((x, y, _times_us(t, time_unit, path), p), repair)


class TxtEventReader(InMemoryEventReader):
    """Event Camera Dataset text: "t x y p" per line (t in seconds unless `time_unit` says otherwise),
    optional first line "width height"; held in memory."""

    format_name = "txt"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, time_unit: str = "s",
                 repair: bool = False):
        path = check_file(path)
        try:
            with open(path, "r") as handle:
                file_size, (x, y, t, p) = read_event_text(handle, path)
        except (OSError, UnicodeDecodeError) as error:
            raise FormatError(f"not a readable text file ({first_line(error)})", path) from None
        size = sensor_size or file_size
        self.sensor_size_inferred = size is None
        super().__init__(path, size or _infer_sensor_size(x, y, path))
        self._hold((x, y, _times_us(t, time_unit, path), p), repair)


def read_event_text(handle, path: Path) -> tuple[tuple[int, int] | None, tuple[np.ndarray, ...]]:
    """Lines "t x y p" from an open text handle, after an optional first line "width height" ->
    ((height, width) or None, (x int64, y int64, t float64 as written, p float64))."""
    first = handle.readline()
    header = first.split()
    file_size, lines = None, itertools.chain([first], handle)
    if len(header) == 2:
        try:
            file_size = (int(header[1]), int(header[0]))  # the line is "width height"
        except ValueError:
            raise FormatError(f"first line {' '.join(header)!r} is neither 'width height' nor an event", path) from None
        lines = handle
    try:
        with warnings.catch_warnings():  # an event-less file is allowed: no "input contained no data"
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(lines, dtype=np.float64, ndmin=2, comments="#")
    except (ValueError, UnicodeDecodeError) as error:
        raise FormatError(f"not 't x y p' lines ({first_line(error)})", path) from None
    if table.size and table.shape[1] != 4:
        raise FormatError(f"lines have {table.shape[1]} columns, expected 4 (t x y p)", path)
    table = table.reshape(-1, 4)
    t, x, y, p = table[:, 0], table[:, 1], table[:, 2], table[:, 3]
    for name, values in (("x", x), ("y", y)):
        if (np.rint(values) != values).any():
            raise FormatError(f"{name} coordinates are not whole pixels", path)
    return file_size, (x.astype(np.int64), y.astype(np.int64), t, p)


class H5EventReader(EventReader):
    """Plain HDF5 with datasets x, y, t, p (root or `events/`), read lazily; see module docstring."""

    format_name = "h5"
    dataset_names = KEYS  # the x, y, t, p datasets, at the root or under events/

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, time_unit: str = "us",
                 repair: bool = False, block: int = 1 << 16):
        path = check_file(path)
        self._file = open_hdf5(path)
        with closing_on_error(self._file):
            names = self.dataset_names
            group = self._file["events"] if f"events/{names[2]}" in self._file else self._file
            prefix = "events/" if group is not self._file else ""
            self._datasets = [require_dataset(self._file, prefix + key, path, ndim=1) for key in names]
            lengths = {prefix + key: len(d) for key, d in zip(names, self._datasets)}
            if len(set(lengths.values())) > 1:
                raise FormatError(f"event datasets differ in length: {lengths}", path)
            self._n = len(self._datasets[2])
            if time_unit == "auto":  # float timestamps are seconds, integers microseconds
                time_unit = "s" if self._datasets[2].dtype.kind == "f" else "us"
            self._time_unit = time_unit
            _times_us(np.zeros(0, self._datasets[2].dtype), time_unit, path)  # checks the unit and the type
            attributes = {**dict(self._file.attrs), **dict(group.attrs)}
            size = sensor_size or _sensor_from_values(attributes, path)
            self.sensor_size_inferred = size is None
            if size is None:
                size = self._scan_sensor_size(path, block)
            super().__init__(path, size)
            self._block = int(block)
            if repair:
                self._load_repaired()

    def _scan_sensor_size(self, path: Path, block: int) -> tuple[int, int]:
        """(max y + 1, max x + 1) over the whole file, read in blocks."""
        x_max = y_max = -1
        for start in range(0, self._n, block * 16):
            x = read_dataset(self._datasets[0], slice(start, start + block * 16), path)
            y = read_dataset(self._datasets[1], slice(start, start + block * 16), path)
            if min(x.min(), y.min()) < 0:
                raise FormatError("negative coordinates", path)
            x_max, y_max = max(x_max, float(x.max())), max(y_max, float(y.max()))
        if x_max < 0:
            raise FormatError("no events and no sensor size: pass sensor_size=(height, width)", path)
        return int(np.ceil(y_max)) + 1, int(np.ceil(x_max)) + 1

    def _count(self) -> int:
        return self._n

    def _read_t(self, i0: int, i1: int) -> np.ndarray:
        return _times_us(read_dataset(self._datasets[2], slice(i0, i1), self.path), self._time_unit, self.path)

    def _index_of_time(self, t_us: int) -> int:
        return search_sorted_lazily(self._read_t, self._n, t_us, block=self._block)

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        x, y, _, p = (read_dataset(d, slice(i0, i1), self.path) for d in self._datasets)
        return x, y, self._read_t(i0, i1), p

    def _close(self) -> None:
        self._file.close()
