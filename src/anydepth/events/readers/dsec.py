"""DSEC (Gehrig et al., RA-L 2021): event files, rectification and disparity ground truth.

`events/left/events.h5` (Blosc/ZSTD-compressed; `hdf5plugin` is imported before h5py opens it):
- `events/x`, `events/y` uint16 pixel column / row of the distorted sensor, 640x480;
- `events/t` uint32 µs relative to `t_offset`; `events/p` uint8, 1 = positive, 0 = negative;
- `ms_to_idx` uint64 (last ms + 1,): index of the first event with t >= ms * 1000, so that
  t[ms_to_idx[ms] - 1] < ms * 1000 <= t[ms_to_idx[ms]];
- `t_offset` int64 scalar µs, added to `events/t` to reach the clock of the image and disparity
  timestamps (absent: 0, as in DSEC's own EventSlicer).
`rectify_map.h5`: `rectify_map` (480, 640, 2) float32, rectify_map[y, x] = (x_rect, y_rect) in the
rectified left event view, the view of the disparity ground truth. A folder in DSEC's layout of
another size (e.g. synthetic) takes its sensor size from this map, else from the `cam0` resolution
[W, H] of `calibration/cam_to_cam.yaml` (`sensor_size_of`).
Disparity: `disparity/event/XXXXXX.png` uint16, disparity = value / 256 px, 0 = invalid, with
`disparity/timestamps.txt` (µs, one per line); depth = f·B / disparity with f = |Q[2, 3]| and
B = 1 / |Q[3, 2]| from `cam_to_cam.yaml` `disparity_to_depth: cams_03` (4x4 Q).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from anydepth.errors import REPAIR, FormatError, InputError
from anydepth.events.container import EventArray
from anydepth.events.readers.base import Arrays, EventReader
from anydepth.fileio import check_file, closing_on_error, first_line, open_hdf5, read_dataset, require_dataset
from anydepth.events.readers.plain import _sensor_from_values

DSEC_SENSOR_SIZE = (480, 640)  # (height, width)
EVENT_KEYS = ("events/x", "events/y", "events/t", "events/p")


class DsecEventReader(EventReader):
    """A DSEC `events.h5`, read lazily through `ms_to_idx` (only the blocks of a window are read).

    Times in and out are absolute: the file's t plus `t_offset` (µs), as DSEC's EventSlicer returns
    them. A window [t0, t1) is found as the EventSlicer does: `ms_to_idx` at floor(t0 / 1 ms) and
    ceil(t1 / 1 ms) bounds the block, which is read and searched; `ms_to_idx` is checked against
    `events/t` at every millisecond it is used (FormatError when they disagree). Windows beyond the
    last millisecond of `ms_to_idx` are clipped to the data (the EventSlicer returns None there).

    rectify: return rectified float32 coordinates (rectify_map[y, x]) and drop the events that map
    outside the sensor; `rectify_map` is an (H, W, 2) array or a path, default `rectify_map.h5`
    beside the events file.
    repair: load the whole file, sort it and drop events outside the sensor (`repair_report`).
    sensor_size: (height, width); default: the file's root attribute `sensor_size` (height, width)
    where it states one (files of `anydepth events convert`), else `sensor_size_of(path)`: the
    rectify map beside the file, else the calibration of the sequence, else DSEC's 480x640.
    """

    format_name = "dsec"

    def __init__(self, path: str | Path, rectify: bool = False, rectify_map: np.ndarray | str | Path | None = None,
                 repair: bool = False, sensor_size: tuple[int, int] | None = None):
        super().__init__(path, sensor_size_of(path) if sensor_size is None else sensor_size)
        self._file = open_hdf5(self.path)
        with closing_on_error(self._file):
            self._x, self._y, self._t, self._p = (require_dataset(self._file, key, self.path, ndim=1) for key in EVENT_KEYS)
            lengths = {key: len(dataset) for key, dataset in zip(EVENT_KEYS, (self._x, self._y, self._t, self._p))}
            if len(set(lengths.values())) > 1:
                raise FormatError(f"event datasets differ in length: {lengths}", self.path)
            for key, dataset in zip(EVENT_KEYS, (self._x, self._y, self._t, self._p)):
                if dataset.dtype.kind not in "iub":
                    raise FormatError(f"'{key}' has type {dataset.dtype}, expected integers", self.path)
            self._n = lengths["events/t"]
            stated = _sensor_from_values(dict(self._file.attrs), self.path)  # files of `anydepth events convert`
            if sensor_size is None and stated is not None:
                self.sensor_size = stated
            ms_to_idx = read_dataset(require_dataset(self._file, "ms_to_idx", self.path, ndim=1), (), self.path)
            self._ms_to_idx = ms_to_idx.astype(np.int64)
            table = self._ms_to_idx
            if len(table) and ((np.diff(table) < 0).any() or table[0] < 0 or table[-1] > self._n):
                raise FormatError("'ms_to_idx' is not a non-decreasing index into the events", self.path)
            if self._n and not len(table):
                raise FormatError("'ms_to_idx' is empty but the file holds events", self.path)
            self.t_offset = 0
            if "t_offset" in self._file:
                offset = read_dataset(require_dataset(self._file, "t_offset", self.path), (), self.path)
                if offset.size != 1:
                    raise FormatError(f"'t_offset' has shape {offset.shape}, expected a scalar", self.path)
                self.t_offset = int(offset.reshape(()))
            self._rectify_map = None
            if rectify:
                source = self.path.parent / "rectify_map.h5" if rectify_map is None else rectify_map
                self._rectify_map = source if isinstance(source, np.ndarray) else load_rectify_map(source)
                if self._rectify_map.shape != (*self.sensor_size, 2):
                    raise FormatError(f"rectify map has shape {self._rectify_map.shape}, expected {(*self.sensor_size, 2)}", self.path)
            if repair:
                self._load_repaired()

    # ---- lazy access --------------------------------------------------------------------------
    def _count(self) -> int:
        return self._n

    def _relative_t(self, i0: int, i1: int) -> np.ndarray:
        return read_dataset(self._t, slice(i0, i1), self.path).astype(np.int64)

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        selection = slice(i0, i1)
        return (read_dataset(self._x, selection, self.path), read_dataset(self._y, selection, self.path),
                self._relative_t(i0, i1) + self.t_offset, read_dataset(self._p, selection, self.path))

    def _ms_index(self, ms: int) -> int | None:
        """ms_to_idx[ms], or None past its end."""
        return int(self._ms_to_idx[ms]) if 0 <= ms < len(self._ms_to_idx) else None

    def _index_of_time(self, t_us: int) -> int:
        relative = t_us - self.t_offset
        if self._n == 0 or relative <= 0:
            return 0 if relative <= 0 else self._n
        ms = relative // 1000  # floor: the first event >= relative lies in [ms_to_idx[ms], ms_to_idx[ms + 1]]
        lo = self._ms_index(ms)
        if lo is None:  # past the table: search from its last entry to the end
            lo = int(self._ms_to_idx[-1]) if len(self._ms_to_idx) else 0
        hi = self._ms_index(ms + 1)
        hi = self._n if hi is None else hi
        start, stop = max(lo - 1, 0), min(hi + 1, self._n)
        t = self._relative_t(start, stop)
        if len(t) > 1 and (np.diff(t) < 0).any():
            index = start + int(np.argmax(np.diff(t) < 0)) + 1
            raise FormatError(f"timestamps are not sorted near event {index}", self.path, remedy=REPAIR)
        for edge_ms in (ms, ms + 1):
            self._check_ms_to_idx(edge_ms, t, start)
        return start + int(np.searchsorted(t, relative, side="left"))

    def _check_ms_to_idx(self, ms: int, t: np.ndarray, start: int) -> None:
        """DSEC's definition: t[i - 1] < ms * 1000 <= t[i] with i = ms_to_idx[ms] (t read from `start`)."""
        index = self._ms_index(ms)
        if index is None:
            return
        edge = ms * 1000
        before = index - 1 - start
        if (index < self._n and 0 <= index - start < len(t) and t[index - start] < edge) or \
                (index > 0 and 0 <= before < len(t) and t[before] >= edge):
            raise FormatError(f"'ms_to_idx'[{ms}] = {index} disagrees with 'events/t' (not the first event at >= {edge} µs)", self.path)

    def _postprocess(self, events: EventArray) -> EventArray:
        return events if self._rectify_map is None else rectify_events(events, self._rectify_map)

    def _close(self) -> None:
        self._file.close()


def _rectify_map_size(path: Path) -> tuple[int, int]:
    with open_hdf5(path) as h5file:
        dataset = h5file.get("rectify_map")
        if dataset is None or len(dataset.shape) != 3 or dataset.shape[2] != 2:
            raise FormatError(f"expected a 'rectify_map' of shape (H, W, 2), found {dataset.shape if dataset is not None else 'none'}", path)
        return int(dataset.shape[0]), int(dataset.shape[1])


def _calibration_size(path: Path) -> tuple[int, int] | None:
    """The `cam0` (else `camRect0`) resolution [W, H] of a cam_to_cam.yaml as (H, W); None without one."""
    try:
        intrinsics = yaml.safe_load(path.read_text())["intrinsics"]
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise FormatError(f"not valid YAML ({first_line(error)})", path) from None
    except (KeyError, TypeError):
        return None
    for camera in ("cam0", "camRect0"):
        try:
            width, height = intrinsics[camera]["resolution"]
            return int(height), int(width)
        except (KeyError, TypeError, ValueError):
            continue
    return None


def sensor_size_of(events_file: str | Path) -> tuple[int, int]:
    """(height, width) of the sensor of a DSEC `events.h5`: the shape of `rectify_map.h5` beside it,
    else the `cam0` resolution of `calibration/cam_to_cam.yaml` of its sequence folder (two levels
    up, `events/<camera>/events.h5`), else DSEC's 480x640."""
    folder = Path(events_file).parent
    rectify_map = folder / "rectify_map.h5"
    if rectify_map.is_file():
        return _rectify_map_size(rectify_map)
    calibration = folder.parent.parent / "calibration" / "cam_to_cam.yaml"
    if folder.parent.name == "events" and calibration.is_file():
        size = _calibration_size(calibration)
        if size is not None:
            return size
    return DSEC_SENSOR_SIZE


def load_rectify_map(path: str | Path) -> np.ndarray:
    """DSEC `rectify_map.h5` -> (H, W, 2) float32, [y, x] -> (x_rect, y_rect) pixels."""
    path = Path(path)
    with open_hdf5(path) as h5file:
        dataset = require_dataset(h5file, "rectify_map", path, ndim=3)
        if dataset.shape[2] != 2:
            raise FormatError(f"'rectify_map' has shape {dataset.shape}, expected (H, W, 2)", path)
        return read_dataset(dataset, (), path).astype(np.float32)


def rectify_events(events: EventArray, rectify_map: np.ndarray) -> EventArray:
    """Map sensor coordinates through rectify_map (H, W, 2) [y, x] -> (x_rect, y_rect).

    Returns float32 coordinates; events whose rectified position falls outside the sensor
    (x_rect < 0 or > W - 1, likewise y) are dropped — this is the only place a DSEC reader drops
    events, and only when rectification is asked for.
    """
    if events.x.dtype.kind == "f" or events.y.dtype.kind == "f":
        raise InputError("events are already rectified (fractional coordinates)")
    height, width = rectify_map.shape[:2]
    if events.sensor_size != (height, width):
        raise InputError(f"rectify map is {height}x{width}, events are {events.height}x{events.width}")
    rectified = rectify_map[events.y, events.x]  # (N, 2)
    x_rect, y_rect = rectified[:, 0], rectified[:, 1]
    inside = (x_rect >= 0) & (x_rect <= width - 1) & (y_rect >= 0) & (y_rect <= height - 1)
    return EventArray(x_rect[inside].astype(np.float32), y_rect[inside].astype(np.float32),
                      events.t[inside], events.p[inside], events.sensor_size)


def read_disparity_png(path: str | Path) -> np.ndarray:
    """DSEC disparity PNG -> (H, W) float32 disparity in pixels (value / 256), 0 = invalid."""
    path = check_file(path)
    image = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise FormatError("not a readable PNG image", path)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise FormatError(f"disparity must be a 16-bit single-channel PNG, got {image.dtype} with shape {image.shape}", path)
    return image.astype(np.float32) / 256.0


def read_disparity_to_depth(path: str | Path, cameras: str = "cams_03") -> np.ndarray:
    """The 4x4 Q matrix `disparity_to_depth: <cameras>` of DSEC's `cam_to_cam.yaml` (float64)."""
    path = check_file(path)
    try:
        calibration = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise FormatError(f"not valid YAML ({first_line(error)})", path) from None
    try:
        matrix = calibration["disparity_to_depth"][cameras]
    except (KeyError, TypeError):
        raise FormatError(f"missing key 'disparity_to_depth.{cameras}'", path) from None
    try:
        q_matrix = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise FormatError(f"'disparity_to_depth.{cameras}' is not a numeric matrix", path) from None
    if q_matrix.shape != (4, 4):
        raise FormatError(f"'disparity_to_depth.{cameras}' has shape {q_matrix.shape}, expected (4, 4)", path)
    return q_matrix


def focal_baseline(q_matrix: np.ndarray) -> tuple[float, float]:
    """(f pixels, B metres) from a stereo Q matrix: f = |Q[2, 3]|, B = 1 / |Q[3, 2]|."""
    focal, inverse_baseline = abs(float(q_matrix[2, 3])), abs(float(q_matrix[3, 2]))
    if focal == 0 or inverse_baseline == 0:
        raise InputError(f"Q matrix gives no depth: Q[2, 3] = {q_matrix[2, 3]}, Q[3, 2] = {q_matrix[3, 2]}")
    return focal, 1.0 / inverse_baseline


def disparity_to_depth(disparity: np.ndarray, q_matrix: np.ndarray) -> np.ndarray:
    """(H, W) disparity pixels (0 = invalid) -> (H, W) float32 depth metres = f·B / disparity, NaN
    where the disparity is 0 (or negative)."""
    focal, baseline = focal_baseline(q_matrix)
    disparity = np.asarray(disparity, dtype=np.float64)
    depth_m = np.full(disparity.shape, np.nan, dtype=np.float64)
    valid = disparity > 0
    depth_m[valid] = focal * baseline / disparity[valid]
    return depth_m.astype(np.float32)
