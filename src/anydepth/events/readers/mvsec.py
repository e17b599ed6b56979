"""MVSEC (Zhu et al., RA-L 2018) raw HDF5 recordings.

`<name>_data.hdf5`: `davis/<camera>/events` float64 (N, 4) with columns [x, y, t seconds, p ±1],
`davis/<camera>/image_raw` (M, 260, 346) uint8 with `image_raw_ts` (M,) seconds.
`<name>_gt.hdf5`: `davis/<camera>/depth_image_raw` (K, 260, 346) float32 metres, NaN = invalid,
with `depth_image_raw_ts` (K,) seconds. Timestamps are absolute (Unix) seconds; the readers turn
them into int64 µs rounded to the nearest microsecond. Sensor 260x346 (DAVIS 346).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import Arrays, EventReader, search_sorted_lazily
from anydepth.fileio import closing_on_error, open_hdf5, read_dataset, require_dataset
from anydepth.events.readers.timestamps import seconds_to_us

MVSEC_SENSOR_SIZE = (260, 346)  # (height, width)
CAMERAS = ("left", "right")


class MvsecEventReader(EventReader):
    """The events of one DAVIS camera of an MVSEC `*_data.hdf5`, read lazily.

    A time is found by binary search on the t column through h5py (single-value probes, then one
    block of `block` rows), so no window reads more than its own rows plus one block of timestamps.
    camera: "left" or "right". repair: load everything, sort, drop events outside the sensor.
    """

    format_name = "mvsec"

    def __init__(self, path: str | Path, camera: str = "left", repair: bool = False, block: int = 1 << 16):
        if camera not in CAMERAS:
            raise InputError(f"camera must be one of {CAMERAS}, got {camera!r}")
        super().__init__(path, MVSEC_SENSOR_SIZE)
        self.camera = camera
        self._block = int(block)
        self._file = open_hdf5(self.path)
        with closing_on_error(self._file):
            key = f"davis/{camera}/events"
            self._events = require_dataset(self._file, key, self.path, ndim=2)
            if self._events.shape[1] < 4:
                raise FormatError(f"'{key}' has shape {self._events.shape}, expected (N, 4) [x, y, t, p]", self.path)
            if repair:
                self._load_repaired()

    def _count(self) -> int:
        return int(self._events.shape[0])

    def _read_t(self, i0: int, i1: int) -> np.ndarray:
        seconds = read_dataset(self._events, (slice(i0, i1), 2), self.path)
        if not np.isfinite(seconds).all():
            raise FormatError(f"timestamps contain NaN or infinity (events {i0}..{i1 - 1})", self.path)
        return seconds_to_us(seconds)

    def _index_of_time(self, t_us: int) -> int:
        return search_sorted_lazily(self._read_t, self._count(), t_us, block=self._block)

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        rows = read_dataset(self._events, slice(i0, i1), self.path)
        if not np.isfinite(rows[:, :4]).all():
            raise FormatError(f"events {i0}..{i1 - 1} contain NaN or infinity", self.path)
        x, y = (_whole_pixels(rows[:, column], name, self.path) for column, name in ((0, "x"), (1, "y")))
        return x, y, seconds_to_us(rows[:, 2]), rows[:, 3]

    def _close(self) -> None:
        self._file.close()


def _whole_pixels(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """Float pixel indices -> int64 (kept signed so that negative values fail validation)."""
    rounded = np.rint(values)
    if (rounded != values).any():
        raise FormatError(f"{name} coordinates are not whole pixels (e.g. {values[rounded != values][0]:g})", path)
    return rounded.astype(np.int64)


def find_mvsec_pair(path: str | Path) -> tuple[Path, Path | None]:
    """(data file, ground-truth file or None) from either file of an MVSEC pair, or from a folder
    holding one `*_data.hdf5`. `x_data.hdf5` pairs with `x_gt.hdf5`."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*_data.hdf5"))
        if len(found) != 1:
            raise InputError(f"expected one *_data.hdf5 in the folder, found {len(found)}", path)
        path = found[0]
    name = path.name
    for data_suffix, gt_suffix in (("_data.hdf5", "_gt.hdf5"), ("_data.h5", "_gt.h5")):
        if name.endswith(gt_suffix):
            return path.with_name(name[: -len(gt_suffix)] + data_suffix), path
        if name.endswith(data_suffix):
            gt_path = path.with_name(name[: -len(data_suffix)] + gt_suffix)
            return path, gt_path if gt_path.exists() else None
    return path, None


class MvsecStack:
    """A timestamped image stack of an MVSEC file (`image_raw` or `depth_image_raw` with its `_ts`),
    read one image at a time. `timestamps_us` (K,) int64 µs."""

    def __init__(self, h5file, key: str, path: Path):
        self.key, self.path = key, path
        self._images = require_dataset(h5file, key, path, ndim=3)
        stamps = read_dataset(require_dataset(h5file, key + "_ts", path, ndim=1), (), path)
        if len(stamps) != self._images.shape[0]:
            raise FormatError(f"'{key}' has {self._images.shape[0]} images but '{key}_ts' has {len(stamps)} timestamps", path)
        if not np.isfinite(stamps).all():
            raise FormatError(f"'{key}_ts' contains NaN or infinity", path)
        self.timestamps_us = seconds_to_us(stamps)
        if len(stamps) > 1 and (np.diff(self.timestamps_us) < 0).any():
            raise FormatError(f"'{key}_ts' is not sorted", path)

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def __getitem__(self, index: int) -> np.ndarray:
        return read_dataset(self._images, int(index), self.path)
