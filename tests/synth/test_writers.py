"""The synthetic-sequence writers round-trip through the existing readers, unchanged: write a
DSEC sequence folder, an E2Depth-processed MVSEC folder and a raw MVSEC pair, then open them with
`open_events` / `open_sequence` and get back the events (exactly), frames (exactly, as BGR), depth
(exactly, or to the disparity quantisation d² / (512 f B - d) for DSEC) and timestamps (exactly)."""

from __future__ import annotations


import cv2
import h5py
import hdf5plugin
import numpy as np
import pytest
import yaml

from anydepth.errors import InputError
from anydepth.events.container import EventArray
from anydepth.events.dataset import DsecSequence, MvsecSequence, VoxelSequence, open_sequence
from anydepth.events.readers import detect_format, open_events
from anydepth.events.readers.dsec import focal_baseline, load_rectify_map, read_disparity_to_depth
from anydepth.events.representations import voxel_grid
from anydepth.synth import EventSimulator, write_dsec_sequence, write_e2depth_folder, write_mvsec_pair
from anydepth.synth import writers
from anydepth.synth.writers import depth_to_disparity_png, seconds_text

T0 = 52_345_678_901  # µs, a DSEC-like absolute clock
MVSEC_EPOCH_US = 1_506_117_000_000_000
FOCAL, BASELINE = 500.0, 0.6  # f·B = 300 px·m


def random_events(n: int, seed: int, t0: int, span_us: int, sensor) -> EventArray:
    """Sorted events with repeated timestamps and events exactly on millisecond edges."""
    rng = np.random.default_rng(seed)
    t = np.sort(np.concatenate([t0 + rng.integers(0, span_us, n - n // 4), t0 + 1000 * rng.integers(0, span_us // 1000, n // 4)]))
    return EventArray.from_arrays(rng.integers(0, sensor[1], n), rng.integers(0, sensor[0], n), t, rng.integers(0, 2, n), sensor)


def smooth_depth(count: int, sensor, seed: int, low=2.0, high=60.0) -> np.ndarray:
    """(count, H, W) float32 metres with invalid pixels of every kind (NaN, inf, 0, negative)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:sensor[0], 0:sensor[1]].astype(np.float64)
    maps = []
    for k in range(count):
        a, b = rng.uniform(0.5, 2.0, 2)
        ramp = 0.5 + 0.5 * np.sin(x / (17 * a) + k) * np.cos(y / (13 * b))
        maps.append(low + (high - low) * ramp)
    depth = np.stack(maps).astype(np.float32)
    depth[:, 0, :4] = [np.nan, np.inf, 0.0, -3.0]
    return depth


def coloured_frames(count: int, sensor, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *sensor, 3), dtype=np.uint8)


def quantisation(depth_m: np.ndarray, focal_baseline: float) -> np.ndarray:
    """Largest depth error of a disparity rounded to 1/256 px (off by at most 1/512 px):
    d = fB / D, |Δd| <= fB / (D - 1/512) - fB / D = d² / (512 fB - d); plus 2 float32 steps (the
    readers return float32 depth)."""
    return depth_m ** 2 / (512 * focal_baseline - depth_m) + 2.4e-7 * depth_m


def assert_same_events(events: EventArray, expected: EventArray) -> None:
    assert np.array_equal(events.t, expected.t) and events.t.dtype == np.int64
    assert np.array_equal(events.x.astype(np.int64), expected.x) and np.array_equal(events.y.astype(np.int64), expected.y)
    assert np.array_equal(events.p, expected.p) and events.p.dtype == np.int8


# ---- DSEC ---------------------------------------------------------------------------------------------------
def test_dsec_sequence_round_trip_through_open_sequence(tmp_path):
    sensor = (480, 640)
    events = random_events(30_000, 1, T0 + 3_000, 400_000, sensor)
    frame_times = T0 + 50_000 * np.arange(9)
    frames = coloured_frames(9, sensor, 2)
    depth_times = frame_times[[2, 4, 6, 8]]  # 10 Hz depth on the 20 Hz frames, like DSEC
    depth = smooth_depth(4, sensor, 3)
    folder = write_dsec_sequence(tmp_path / "zurich_city_99_a", events, frames, frame_times, depth, depth_times,
                                 focal_px=FOCAL, baseline_m=BASELINE)

    # the layout, its types and its compression
    events_file = folder / "events" / "left" / "events.h5"
    assert detect_format(events_file) == "dsec"
    with h5py.File(events_file, "r") as handle:
        assert [handle[f"events/{k}"].dtype for k in "xytp"] == [np.uint16, np.uint16, np.uint32, np.uint8]
        assert handle["ms_to_idx"].dtype == np.uint64 and handle["t_offset"][()] == T0 + 3_000 == events.t[0]
        assert str(hdf5plugin.BLOSC_ID) in handle["events/t"]._filters
        table = handle["ms_to_idx"][()]
        relative = handle["events/t"][()].astype(np.int64)
    edges = 1000 * np.arange(len(table))
    assert len(table) == relative[-1] // 1000 + 1
    assert np.array_equal(table, np.searchsorted(relative, edges))  # first event at >= each ms
    assert sorted(p.name for p in (folder / "disparity" / "event").iterdir()) == ["000002.png", "000004.png", "000006.png", "000008.png"]
    assert len(list((folder / "images" / "left" / "rectified").glob("*.png"))) == 9
    assert np.array_equal(load_rectify_map(events_file.parent / "rectify_map.h5")[7, 11], [11, 7])
    assert focal_baseline(read_disparity_to_depth(folder / "calibration" / "cam_to_cam.yaml")) == pytest.approx((FOCAL, BASELINE))
    assert not [p for p in folder.rglob(".*")]  # no temporary files left

    with open_events(folder) as reader:
        assert_same_events(reader.read_all(), events)
        assert_same_events(reader.read_time(T0 + 100_000, T0 + 150_000), events.slice_time(T0 + 100_000, T0 + 150_000))

    with open_sequence(folder) as sequence:
        assert isinstance(sequence, DsecSequence) and np.array_equal(sequence.timestamps_us, depth_times)
        samples = list(sequence)
    for k, sample in enumerate(samples):
        t = int(depth_times[k])
        expected = events.slice_time(t - 50_000, t)
        assert sample.events.x.dtype == np.float32  # rectified through the identity map, nothing dropped
        assert np.array_equal(sample.events.x, expected.x) and np.array_equal(sample.events.y, expected.y)
        assert np.array_equal(sample.events.t, expected.t) and np.array_equal(sample.events.p, expected.p)
        assert np.array_equal(sample.frame, frames[2 + 2 * k][..., ::-1])  # BGR on disk and back
        invalid = ~(np.isfinite(depth[k]) & (depth[k] > 0))
        assert np.array_equal(np.isnan(sample.depth_m), invalid)
        truth = depth[k][~invalid].astype(np.float64)
        assert (np.abs(sample.depth_m[~invalid] - truth) <= quantisation(truth, FOCAL * BASELINE)).all()


def test_dsec_layout_is_what_the_official_loaders_open(tmp_path):
    """Everything DSEC's `Sequence` (scripts/dataset/sequence.py) and Depth AnyEvent's `DsecSequence` and
    folder check (dataset/dsec_dataset) open: both cameras' events and rectify maps, disparity named
    after the 20 Hz image index from 000000 in disparity/{event,image}, int64 timestamps, images of
    both cameras with exposure timestamps, images/left/ev_inf, and the calibration fields they read."""
    sensor = (24, 32)
    left, right = random_events(3000, 21, 2_000, 300_000, sensor), random_events(2500, 22, 1_000, 300_000, sensor)
    frame_times = 60_000 + 50_000 * np.arange(5)
    frames, right_frames = coloured_frames(5, sensor, 23), coloured_frames(5, sensor, 24)
    folder = write_dsec_sequence(tmp_path / "interlaken_00_c", left, frames, frame_times, smooth_depth(3, sensor, 25),
                                 frame_times[::2], right_events=right, right_frames=right_frames, focal_px=30.0,
                                 baseline_m=0.5)
    for side, stream in (("left", left), ("right", right)):
        with h5py.File(folder / "events" / side / "events.h5", "r") as handle:
            assert [handle[f"events/{k}"].dtype for k in "xytp"] == [np.uint16, np.uint16, np.uint32, np.uint8]
            assert handle["t_offset"][()] == 1_000  # the earlier of the two cameras' first events
            assert np.array_equal(handle["events/t"][()].astype(np.int64) + 1_000, stream.t)
        rectify_map = load_rectify_map(folder / "events" / side / "rectify_map.h5")
        assert rectify_map.shape == (*sensor, 2) and rectify_map.dtype == np.float32
    for view in ("event", "image"):
        assert sorted(p.name for p in (folder / "disparity" / view).iterdir()) == ["000000.png", "000002.png", "000004.png"]
    assert np.array_equal(np.loadtxt(folder / "disparity" / "timestamps.txt", dtype="int64"), frame_times[::2])
    assert np.array_equal(np.loadtxt(folder / "images" / "timestamps.txt", dtype="int64"), frame_times)
    names = [f"{k:06d}.png" for k in range(5)]
    for view in ("left/rectified", "left/ev_inf", "right/rectified"):
        assert sorted(p.name for p in (folder / "images" / view).iterdir()) == names
    assert np.array_equal(cv2.imread(str(folder / "images" / "right" / "rectified" / "000003.png"))[..., ::-1], right_frames[3])
    for side in ("left", "right"):
        lines = (folder / "images" / side / "exposure_timestamps.txt").read_text().splitlines()
        assert lines[0] == "# exposure_start_timestamp_us, exposure_end_timestamp_us" and lines[2] == "110000, 110000"

    calibration = yaml.safe_load((folder / "calibration" / "cam_to_cam.yaml").read_text())
    for index in range(4):
        camera = calibration["intrinsics"][f"cam{index}"]
        assert camera["camera_matrix"] == [30.0, 30.0, 15.5, 11.5] and camera["distortion_coeffs"] == [0.0] * 4
        assert camera["resolution"] == [32, 24] and calibration["intrinsics"][f"camRect{index}"]["resolution"] == [32, 24]
    extrinsics = {key: np.array(value) for key, value in calibration["extrinsics"].items()}
    assert sorted(extrinsics) == ["R_rect0", "R_rect1", "R_rect2", "R_rect3", "T_10", "T_21", "T_32"]
    # Depth AnyEvent composes cam0 -> cam3 as T_32 T_21 T_10 and the rectification as inv(R_rect3) R_rect0
    cam0_to_cam3 = extrinsics["T_32"] @ extrinsics["T_21"] @ extrinsics["T_10"]
    assert np.allclose(cam0_to_cam3[:3, :3], np.eye(3)) and np.allclose(cam0_to_cam3[:3, 3], [-0.5, 0, 0])
    assert np.allclose(np.linalg.inv(extrinsics["R_rect3"]) @ extrinsics["R_rect0"], np.eye(3))
    for pair in ("cams_03", "cams_12"):
        assert focal_baseline(np.array(calibration["disparity_to_depth"][pair])) == pytest.approx((30.0, 0.5))
    lidar = yaml.safe_load((folder / "calibration" / "cam_to_lidar.yaml").read_text())
    assert np.allclose(np.array(lidar["T_lidar_cam3"])[:3, 3], [0.5, 0, 0])

    mono = write_dsec_sequence(tmp_path / "mono", left)  # no right camera: the left stream stands in for it
    with h5py.File(mono / "events" / "right" / "events.h5", "r") as handle:
        assert np.array_equal(handle["events/t"][()].astype(np.int64) + 2_000, left.t)
    with pytest.raises(InputError, match="right events"):
        write_dsec_sequence(tmp_path / "bad", left, right_events=random_events(10, 0, 0, 1000, (20, 30)))


def test_dsec_simulated_events_of_another_size_round_trip(tmp_path):
    """A 30x40 sequence from the simulator: events.h5 read back exactly with sensor_size given,
    rectified coordinates equal to the pixels, frames and disparity named sequentially when the
    depth timestamps are not frame timestamps."""
    sensor = (30, 40)
    y, x = np.mgrid[0:30, 0:40].astype(np.float64)
    times = 1_000_000 + 1000 * np.arange(200)
    frames = np.stack([0.5 + 0.4 * np.sin((x - 0.2 * k) / 3.0) * np.cos(y / 4.0) for k in range(200)])
    events = EventSimulator(threshold_sigma=0.02, refractory_us=200, shot_noise_hz=1.0, seed=3).simulate(frames, times)
    assert len(events) > 1000
    grey = np.round(frames[::50] * 255).astype(np.uint8)
    depth = smooth_depth(2, sensor, 4)
    folder = write_dsec_sequence(tmp_path / "seq", events, grey, times[::50], depth, times[[70, 170]] + 7,
                                 focal_px=40.0, baseline_m=0.1, t_offset_us=0)
    path = folder / "events" / "left" / "events.h5"
    with open_events(path, sensor_size=sensor) as reader:
        assert reader.t_offset == 0 and reader.sensor_size == sensor
        assert_same_events(reader.read_all(), events)
    with open_events(path, sensor_size=sensor, rectify=True) as reader:
        window = reader.read_time(1_050_000, 1_100_000)
        expected = events.slice_time(1_050_000, 1_100_000)
        assert np.array_equal(window.x, expected.x.astype(np.float32)) and np.array_equal(window.t, expected.t)
    assert sorted(p.name for p in (folder / "disparity" / "event").iterdir()) == ["000000.png", "000001.png"]
    with DsecSequence(folder) as sequence:  # the sensor size comes from the rectify map
        assert np.array_equal(sequence.timestamps_us, times[[70, 170]] + 7)
        assert sequence.reader.sensor_size == sensor
        sample = sequence[1]
    window = events.slice_time(int(times[170]) + 7 - 50_000, int(times[170]) + 7)
    assert np.array_equal(sample.events.t, window.t) and np.array_equal(sample.events.x, window.x.astype(np.float32))
    assert np.array_equal(sample.frame, grey[3])  # nearest frame to 170.007 ms is 150 ms
    valid = np.isfinite(depth[1]) & (depth[1] > 0)
    truth = depth[1][valid].astype(np.float64)
    assert (np.abs(sample.depth_m[valid] - truth) <= quantisation(truth, 40.0 * 0.1)).all()


def test_disparity_quantisation_and_range():
    depth = np.array([[np.nan, 0.0, 30.0, 1e9], [3.0, 300.0 * 256 / 65535, -1.0, np.inf]])
    values = depth_to_disparity_png(depth, FOCAL, BASELINE)
    assert values.dtype == np.uint16
    assert values.tolist() == [[0, 0, 2560, 0], [25600, 65535, 0, 0]]  # 300 / 30 m = 10 px -> 2560
    with pytest.raises(InputError, match="16-bit PNG range"):
        depth_to_disparity_png(np.array([[1.0]]), FOCAL, BASELINE)  # 300 px disparity > 255.99


def test_dsec_writer_refuses_bad_input(tmp_path):
    sensor = (20, 30)
    events = random_events(100, 5, 0, 10_000, sensor)
    with pytest.raises(InputError, match="focal_px and baseline_m"):
        write_dsec_sequence(tmp_path / "a", events, depth_m=smooth_depth(1, sensor, 0), depth_timestamps_us=[5000])
    with pytest.raises(InputError, match="increase strictly"):
        write_dsec_sequence(tmp_path / "b", events, coloured_frames(2, sensor, 0), [5000, 5000])
    with pytest.raises(InputError, match="uint8"):
        write_dsec_sequence(tmp_path / "c", events, np.zeros((2, 20, 30)), [1, 2])
    with pytest.raises(InputError, match="uint32"):
        write_dsec_sequence(tmp_path / "d", events, t_offset_us=100)
    rectified = EventArray(events.x.astype(np.float32) + 0.5, events.y.astype(np.float32), events.t, events.p, sensor)
    with pytest.raises(InputError, match="fractional"):
        write_dsec_sequence(tmp_path / "e", rectified)
    assert not (tmp_path / "a").exists() and not (tmp_path / "d").exists()  # checked before anything is written


def test_writes_are_atomic_and_overwrite_is_explicit(tmp_path, monkeypatch):
    sensor = (20, 30)
    events = random_events(500, 6, 10_000, 100_000, sensor)
    folder = write_dsec_sequence(tmp_path / "seq", events, coloured_frames(4, sensor, 1), 10_000 + 20_000 * np.arange(4))
    with pytest.raises(InputError, match="not empty"):
        write_dsec_sequence(folder, events)
    # overwrite with 2 frames: the 2 stale PNGs go, the reader sees a consistent folder
    write_dsec_sequence(folder, events, coloured_frames(2, sensor, 2), [10_000, 30_000], overwrite=True)
    assert len(list((folder / "images" / "left" / "rectified").glob("*.png"))) == 2
    with DsecSequence(folder, rectify=False) as sequence:
        assert len(sequence) == 2

    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers, "blosc_zstd", broken)  # fails inside the events.h5 write
    with pytest.raises(RuntimeError, match="disk full"):
        write_dsec_sequence(folder, events, overwrite=True)
    assert not (folder / "events" / "left" / "events.h5").exists()  # no partial file under the final name
    assert not [p for p in folder.rglob(".*")]  # and no temporary left behind


# ---- E2Depth-processed MVSEC -----------------------------------------------------------------------------------
def test_e2depth_folder_round_trip_through_open_sequence(tmp_path):
    sensor = (24, 32)
    events = random_events(20_000, 7, MVSEC_EPOCH_US, 400_000, sensor)
    depth_times = MVSEC_EPOCH_US + 50_000 + 50_000 * np.arange(7)
    depth = smooth_depth(7, sensor, 8)
    frame_times = MVSEC_EPOCH_US + 33_333 * np.arange(12) + 11
    frames = coloured_frames(12, sensor, 9)
    folder = write_e2depth_folder(tmp_path / "outdoor_day1", events, depth, depth_times, frames, frame_times)

    assert (folder / "events" / "voxels" / "event_tensor_0000000006.npy").is_file()
    assert (folder / "depth" / "data" / "depth_0000000000.npy").is_file()
    assert (folder / "rgb" / "davis" / "frame_0000000011.png").is_file()
    lines = (folder / "events" / "voxels" / "timestamps.txt").read_text().splitlines()
    assert lines[0] == "0 1506117000.050000" and lines[-1] == "6 1506117000.350000"
    assert (folder / "rgb" / "davis" / "timestamps.txt").read_text().splitlines()[1] == "1 1506117000.033344"
    # rpg_e2depth's run_depth.py copies boundary_timestamps.txt: "index first last" event seconds per window
    boundaries = (folder / "events" / "voxels" / "boundary_timestamps.txt").read_text().splitlines()
    assert len(boundaries) == 7
    for k, line in enumerate(boundaries):
        window = events.slice_time(int(depth_times[k]) - 50_000, int(depth_times[k]))
        assert line == f"{k} {seconds_text(window.t[0])} {seconds_text(window.t[-1])}"

    with open_sequence(folder) as sequence:
        assert isinstance(sequence, VoxelSequence) and sequence.voxel_folder.layout.name == "e2depth"
        assert np.array_equal(sequence.timestamps_us, depth_times)
        assert np.array_equal(sequence.voxel_folder.frame_timestamps_us, frame_times)
        samples = list(sequence)
    for k, sample in enumerate(samples):
        t = int(depth_times[k])
        window = events.slice_time(t - 50_000, t)
        assert sample.voxels.shape == (5, *sensor) and sample.voxels.dtype == np.float32
        assert np.array_equal(sample.voxels, voxel_grid(window, 5, normalize=False))
        # the grid is the signed event count spread over time: its sum over bins is Σ (2p - 1) per pixel
        signed = np.zeros(sensor)
        np.add.at(signed, (window.y.astype(int), window.x.astype(int)), 2.0 * window.p - 1)
        assert np.allclose(sample.voxels.sum(axis=0), signed, atol=1e-4)
        expected_depth = depth[k].copy()
        expected_depth[~(np.isfinite(expected_depth) & (expected_depth > 0))] = np.nan
        assert np.array_equal(sample.depth_m, expected_depth, equal_nan=True)
        nearest = int(np.argmin(np.abs(frame_times - t)))
        assert np.array_equal(sample.frame, frames[nearest][..., ::-1])


def test_e2depth_voxel_timestamps_without_depth(tmp_path):
    sensor = (10, 12)
    events = random_events(2000, 3, 0, 200_000, sensor)
    folder = write_e2depth_folder(tmp_path / "f", events, voxel_timestamps_us=[60_000, 110_000, 160_000], window_us=30_000, bins=3)
    with open_sequence(folder) as sequence:
        sample = sequence[1]
    assert sample.depth_m is None and sample.frame is None and sample.voxels.shape == (3, 10, 12)
    assert np.array_equal(sample.voxels, voxel_grid(events.slice_time(80_000, 110_000), 3, normalize=False))
    empty = write_e2depth_folder(tmp_path / "empty", events, voxel_timestamps_us=[100_000, 500_000], window_us=30_000)
    assert (empty / "events" / "voxels" / "boundary_timestamps.txt").read_text().splitlines()[1] == "1 0.470000 0.500000"
    with pytest.raises(InputError, match="voxel_timestamps_us"):
        write_e2depth_folder(tmp_path / "g", events)


def test_seconds_text_is_exact():
    assert seconds_text(0) == "0.000000" and seconds_text(-1) == "-0.000001" and seconds_text(-1_500_000) == "-1.500000"
    assert seconds_text(1_506_117_000_123_457) == "1506117000.123457"


# ---- raw MVSEC ------------------------------------------------------------------------------------------------
def test_mvsec_pair_round_trip_through_open_sequence(tmp_path):
    sensor = (260, 346)
    events = random_events(20_000, 11, MVSEC_EPOCH_US, 500_000, sensor)
    frame_times = MVSEC_EPOCH_US + 31_000 * np.arange(16)
    frames = coloured_frames(16, sensor, 12)
    depth_times = MVSEC_EPOCH_US + 100_000 + 50_000 * np.arange(6)
    depth = smooth_depth(6, sensor, 13)
    data_path, gt_path = write_mvsec_pair(tmp_path, events, frames, frame_times, depth, depth_times, name="outdoor_day9")
    assert data_path.name == "outdoor_day9_data.hdf5" and gt_path.name == "outdoor_day9_gt.hdf5"
    assert detect_format(data_path) == "mvsec"
    with h5py.File(data_path, "r") as handle, h5py.File(gt_path, "r") as gt:
        # Depth AnyEvent's MVSEC reader truncates (s * 1e6).astype(int64): the stored seconds survive it
        assert np.array_equal((handle["davis/left/events"][:, 2] * 1e6).astype(np.int64), events.t)
        assert np.array_equal((handle["davis/left/image_raw_ts"][()] * 1e6).astype(np.int64), frame_times)
        assert np.array_equal((gt["davis/left/depth_image_raw_ts"][()] * 1e6).astype(np.int64), depth_times)
    with open_events(data_path) as reader:
        assert_same_events(reader.read_all(), events)
    with open_sequence(tmp_path) as sequence:
        assert isinstance(sequence, MvsecSequence) and np.array_equal(sequence.timestamps_us, depth_times)
        samples = list(sequence)
    grey = (0.299 * frames[..., 0] + 0.587 * frames[..., 1] + 0.114 * frames[..., 2])
    for k, sample in enumerate(samples):
        t = int(depth_times[k])
        assert_same_events(sample.events, events.slice_time(t - 50_000, t))
        expected_depth = depth[k].copy()
        expected_depth[~(np.isfinite(expected_depth) & (expected_depth > 0))] = np.nan
        assert np.array_equal(sample.depth_m, expected_depth, equal_nan=True)
        nearest = int(np.argmin(np.abs(frame_times - t)))
        assert sample.frame.shape == sensor and np.abs(sample.frame - grey[nearest]).max() <= 1
    with pytest.raises(InputError, match="260x346"):
        write_mvsec_pair(tmp_path / "other", random_events(10, 0, 0, 1000, (20, 30)))
    with pytest.raises(InputError, match="file exists"):
        write_mvsec_pair(tmp_path, events, name="outdoor_day9")
