"""Aligned samples of a recorded sequence: events (or voxel grids), frame and metric depth at one
timestamp (DSEC, MVSEC and E2Depth folder layouts).

Sample i sits at the ground-truth timestamp t_i (DSEC disparity, MVSEC depth, or the voxel grid of a
voxel folder). Its events are those of [t_i − ΔT, t_i) with ΔT = `window_ms` (50 ms by default); its
frame is the frame nearest to t_i; its depth is the ground truth at t_i, in metres, NaN = invalid.

    with open_sequence("DSEC/train/zurich_city_09_a") as sequence:
        for sample in sequence:
            sample.events, sample.depth_m, sample.frame
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.container import EventArray
from anydepth.events.readers import detect_format
from anydepth.fileio import closing_on_error, open_hdf5
from anydepth.events.readers.timestamps import nearest_index, read_timestamp_file
from anydepth.events.readers.dsec import (
    DSEC_SENSOR_SIZE,
    DsecEventReader,
    disparity_to_depth,
    read_disparity_png,
    read_disparity_to_depth,
    sensor_size_of,
)
from anydepth.events.readers.mvsec import MvsecEventReader, MvsecStack, find_mvsec_pair
from anydepth.events.readers.voxel_folders import VoxelFolder, is_voxel_folder, read_frame


@dataclass(frozen=True, eq=False)
class AlignedSample:
    """One aligned sample.

    events: the events of [t − ΔT, t) (None for voxel folders, which hold no raw events);
    voxels: (B, H, W) float32 precomputed voxel grid (voxel folders only), as stored;
    frame: (H, W, 3) BGR uint8 or (H, W) grey uint8, the frame nearest to t (None if there are none);
    depth_m: (H, W) float32 metres, NaN = invalid (None without ground truth);
    timestamp_us: t, int µs in the sequence's clock; index: the sample's position in the sequence.
    """

    events: EventArray | None
    voxels: np.ndarray | None
    frame: np.ndarray | None
    depth_m: np.ndarray | None
    timestamp_us: int
    index: int

    def event_window(self) -> tuple[EventArray | np.ndarray, str | None]:
        """(what the sample holds of its window, its representation): (events, None) or, for voxel
        folders, (voxels, "voxel") — as `EventDepthModel.predict(window, representation=...)` takes."""
        if self.events is not None:
            return self.events, None
        if self.voxels is None:
            raise InputError(f"sample {self.index} has neither events nor voxels")
        return self.voxels, "voxel"


class AlignedSequence(ABC):
    """A sequence of aligned samples: `len`, indexing (negative indices too), iteration, and
    `timestamps_us` (N,) int64. Close it (or use it as a context manager) to release its files."""

    timestamps_us: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def __getitem__(self, index: int) -> AlignedSample:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"sample index must be an integer, got {type(index).__name__}")
        count = len(self)
        position = int(index) + count if index < 0 else int(index)
        if not 0 <= position < count:
            raise IndexError(f"sample {index} out of range for a sequence of {count}")
        return self._sample(position)

    def __iter__(self) -> Iterator[AlignedSample]:
        for index in range(len(self)):
            yield self._sample(index)

    @abstractmethod
    def _sample(self, index: int) -> AlignedSample:
        """Sample `index`, 0 <= index < len(self)."""

    def close(self) -> None:
        """Release open files."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _window_us(window_ms: float) -> int:
    window_us = int(round(float(window_ms) * 1000))
    if window_us <= 0:
        raise InputError(f"window must be positive, got {window_ms} ms")
    return window_us


def _first_file(candidates: list[Path]) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


class DsecSequence(AlignedSequence):
    """A DSEC sequence folder: `events/left/events.h5` (+ `rectify_map.h5`), `disparity/event/*.png`
    with `disparity/timestamps.txt`, `calibration/cam_to_cam.yaml`, `images/left/rectified/*.png`
    with `images/timestamps.txt`.

    Samples sit at the disparity timestamps (at the image timestamps when the folder has no
    disparity, e.g. the test split). DSEC's own loader drops the first disparity map because no
    events precede it; here it is kept and its window is simply short.
    rectify: events in the rectified left event view (float32 coordinates; events mapping outside
    the 480x640 frame are dropped), the view the disparity ground truth is in. False: raw sensor
    coordinates, not aligned with depth_m.
    Frames are the rectified left *frame-camera* images (1440x1080), a different view from the
    events and depth (DSEC does not warp them into the event view).
    """

    def __init__(self, folder: str | Path, window_ms: float = 50.0, rectify: bool = True, frames: bool = True,
                 sensor_size: tuple[int, int] | None = None):
        self.folder = Path(folder)
        self.window_us = _window_us(window_ms)
        events_file = self.folder / "events" / "left" / "events.h5"
        if not events_file.is_file():
            raise FormatError("not a DSEC sequence folder (no events/left/events.h5)", self.folder)
        if rectify and not (events_file.parent / "rectify_map.h5").is_file():
            raise FormatError("missing events/left/rectify_map.h5 (pass rectify=False for raw coordinates)", self.folder)

        disparity_folder = self.folder / "disparity"
        self._disparity_files: list[Path] | None = None
        self._q_matrix = None
        timestamps = None
        if (disparity_folder / "timestamps.txt").is_file():
            timestamps = read_timestamp_file(disparity_folder / "timestamps.txt", column=0)
            self._disparity_files = sorted((disparity_folder / "event").glob("*.png"))
            if len(self._disparity_files) != len(timestamps):
                raise FormatError(f"disparity/event has {len(self._disparity_files)} PNGs but disparity/timestamps.txt "
                                  f"lists {len(timestamps)} timestamps", self.folder)
            calibration = _first_file([self.folder / "calibration" / "cam_to_cam.yaml", self.folder / "cam_to_cam.yaml"])
            if calibration is None:
                raise FormatError("missing calibration/cam_to_cam.yaml (needed to turn disparity into depth)", self.folder)
            self._q_matrix = read_disparity_to_depth(calibration)

        self._image_files: list[Path] | None = None
        self._image_timestamps = None
        image_folder = self.folder / "images" / "left" / "rectified"
        image_stamps = _first_file([self.folder / "images" / "timestamps.txt",
                                    self.folder / "images" / "left" / "timestamps.txt",
                                    self.folder / "images" / f"{self.folder.name}_image_timestamps.txt",
                                    self.folder / f"{self.folder.name}_image_timestamps.txt"])
        if frames and image_folder.is_dir() and image_stamps is not None:
            self._image_files = sorted(image_folder.glob("*.png"))
            self._image_timestamps = read_timestamp_file(image_stamps, column=0)
            if len(self._image_files) != len(self._image_timestamps):
                raise FormatError(f"images/left/rectified has {len(self._image_files)} PNGs but {image_stamps.name} lists "
                                  f"{len(self._image_timestamps)} timestamps", self.folder)
            if not self._image_files:
                self._image_files = self._image_timestamps = None

        if timestamps is None:
            if self._image_timestamps is None:
                raise FormatError("no disparity/timestamps.txt nor image timestamps to place samples at", self.folder)
            timestamps = self._image_timestamps
        self.timestamps_us = timestamps
        if sensor_size is None:
            sensor_size = self._sensor_size(events_file.parent / "rectify_map.h5")
        self.reader = DsecEventReader(events_file, rectify=rectify, sensor_size=sensor_size)

    def _sensor_size(self, rectify_map: Path) -> tuple[int, int]:
        """(height, width) of a DSEC-layout folder: the rectify map's, else the calibration's (`cam0`
        resolution), else the disparity maps', else DSEC's 480x640 (so synthetic folders of other
        sizes open unchanged)."""
        size = sensor_size_of(rectify_map.parent / "events.h5")
        if rectify_map.is_file() or size != DSEC_SENSOR_SIZE or not self._disparity_files:
            return size
        return tuple(int(v) for v in read_disparity_png(self._disparity_files[0]).shape[:2])

    def _sample(self, index: int) -> AlignedSample:
        t = int(self.timestamps_us[index])
        depth_m = None
        if self._disparity_files is not None:
            depth_m = disparity_to_depth(read_disparity_png(self._disparity_files[index]), self._q_matrix)
        frame = None
        if self._image_files is not None:
            frame = read_frame(self._image_files[nearest_index(self._image_timestamps, t)])
        return AlignedSample(self.reader.read_time(t - self.window_us, t), None, frame, depth_m, t, index)

    def close(self) -> None:
        self.reader.close()


class MvsecSequence(AlignedSequence):
    """An MVSEC recording: `<name>_data.hdf5` (events, frames) and `<name>_gt.hdf5` (depth).

    Samples sit at `depth_image_raw_ts`; depth is `depth_image_raw` (metres, NaN = invalid), in the
    raw (distorted) view of the events; the frame is the `image_raw` (grey) nearest to t.
    """

    def __init__(self, path: str | Path, gt_path: str | Path | None = None, window_ms: float = 50.0,
                 camera: str = "left", frames: bool = True):
        data_path, found_gt = find_mvsec_pair(path)
        gt_path = Path(gt_path) if gt_path is not None else found_gt
        if gt_path is None:
            raise FormatError("no *_gt.hdf5 beside the data file to take depth from (pass gt_path=)", data_path)
        self.window_us = _window_us(window_ms)
        self.reader = MvsecEventReader(data_path, camera=camera)
        self._files = [self.reader]
        with closing_on_error(self):
            gt_file = open_hdf5(gt_path)
            self._files.append(gt_file)
            self.depth = MvsecStack(gt_file, f"davis/{camera}/depth_image_raw", gt_path)
            self.frames = None
            if frames:
                data_file = open_hdf5(data_path)
                self._files.append(data_file)
                if f"davis/{camera}/image_raw" in data_file:
                    self.frames = MvsecStack(data_file, f"davis/{camera}/image_raw", data_path)
        self.timestamps_us = self.depth.timestamps_us

    def _sample(self, index: int) -> AlignedSample:
        t = int(self.timestamps_us[index])
        depth_m = np.asarray(self.depth[index], dtype=np.float32).copy()
        depth_m[~(np.isfinite(depth_m) & (depth_m > 0))] = np.nan
        frame = None
        if self.frames is not None and len(self.frames):
            frame = self.frames[nearest_index(self.frames.timestamps_us, t)]
        return AlignedSample(self.reader.read_time(t - self.window_us, t), None, frame, depth_m, t, index)

    def close(self) -> None:
        for handle in self._files:
            handle.close()


class VoxelSequence(AlignedSequence):
    """An E2Depth-processed MVSEC or EventScape folder (see `readers.voxel_folders`): samples at the
    voxel-grid timestamps, with `voxels` set and `events` None (the window is fixed by the files).

    depth_max_gap_us: the depth map nearest to t is used when at most this far from t (the authors'
    loaders require the two timestamps to match); otherwise depth_m is None.
    """

    def __init__(self, folder: str | Path, depth_max_gap_us: int = 1000):
        self.voxel_folder = VoxelFolder(folder)
        self.folder = self.voxel_folder.folder
        self.depth_max_gap_us = int(depth_max_gap_us)
        self.timestamps_us = self.voxel_folder.timestamps_us

    def _sample(self, index: int) -> AlignedSample:
        folder = self.voxel_folder
        t = int(self.timestamps_us[index])
        depth_index = folder.depth_index_at(t, self.depth_max_gap_us)
        frame_index = folder.frame_index_at(t)
        return AlignedSample(
            events=None,
            voxels=folder.read_voxels(index),
            frame=None if frame_index is None else folder.read_frame(frame_index),
            depth_m=None if depth_index is None else folder.read_depth(depth_index),
            timestamp_us=t,
            index=index,
        )


def open_sequence(path: str | Path, window_ms: float = 50.0, **options) -> AlignedSequence:
    """Open a recorded sequence by its layout: a DSEC sequence folder, an MVSEC `*_data.hdf5` /
    `*_gt.hdf5` (or a folder holding one pair), an E2Depth / EventScape voxel folder, a ROS bag
    (events + sensor_msgs/Image frames and depth; see `anydepth.events.file_sequences`) or an
    event_utils HDF5 with images/.

    window_ms: ΔT of the event windows [t − ΔT, t) (not used by voxel folders, whose grids are
    precomputed). options: passed to the sequence class (rectify=, frames=, gt_path=, camera=,
    depth_max_gap_us=).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if path.is_dir():
        if (path / "events" / "left" / "events.h5").is_file():
            return DsecSequence(path, window_ms=window_ms, **options)
        if is_voxel_folder(path):
            return VoxelSequence(path, **options)
        if any(path.glob("*_data.hdf5")):
            return MvsecSequence(path, window_ms=window_ms, **options)
        if (path / "metadata.yaml").is_file():  # a ROS2 bag
            from anydepth.events.file_sequences import RosbagSequence
            return RosbagSequence(path, window_ms=window_ms, **options)
        raise FormatError("not a DSEC sequence folder, an E2Depth / EventScape voxel folder (events/voxels/"
                          "timestamps.txt) or a folder with an MVSEC *_data.hdf5", path)
    if path.name.endswith(("_data.hdf5", "_gt.hdf5")) or detect_format(path) == "mvsec":
        return MvsecSequence(path, window_ms=window_ms, **options)
    if detect_format(path) in ("rosbag", "event_utils"):  # events with frames / depth in one file
        from anydepth.events.file_sequences import open_file_sequence
        return open_file_sequence(path, detect_format(path), window_ms, **options)
    if detect_format(path) == "aedat4":  # frames and IMU of a DV recording
        from anydepth.events.aedat_sequence import Aedat4Sequence
        return Aedat4Sequence(path, window_ms=window_ms, **options)
    raise FormatError("not a sequence: give a DSEC sequence folder, an MVSEC *_data.hdf5 / *_gt.hdf5, or a "
                      "voxel folder (single event files open with anydepth.events.readers.open_events)", path)


__all__ = ["AlignedSample", "AlignedSequence", "DsecSequence", "MvsecSequence", "VoxelSequence", "open_sequence"]
