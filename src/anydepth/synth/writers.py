"""Write synthetic sequences in the datasets' own on-disk layouts, so that the readers of
`anydepth.events` (and the authors' loaders) open them unchanged (SPEC 3.1).

- `write_dsec_sequence`: a DSEC sequence folder
      events/left/events.h5         events/{x,y} uint16, events/t uint32 µs relative to t_offset,
                                    events/p uint8, ms_to_idx uint64, t_offset int64; Blosc (ZSTD,
                                    bit shuffle) through hdf5plugin, as DSEC ships them
      events/left/rectify_map.h5    rectify_map (H, W, 2) float32, the identity (the synthetic
                                    sensor is already rectified)
      images/left/rectified/%06d.png + images/timestamps.txt (µs, one per line)
      disparity/event/%06d.png      uint16 disparity x 256, 0 = invalid + disparity/timestamps.txt
      calibration/cam_to_cam.yaml   disparity_to_depth: cams_03: Q with Q[2, 3] = f, Q[3, 2] = 1 / B,
                                    so that depth = f B / disparity
- `write_e2depth_folder`: the E2Depth-processed MVSEC layout
      events/voxels/event_tensor_%010d.npy  (B, H, W) float32 voxel grid (anydepth.events.voxel_grid,
                                            not normalised) of the events of [t - window, t)
      depth/data/depth_%010d.npy            (H, W) float32 metres, NaN = invalid
      rgb/davis/frame_%010d.png             frames
      each folder with timestamps.txt of lines "index seconds" (exact decimal µs)
- `write_mvsec_pair`: raw MVSEC HDF5, `<name>_data.hdf5` (davis/<camera>/events (N, 4) float64
  [x, y, t seconds, p ±1], image_raw + image_raw_ts) and `<name>_gt.hdf5` (depth_image_raw metres,
  NaN = invalid, + depth_image_raw_ts). 260x346 only: the MVSEC reader has the DAVIS346 size fixed.

Inputs are plain arrays: events an `EventArray` (integer pixels, sorted); frames (N, H, W) grey or
(N, H, W, 3) RGB uint8 with (N,) int µs timestamps (PNG files store BGR, so readers return BGR);
depth (N, H, W) metres (NaN, inf or <= 0 = invalid) with (N,) int µs timestamps. Every file is
written atomically (a temporary file in the same folder, then os.replace). A folder that already
holds files is refused unless overwrite=True, which first removes the files of the layout (and
nothing else), so that no stale file is read with the new ones.
A DSEC-layout folder of another size than 480x640 opens with `open_sequence` (the sensor size
comes from its rectify map) or `open_events(path, sensor_size=(H, W))`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import hdf5plugin
import numpy as np
import yaml

from anydepth.atomic import atomic_write
from anydepth.errors import InputError
from anydepth.events.container import EventArray
from anydepth.events.representations import voxel_grid
from anydepth.imageio import write_npy, write_png

DISPARITY_SCALE = 256.0  # DSEC: disparity = PNG value / 256
UINT32_MAX = 2 ** 32 - 1


# ---- small helpers ----------------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda temporary: Path(temporary).write_text(text))


def blosc_zstd() -> dict:
    """h5py dataset options of DSEC's compression: Blosc with ZSTD, bit shuffle."""
    return dict(hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE))


def seconds_text(t_us: int) -> str:
    """Integer µs -> exact decimal seconds with 6 digits ("-0.000001", "1506117000.050000")."""
    t_us = int(t_us)
    sign = "-" if t_us < 0 else ""
    whole, fraction = divmod(abs(t_us), 1_000_000)
    return f"{sign}{whole}.{fraction:06d}"


def _timestamps(values, count: int, what: str) -> np.ndarray:
    """(count,) strictly increasing whole µs -> int64 (InputError naming `what` otherwise)."""
    stamps = np.asarray(values)
    if stamps.ndim != 1 or len(stamps) != count:
        raise InputError(f"{what}: expected {count} timestamps, got shape {stamps.shape}")
    if stamps.dtype.kind == "f":
        if not np.all(np.isfinite(stamps)) or np.any(stamps != np.round(stamps)):
            raise InputError(f"{what}: timestamps must be whole microseconds")
    elif stamps.dtype.kind not in "iu":
        raise InputError(f"{what}: timestamps must be integers (µs), got {stamps.dtype}")
    stamps = stamps.astype(np.int64)
    if count > 1 and (np.diff(stamps) <= 0).any():
        raise InputError(f"{what}: timestamps must increase strictly")
    return stamps


def _frames(frames, timestamps_us, what: str = "frames") -> tuple[np.ndarray | None, np.ndarray | None]:
    if frames is None:
        if timestamps_us is not None:
            raise InputError(f"{what}: timestamps given without frames")
        return None, None
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or not (frames.ndim == 3 or (frames.ndim == 4 and frames.shape[3] == 3)):
        raise InputError(f"{what} must be (N, H, W) or (N, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    if timestamps_us is None:
        raise InputError(f"{what}: timestamps_us are required")
    return frames, _timestamps(timestamps_us, len(frames), what)


def _depths(depth_m, timestamps_us, sensor_size: tuple[int, int], what: str = "depth") -> tuple[np.ndarray | None, np.ndarray | None]:
    """(N, H, W) metres -> float32 with NaN where invalid (NaN, inf, <= 0)."""
    if depth_m is None:
        if timestamps_us is not None:
            raise InputError(f"{what}: timestamps given without depth maps")
        return None, None
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 3 or depth_m.shape[1:] != tuple(sensor_size) or depth_m.dtype.kind != "f":
        raise InputError(f"{what} must be (N, {sensor_size[0]}, {sensor_size[1]}) float metres, got {depth_m.dtype} {depth_m.shape}")
    if timestamps_us is None:
        raise InputError(f"{what}: timestamps_us are required")
    depth_m = depth_m.astype(np.float32)  # a copy
    depth_m[~(np.isfinite(depth_m) & (depth_m > 0))] = np.nan
    return depth_m, _timestamps(timestamps_us, len(depth_m), what)


def _events(events: EventArray) -> EventArray:
    if not isinstance(events, EventArray):
        raise InputError(f"events must be an EventArray, got {type(events).__name__}")
    if events.x.dtype.kind == "f" or events.y.dtype.kind == "f":
        raise InputError("events have fractional (rectified) coordinates; the layouts store whole pixels")
    return events.validate()


def _prepare_folder(folder: Path, overwrite: bool, layout_files: list[tuple[str, str]]) -> None:
    """Refuse a non-empty folder unless overwrite; with overwrite, remove the files of the layout:
    (sub-folder, glob) pairs."""
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", folder)
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise InputError("folder is not empty (pass overwrite=True to replace the sequence's files)", folder)
        for subfolder, pattern in layout_files:
            for path in (folder / subfolder).glob(pattern):
                if path.is_file():
                    path.unlink()
    folder.mkdir(parents=True, exist_ok=True)


# ---- DSEC -------------------------------------------------------------------------------------------------
def ms_to_idx(t_relative_us: np.ndarray) -> np.ndarray:
    """DSEC's table: (last ms + 1,) uint64, entry ms = index of the first event with t >= ms * 1000 µs."""
    if not len(t_relative_us):
        return np.zeros(0, np.uint64)
    edges = np.arange(int(t_relative_us[-1]) // 1000 + 1, dtype=np.int64) * 1000
    return np.searchsorted(t_relative_us, edges, side="left").astype(np.uint64)


def q_matrix(focal_px: float, baseline_m: float, principal_point: tuple[float, float]) -> np.ndarray:
    """A stereo Q matrix laid out like DSEC's `cams_03`: Q[2, 3] = f, Q[3, 2] = 1 / B, so that
    depth = f B / disparity (the readers take |Q[2, 3]| and 1 / |Q[3, 2]|). (4, 4) float64."""
    cx, cy = principal_point
    return np.array([[1.0, 0.0, 0.0, -cx], [0.0, 1.0, 0.0, -cy], [0.0, 0.0, 0.0, focal_px],
                     [0.0, 0.0, 1.0 / baseline_m, 0.0]])


def depth_to_disparity_png(depth_m: np.ndarray, focal_px: float, baseline_m: float) -> np.ndarray:
    """(H, W) depth metres -> (H, W) uint16 DSEC disparity PNG values round(256 f B / depth), 0 = invalid.

    Invalid depth (NaN, inf, <= 0) -> 0. Depth so far that the value rounds to 0
    (depth > 512 f B metres) cannot be stored and reads back as invalid; depth so near that the value
    exceeds 65535 (depth < 256 f B / 65535 metres) is an InputError (choose a smaller f B).
    Reading back gives depth d to within d² / (512 f B - d) metres (half a 1/256 px step).
    """
    depth_m = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    scaled = np.zeros(depth_m.shape, np.float64)
    scaled[valid] = DISPARITY_SCALE * focal_px * baseline_m / depth_m[valid]
    values = np.rint(scaled)
    if values.max(initial=0) > 65535:
        nearest = float(depth_m[valid].min())
        raise InputError(f"depth {nearest:g} m gives a disparity over the 16-bit PNG range with f·B = "
                         f"{focal_px * baseline_m:g} px·m (nearest storable: {DISPARITY_SCALE * focal_px * baseline_m / 65535:g} m)")
    return values.astype(np.uint16)


def _write_dsec_events(path: Path, events: EventArray, t_offset_us: int) -> None:
    t_relative = events.t - t_offset_us  # checked to fit uint32 by the caller
    table = ms_to_idx(t_relative)

    def write(temporary):
        with h5py.File(temporary, "w") as handle:
            compression = dict(chunks=True, **blosc_zstd()) if len(events) else {}  # HDF5 cannot chunk 0 rows
            for key, values, dtype in (("x", events.x, np.uint16), ("y", events.y, np.uint16),
                                       ("t", t_relative, np.uint32), ("p", events.p, np.uint8)):
                handle.create_dataset(f"events/{key}", data=np.asarray(values).astype(dtype), **compression)
            handle.create_dataset("ms_to_idx", data=table, **(dict(chunks=True, **blosc_zstd()) if len(table) else {}))
            handle.create_dataset("t_offset", data=np.int64(t_offset_us))

    atomic_write(path, write)


def _write_rectify_map(path: Path, sensor_size: tuple[int, int]) -> None:
    rows, columns = np.mgrid[0:sensor_size[0], 0:sensor_size[1]].astype(np.float32)
    identity = np.stack([columns, rows], axis=-1)  # [y, x] -> (x_rect, y_rect)

    def write(temporary):
        with h5py.File(temporary, "w") as handle:
            handle.create_dataset("rectify_map", data=identity, chunks=True, **blosc_zstd())

    atomic_write(path, write)


def write_dsec_sequence(folder: str | Path, events: EventArray, frames=None, frame_timestamps_us=None,
                        depth_m=None, depth_timestamps_us=None, *, focal_px: float | None = None,
                        baseline_m: float | None = None, principal_point: tuple[float, float] | None = None,
                        t_offset_us: int | None = None, overwrite: bool = False) -> Path:
    """Write a DSEC-like sequence folder (layout in the module docstring) and return it.

    events: `EventArray` of the (already rectified) sensor, integer pixels; its sensor size is the
    size of events.h5, rectify_map.h5 and the disparity maps.
    frames (N, H, W[, 3]) uint8 RGB/grey with frame_timestamps_us (N,) µs: images/left/rectified
    (any size; DSEC's frames come from another camera, here they are usually the event view).
    depth_m (K, H, W) metres with depth_timestamps_us (K,) µs: written as disparity f B / depth,
    which needs focal_px (f, pixels) and baseline_m (B, metres); both go into cam_to_cam.yaml.
    Disparity maps are named after the frame with the same timestamp when every depth timestamp
    has one (DSEC names them after the 20 Hz image index), else 000000, 000001, ...
    principal_point: (cx, cy) pixels for the calibration, default the sensor centre ((W-1)/2, (H-1)/2).
    t_offset_us: DSEC's t_offset (events/t = t - t_offset), default the first event's time (0 without events).
    """
    folder = Path(folder)
    events = _events(events)
    height, width = events.sensor_size
    frames, frame_stamps = _frames(frames, frame_timestamps_us)
    depth_m, depth_stamps = _depths(depth_m, depth_timestamps_us, events.sensor_size)
    if depth_m is not None or focal_px is not None or baseline_m is not None:
        if focal_px is None or baseline_m is None:
            raise InputError("depth needs focal_px and baseline_m (depth = f·B / disparity)")
        if not (np.isfinite(focal_px) and focal_px > 0 and np.isfinite(baseline_m) and baseline_m > 0):
            raise InputError(f"focal_px and baseline_m must be positive, got {focal_px}, {baseline_m}")
    disparities = None
    if depth_m is not None:
        disparities = [depth_to_disparity_png(depth, focal_px, baseline_m) for depth in depth_m]  # checks before writing
    if t_offset_us is None:
        t_offset_us = int(events.t[0]) if len(events) else 0
    t_offset_us = int(t_offset_us)
    if len(events) and (events.t[0] < t_offset_us or events.t[-1] - t_offset_us > UINT32_MAX):
        raise InputError(f"event times relative to t_offset = {t_offset_us} µs must lie in 0..{UINT32_MAX} µs "
                         f"(uint32), got {int(events.t[0]) - t_offset_us}..{int(events.t[-1]) - t_offset_us}")
    _prepare_folder(folder, overwrite, [("events/left", "*.h5"), ("images/left/rectified", "*.png"),
                                        ("images", "timestamps.txt"), ("disparity/event", "*.png"),
                                        ("disparity", "timestamps.txt"), ("calibration", "cam_to_cam.yaml")])

    _write_dsec_events(folder / "events" / "left" / "events.h5", events, t_offset_us)
    _write_rectify_map(folder / "events" / "left" / "rectify_map.h5", events.sensor_size)
    if frames is not None:
        for index, frame in enumerate(frames):
            write_png(folder / "images" / "left" / "rectified" / f"{index:06d}.png", frame, rgb=True)
        _write_text(folder / "images" / "timestamps.txt", "".join(f"{t}\n" for t in frame_stamps))
    if disparities is not None:
        names = np.arange(len(disparities))
        if frame_stamps is not None:
            match = np.searchsorted(frame_stamps, depth_stamps)
            inside = match < len(frame_stamps)
            if inside.all() and np.array_equal(frame_stamps[match], depth_stamps):
                names = match
        for name, disparity in zip(names, disparities):
            write_png(folder / "disparity" / "event" / f"{int(name):06d}.png", disparity, rgb=False)
        _write_text(folder / "disparity" / "timestamps.txt", "".join(f"{t}\n" for t in depth_stamps))
    if focal_px is not None:
        centre = principal_point if principal_point is not None else ((width - 1) / 2.0, (height - 1) / 2.0)
        cx, cy = (float(v) for v in centre)
        camera = {"camera_model": "pinhole", "camera_matrix": [float(focal_px), float(focal_px), cx, cy],
                  "resolution": [width, height]}
        calibration = {
            "intrinsics": {"camRect0": camera, "camRect3": dict(camera)},
            "disparity_to_depth": {"cams_03": q_matrix(float(focal_px), float(baseline_m), (cx, cy)).tolist()},
            "synthetic": {"focal_px": float(focal_px), "baseline_m": float(baseline_m),
                          "note": "depth = focal_px * baseline_m / disparity; events are already rectified"},
        }
        _write_text(folder / "calibration" / "cam_to_cam.yaml", yaml.safe_dump(calibration, sort_keys=False))
    return folder


# ---- E2Depth-processed MVSEC ---------------------------------------------------------------------------------
def _write_index_seconds(path: Path, stamps_us: np.ndarray) -> None:
    """timestamps.txt of the E2Depth / RAM-Net folders: lines "index seconds"."""
    _write_text(path, "".join(f"{index} {seconds_text(t)}\n" for index, t in enumerate(stamps_us)))


def write_e2depth_folder(folder: str | Path, events: EventArray, depth_m=None, depth_timestamps_us=None,
                         frames=None, frame_timestamps_us=None, *, voxel_timestamps_us=None,
                         window_us: int = 50_000, bins: int = 5, overwrite: bool = False) -> Path:
    """Write an E2Depth-processed MVSEC-like folder (layout in the module docstring) and return it.

    Voxel grid k is `voxel_grid(events of [t_k - window_us, t_k), bins, normalize=False)` (B, H, W)
    float32, with t_k the voxel timestamps: voxel_timestamps_us (µs), by default the depth
    timestamps (as E2Depth's MVSEC data, one grid per depth map).
    depth_m (K, H, W) metres (invalid -> NaN) with depth_timestamps_us; frames (N, H, W[, 3]) uint8
    with frame_timestamps_us go to rgb/davis with their own timestamps.txt.
    """
    folder = Path(folder)
    events = _events(events)
    depth_m, depth_stamps = _depths(depth_m, depth_timestamps_us, events.sensor_size)
    frames, frame_stamps = _frames(frames, frame_timestamps_us)
    if voxel_timestamps_us is None:
        if depth_stamps is None:
            raise InputError("give voxel_timestamps_us or depth maps with their timestamps")
        voxel_stamps = depth_stamps
    else:
        voxel_stamps = _timestamps(voxel_timestamps_us, len(np.asarray(voxel_timestamps_us)), "voxel timestamps")
    if int(window_us) != window_us or window_us <= 0 or int(bins) != bins or bins < 1:
        raise InputError(f"window_us and bins must be positive integers, got {window_us}, {bins}")
    _prepare_folder(folder, overwrite, [("events/voxels", "event_tensor_*.npy"), ("events/voxels", "timestamps.txt"),
                                        ("depth/data", "depth_*.npy"), ("depth/data", "timestamps.txt"),
                                        ("rgb/davis", "frame_*.png"), ("rgb/davis", "timestamps.txt")])
    voxel_folder = folder / "events" / "voxels"
    for index, t in enumerate(voxel_stamps):
        window = events.slice_time(int(t) - int(window_us), int(t))
        write_npy(voxel_folder / f"event_tensor_{index:010d}.npy", voxel_grid(window, int(bins), normalize=False))
    _write_index_seconds(voxel_folder / "timestamps.txt", voxel_stamps)
    if depth_m is not None:
        for index, depth in enumerate(depth_m):
            write_npy(folder / "depth" / "data" / f"depth_{index:010d}.npy", depth)
        _write_index_seconds(folder / "depth" / "data" / "timestamps.txt", depth_stamps)
    if frames is not None:
        for index, frame in enumerate(frames):
            write_png(folder / "rgb" / "davis" / f"frame_{index:010d}.png", frame, rgb=True)
        _write_index_seconds(folder / "rgb" / "davis" / "timestamps.txt", frame_stamps)
    return folder


# ---- raw MVSEC ---------------------------------------------------------------------------------------------
MVSEC_SIZE = (260, 346)


def write_mvsec_pair(folder: str | Path, events: EventArray, frames=None, frame_timestamps_us=None,
                     depth_m=None, depth_timestamps_us=None, *, name: str = "synthetic", camera: str = "left",
                     overwrite: bool = False) -> tuple[Path, Path | None]:
    """Write `<folder>/<name>_data.hdf5` (events, grey frames) and, with depth, `<name>_gt.hdf5`;
    returns their paths (gt None without depth).

    events on the 260x346 DAVIS sensor (the MVSEC reader's fixed size); times become float64
    seconds (µs / 1e6, read back exactly to the µs), polarity ±1. RGB frames are stored grey
    (OpenCV RGB -> grey), as MVSEC's `image_raw`. depth (K, 260, 346) metres, NaN = invalid.
    """
    folder = Path(folder)
    events = _events(events)
    if events.sensor_size != MVSEC_SIZE:
        raise InputError(f"MVSEC files hold the 260x346 DAVIS sensor, got {events.height}x{events.width}")
    if camera not in ("left", "right"):
        raise InputError(f"camera must be 'left' or 'right', got {camera!r}")
    frames, frame_stamps = _frames(frames, frame_timestamps_us)
    depth_m, depth_stamps = _depths(depth_m, depth_timestamps_us, events.sensor_size)
    data_path, gt_path = folder / f"{name}_data.hdf5", folder / f"{name}_gt.hdf5"
    for path in (data_path, gt_path):
        if path.exists() and not overwrite:
            raise InputError("file exists (pass overwrite=True to replace it)", path)
    if depth_m is None and gt_path.exists():
        gt_path.unlink()  # overwrite: no stale ground truth beside new events
    folder.mkdir(parents=True, exist_ok=True)
    if frames is not None and frames.ndim == 4:
        frames = np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])

    def write_data(temporary):
        rows = np.stack([events.x.astype(np.float64), events.y.astype(np.float64), events.t / 1e6,
                         np.where(events.p > 0, 1.0, -1.0)], axis=1).reshape(-1, 4)
        with h5py.File(temporary, "w") as handle:
            handle.create_dataset(f"davis/{camera}/events", data=rows,
                                  chunks=(min(1 << 14, len(rows)), 4) if len(rows) else None)
            if frames is not None:
                handle.create_dataset(f"davis/{camera}/image_raw", data=frames)
                handle.create_dataset(f"davis/{camera}/image_raw_ts", data=frame_stamps / 1e6)

    atomic_write(data_path, write_data)
    if depth_m is None:
        return data_path, None

    def write_gt(temporary):
        with h5py.File(temporary, "w") as handle:
            handle.create_dataset(f"davis/{camera}/depth_image_raw", data=depth_m)
            handle.create_dataset(f"davis/{camera}/depth_image_raw_ts", data=depth_stamps / 1e6)

    atomic_write(gt_path, write_gt)
    return data_path, gt_path


__all__ = [
    "blosc_zstd",
    "depth_to_disparity_png",
    "ms_to_idx",
    "q_matrix",
    "seconds_text",
    "write_dsec_sequence",
    "write_e2depth_folder",
    "write_mvsec_pair",
]
