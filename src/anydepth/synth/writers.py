"""Write synthetic sequences in the datasets' own on-disk layouts, so that the readers of
`anydepth.events` (and the authors' loaders) open them unchanged (keys, dtypes, Blosc compression, file names).

- `write_dsec_sequence`: a DSEC sequence folder, complete enough for DSEC's own `Sequence`
  (uzh-rpg/DSEC scripts/dataset) and Depth AnyEvent's `DsecSequence` / folder check:
      events/{left,right}/events.h5     events/{x,y} uint16, events/t uint32 µs relative to t_offset,
                                        events/p uint8, ms_to_idx uint64, t_offset int64; Blosc (ZSTD,
                                        bit shuffle) through hdf5plugin, as DSEC ships them
      events/{left,right}/rectify_map.h5  rectify_map (H, W, 2) float32, the identity (the synthetic
                                        sensors are already rectified)
      images/timestamps.txt             µs, one per line (the frame clock of both cameras)
      images/{left,right}/rectified/%06d.png, images/{left,right}/exposure_timestamps.txt
                                        ("# exposure_start_timestamp_us, exposure_end_timestamp_us",
                                        then "start, end" per frame; synthetic frames: start = end)
      images/left/ev_inf/%06d.png       the left frames again: Depth AnyEvent reads its frames in the
                                        event view from there (DSEC's frame camera is another view;
                                        the synthetic frames are the event view already)
      disparity/{event,image}/%06d.png  uint16 disparity x 256, 0 = invalid, named after the 20 Hz image
                                        index as released (10 Hz depth on 20 Hz frames: 000000, 000002,
                                        ...) + disparity/timestamps.txt (µs); `image` = cam1's view,
                                        the same map here (cam1 sits on cam0)
      calibration/cam_to_cam.yaml       intrinsics cam0..cam3 (pinhole, radtan, zero distortion) and
                                        camRect0..camRect3, extrinsics T_10, T_21, T_32, R_rect0..3,
                                        disparity_to_depth cams_03 and cams_12: Q with Q[2, 3] = f,
                                        Q[3, 2] = 1 / B, so that depth = f B / disparity
      calibration/cam_to_lidar.yaml     T_lidar_cam0..3 / T_lidar_camRect0..3 (no lidar: its frame
                                        is camRect0's)
  Stereo rig: cam0 (left events) = cam1 (left frames), cam2 (right frames) = cam3 (right events),
  B metres to the right (+x).
- `write_e2depth_folder`: the E2Depth-processed MVSEC layout
      events/voxels/event_tensor_%010d.npy  (B, H, W) float32 voxel grid (anydepth.events.voxel_grid,
                                            not normalised) of the events of [t - window, t)
      events/voxels/boundary_timestamps.txt "index first last": seconds of the first and last event of
                                            each window (t - window and t for an empty window), as
                                            rpg_e2depth writes it; its run_depth.py copies it
      depth/data/depth_%010d.npy            (H, W) float32 metres, NaN = invalid
      rgb/davis/frame_%010d.png             frames
      each folder with timestamps.txt of lines "index seconds" (exact decimal µs)
- `write_mvsec_pair`: raw MVSEC HDF5, `<name>_data.hdf5` (davis/<camera>/events (N, 4) float64
  [x, y, t seconds, p ±1], image_raw + image_raw_ts) and `<name>_gt.hdf5` (depth_image_raw metres,
  NaN = invalid, + depth_image_raw_ts). 260x346 only: the MVSEC reader has the DAVIS346 size fixed.
  Seconds are stored so that both int(s * 1e6) (Depth AnyEvent's MVSEC reader truncates) and
  round(s * 1e6) give back the µs. Depth AnyEvent reads raw events from `<sequence>/../hdf5/data.hdf5`
  beside an E2Depth-layout sequence folder: name the data file there `data.hdf5`.

Inputs are plain arrays: events an `EventArray` (integer pixels, sorted); frames (N, H, W) grey or
(N, H, W, 3) RGB uint8 with (N,) int µs timestamps (PNG files store BGR, so readers return BGR);
depth (N, H, W) metres (NaN, inf or <= 0 = invalid) with (N,) int µs timestamps. Every file is
written atomically (a temporary file in the same folder, then os.replace). A folder that already
holds files is refused unless overwrite=True, which first removes the files of the layout (and
nothing else), so that no stale file is read with the new ones.
A DSEC-layout folder of another size than 480x640 opens with `open_sequence` and `open_events`
(the sensor size comes from its rectify map). DSEC's and Depth AnyEvent's loaders have 480x640
fixed in their code (`self.height = 480` / `DSEC_HEIGHT`), so they open folders of that size only.

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
from anydepth.fileio import write_image, write_npy

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


def _transform(translation_m=(0.0, 0.0, 0.0)) -> list:
    """4x4 rigid transform (identity rotation) as nested lists."""
    transform = np.eye(4)
    transform[:3, 3] = translation_m
    return transform.tolist()


def dsec_calibration(sensor_size: tuple[int, int], focal_px: float, baseline_m: float,
                     principal_point: tuple[float, float]) -> tuple[dict, dict]:
    """(cam_to_cam, cam_to_lidar) mappings of a rectified synthetic rig in DSEC's YAML layout.

    cam0 (left events) and cam1 (left frames) share one pose, as do cam2 (right frames) and cam3
    (right events), B = baseline_m to the right: T_XY maps points of camY to camX, so T_10 = T_32 = I
    and T_21 = [I | (-B, 0, 0)]; R_rect* = I; every camera pinhole (fx = fy = focal_px), zero
    radtan distortion, resolution [W, H]. Q = `q_matrix` for both pairs (cams_03, cams_12)."""
    height, width = sensor_size
    cx, cy = (float(v) for v in principal_point)
    matrix = [float(focal_px), float(focal_px), cx, cy]
    identity = np.eye(3).tolist()
    intrinsics = {}
    for index in range(4):
        camera = {"camera_model": "pinhole", "camera_matrix": list(matrix), "distortion_coeffs": [0.0, 0.0, 0.0, 0.0],
                  "distortion_model": "radtan", "resolution": [width, height]}
        if index:
            camera["T_cn_cnm1"] = _transform((-baseline_m, 0.0, 0.0)) if index == 2 else _transform()
        intrinsics[f"cam{index}"] = camera
        intrinsics[f"camRect{index}"] = {"camera_model": "pinhole", "camera_matrix": list(matrix), "resolution": [width, height]}
    q = q_matrix(float(focal_px), float(baseline_m), (cx, cy)).tolist()
    cam_to_cam = {
        "intrinsics": intrinsics,
        "extrinsics": {"T_10": _transform(), "T_21": _transform((-baseline_m, 0.0, 0.0)), "T_32": _transform(),
                       "R_rect0": identity, "R_rect1": identity, "R_rect2": identity, "R_rect3": identity},
        "disparity_to_depth": {"cams_03": q, "cams_12": q},
        "synthetic": {"focal_px": float(focal_px), "baseline_m": float(baseline_m),
                      "note": "depth = focal_px * baseline_m / disparity; events and frames are already rectified"},
    }
    cam_to_lidar = {}
    for index in range(4):
        offset = (baseline_m, 0.0, 0.0) if index >= 2 else (0.0, 0.0, 0.0)  # camera centre in camRect0's frame
        cam_to_lidar[f"T_lidar_cam{index}"] = _transform(offset)
        cam_to_lidar[f"T_lidar_camRect{index}"] = _transform(offset)
    cam_to_lidar["synthetic"] = {"note": "no lidar: its frame is camRect0's"}
    return cam_to_cam, cam_to_lidar


def _exposure_text(stamps_us: np.ndarray) -> str:
    return "# exposure_start_timestamp_us, exposure_end_timestamp_us\n" + "".join(f"{t}, {t}\n" for t in stamps_us)


def write_dsec_sequence(folder: str | Path, events: EventArray, frames=None, frame_timestamps_us=None,
                        depth_m=None, depth_timestamps_us=None, *, right_events: EventArray | None = None,
                        right_frames=None, focal_px: float | None = None, baseline_m: float | None = None,
                        principal_point: tuple[float, float] | None = None, t_offset_us: int | None = None,
                        overwrite: bool = False) -> Path:
    """Write a DSEC-like sequence folder (layout in the module docstring) and return it.

    events: `EventArray` of the (already rectified) left sensor, integer pixels; its sensor size is
    the size of events.h5, rectify_map.h5, the calibration and the disparity maps.
    right_events: the right event camera (same sensor size), B metres to the right; None writes the
    left events for the right camera too (a mono sequence: DSEC's loaders open both cameras; do not
    train stereo on it).
    frames (N, H, W[, 3]) uint8 RGB/grey with frame_timestamps_us (N,) µs: images/left/rectified and
    images/left/ev_inf (any size; DSEC's frames come from another camera, here they are usually the
    event view); right_frames (N, ...) the right camera's at the same timestamps (None: the left ones).
    depth_m (K, H, W) metres with depth_timestamps_us (K,) µs: written as disparity f B / depth,
    which needs focal_px (f, pixels) and baseline_m (B, metres); both go into cam_to_cam.yaml.
    Disparity maps are named after the frame with the same timestamp when every depth timestamp
    has one (DSEC names them after the 20 Hz image index; its loaders expect the first to be
    000000, i.e. frames that start with the depth), else 000000, 000001, ...
    principal_point: (cx, cy) pixels for the calibration, default the sensor centre ((W-1)/2, (H-1)/2).
    t_offset_us: DSEC's t_offset (events/t = t - t_offset), default the first event's time of either
    camera (0 without events).
    """
    folder = Path(folder)
    events = _events(events)
    right = events if right_events is None else _events(right_events)
    if right.sensor_size != events.sensor_size:
        raise InputError(f"right events are {right.height}x{right.width}, left events {events.height}x{events.width}")
    height, width = events.sensor_size
    frames, frame_stamps = _frames(frames, frame_timestamps_us)
    if right_frames is not None:
        right_frames, _ = _frames(right_frames, frame_stamps, "right frames")
        if frames is None or right_frames.shape != frames.shape:
            raise InputError(f"right frames must match the left frames' shape, got "
                             f"{right_frames.shape} and {None if frames is None else frames.shape}")
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
        starts = [int(stream.t[0]) for stream in (events, right) if len(stream)]
        t_offset_us = min(starts) if starts else 0
    t_offset_us = int(t_offset_us)
    for stream in (events, right):
        if len(stream) and (stream.t[0] < t_offset_us or stream.t[-1] - t_offset_us > UINT32_MAX):
            raise InputError(f"event times relative to t_offset = {t_offset_us} µs must lie in 0..{UINT32_MAX} µs "
                             f"(uint32), got {int(stream.t[0]) - t_offset_us}..{int(stream.t[-1]) - t_offset_us}")
    layout = [("images", "timestamps.txt"), ("disparity", "timestamps.txt"),
              ("calibration", "cam_to_cam.yaml"), ("calibration", "cam_to_lidar.yaml")]
    for side in ("left", "right"):
        layout += [(f"events/{side}", "*.h5"), (f"images/{side}/rectified", "*.png"), (f"images/{side}", "exposure_timestamps.txt")]
    layout += [("images/left/ev_inf", "*.png"), ("disparity/event", "*.png"), ("disparity/image", "*.png")]
    _prepare_folder(folder, overwrite, layout)

    for side, stream in (("left", events), ("right", right)):
        _write_dsec_events(folder / "events" / side / "events.h5", stream, t_offset_us)
        _write_rectify_map(folder / "events" / side / "rectify_map.h5", events.sensor_size)
    if frames is not None:
        views = (("left/rectified", frames), ("left/ev_inf", frames),
                 ("right/rectified", frames if right_frames is None else right_frames))
        for view, images in views:
            for index, frame in enumerate(images):
                write_image(folder / "images" / view / f"{index:06d}.png", frame, rgb=True)
        _write_text(folder / "images" / "timestamps.txt", "".join(f"{t}\n" for t in frame_stamps))
        for side in ("left", "right"):
            _write_text(folder / "images" / side / "exposure_timestamps.txt", _exposure_text(frame_stamps))
    if disparities is not None:
        names = np.arange(len(disparities))
        if frame_stamps is not None:
            match = np.searchsorted(frame_stamps, depth_stamps)
            inside = match < len(frame_stamps)
            if inside.all() and np.array_equal(frame_stamps[match], depth_stamps):
                names = match
        for name, disparity in zip(names, disparities):
            for view in ("event", "image"):
                write_image(folder / "disparity" / view / f"{int(name):06d}.png", disparity, rgb=False)
        _write_text(folder / "disparity" / "timestamps.txt", "".join(f"{t}\n" for t in depth_stamps))
    if focal_px is not None:
        centre = principal_point if principal_point is not None else ((width - 1) / 2.0, (height - 1) / 2.0)
        cam_to_cam, cam_to_lidar = dsec_calibration(events.sensor_size, float(focal_px), float(baseline_m), centre)
        _write_text(folder / "calibration" / "cam_to_cam.yaml", yaml.safe_dump(cam_to_cam, sort_keys=False))
        _write_text(folder / "calibration" / "cam_to_lidar.yaml", yaml.safe_dump(cam_to_lidar, sort_keys=False))
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
                                        ("events/voxels", "boundary_timestamps.txt"), ("depth/data", "depth_*.npy"), ("depth/data", "timestamps.txt"),
                                        ("rgb/davis", "frame_*.png"), ("rgb/davis", "timestamps.txt")])
    voxel_folder = folder / "events" / "voxels"
    boundaries = []
    for index, t in enumerate(voxel_stamps):
        window = events.slice_time(int(t) - int(window_us), int(t))
        write_npy(voxel_folder / f"event_tensor_{index:010d}.npy", voxel_grid(window, int(bins), normalize=False))
        boundaries.append((int(window.t[0]), int(window.t[-1])) if len(window) else (int(t) - int(window_us), int(t)))
    _write_index_seconds(voxel_folder / "timestamps.txt", voxel_stamps)
    _write_text(voxel_folder / "boundary_timestamps.txt", "".join(
        f"{index} {seconds_text(first)} {seconds_text(last)}\n" for index, (first, last) in enumerate(boundaries)))
    if depth_m is not None:
        for index, depth in enumerate(depth_m):
            write_npy(folder / "depth" / "data" / f"depth_{index:010d}.npy", depth)
        _write_index_seconds(folder / "depth" / "data" / "timestamps.txt", depth_stamps)
    if frames is not None:
        for index, frame in enumerate(frames):
            write_image(folder / "rgb" / "davis" / f"frame_{index:010d}.png", frame, rgb=True)
        _write_index_seconds(folder / "rgb" / "davis" / "timestamps.txt", frame_stamps)
    return folder


# ---- raw MVSEC ---------------------------------------------------------------------------------------------
MVSEC_SIZE = (260, 346)


def seconds_float(t_us) -> np.ndarray:
    """Integer µs -> float64 seconds s with int(s * 1e6) == round(s * 1e6) == t (the nearest double
    to t / 1e6, moved up one step where s * 1e6 falls just below t), so that readers that truncate
    and readers that round both get t back. Valid while one float64 step is well below 0.5 µs
    (|t| < 2**52 ns, i.e. any Unix time in seconds)."""
    t_us = np.asarray(t_us, dtype=np.int64)
    seconds = t_us / 1e6
    low = np.floor(seconds * 1e6) < t_us
    seconds[low] = np.nextafter(seconds[low], np.inf)
    return seconds


def write_mvsec_pair(folder: str | Path, events: EventArray, frames=None, frame_timestamps_us=None,
                     depth_m=None, depth_timestamps_us=None, *, name: str = "synthetic", camera: str = "left",
                     overwrite: bool = False) -> tuple[Path, Path | None]:
    """Write `<folder>/<name>_data.hdf5` (events, grey frames) and, with depth, `<name>_gt.hdf5`;
    returns their paths (gt None without depth).

    events on the 260x346 DAVIS sensor (the MVSEC reader's fixed size); times become float64
    seconds (`seconds_float`: read back exactly to the µs), polarity ±1. RGB frames are stored grey
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
        rows = np.stack([events.x.astype(np.float64), events.y.astype(np.float64), seconds_float(events.t),
                         np.where(events.p > 0, 1.0, -1.0)], axis=1).reshape(-1, 4)
        with h5py.File(temporary, "w") as handle:
            handle.create_dataset(f"davis/{camera}/events", data=rows,
                                  chunks=(min(1 << 14, len(rows)), 4) if len(rows) else None)
            if frames is not None:
                handle.create_dataset(f"davis/{camera}/image_raw", data=frames)
                handle.create_dataset(f"davis/{camera}/image_raw_ts", data=seconds_float(frame_stamps))

    atomic_write(data_path, write_data)
    if depth_m is None:
        return data_path, None

    def write_gt(temporary):
        with h5py.File(temporary, "w") as handle:
            handle.create_dataset(f"davis/{camera}/depth_image_raw", data=depth_m)
            handle.create_dataset(f"davis/{camera}/depth_image_raw_ts", data=seconds_float(depth_stamps))

    atomic_write(gt_path, write_gt)
    return data_path, gt_path


__all__ = [
    "blosc_zstd",
    "dsec_calibration",
    "depth_to_disparity_png",
    "ms_to_idx",
    "q_matrix",
    "seconds_float",
    "seconds_text",
    "write_dsec_sequence",
    "write_e2depth_folder",
    "write_mvsec_pair",
]
