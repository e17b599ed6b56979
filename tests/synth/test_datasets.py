"""Synthetic datasets end to end: generation is deterministic, lands in the real layouts, and reads
back through the project's readers with its ground truth."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from anydepth.cli.main import main
from anydepth.errors import InputError
from anydepth.events import open_sequence
from anydepth.synth.focus_sets import FOCUS_LAYOUTS, generate_focus_dataset, make_stack, rendered_scene
from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

SMALL = dict(seconds=0.12, resolution=(32, 48), internal_fps=500.0, frame_hz=25.0, depth_hz=25.0)


def test_event_sequences_are_deterministic_and_move():
    first = generate_event_sequence(EventSequenceSpec(seed=3, **SMALL))
    again = generate_event_sequence(EventSequenceSpec(seed=3, **SMALL))
    other = generate_event_sequence(EventSequenceSpec(seed=4, **SMALL))
    assert len(first.events) > 100
    assert np.array_equal(first.events.t, again.events.t) and np.array_equal(first.events.x, again.events.x)
    assert len(other.events) != len(first.events) or not np.array_equal(other.events.x, first.events.x)
    assert first.frames.shape == (3, 32, 48, 3) and np.array_equal(np.diff(first.frame_timestamps_us), [40_000, 40_000])
    assert np.isfinite(first.depth_m).all() and first.depth_m.min() > 0
    assert first.events.t_end < first.frame_timestamps_us[0] + 120_000 and first.events.sensor_size == (32, 48)


def test_event_sequences_start_with_events_and_render_the_right_camera():
    """Every sample's window [t - 50 ms, t) starts at or after the first event (the authors' loaders
    assert on such windows), at the first internal frame that allows it; frames and depth start
    together; the right camera (B to the right) sees the near scene shifted left."""
    sequence = generate_event_sequence(EventSequenceSpec(seed=3, **{**SMALL, "frame_hz": 50.0}))
    first_event = min(int(sequence.events.t[0]), int(sequence.right_events.t[0]))
    start = int(sequence.frame_timestamps_us[0])
    assert start - 50_000 >= first_event and start - 50_000 < first_event + 2_000  # 2 ms: one internal frame at 500 fps
    assert sequence.depth_timestamps_us[0] == start and (sequence.depth_timestamps_us - 50_000 >= first_event).all()
    assert len(sequence.frames) == 6 and len(sequence.depth_m) == 3 and sequence.right_frames.shape == sequence.frames.shape
    assert sequence.right_events.sensor_size == (32, 48) and len(sequence.right_events) > 100
    assert not np.array_equal(sequence.right_frames, sequence.frames) and sequence.baseline_m == 0.6
    # a point at depth z and column u in the left view is at u - f B / z in the right view
    left, right = sequence.frames[0].astype(float), sequence.right_frames[0].astype(float)
    row, z = 16, float(sequence.depth_m[0][16, 24])
    shift = int(round(sequence.camera.fx * 0.6 / z))
    assert 0 < shift < 20
    errors = [np.abs(left[row, 20:40 - 0] - right[row, 20 - d:40 - d]).mean() for d in range(0, 20)]
    assert abs(int(np.argmin(errors)) - shift) <= 1
    mono = generate_event_sequence(EventSequenceSpec(seed=3, baseline_m=None, **SMALL))
    assert mono.right_events is None and mono.right_frames is None
    assert np.array_equal(mono.events.t, generate_event_sequence(EventSequenceSpec(seed=3, **SMALL)).events.t)


@pytest.mark.parametrize("layout", ["dsec", "e2depth", "mvsec"])
def test_event_sequences_round_trip_through_the_readers(layout, tmp_path):
    if layout == "mvsec":
        spec = EventSequenceSpec(seed=1, **{**SMALL, "resolution": (260, 346), "seconds": 0.06})
    else:
        spec = EventSequenceSpec(seed=1, **SMALL)
    sequence = generate_event_sequence(spec)
    folder = write_event_sequence(sequence, tmp_path / layout, layout)
    with open_sequence(folder) as opened:
        sample = opened[len(opened) - 1]
        assert sample.depth_m.shape == spec.resolution
        truth = sequence.depth_m[-1]
        close = np.isfinite(sample.depth_m)
        # DSEC stores disparity (1/256 px steps): depth within its quantisation; others exact
        tolerance = 0.05 * truth[close] if layout == "dsec" else 1e-5 * truth[close]
        assert close.mean() > 0.95 and (np.abs(sample.depth_m[close] - truth[close]) <= tolerance).all()
        if sample.events is not None:
            window = sequence.events.slice_time(sample.timestamp_us - 50_000, sample.timestamp_us)
            assert len(sample.events) == len(window) and np.array_equal(sample.events.t, window.t)
        else:
            assert sample.voxels.shape == (5, *spec.resolution)


def test_synth_events_cli(tmp_path):
    assert main(["synth", "events", "--out", str(tmp_path), "--sequences", "2", "--seconds", "0.06",
                 "--resolution", "24x32", "--fps", "500", "--seed", "7"]) == 0
    for index in range(2):
        with open_sequence(tmp_path / f"sequence_{index:03d}") as sequence:
            assert sequence[0].depth_m.shape == (24, 32)
    assert main(["synth", "events", "--out", str(tmp_path / "x"), "--resolution", "big"]) == 1


def test_focus_stacks_are_sharpest_where_focused():
    layout = FOCUS_LAYOUTS["fod500"]
    aif, depth = rendered_scene(0, layout)
    stack = make_stack(aif, depth, layout)
    assert stack.slices.shape == (5, 256, 256, 3) and stack.unit == "metres"
    assert 0.2 < float(depth.min()) and float(np.median(depth)) < 1.0  # within FoD500's focus range
    nearest_slice = np.argmin(np.abs(1 / depth[..., None] - 1 / np.asarray(layout.focus_distances_m)), axis=-1)
    # the slice focused nearest to a pixel's depth shows it closest to the all-in-focus image
    error = np.abs(stack.slices - aif[None]).mean(axis=-1)
    best = np.argmin(error, axis=0)
    textured = np.abs(np.gradient(aif.mean(-1))[0]) + np.abs(np.gradient(aif.mean(-1))[1]) > 0.05
    assert (best[textured] == nearest_slice[textured]).mean() > 0.6


@pytest.mark.parametrize("layout", ["ddff12", "fod500", "phone"])
def test_synth_focus_cli_layouts(layout, tmp_path):
    assert main(["synth", "focus", "--out", str(tmp_path), "--samples", "2", "--layout", layout]) == 0
    if layout == "ddff12":
        with h5py.File(tmp_path / "ddff12_synthetic.h5") as handle:
            assert handle["stack_train"].shape == (1, 10, 383, 552, 3) and handle["disp_val"].shape == (1, 383, 552)
            assert 0.0 < handle["disp_train"][0].max() <= 0.3
    elif layout == "fod500":
        assert len(list(tmp_path.glob("*All.tif"))) == 10 and len(list(tmp_path.glob("*Dpt.exr"))) == 2
    else:
        assert sorted(p.name for p in (tmp_path / "stack_001").glob("image_*")) == [
            "image_1_0.35.jpg", "image_2_0.5.jpg", "image_3_0.9.jpg", "image_4_1.33.jpg", "image_5_2.21.jpg"]


def test_focus_from_real_rgbd(realdata, tmp_path):
    written = generate_focus_dataset(tmp_path, 3, "ddff12", from_rgbd=realdata / "nyu_rgbd")
    with h5py.File(written[0]) as handle:
        disparity = handle["disp_train"][0]
    assert disparity.shape == (383, 552) and (disparity > 0).all()
    with pytest.raises(InputError, match="no <scene>/rgb.png"):
        generate_focus_dataset(tmp_path, 1, "ddff12", from_rgbd=tmp_path)


def test_generated_layouts_start_with_events_as_the_official_loaders_need(tmp_path):
    """DSEC: the first disparity map is 000000 (DSEC's Sequence asserts it) on image 000000, and no
    disparity or image timestamp has a window before the first event of either camera (the
    EventSlicers assert on it); E2Depth: one frame per depth map, same index (its loader reads
    frame_%010d.png with the depth index)."""
    sequence = generate_event_sequence(EventSequenceSpec(seed=2, **{**SMALL, "seconds": 0.2, "frame_hz": 50.0}))
    dsec = write_event_sequence(sequence, tmp_path / "dsec", "dsec")
    assert sorted(p.name for p in (dsec / "disparity" / "event").iterdir())[:2] == ["000000.png", "000002.png"]
    stamps = np.concatenate([np.loadtxt(dsec / "disparity" / "timestamps.txt", dtype="int64"),
                             np.loadtxt(dsec / "images" / "timestamps.txt", dtype="int64")])
    for side in ("left", "right"):
        with h5py.File(dsec / "events" / side / "events.h5", "r") as handle:
            first = int(handle["t_offset"][()]) + int(handle["events/t"][0])
        assert (stamps - 50_000 >= first).all()
    e2depth = write_event_sequence(sequence, tmp_path / "e2depth", "e2depth")
    depth_lines = (e2depth / "depth" / "data" / "timestamps.txt").read_text()
    assert (e2depth / "rgb" / "davis" / "timestamps.txt").read_text() == depth_lines
    assert len(list((e2depth / "rgb" / "davis").glob("frame_*.png"))) == len(sequence.depth_m) == 5
