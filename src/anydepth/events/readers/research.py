"""Event layouts of research code: event_utils / E2VID-training HDF5, `.npy` arrays, E2VID zipped
text, CSV with a header.

- event_utils HDF5 (Stoffregen et al., `TimoStoff/event_utils`, used to train E2VID-style networks):
  datasets `events/xs`, `events/ys` (int16), `events/ts` (float64 seconds), `events/ps` (bool); the
  file attribute `sensor_resolution` is (height, width); optional `images/image%09d` (uint8) with a
  `timestamp` attribute in the clock of `ts` (open_sequence gives them as frames). Read lazily.
- `.npy`: an (N, 4) array whose columns are (t, x, y, p) or (x, y, t, p), or a structured array with
  fields x, y, t (or ts / timestamp), p (or pol / polarity). Memory-mapped, read lazily. The column
  order: `columns="txyp"` / `"xytp"`, or by rule: time is the one of columns 0 and 2 that never
  decreases over the first `probe` rows while the other does (anything else is an error asking for
  `columns=`).
- E2VID zipped text (rpg_e2vid): a zip holding one `.txt`, first line "width height", then "t x y p"
  with t in seconds. Detected by the zip's content, never by its name (a `.npz` is a zip of `.npy`).
  Held in memory.
- CSV: a header naming the columns (x, y, p or pol / polarity, t or ts / timestamp / time, optionally
  with a unit: `t_us`, `t[s]`, `timestamp (ms)`), then one event per line. Held in memory.
Time unit, when the file does not say: `time_unit` ("s", "ms", "us", "ns"), else float timestamps
are seconds and integer ones microseconds (CSV: values with a fractional part are seconds).
Sensor size: from the file where it says (event_utils `sensor_resolution`, the zipped text's first
line), else `sensor_size=(height, width)`, else guessed as (max y + 1, max x + 1): over the whole
file for the in-memory formats, over the first `probe` events for `.npy` (a later event outside
the guess is a FormatError asking for sensor_size / --sensor-size).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import Arrays, EventReader, InMemoryEventReader, search_sorted_lazily
from anydepth.fileio import check_file, first_line, read_dataset
from anydepth.events.readers.plain import H5EventReader, _infer_sensor_size, _times_us, read_event_text

FIELD_NAMES = {"x": ("x",), "y": ("y",), "t": ("t", "ts", "timestamp", "time"), "p": ("p", "pol", "polarity")}
NPY_COLUMNS = {"txyp": (1, 2, 0, 3), "xytp": (0, 1, 2, 3)}  # column of x, y, t, p
NPY_SIGNATURE = b"\x93NUMPY"


def _auto_unit(dtype: np.dtype, time_unit: str | None) -> str:
    """The caller's unit, else seconds for float timestamps, microseconds for integers."""
    return time_unit if time_unit is not None else ("s" if dtype.kind == "f" else "us")


def is_event_utils(names: set[str]) -> bool:
    """The HDF5 test of the reader table: event_utils datasets events/{xs, ys, ts, ps}."""
    return all(f"events/{key}s" in names for key in "xytp")


class EventUtilsH5Reader(H5EventReader):
    """event_utils / E2VID-training HDF5 (`events/xs, ys, ts, ps`), read lazily; see module docstring."""

    format_name = "event_utils"
    dataset_names = ("xs", "ys", "ts", "ps")

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, time_unit: str | None = None,
                 repair: bool = False, block: int = 1 << 16):
        super().__init__(path, sensor_size=sensor_size, time_unit=time_unit or "auto", repair=repair, block=block)

    def images(self) -> "EventUtilsImages | None":
        """The `images/` group as a timestamped stack (None when the file has none)."""
        return EventUtilsImages(self._file, self.path, self._time_unit) if "images" in self._file else None


class EventUtilsImages:
    """`images/image%09d` of an event_utils file, in name order, at their `timestamp` attributes
    (int64 µs, same unit as the events). Items: (H, W) grey or (H, W, 3) BGR uint8."""

    def __init__(self, h5file, path: Path, time_unit: str):
        self.path = path
        group = h5file["images"]
        self._datasets = [group[name] for name in sorted(group) if hasattr(group[name], "shape")]
        stamps = []
        for dataset in self._datasets:
            if "timestamp" not in dataset.attrs:
                raise FormatError(f"'{dataset.name}' has no timestamp attribute", path)
            stamps.append(float(np.asarray(dataset.attrs["timestamp"]).reshape(-1)[0]))
        self.timestamps_us = _times_us(np.asarray(stamps, dtype=np.float64), time_unit, path)
        if len(stamps) > 1 and (np.diff(self.timestamps_us) < 0).any():
            raise FormatError("image timestamps are not sorted", path)

    def __len__(self) -> int:
        return len(self._datasets)

    def __getitem__(self, index: int) -> np.ndarray:
        image = read_dataset(self._datasets[int(index)], (), self.path)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        if image.dtype != np.uint8:
            raise FormatError(f"'{self._datasets[int(index)].name}' has samples of type {image.dtype}, expected uint8",
                              self.path)
        return np.ascontiguousarray(image)


class NpyEventReader(EventReader):
    """`.npy` events, memory-mapped and read lazily; see module docstring for the layouts and rules.

    columns: "txyp" or "xytp" for (N, 4) arrays (None: by the rule); time_unit: see module docstring;
    probe: rows read at open to decide the column order and guess the sensor size.
    """

    format_name = "npy"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, columns: str | None = None,
                 time_unit: str | None = None, repair: bool = False, probe: int = 1 << 16, block: int = 1 << 16):
        path = check_file(path)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise FormatError(f"not a readable .npy array, truncated or corrupt ({first_line(error)})", path) from None
        if array.dtype.names:
            fields = {key: next((name for name in aliases if name in array.dtype.names), None)
                      for key, aliases in FIELD_NAMES.items()}
            missing = [key for key, name in fields.items() if name is None]
            if missing or array.ndim != 1:
                raise FormatError(f"structured array needs 1-D fields x, y, t, p (missing {', '.join(missing) or 'none'}; "
                                  f"fields {', '.join(array.dtype.names)}, shape {array.shape})", path)
            self._columns = [array[fields[key]] for key in "xytp"]
        else:
            if array.ndim != 2 or array.shape[1] != 4:
                raise FormatError(f"array of shape {array.shape}, expected (N, 4) events or a structured array", path)
            if columns is None:
                columns = self._column_rule(array[:probe], path)
            if columns not in NPY_COLUMNS:
                raise InputError(f"columns must be one of {', '.join(NPY_COLUMNS)}, got {columns!r}", path)
            self._columns = [array[:, column] for column in NPY_COLUMNS[columns]]
        self.columns = columns
        self._time_unit = _auto_unit(self._columns[2].dtype, time_unit)
        _times_us(np.zeros(0, self._columns[2].dtype), self._time_unit, path)  # checks the unit and the type
        self._guessed_from = None
        if sensor_size is None and len(array):
            sensor_size = _infer_sensor_size(np.asarray(self._columns[0][:probe]), np.asarray(self._columns[1][:probe]), path)
            self._guessed_from = min(len(array), probe)
        self.sensor_size_inferred = self._guessed_from is not None
        super().__init__(path, sensor_size or (1, 1))
        self._block = int(block)
        if repair:
            self._load_repaired()

    @staticmethod
    def _column_rule(rows: np.ndarray, path: Path) -> str:
        """"txyp" or "xytp": the column of 0 and 2 that never decreases over `rows` while the other does."""
        sorted_0, sorted_2 = (bool((np.diff(np.asarray(rows[:, c], dtype=np.float64)) >= 0).all()) for c in (0, 2))
        if sorted_0 != sorted_2:
            return "txyp" if sorted_0 else "xytp"
        state = "both never decrease" if sorted_0 else "neither is sorted"
        raise FormatError(f"cannot tell the time column of this (N, 4) array (columns 0 and 2: {state}): "
                          "pass columns='txyp' or 'xytp'", path)

    def _count(self) -> int:
        return len(self._columns[2])

    def _read_t(self, i0: int, i1: int) -> np.ndarray:
        return _times_us(np.asarray(self._columns[2][i0:i1]), self._time_unit, self.path)

    def _index_of_time(self, t_us: int) -> int:
        return search_sorted_lazily(self._read_t, self._count(), t_us, block=self._block)

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        x, y, _, p = (np.asarray(column[i0:i1]) for column in self._columns)
        return x, y, self._read_t(i0, i1), p

    def _validated(self, arrays: Arrays):
        try:
            return super()._validated(arrays)
        except FormatError as error:
            if self._guessed_from is None or "outside the" not in str(error):
                raise
            height, width = self.sensor_size
            raise FormatError(f"events exceed the sensor size {height}x{width} guessed from the first "
                              f"{self._guessed_from:,} events: pass sensor_size=(height, width) (--sensor-size HxW)",
                              self.path) from None


def zip_members(path: Path) -> list[str]:
    """The file names in a zip archive (FormatError for a truncated or corrupt one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [name for name in archive.namelist() if not name.endswith("/") and not name.startswith("__MACOSX")]
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise FormatError(f"not a readable zip archive, truncated or corrupt ({first_line(error)})", path) from None


def is_zipped_text(members: list[str]) -> bool:
    """E2VID zipped events: exactly one member, a .txt."""
    return len(members) == 1 and members[0].lower().endswith(".txt")


class ZipTxtEventReader(InMemoryEventReader):
    """E2VID zipped text (a zip with one .txt: "width height", then "t x y p", t in seconds), held
    in memory."""

    format_name = "txt.zip"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, time_unit: str = "s",
                 repair: bool = False):
        path = check_file(path)
        members = zip_members(path)
        if not is_zipped_text(members):
            raise FormatError(f"expected a zip holding one .txt of events, found {', '.join(members) or 'nothing'}", path)
        try:
            with zipfile.ZipFile(path) as archive, archive.open(members[0]) as member:
                file_size, (x, y, t, p) = read_event_text(io.TextIOWrapper(member, encoding="ascii"), path)
        except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError) as error:
            raise FormatError(f"cannot read {members[0]} from the zip, truncated or corrupt ({first_line(error)})",
                              path) from None
        size = sensor_size or file_size
        self.sensor_size_inferred = size is None
        super().__init__(path, size or _infer_sensor_size(x, y, path))
        self._hold((x, y, _times_us(t, time_unit, path), p), repair)


_UNIT = re.compile(r"^(?P<name>[a-z]+)\s*(?:_|\[|\()?\s*(?P<unit>us|ms|ns|s)?\s*[\])]?$")


def _csv_header(fields: list[str], path: Path) -> tuple[list[int], str | None]:
    """Header names -> (column of x, y, t, p; the unit the time column's name gives, or None)."""
    found, unit = {}, None
    for column, field in enumerate(fields):
        match = _UNIT.match(field.strip().strip('"').lower())
        if not match:
            continue
        for key, aliases in FIELD_NAMES.items():
            if match["name"] in aliases and key not in found:
                found[key] = column
                if key == "t":
                    unit = match["unit"]
    missing = [key for key in "xytp" if key not in found]
    if missing:
        raise FormatError(f"CSV header {','.join(fields)!r} names no column for {', '.join(missing)} "
                          "(expected x, y, t / ts / timestamp, p / polarity)", path)
    return [found[key] for key in "xytp"], unit


class CsvEventReader(InMemoryEventReader):
    """CSV with a header naming its columns (see module docstring), held in memory."""

    format_name = "csv"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, time_unit: str | None = None,
                 repair: bool = False):
        path = check_file(path)
        try:
            with open(path, "r") as handle:
                header = handle.readline().strip()
                delimiter = ";" if header.count(";") > header.count(",") else ","
                columns, named_unit = _csv_header(header.split(delimiter), path)
                table = np.loadtxt(handle, dtype=np.float64, delimiter=delimiter, usecols=columns, ndmin=2)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise FormatError(f"not a CSV of events ({first_line(error)})", path) from None
        x, y, t, p = (table[:, k] for k in range(4))
        for name, values in (("x", x), ("y", y)):
            if (np.rint(values) != values).any():
                raise FormatError(f"{name} coordinates are not whole pixels", path)
        x, y = x.astype(np.int64), y.astype(np.int64)
        unit = time_unit or named_unit or ("us" if (np.rint(t) == t).all() else "s")
        self.sensor_size_inferred = sensor_size is None
        super().__init__(path, sensor_size or _infer_sensor_size(x, y, path))
        self._hold((x, y, _times_us(t, unit, path), p), repair)


__all__ = ["CsvEventReader", "EventUtilsH5Reader", "EventUtilsImages", "NpyEventReader", "ZipTxtEventReader",
           "is_event_utils", "is_zipped_text", "zip_members"]
