"""Thin-lens defocus (anydepth.synth.thin_lens): the CoC formula on hand-computed numbers, exact
Gaussian blur of fronto-parallel planes (against a direct convolution written here), sharpest slice
= slice focused nearest the depth on a slanted plane, occlusion in the layered model, gather vs
layered, the fused gather kernel against a plain-numpy reference, and input errors."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest
import torch

from anydepth.errors import InputError
from anydepth.focus import DDFF12_DISPARITY_SCALE, FocalStack
from anydepth.synth import thin_lens as tl
from anydepth.synth.thin_lens import (
    LENS_PRESETS,
    ThinLens,
    blur_sigma_px,
    circle_of_confusion,
    focal_stack,
    render_gather,
    render_layered,
)

FOD500_FOCUS = [0.1, 0.15, 0.3, 0.7, 1.5]


def direct_gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Reference blur: separable sum of shifted copies, kernel exp(-i²/2σ²) on i in [-r, r] with
    r = ceil(4σ), normalised; borders reflected without repeating the edge (numpy "reflect" =
    OpenCV BORDER_REFLECT_101). Float64 throughout."""
    if sigma == 0:
        return image.astype(np.float64)
    radius = max(1, math.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets ** 2) / (2 * sigma ** 2))
    kernel /= kernel.sum()
    height, width = image.shape[:2]
    padded = np.pad(image.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    rows = sum(w * padded[radius + o:radius + o + height] for o, w in zip(offsets, kernel))
    return sum(w * rows[:, radius + o:radius + o + width] for o, w in zip(offsets, kernel))


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((height, width, 3)).astype(np.float32)


def laplacian_energy(image: np.ndarray, window: float = 4.0) -> np.ndarray:
    grey = image.mean(axis=-1).astype(np.float32)
    return cv2.GaussianBlur(cv2.Laplacian(grey, cv2.CV_32F) ** 2, (0, 0), window)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


# --------------------------------------------------------------------------- formulas

def test_coc_and_sigma_on_hand_computed_numbers():
    # f = 50 mm, N = 2 (A = 25 mm), s = 2 m, d = 4 m:
    # CoC = 0.025 · |4 − 2| / 4 · 0.05 / (2 − 0.05) = 0.025 · 0.5 · 0.0256410 = 3.2051282e-4 m
    assert circle_of_confusion(4.0, 2.0, 0.05, 2.0) == pytest.approx(3.2051282e-4, rel=1e-7)
    # d = 1 m: 0.025 · 1 · 0.0256410 = 6.4102564e-4 m (nearer than focus: blur grows faster)
    assert circle_of_confusion(1.0, 2.0, 0.05, 2.0) == pytest.approx(6.4102564e-4, rel=1e-7)
    # σ = CoC / (2 · 5 µm) = 32.051282 px
    assert blur_sigma_px(4.0, 2.0, 0.05, 2.0, 5e-6) == pytest.approx(32.051282, rel=1e-7)
    # phone-like: f = 4 mm, N = 2, s = 0.5 m, d = 1 m: 0.002 · 0.5 · 0.004 / 0.496 = 8.0645161e-6 m
    assert circle_of_confusion(1.0, 0.5, 0.004, 2.0) == pytest.approx(8.0645161e-6, rel=1e-7)
    lens = ThinLens(0.05, 2.0, 5e-6)
    assert lens.aperture_m == pytest.approx(0.025)
    assert lens.sigma_px(4.0, 2.0) == pytest.approx(32.051282, rel=1e-7)


def test_coc_is_zero_at_focus_and_proportional_to_inverse_depth_difference():
    f, n, s = 0.0029, 1.0, 0.3
    depth = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0, 100.0])
    coc = circle_of_confusion(depth, s, f, n)
    assert coc[3] == 0.0
    # CoC = A f s / (s − f) · |1/s − 1/d|: the ratio is one constant
    off_focus = np.delete(np.arange(depth.size), 3)
    ratio = coc[off_focus] / np.abs(1 / depth[off_focus] - 1 / s)
    np.testing.assert_allclose(ratio, (f / n) * f * s / (s - f), rtol=1e-12)
    # grows monotonically with |1/d − 1/s| on both sides of the focus
    order = np.argsort(np.abs(1 / depth - 1 / s))
    assert np.all(np.diff(coc[order]) >= 0)


def test_formulas_broadcast_and_agree_between_numpy_and_torch():
    depth = np.linspace(0.2, 3.0, 12).reshape(3, 4)
    focus = np.array([0.1, 0.3, 1.5])[:, None, None]
    sigma_np = blur_sigma_px(depth, focus, 0.0029, 1.0, 12.5e-6)
    assert sigma_np.shape == (3, 3, 4)
    sigma_torch = blur_sigma_px(torch.from_numpy(depth), torch.from_numpy(focus), 0.0029, 1.0, 12.5e-6)
    assert isinstance(sigma_torch, torch.Tensor) and sigma_torch.dtype == torch.float64
    np.testing.assert_allclose(sigma_torch.numpy(), sigma_np, rtol=1e-12)
    # float32 stays float32 on both sides
    assert circle_of_confusion(depth.astype(np.float32), 0.3, 0.0029, 1.0).dtype == np.float32
    assert circle_of_confusion(torch.ones(2), 0.3, 0.0029, 1.0).dtype == torch.float32


def test_focus_inside_the_focal_length_raises():
    with pytest.raises(InputError, match="focal length"):
        circle_of_confusion(1.0, 0.04, 0.05, 2.0)
    with pytest.raises(InputError, match="focal length"):
        circle_of_confusion(1.0, 0.05, 0.05, 2.0)  # s = f: focused at infinity behind the lens
    with pytest.raises(InputError, match="focal length"):
        blur_sigma_px(torch.ones(3), torch.tensor([0.3, 0.001, 1.0]), 0.0029, 1.0, 1e-5)
    lens = LENS_PRESETS["fod500"]
    aif, depth = texture(16, 16), np.ones((16, 16))
    for mode in ("layered", "gather"):
        with pytest.raises(InputError, match="inside the focal length"):
            focal_stack(aif, depth, [0.3, 0.002], lens, mode=mode)


def test_bad_inputs_raise_input_error():
    lens = LENS_PRESETS["fod500"]
    aif, depth = texture(16, 20), np.ones((16, 20))
    with pytest.raises(InputError, match="float"):
        render_layered((aif * 255).astype(np.uint8), depth, 0.3, lens)
    with pytest.raises(InputError, match="does not match"):
        render_layered(aif, depth[:, :10], 0.3, lens)
    bad = depth.copy()
    bad[3, 3] = 0.0
    with pytest.raises(InputError, match="positive and finite"):
        render_gather(aif, bad, 0.3, lens)
    with pytest.raises(InputError, match="render mode"):
        focal_stack(aif, depth, [0.3], lens, mode="scatter")
    with pytest.raises(InputError, match="focus unit"):
        focal_stack(aif, depth, [0.3], lens, focus_unit="dioptres")
    with pytest.raises(InputError, match="positive"):
        ThinLens(0.0, 2.0, 1e-6)
    with pytest.raises(InputError, match="positive"):
        circle_of_confusion(-1.0, 0.3, 0.0029, 1.0)


# --------------------------------------------------------------------------- renderers

@pytest.mark.parametrize("depth_m, focus_m", [(0.7, 0.15), (3.0, 0.1), (1.0, 0.3), (0.3, 0.3), (0.2, 0.15)])
def test_fronto_parallel_plane_is_the_aif_blurred_by_the_predicted_gaussian(depth_m, focus_m):
    lens = LENS_PRESETS["fod500"]
    aif = texture(60, 84, seed=3)
    depth = np.full((60, 84), depth_m)
    sigma = float(lens.sigma_px(depth_m, focus_m))
    expected = direct_gaussian_blur(aif, sigma)
    for spacing in ("inverse", "quantile"):
        rendered = render_layered(aif, depth, focus_m, lens, spacing=spacing, layers=8)
        assert rendered.shape == aif.shape and rendered.dtype == np.float32
        np.testing.assert_allclose(rendered, expected, atol=2e-6)
    # and the same with OpenCV's own kernel choice for that σ
    radius = max(1, math.ceil(4 * sigma)) if sigma > 0 else 0
    if radius:
        opencv = cv2.GaussianBlur(aif, (2 * radius + 1,) * 2, sigma, borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(render_layered(aif, depth, focus_m, lens), opencv, atol=2e-6)
    else:
        np.testing.assert_array_equal(render_layered(aif, depth, focus_m, lens), aif)


@pytest.mark.parametrize("depth_m, focus_m", [(0.7, 0.15), (3.0, 0.1), (1.0, 0.3), (0.5, 0.3)])
def test_gather_agrees_with_layered_on_a_plane(depth_m, focus_m):
    lens = LENS_PRESETS["fod500"]
    aif = cv2.GaussianBlur(texture(64, 96, seed=4), (0, 0), 0.7)
    depth = np.full((64, 96), depth_m)
    layered = render_layered(aif, depth, focus_m, lens)
    gather = render_gather(aif, depth, focus_m, lens)
    # a two-Gaussian mixture with the right variance stands in for the Gaussian between ladder steps
    assert np.abs(gather - layered).max() < 0.02
    assert np.abs(gather - layered).mean() < 0.004


def slanted_plane(height=128, width=320, near=0.08, far=2.0, seed=5):
    """Texture on a plane whose inverse depth runs linearly from 1/near (left) to 1/far (right)."""
    inverse = 1 / near + (1 / far - 1 / near) * np.arange(width) / (width - 1)
    return texture(height, width, seed), np.broadcast_to(1 / inverse, (height, width)).copy(), inverse


@pytest.mark.parametrize("mode", ["layered", "gather"])
def test_slanted_plane_is_sharpest_in_the_slice_focused_nearest_its_depth(mode):
    lens = LENS_PRESETS["fod500"]
    aif, depth, inverse = slanted_plane()
    stack = focal_stack(aif, depth, FOD500_FOCUS, lens, mode=mode)
    energy = np.stack([laplacian_energy(image) for image in stack.slices])
    sigma = lens.slice_sigmas_px(stack)
    sharpest, predicted = energy.argmax(axis=0), sigma.argmin(axis=0)
    ordered = np.sort(sigma, axis=0)
    clear = (ordered[1] - ordered[0]) > 0.3  # where the nearest focus is not a near tie
    clear[:8], clear[-8:], clear[:, :8], clear[:, -8:] = False, False, False, False
    assert clear.mean() > 0.4
    assert (sharpest == predicted)[clear].mean() > 0.98
    # blur grows with |1/d − 1/s|: per slice, column focus energy falls as that distance grows
    columns = energy.mean(axis=1)[:, 8:-8]
    for i, focus in enumerate(FOD500_FOCUS):
        assert spearman(columns[i], np.abs(inverse[8:-8] - 1 / focus)) < -0.95


def occlusion_scene(size=96, seed=6):
    """A near square (0.15 m, red texture, no green) in front of a far plane (3 m, green and blue
    texture, no red)."""
    rng = np.random.default_rng(seed)
    aif = np.zeros((size, size, 3), np.float32)
    aif[..., 1], aif[..., 2] = rng.random((size, size)), rng.random((size, size))
    square = np.zeros((size, size), bool)
    square[32:64, 32:64] = True
    aif[square] = 0.0
    aif[square, 0] = 0.5 + 0.5 * rng.random(square.sum())
    ring = np.zeros_like(square)
    ring[29:67, 29:67] = True
    ring &= ~square
    return aif, np.where(square, 0.15, 3.0), square, ring


def test_layered_focused_near_keeps_the_near_edge_sharp_and_the_far_blur_off_it():
    lens = LENS_PRESETS["fod500"]
    aif, depth, square, ring = occlusion_scene()
    assert lens.sigma_px(3.0, 0.15) > 2.0  # the background is clearly blurred
    layered = render_layered(aif, depth, 0.15, lens)
    # the near square is exactly the AiF up to its edge: no far blur over it
    np.testing.assert_array_equal(layered[square], aif[square])
    # its edge keeps the AiF's step (no softening from the blurred background)
    np.testing.assert_allclose(layered[40:56, 32, 0] - layered[40:56, 31, 0], aif[40:56, 32, 0], atol=1e-6)
    # and the sharp foreground colour does not bleed into the blurred background next to it
    assert np.abs(layered[ring, 0]).max() < 1e-6
    # the background is its own layer blurred and divided by its blurred coverage (no dark halo
    # where the square's hole lowers that coverage)
    sigma = float(lens.sigma_px(3.0, 0.15))
    background = (~square).astype(np.float64)[..., None]
    coverage = direct_gaussian_blur(np.repeat(background, 3, -1), sigma)
    expected = direct_gaussian_blur(aif * background, sigma) / np.maximum(coverage, 1e-12)
    np.testing.assert_allclose(layered[~square], expected[~square], atol=1e-5)
    # the gather approximation does bleed it there: the reason the layered model exists
    gather = render_gather(aif, depth, 0.15, lens)
    assert gather[ring, 0].max() > 0.1


def test_layered_focused_far_spreads_the_near_blur_over_the_sharp_background():
    lens = LENS_PRESETS["fod500"]
    aif, depth, square, ring = occlusion_scene()
    layered = render_layered(aif, depth, 3.0, lens)
    assert layered[ring, 0].max() > 0.1  # the blurred near object overlaps the background
    far = np.ones_like(square)
    far[20:76, 20:76] = False
    np.testing.assert_array_equal(layered[far], aif[far])  # the background itself is in focus


def test_focal_stack_ground_truth_and_focus_units():
    lens = LENS_PRESETS["ddff12"]
    aif, depth, _ = slanted_plane(40, 60, near=0.6, far=6.0)
    focus_m = DDFF12_DISPARITY_SCALE / np.linspace(0.28, 0.02, 10)
    stack = focal_stack(aif, depth, focus_m, lens, focus_unit="disparity")
    assert isinstance(stack, FocalStack) and stack.source is None  # the one focal stack of anydepth.focus
    assert stack.slices.shape == (10, 40, 60, 3) and stack.slices.dtype == np.float32
    assert stack.unit == "disparity" and stack.disparity_scale == DDFF12_DISPARITY_SCALE
    np.testing.assert_allclose(stack.positions, np.linspace(0.28, 0.02, 10), rtol=1e-12)
    np.testing.assert_allclose(stack.positions_in("metres"), focus_m)
    np.testing.assert_allclose(stack.ground_truth, DDFF12_DISPARITY_SCALE / depth, rtol=1e-6)
    np.testing.assert_array_equal(stack.aif, aif)
    np.testing.assert_allclose(stack.ground_truth_in("metres"), depth, rtol=1e-6)
    metres = focal_stack(aif, depth, focus_m[:3], lens, mode="gather")
    assert metres.unit == "metres"
    np.testing.assert_array_equal(metres.positions, focus_m[:3])
    np.testing.assert_array_equal(metres.ground_truth, depth.astype(np.float32))
    # the predicted blur is the same in either unit (0 where the ground truth is invalid)
    np.testing.assert_allclose(lens.slice_sigmas_px(stack)[:3], lens.slice_sigmas_px(metres), rtol=1e-5)
    metres.ground_truth[0, 0] = 0.0
    assert (lens.slice_sigmas_px(metres)[:, 0, 0] == 0).all()


def test_lens_presets_and_resizing():
    ddff = LENS_PRESETS["ddff12"]
    assert ddff.focal_length_m / ddff.pixel_pitch_m == pytest.approx(521.4052)
    # over DDFF-12's range (disparity 0.02–0.28 px) the blur stays a few pixels
    worst = ddff.sigma_px(DDFF12_DISPARITY_SCALE / 0.02, DDFF12_DISPARITY_SCALE / 0.28)
    assert 1.0 < worst < 4.0
    phone = LENS_PRESETS["phone"]
    small = phone.resized(256)
    assert small.pixel_pitch_m == pytest.approx(phone.pixel_pitch_m * 4080 / 256)
    assert small.sigma_px(2.21, 0.35) == pytest.approx(phone.sigma_px(2.21, 0.35) * 256 / 4080)
    assert tl.get_lens("fod500") is LENS_PRESETS["fod500"]
    with pytest.raises(InputError, match="unknown lens"):
        tl.get_lens("hasselblad")
    with pytest.raises(InputError, match="reference width"):
        ThinLens(0.05, 2.0, 5e-6).resized(100)


def test_gather_kernel_matches_a_plain_numpy_reference():
    rng = np.random.default_rng(7)
    level_sigmas, levels = tl._blur_levels(texture(30, 40), 6.0, math.sqrt(2.0))
    sigma_map = rng.random((30, 40)) * 7.0  # includes σ beyond the last level
    sigma_map[0, :5] = level_sigmas[:5]  # exactly on ladder steps
    index = np.clip(np.searchsorted(level_sigmas, sigma_map, side="right") - 1, 0, len(level_sigmas) - 2)
    v0, v1 = level_sigmas[index] ** 2, level_sigmas[index + 1] ** 2
    weight = np.clip((sigma_map ** 2 - v0) / (v1 - v0), 0, 1)[..., None]
    lower = np.take_along_axis(levels, index[None, ..., None], axis=0)[0]
    upper = np.take_along_axis(levels, index[None, ..., None] + 1, axis=0)[0]
    np.testing.assert_allclose(tl._gather(level_sigmas, levels, sigma_map), lower + weight * (upper - lower), atol=1e-6)


def test_fused_layer_compositing_matches_a_plain_numpy_reference():
    """The numba premultiply / over kernels with bounding-box crops against whole-image numpy:
    alpha = (label == k), blur (colour·alpha, alpha), over from far to near, divide by coverage."""
    rng = np.random.default_rng(9)
    aif = texture(50, 70, seed=10)
    field = cv2.GaussianBlur(rng.random((50, 70)).astype(np.float32), (0, 0), 6)
    depth = 0.1 + 2.9 * (field.astype(np.float64) - field.min()) / (field.max() - field.min())
    layers = tl._split_layers(depth, 9, "inverse")
    sigmas = np.array([0.0, 0.4, 1.3, 2.0, 3.7, 0.9, 5.5, 0.2, 1.1])[: len(layers.inverse_depth)]
    colour = np.zeros((50, 70, 3))
    coverage = np.zeros((50, 70, 1))
    for k, sigma in enumerate(sigmas):
        alpha = (layers.label == k).astype(np.float64)[..., None]
        blurred = direct_gaussian_blur(np.concatenate([aif * alpha, alpha], axis=-1), sigma)
        colour = blurred[..., :3] + (1 - blurred[..., 3:]) * colour
        coverage = blurred[..., 3:] + (1 - blurred[..., 3:]) * coverage
    # float32 against float64: small coverages amplify rounding a little
    np.testing.assert_allclose(tl._composite_layers(aif, layers, sigmas), colour / coverage, atol=1e-4)
    # the layers are far to near and each mean inverse depth lies inside its own pixels' range
    assert np.all(np.diff(layers.inverse_depth) > 0)
    for k, inverse in enumerate(layers.inverse_depth):
        own = 1 / depth[layers.label == k]
        assert own.min() * (1 - 1e-12) <= inverse <= own.max() * (1 + 1e-12)


def test_layered_five_slice_256_stack_is_fast():
    lens = ThinLens(2.9e-3, 0.5, 12.5e-6)  # twice FoD500's aperture: σ up to ~7 px
    rng = np.random.default_rng(8)
    noise = cv2.GaussianBlur(rng.random((256, 256)).astype(np.float32), (0, 0), 16)
    depth = 0.1 + 2.9 * (noise - noise.min()) / (noise.max() - noise.min())
    focal_stack(texture(64, 64), np.ones((64, 64)), [0.3], lens, mode="gather")  # compile the kernel
    start = time.perf_counter()
    focal_stack(texture(256, 256), depth, FOD500_FOCUS, lens, mode="layered")
    assert time.perf_counter() - start < 2.0
