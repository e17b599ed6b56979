"""viz: uint8 conversion, depth colouring, plots and the video writer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anydepth import viz
from anydepth.errors import InputError


def test_to_uint8_rounds_clips_and_checks_on_request():
    values = np.array([-0.2, 0.0, 0.5, 1.0, 1.0004, 1.7, np.nan], np.float32)
    np.testing.assert_array_equal(viz.to_uint8(values), [0, 0, 128, 255, 255, 255, 0])
    # the formula the event pictures, report figures and focus AiF used before it had one home
    np.testing.assert_array_equal(viz.to_uint8(values[:6]), (np.clip(values[:6], 0, 1) * 255).round().astype(np.uint8))
    assert viz.to_uint8(np.array([True, False])).tolist() == [255, 0]
    same = np.arange(3, dtype=np.uint8)
    assert viz.to_uint8(same) is same
    np.testing.assert_array_equal(viz.to_uint8(np.array([0.0, 1.0004]), strict=True), [0, 255])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        viz.to_uint8(np.array([0.0, 200.0]), strict=True)


def test_colorize_depth_is_near_red_for_every_kind():
    depth_m = np.array([[1.0, 10.0]])
    near, far = viz.colorize_depth(depth_m)[0]
    assert near[0] > near[2] and far[2] > far[0]  # Spectral_r: near red, far blue
    np.testing.assert_array_equal(viz.colorize_depth(depth_m), viz.colorize(1.0 / depth_m, "Spectral_r"))
    np.testing.assert_array_equal(viz.colorize_depth(depth_m, "relative"), viz.colorize_depth(1.0 / depth_m, "disparity"))
    with pytest.raises(ValueError):
        viz.colorize_depth(depth_m, "kelvin")


def test_colorize_like_uses_the_reference_range():
    reference = np.linspace(0.0, 1.0, 101)[None]
    values = np.array([[0.02, 0.98, np.nan]])
    picture = viz.colorize_like(values, reference)
    np.testing.assert_array_equal(picture[0, 0], viz.colormap_lut()[0])
    np.testing.assert_array_equal(picture[0, 1], viz.colormap_lut()[255])
    np.testing.assert_array_equal(picture[0, 2], picture[0, 0])  # NaN shown as the low end


def test_plots_are_rgb_pictures():
    curve = viz.plot_curves({"a": [3.0, 2.0, 1.0], "b": [2.0, 1.5, 1.2]}, logy=True, x=[10, 20, 30])
    assert curve.dtype == np.uint8 and curve.shape == (360, 600, 3)
    panels = viz.plot_panels({"one": np.zeros((8, 8, 3), np.uint8), "two": np.full((8, 8, 3), 255, np.uint8)})
    assert panels.dtype == np.uint8 and panels.shape == (320, 640, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_writer(tmp_path, suffix):
    frames = [np.full((16, 24, 3), (40 * k, 0, 200), np.uint8) for k in range(4)]
    with viz.VideoWriter(tmp_path / "sub" / f"clip{suffix}", fps=10) as writer:
        for frame in frames:
            writer.write(frame)
    capture = cv2.VideoCapture(str(writer.target))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (16, 24, 3)
        count += 1
    capture.release()
    if count == 0 and suffix == ".mp4":
        pytest.skip("this OpenCV cannot read mp4 back")
    assert count == len(frames)
    with pytest.raises(InputError, match="video must end in .mp4 or .gif"):
        viz.VideoWriter(tmp_path / "clip.avi")
