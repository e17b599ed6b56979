"""Aligned samples: DSEC sequence folders, MVSEC file pairs and the E2Depth / EventScape voxel
folders, each written here in its dataset's real layout; the windows [t - 50 ms, t), the nearest
frame, the depth at t, and DSEC's disparity -> depth on a hand-computed value."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import yaml

from anydepth.errors import FormatError
from anydepth.events.dataset import (
    AlignedSample,
    DsecSequence,
    MvsecSequence,
    VoxelSequence,
    open_sequence,
)
from anydepth.events.readers.dsec import disparity_to_depth, focal_baseline, read_disparity_png
from tests.events.readers.test_readers import (
    MVSEC_EPOCH_US,
    T_OFFSET,
    assert_events_equal,
    blosc,
    random_events,
    select,
    write_dsec,
    write_mvsec,
)

WINDOW_US = 50_000
FOCAL, BASELINE = 500.0, 0.6  # f·B = 300 px·m


def q_matrix(focal=FOCAL, baseline=BASELINE) -> list[list[float]]:
    """A stereo Q matrix laid out like DSEC's cams_03 (the sign of Q[3, 2] varies; |.| is used)."""
    return [[1.0, 0.0, 0.0, -320.5], [0.0, 1.0, 0.0, -240.5], [0.0, 0.0, 0.0, focal], [0.0, 0.0, -1.0 / baseline, 0.0]]


# ---- DSEC -------------------------------------------------------------------------------------------
def make_dsec_sequence(root: Path) -> tuple[Path, tuple, np.ndarray, list[np.ndarray]]:
    folder = root / "zurich_city_99_a"
    events_folder = folder / "events" / "left"
    events_folder.mkdir(parents=True)
    arrays = random_events(6000, 20, T_OFFSET, 400_000)
    write_dsec(events_folder / "events.h5", *arrays)
    rows, columns = np.mgrid[0:480, 0:640].astype(np.float32)
    with h5py.File(events_folder / "rectify_map.h5", "w") as handle:
        handle.create_dataset("rectify_map", data=np.stack([columns + 0.25, rows], axis=-1), **blosc())

    disparity_times = T_OFFSET + np.array([100_000, 200_000, 300_000])
    (folder / "disparity" / "event").mkdir(parents=True)
    np.savetxt(folder / "disparity" / "timestamps.txt", disparity_times, fmt="%d")
    disparities = []
    for k in range(3):  # DSEC names disparity maps after the 20 Hz image index: 000000, 000002, ...
        disparity = np.zeros((480, 640), np.uint16)
        disparity[10, 20] = 256 * 12  # 12 px -> 300 / 12 = 25 m
        disparity[11, 20] = 256 * (k + 1) * 10  # 10, 20, 30 px -> 30, 15, 10 m
        cv2.imwrite(str(folder / "disparity" / "event" / f"{2 * k:06d}.png"), disparity)
        disparities.append(disparity)
    (folder / "calibration").mkdir()
    calibration = {"intrinsics": {"camRect0": {"camera_matrix": [FOCAL, FOCAL, 320.5, 240.5]}},
                   "disparity_to_depth": {"cams_03": q_matrix(), "cams_12": q_matrix(1000.0, 0.5)}}
    (folder / "calibration" / "cam_to_cam.yaml").write_text(yaml.safe_dump(calibration))

    image_times = T_OFFSET + 50_000 * np.arange(8) + 30_000  # 20 Hz, offset from the disparity clock
    (folder / "images" / "left" / "rectified").mkdir(parents=True)
    np.savetxt(folder / "images" / "timestamps.txt", image_times, fmt="%d")
    for k in range(8):
        cv2.imwrite(str(folder / "images" / "left" / "rectified" / f"{k:06d}.png"), np.full((6, 8, 3), 10 * k, np.uint8))
    return folder, arrays, disparity_times, disparities


def test_dsec_sequence_samples(tmp_path):
    folder, arrays, times, _ = make_dsec_sequence(tmp_path)
    x, y, t, p = arrays
    with open_sequence(folder) as sequence:
        assert isinstance(sequence, DsecSequence) and len(sequence) == 3
        assert np.array_equal(sequence.timestamps_us, times)
        samples = list(sequence)
        assert [s.index for s in samples] == [0, 1, 2] and sequence[-1].timestamp_us == times[-1]
    for sample, time in zip(samples, times):
        assert isinstance(sample, AlignedSample) and sample.timestamp_us == time and sample.voxels is None
        # events of [t - 50 ms, t), rectified (x + 0.25) and without those mapped past x = 639
        window = (t >= time - WINDOW_US) & (t < time) & (x + 0.25 <= 639)
        wx, wy, wt, wp = select(arrays, window)
        assert sample.events.x.dtype == np.float32 and np.array_equal(sample.events.x, wx + np.float32(0.25))
        assert np.array_equal(sample.events.y, wy) and np.array_equal(sample.events.t, wt) and np.array_equal(sample.events.p, wp)
    # depth: f·B / disparity = 300 / 12 = 25 m at (10, 20); 30, 15, 10 m at (11, 20); NaN elsewhere
    assert [s.depth_m[10, 20] for s in samples] == [25.0, 25.0, 25.0]
    assert [s.depth_m[11, 20] for s in samples] == pytest.approx([30.0, 15.0, 10.0])
    assert samples[0].depth_m.dtype == np.float32 and np.isnan(samples[0].depth_m).sum() == 480 * 640 - 2
    # frames at t + 30 ms + 50 ms k: the nearest to t = 100 ms is k = 1 (80 ms), to 200 ms k = 3, to 300 ms k = 5
    assert [int(s.frame[0, 0, 0]) for s in samples] == [10, 30, 50] and samples[0].frame.shape == (6, 8, 3)


def test_dsec_sequence_raw_coordinates_and_window_length(tmp_path):
    folder, arrays, times, _ = make_dsec_sequence(tmp_path)
    with DsecSequence(folder, window_ms=20.0, rectify=False, frames=False) as sequence:
        sample = sequence[1]
    t = arrays[2]
    assert_events_equal(sample.events, *select(arrays, (t >= times[1] - 20_000) & (t < times[1])))
    assert sample.events.x.dtype == np.uint16 and sample.frame is None


def test_dsec_depth_conversion_by_hand():
    focal, baseline = focal_baseline(np.array(q_matrix()))
    assert focal == 500.0 and baseline == pytest.approx(0.6)
    depth_m = disparity_to_depth(np.array([[12.0, 0.0], [48.0, 0.5]]), np.array(q_matrix()))
    # 500 px * 0.6 m = 300; 300 / 12 = 25 m, 300 / 48 = 6.25 m, 300 / 0.5 = 600 m; 0 -> NaN
    assert depth_m[0, 0] == 25.0 and depth_m[1, 0] == 6.25 and depth_m[1, 1] == 600.0 and np.isnan(depth_m[0, 1])


def test_dsec_disparity_png_scale(tmp_path):
    path = tmp_path / "000000.png"
    cv2.imwrite(str(path), np.array([[0, 256, 3072, 65535]], np.uint16))
    assert read_disparity_png(path).tolist() == [[0.0, 1.0, 12.0, 65535 / 256]]
    cv2.imwrite(str(path), np.zeros((2, 2), np.uint8))
    with pytest.raises(FormatError, match="16-bit"):
        read_disparity_png(path)


def test_dsec_sequence_bad_folders(tmp_path):
    folder, *_ = make_dsec_sequence(tmp_path)
    (folder / "disparity" / "event" / "000004.png").unlink()
    with pytest.raises(FormatError) as error:
        DsecSequence(folder)
    assert "has 2 PNGs but disparity/timestamps.txt lists 3" in str(error.value) and "\n" not in str(error.value)
    (folder / "calibration" / "cam_to_cam.yaml").write_text("disparity_to_depth: {cams_12: [[1]]}\n")
    np.savetxt(folder / "disparity" / "timestamps.txt", [T_OFFSET + 100_000, T_OFFSET + 200_000], fmt="%d")
    with pytest.raises(FormatError, match="missing key 'disparity_to_depth.cams_03'"):
        DsecSequence(folder)
    (folder / "events" / "left" / "rectify_map.h5").unlink()
    with pytest.raises(FormatError, match="rectify_map.h5"):
        DsecSequence(folder)


# ---- MVSEC -------------------------------------------------------------------------------------------
def make_mvsec_pair(root: Path):
    arrays = random_events(8000, 21, MVSEC_EPOCH_US, 600_000, sensor=(260, 346))
    data_path = write_mvsec(root / "outdoor_day1_data.hdf5", *arrays)
    frame_times = MVSEC_EPOCH_US + 33_000 * np.arange(18)
    with h5py.File(data_path, "a") as handle:
        handle.create_dataset("davis/left/image_raw", data=np.arange(18, dtype=np.uint8)[:, None, None] * np.ones((1, 260, 346), np.uint8))
        handle.create_dataset("davis/left/image_raw_ts", data=frame_times / 1e6)
    depth_times = MVSEC_EPOCH_US + 100_000 + 50_000 * np.arange(8)
    depth = np.random.default_rng(3).uniform(2, 60, (8, 260, 346)).astype(np.float32)
    depth[:, :10, :] = np.nan  # invalid rows
    gt_path = root / "outdoor_day1_gt.hdf5"
    with h5py.File(gt_path, "w") as handle:
        handle.create_dataset("davis/left/depth_image_raw", data=depth)
        handle.create_dataset("davis/left/depth_image_raw_ts", data=depth_times / 1e6)
    return data_path, gt_path, arrays, depth_times, depth, frame_times


def test_mvsec_sequence_samples(tmp_path):
    data_path, gt_path, arrays, depth_times, depth, frame_times = make_mvsec_pair(tmp_path)
    t = arrays[2]
    for path in (data_path, gt_path, tmp_path):  # either file of the pair, or their folder
        with open_sequence(path) as sequence:
            assert isinstance(sequence, MvsecSequence) and len(sequence) == 8
            assert np.array_equal(sequence.timestamps_us, depth_times)
            sample = sequence[3]
    time = depth_times[3]
    assert sample.timestamp_us == time and sample.index == 3
    assert_events_equal(sample.events, *select(arrays, (t >= time - WINDOW_US) & (t < time)))
    assert np.array_equal(sample.depth_m, depth[3], equal_nan=True) and np.isnan(sample.depth_m[:10]).all()
    nearest = int(np.argmin(np.abs(frame_times - time)))
    assert sample.frame.shape == (260, 346) and int(sample.frame[0, 0]) == nearest


def test_mvsec_sequence_without_ground_truth(tmp_path):
    data_path, gt_path, *_ = make_mvsec_pair(tmp_path)
    gt_path.unlink()
    with pytest.raises(FormatError) as error:
        open_sequence(data_path)
    assert str(data_path) in str(error.value) and "_gt.hdf5" in str(error.value)


def test_mvsec_depth_and_timestamps_must_match(tmp_path):
    data_path, gt_path, *_ = make_mvsec_pair(tmp_path)
    with h5py.File(gt_path, "a") as handle:
        del handle["davis/left/depth_image_raw_ts"]
        handle.create_dataset("davis/left/depth_image_raw_ts", data=np.arange(5.0))
    with pytest.raises(FormatError, match="8 images but 'davis/left/depth_image_raw_ts' has 5 timestamps"):
        open_sequence(data_path)


# ---- voxel folders -----------------------------------------------------------------------------------------
def write_stamps(path: Path, seconds: np.ndarray) -> None:
    path.write_text("".join(f"{i} {s:.6f}\n" for i, s in enumerate(seconds)))


def make_voxel_folder(root: Path, layout: str):
    folder = root / layout
    voxel_folder, depth_folder = folder / "events" / "voxels", folder / "depth" / "data"
    frame_folder = folder / "rgb" / ("davis" if layout == "e2depth" else "data")
    for path in (voxel_folder, depth_folder, frame_folder):
        path.mkdir(parents=True)
    rng = np.random.default_rng(4)
    seconds = 1506117000.0 + 0.05 * np.arange(4) if layout == "e2depth" else 0.1 * np.arange(4)
    voxels = rng.normal(size=(4, 5, 6, 8)).astype(np.float32)
    depth = rng.uniform(1, 1000, (4, 6, 8)).astype(np.float32)
    depth[:, 0, 0] = np.nan
    for k in range(4):
        if layout == "e2depth":
            names = (f"event_tensor_{k:010d}.npy", f"depth_{k:010d}.npy", f"frame_{k:010d}.png")
        else:
            names = (f"Town05_{k:04d}_voxel.npy", f"Town05_{k:04d}_depth.npy", f"Town05_{k:04d}_image.png")
        np.save(voxel_folder / names[0], voxels[k])
        np.save(depth_folder / names[1], depth[k])
        cv2.imwrite(str(frame_folder / names[2]), np.full((6, 8, 3), 40 * k, np.uint8))
    write_stamps(voxel_folder / "timestamps.txt", seconds)
    write_stamps(depth_folder / "timestamps.txt", seconds)
    if layout == "e2depth":  # E2Depth's frame folder has its own clock; EventScape's follows depth
        write_stamps(frame_folder / "timestamps.txt", seconds + np.array([0.01, 0.03, -0.004, 0.5]))
    return folder, seconds, voxels, depth


@pytest.mark.parametrize("layout", ["e2depth", "eventscape"])
def test_voxel_folder_samples(tmp_path, layout):
    folder, seconds, voxels, depth = make_voxel_folder(tmp_path, layout)
    with open_sequence(folder) as sequence:
        assert isinstance(sequence, VoxelSequence) and sequence.voxel_folder.layout.name == layout
        assert np.array_equal(sequence.timestamps_us, np.rint(seconds * 1e6).astype(np.int64))
        samples = list(sequence)
    assert len(samples) == 4 and all(s.events is None for s in samples)
    for k, sample in enumerate(samples):
        assert np.array_equal(sample.voxels, voxels[k]) and sample.voxels.shape == (5, 6, 8)
        assert np.array_equal(sample.depth_m, depth[k], equal_nan=True)
    # E2Depth frames at 10, 80, 96, 650 ms for samples at 0, 50, 100, 150 ms: nearest 0, 1, 2, 2;
    # EventScape frames are indexed like the depth maps
    expected = [0, 1, 2, 2] if layout == "e2depth" else [0, 1, 2, 3]
    assert [int(s.frame[0, 0, 0]) // 40 for s in samples] == expected


def test_voxel_folder_depth_too_far_is_none(tmp_path):
    folder, seconds, *_ = make_voxel_folder(tmp_path, "e2depth")
    write_stamps(folder / "depth" / "data" / "timestamps.txt", seconds + 0.01)  # 10 ms off
    with VoxelSequence(folder) as sequence:
        assert sequence[0].depth_m is None
    with VoxelSequence(folder, depth_max_gap_us=10_000) as sequence:
        assert sequence[0].depth_m is not None


def test_voxel_folder_bad_files(tmp_path):
    folder, *_ = make_voxel_folder(tmp_path, "e2depth")
    bad = folder / "events" / "voxels" / "event_tensor_0000000002.npy"
    bad.write_bytes(b"not numpy")
    with VoxelSequence(folder) as sequence:
        with pytest.raises(FormatError) as error:
            sequence[2]
    assert str(bad) in str(error.value) and "not a readable .npy" in str(error.value)
    with pytest.raises(IndexError):
        sequence[4]
    (folder / "events" / "voxels" / "timestamps.txt").write_text("0 0.1\n1 zero\n")
    with pytest.raises(FormatError, match="not a number"):
        VoxelSequence(folder)


def test_open_sequence_rejects_unknown_layouts(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(FormatError, match="not a DSEC sequence folder"):
        open_sequence(tmp_path / "something")
    npz = tmp_path / "events.npz"
    np.savez(npz, x=[1], y=[1], t=[1], p=[1])
    with pytest.raises(FormatError, match="not a sequence"):
        open_sequence(npz)
