"""Classical focus measures, focus volumes and depth from focus (anydepth.focus.measures)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anydepth.errors import InputError
from anydepth.focus.measures import (
    FOCUS_MEASURES,
    dff_from_volume,
    focus_measure,
    focus_volume,
    grey_slices,
    measure_slice,
    refine_gaussian,
    softmax_volume,
)
from anydepth.focus.stack import FocalStack
from anydepth.synth.focus_sets import get_layout, make_stack


def texture(height=96, width=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.0)
    return (image - image.min()) / (image.max() - image.min())


def blurred_plane_stack(sigmas=(3.0, 1.8, 0.0, 1.2, 2.5)) -> FocalStack:
    """A textured plane, slice i blurred with sigmas[i] (0 = sharp): the sharp slice is known."""
    plane = texture()
    slices = [plane if s == 0 else cv2.GaussianBlur(plane, (0, 0), s) for s in sigmas]
    return FocalStack(np.stack(slices), [0.3, 0.5, 0.8, 1.2, 2.0], "metres")


@pytest.mark.parametrize("measure", FOCUS_MEASURES)
def test_each_measure_picks_the_sharp_slice(measure):
    stack = blurred_plane_stack()
    values = focus_measure(stack, measure, window=9)
    assert values.shape == (5, 96, 128) and values.dtype == np.float32 and (values >= 0).all()
    assert (values.argmax(axis=0) == 2).mean() > 0.99
    # Blurrier slices score lower on average: the ordering follows the sigmas.
    means = values.reshape(5, -1).mean(axis=1)
    assert list(np.argsort(-means)) == [2, 3, 1, 4, 0]
    volume = focus_volume(stack, measure, window=9, temperature=0.25)
    assert (volume.argmax(axis=0) == 2).mean() > 0.99


def test_measures_match_their_definitions_on_one_pixel():
    grey = grey_slices(blurred_plane_stack())[2]
    y, x, half = 40, 50, 2  # a 5x5 window well inside the image
    patch = grey[y - half - 1:y + half + 2, x - half - 1:x + half + 2].astype(np.float64)
    centre = patch[1:-1, 1:-1]
    laplacian = patch[:-2, 1:-1] + patch[2:, 1:-1] + patch[1:-1, :-2] + patch[1:-1, 2:] - 4 * centre
    ml = np.abs(2 * centre - patch[1:-1, :-2] - patch[1:-1, 2:]) + np.abs(2 * centre - patch[:-2, 1:-1] - patch[2:, 1:-1])
    expected = {
        "laplacian_energy": (laplacian ** 2).mean(),
        "laplacian_variance": laplacian.var(),
        "modified_laplacian": ml.mean(),
        "sum_modified_laplacian": ml.sum(),
        "grey_variance": centre.var(),
    }
    for measure, value in expected.items():
        assert measure_slice(grey, measure, window=5)[y, x] == pytest.approx(value, rel=1e-4, abs=1e-9), measure
    sml = measure_slice(grey, "sum_modified_laplacian", window=5, threshold=float(np.median(ml)))
    assert sml[y, x] == pytest.approx(ml[ml >= np.median(ml)].sum(), rel=1e-4)
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
    window = (slice(y - half, y + half + 1), slice(x - half, x + half + 1))
    assert measure_slice(grey, "tenengrad", 5)[y, x] == pytest.approx((gx[window] ** 2 + gy[window] ** 2).mean(), rel=1e-4)


def test_focus_volume_is_a_per_pixel_distribution_sharpened_by_temperature():
    stack = blurred_plane_stack()
    cold = focus_volume(stack, "tenengrad", 9, temperature=0.1)
    warm = focus_volume(stack, "tenengrad", 9, temperature=1.0)
    np.testing.assert_allclose(cold.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(warm.sum(axis=0), 1.0, atol=1e-5)
    assert cold.max(axis=0).mean() > warm.max(axis=0).mean()
    values = focus_measure(stack, "tenengrad", 9)
    np.testing.assert_allclose(softmax_volume(values * 1000.0, 0.5), softmax_volume(values, 0.5), atol=1e-5)  # scale-free
    np.testing.assert_allclose(softmax_volume(np.zeros((4, 3, 3)), 0.5), 0.25)  # flat: uniform, no NaN
    # p ∝ m^(1/T): with T = 1 the volume is the normalised measure.
    np.testing.assert_allclose(softmax_volume(values, 1.0), values / values.sum(axis=0), rtol=1e-4, atol=1e-7)


def test_dff_from_volume_expectation_aif_and_confidences():
    stack = blurred_plane_stack()
    positions = stack.positions
    one_hot = np.zeros((5, 96, 128), np.float32)
    one_hot[2] = 1.0
    result = dff_from_volume(one_hot, positions, stack)
    np.testing.assert_allclose(result.depth, positions[2], rtol=1e-6)
    np.testing.assert_allclose(result.variance, 0.0, atol=1e-6)
    np.testing.assert_allclose(result.aif, stack.slices[2], atol=1e-6)
    uniform = np.full((5, 96, 128), 0.2, np.float32)
    result = dff_from_volume(uniform, positions, stack.slices)
    np.testing.assert_allclose(result.depth, positions.mean(), rtol=1e-5)
    np.testing.assert_allclose(result.variance, positions.var(), rtol=1e-4)
    np.testing.assert_allclose(result.aif, stack.slices.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(result.intensity_variance, grey_slices(stack).var(axis=0), rtol=1e-5, atol=1e-9)
    assert dff_from_volume(uniform, positions).aif is None
    uint8 = FocalStack((stack.slices * 255).round().astype(np.uint8), positions)
    np.testing.assert_allclose(dff_from_volume(uniform, positions, uint8).aif, uint8.slices.mean(axis=0) / 255, atol=1e-5)
    # Texture-less pixels barely change across the stack: the intensity-variance cue says so.
    flat = FocalStack(np.full((5, 8, 8, 3), 0.5, np.float32), positions)
    assert dff_from_volume(np.full((5, 8, 8), 0.2), positions, flat).intensity_variance.max() == 0


def test_dff_depth_on_a_synthetic_thin_lens_stack():
    """DDFF-12 lens and focus (10 slices, uniform in disparity), a textured slanted plane spanning
    disparities 0.26 .. 0.04 px rendered by anydepth.synth.focus_sets.make_stack (layered)."""
    layout = get_layout("ddff12")
    height, width = layout.resolution
    disparity = np.broadcast_to(np.linspace(0.26, 0.04, width)[None], (height, width))
    stack = make_stack(texture(height, width, seed=4), (0.141238 / disparity).astype(np.float32), layout)
    assert isinstance(stack, FocalStack) and stack.unit == "disparity"
    values = focus_measure(stack, "laplacian_energy", 9)
    result = dff_from_volume(softmax_volume(values, 0.25), stack.positions, stack)
    truth = stack.ground_truth
    inner = (slice(10, -10), slice(20, -20))  # away from the reflected borders
    relative = np.abs(result.depth - truth)[inner] / truth[inner]
    assert np.median(relative) < 0.10
    refined = refine_gaussian(values, stack.positions)
    assert np.median(np.abs(refined - truth)[inner] / truth[inner]) < 0.10
    # Depth follows the slant: column means decrease monotonically (up to noise) and span the range.
    columns = result.depth[inner].mean(axis=0)
    assert np.corrcoef(columns, truth[inner].mean(axis=0))[0, 1] > 0.98
    np.testing.assert_allclose(result.aif[inner], stack.aif[inner], atol=0.15)


@pytest.mark.parametrize("positions", [np.linspace(0.28, 0.02, 10), np.array([0.1, 0.15, 0.3, 0.7, 1.5, 2.0, 3.5])])
def test_refine_gaussian_recovers_a_sub_slice_peak(positions):
    """log m is an exact parabola in the position: the 3-point fit finds its vertex exactly."""
    height, width = 4, 6
    rng = np.random.default_rng(0)
    low, high = sorted(positions[[1, -2]])
    peaks = rng.uniform(low, high, (height, width))
    width_sigma = 0.7 * np.abs(np.diff(positions)).max()
    log_values = -((positions[:, None, None] - peaks[None]) ** 2) / (2 * width_sigma ** 2)
    refined = refine_gaussian(np.exp(log_values) * 3.0, positions)
    np.testing.assert_allclose(refined, peaks, rtol=1e-5, atol=1e-6)
    nearest = positions[np.exp(log_values).argmax(axis=0)]
    assert np.abs(nearest - peaks).max() > 10 * np.abs(refined - peaks).max()


def test_refine_gaussian_edges_and_flat_values():
    positions = np.array([1.0, 2.0, 3.0, 4.0])
    at_edge = np.array([5.0, 3.0, 2.0, 1.0])[:, None, None]  # peak at the first slice
    assert refine_gaussian(at_edge, positions)[0, 0] == 1.0
    flat = np.ones((4, 1, 1))  # not concave: the argmax position
    assert refine_gaussian(flat, positions)[0, 0] == 1.0
    symmetric = np.array([1.0, 2.0, 2.0, 1.0])[:, None, None]  # peak midway, argmax the first of the two
    assert refine_gaussian(symmetric, positions)[0, 0] == pytest.approx(2.5)
    assert refine_gaussian(np.array([1.0, 2.0])[:, None, None], [1.0, 2.0])[0, 0] == 2.0  # N < 3


def test_bad_inputs_raise_one_line_errors():
    stack = blurred_plane_stack()
    cases = [
        (lambda: focus_measure(stack, "sharpness"), "focus measure must be one of"),
        (lambda: focus_measure(stack, "tenengrad", window=4), "window must be a positive odd integer"),
        (lambda: focus_measure(stack, "tenengrad", window=0), "window must be a positive odd integer"),
        (lambda: focus_volume(stack, temperature=0.0), "temperature must be positive"),
        (lambda: softmax_volume(np.ones((3, 4))), r"measure values must be \(N, H, W\)"),
        (lambda: grey_slices(np.ones((3, 4))), r"slices must be \(N, H, W, 3\) or \(N, H, W\)"),
        (lambda: grey_slices(np.ones((0, 4, 4, 3))), "empty focal stack"),
        (lambda: dff_from_volume(np.ones((4, 8, 8)), stack.positions), r"volume must be \(N, H, W\) with N = 5"),
        (lambda: dff_from_volume(np.ones((5, 8, 8)), stack.positions, stack), "do not match the volume"),
        (lambda: refine_gaussian(np.ones((4, 8, 8)), stack.positions), r"measure values must be \(N, H, W\) with N = 5"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)
