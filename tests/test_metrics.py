"""Metric known answers (computed by hand in the comments), alignment, and the protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anydepth.errors import InputError
from anydepth.metrics import (
    SequenceScores,
    abs_rel,
    align_median,
    align_scale_shift,
    badpix,
    bumpiness,
    delta,
    evaluate_ddff12,
    evaluate_ddff12_sample,
    evaluate_event_frame,
    mae,
    mse,
    rmse,
    rmse_log,
    scale_shift_lstsq,
    silog,
    sq_rel,
)
from anydepth.metrics.protocols import EventDepthProtocol, center_crop


def test_error_metrics_known_answers():
    assert abs_rel([2.0, 4.0], [1.0, 4.0]) == pytest.approx(0.5)  # (1/1 + 0/4) / 2
    assert sq_rel([2.0, 4.0], [1.0, 2.0], denominator="gt") == pytest.approx(1.5)  # (1/1 + 4/2) / 2
    assert sq_rel([2.0, 4.0], [1.0, 2.0], denominator="gt2") == pytest.approx(1.0)  # (1/1 + 4/4) / 2
    assert rmse([1.0, 3.0], [1.0, 1.0]) == pytest.approx(math.sqrt(2))  # sqrt((0 + 4) / 2)
    assert mse([1.0, 3.0], [1.0, 1.0]) == pytest.approx(2.0)
    assert mae([1.0, 3.0, 0.0], [1.0, 1.0, 1.0]) == pytest.approx(1.0)  # (0 + 2 + 1) / 3
    assert rmse_log([math.e, 1.0], [1.0, 1.0]) == pytest.approx(math.sqrt(0.5))  # sqrt((1 + 0) / 2)


def test_silog_variants_are_named_and_scale_invariant():
    prediction, target = np.array([math.e, 1.0]), np.array([1.0, 1.0])
    # D = log d* - log d = [-1, 0]; mean(D^2) = 0.5, mean(D) = -0.5
    assert silog(prediction, target) == pytest.approx(0.25)  # Depth AnyEvent: 0.5 - 0.25
    assert silog(prediction, target, lam=0.5, root=True) == pytest.approx(math.sqrt(0.375))  # Eigen
    assert silog(3.7 * prediction, target) == pytest.approx(0.25)


def test_delta_strict_and_inclusive():
    prediction, target = [1.0, 1.25, 1.5, 3.0], [1.0, 1.0, 1.0, 1.0]
    assert delta(prediction, target, k=1) == 0.25  # only ratio 1 is < 1.25
    assert delta(prediction, target, k=1, inclusive=True) == 0.5  # 1.25 counts with <=
    assert delta(prediction, target, k=2) == 0.75  # 1.5 < 1.5625
    assert delta(prediction, target, k=3) == 0.75  # 3 > 1.953


def test_masks_nan_and_empty_selection():
    prediction = np.array([[1.0, 2.0], [3.0, 100.0]])
    target = np.array([[1.0, 1.0], [np.nan, 1.0]])
    mask = np.array([[True, True], [True, False]])
    assert abs_rel(prediction, target, mask) == pytest.approx(0.5)  # NaN gt and masked pixel dropped
    assert math.isnan(abs_rel(prediction, target, np.zeros((2, 2), bool)))
    with pytest.raises(InputError, match="differs"):
        abs_rel(np.ones(3), np.ones(4))


def test_badpix():
    assert badpix([0.15, 0.18, 0.2], [0.1, 0.1, 0.1]) == pytest.approx(200 / 3)  # errors 0.05, 0.08, 0.1


def test_bumpiness_of_a_quadratic():
    # diff = c x^2: Scharr (next - previous, smoothing summing to 1) gives 4 c x, then 8 c; the mixed
    # and y terms vanish, so the Hessian norm is 8 c inside (two pixels away from the border).
    y, x = np.mgrid[0:12, 0:15].astype(np.float64)
    inside = np.zeros_like(x, bool)
    inside[2:-2, 2:-2] = True
    assert bumpiness(0.001 * x**2, np.zeros_like(x), inside) == pytest.approx(100 * 0.008)
    assert bumpiness(0.1 * x**2, np.zeros_like(x), inside) == pytest.approx(100 * 0.05)  # clipped
    assert bumpiness(2 * x + 3 * y, np.zeros_like(x), inside) == pytest.approx(0.0, abs=1e-12)


def test_scharr_matches_scikit_image_inside():
    filters = pytest.importorskip("skimage.filters")
    from anydepth.metrics.depth import _scharr

    image = np.random.default_rng(0).normal(size=(9, 11))
    np.testing.assert_allclose(_scharr(image, 0)[1:-1, 1:-1], filters.scharr_h(image)[1:-1, 1:-1], atol=1e-12)
    np.testing.assert_allclose(_scharr(image, 1)[1:-1, 1:-1], filters.scharr_v(image)[1:-1, 1:-1], atol=1e-12)


def test_scale_shift_recovers_an_affine_map_numpy_and_torch():
    rng = np.random.default_rng(1)
    target = rng.uniform(1, 10, size=(8, 9))
    prediction = (target + 1.5) / 0.5  # target = 0.5 * prediction - 1.5
    mask = np.ones_like(target, bool)
    prediction[0, 0] = 1e6  # an outlier outside the mask
    mask[0, 0] = False
    scale, shift = scale_shift_lstsq(prediction, target, mask)
    assert (scale, shift) == pytest.approx((0.5, -1.5))
    batch = torch.from_numpy(np.stack([prediction, 2 * prediction]))
    scales, shifts = scale_shift_lstsq(batch, torch.from_numpy(np.stack([target, target])), torch.from_numpy(np.stack([mask, mask])))
    torch.testing.assert_close(scales, torch.tensor([0.5, 0.25], dtype=torch.float64))
    torch.testing.assert_close(shifts, torch.tensor([-1.5, -1.5], dtype=torch.float64))
    aligned = align_scale_shift(prediction, target, mask)
    np.testing.assert_allclose(aligned[mask], target[mask])


def test_weighted_fit_ignores_zero_weight_and_singular_gives_zero():
    prediction = np.array([[1.0, 2.0, 3.0]])
    target = np.array([[2.0, 4.0, 100.0]])
    assert scale_shift_lstsq(prediction, target, weights=np.array([[1.0, 1.0, 0.0]])) == pytest.approx((2.0, 0.0))
    assert scale_shift_lstsq(np.ones((2, 2)), np.ones((2, 2))) == (0.0, 0.0)


def test_disparity_space_alignment_returns_depth():
    depth = np.random.default_rng(2).uniform(0.5, 8.0, size=(6, 7))
    disparity = 3.0 / depth + 0.2  # a relative disparity: affine in 1/depth
    depth_with_hole = depth.copy()
    depth_with_hole[0, 0] = 0.0  # invalid gt
    aligned = align_scale_shift(disparity, depth_with_hole, space="disparity")
    np.testing.assert_allclose(aligned, depth, rtol=1e-9)
    aligned_t = align_scale_shift(torch.from_numpy(disparity), torch.from_numpy(depth_with_hole), space="disparity")
    np.testing.assert_allclose(aligned_t.numpy(), depth, rtol=1e-9)


def test_median_scaling():
    target = np.arange(1.0, 13.0).reshape(3, 4)
    np.testing.assert_allclose(align_median(0.25 * target, target), target)


def test_dae_protocol_gt_stretch_quirk_and_corrected_variant():
    gt = np.array([[10.0, 20.0], [40.0, np.nan]])
    prediction = np.array([[10.0, 20.0], [40.0, 5.0]])
    # official: gt -> gt / 40 * 80 = [[20, 40], [80, nan]]; valid needs gt < 80 and pred < 80
    quirk = evaluate_event_frame(prediction, gt, EventDepthProtocol("quirk", stretch_gt=True, align=False))
    assert quirk["abs_rel"] == pytest.approx((10 / 20 + 20 / 40) / 2, rel=1e-5)
    corrected = evaluate_event_frame(prediction, gt, EventDepthProtocol("fixed", stretch_gt=False, align=False))
    assert corrected["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    assert corrected["delta1"] == 1.0


def test_dae_protocol_aligns_in_linear_depth_and_clips():
    rng = np.random.default_rng(3)
    gt = rng.uniform(2.0, 70.0, size=(20, 30))
    gt[0, 0] = 80.0  # the farthest point equals the clip: no stretch
    gt[1, 1] = np.nan
    prediction = 0.1 * gt + 2.0  # affine in depth: perfect after alignment
    prediction[1, 1] = 1e3
    scores = evaluate_event_frame(prediction, gt, "dae-mvsec")
    assert scores["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert scores["delta1"] == 1.0
    assert set(k for k in scores if k.startswith("10_")) == {f"10_{k}" for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "delta1", "delta2", "delta3", "mae")}
    # one pixel with error: |d - d*| known by hand
    bad = gt.copy()
    bad[1, 1] = 40.0
    prediction = bad.copy()
    prediction[2, 2] = bad[2, 2] + 5.0
    scores = evaluate_event_frame(prediction, bad, EventDepthProtocol("raw", stretch_gt=False, align=False))
    valid = (bad > 0) & (bad < 80)
    assert scores["mae"] == pytest.approx(5.0 / valid.sum())
    assert scores["rmse"] == pytest.approx(math.sqrt(25.0 / valid.sum()))


def test_frame_without_valid_pixels_is_nan_and_sequences_average_by_sequence():
    scores = evaluate_event_frame(np.ones((4, 4)), np.zeros((4, 4)), "dae-mvsec")
    assert math.isnan(scores["abs_rel"])
    table = SequenceScores()
    for value in (0.1, 0.3, float("nan")):
        table.add("outdoor_day1", {"abs_rel": value})
    table.add("outdoor_night1", {"abs_rel": 0.6})
    assert table.per_sequence()["outdoor_day1"]["abs_rel"] == pytest.approx(0.2)
    assert table.summary()["abs_rel"] == pytest.approx(0.4)  # mean of sequences, not of frames


def test_dsec_preset_crops_the_centre():
    array = np.arange(480 * 640).reshape(480, 640)
    cropped = center_crop(array, (320, 640))
    assert cropped.shape == (320, 640) and cropped[0, 0] == array[80, 0]
    with pytest.raises(InputError, match="larger"):
        center_crop(np.zeros((10, 10)), (20, 5))


def test_ddff12_sample_known_answer():
    gt = np.array([[0.1, 0.2], [0.0, 0.4]])
    prediction = np.array([[0.1, 0.1], [0.3, 0.5]])
    scores = evaluate_ddff12_sample(prediction, gt)
    # three valid pixels, errors 0, -0.1, +0.1
    assert scores["mse"] == pytest.approx(0.02 / 3)
    assert scores["rms"] == pytest.approx(math.sqrt(0.02 / 3))
    assert scores["abs_rel"] == pytest.approx((0 + 0.5 + 0.25) / 3)
    assert scores["sq_rel"] == pytest.approx((0.01 / 0.2 + 0.01 / 0.4) / 3)  # DDFF-12 divides by d*
    assert scores["log_rms"] == pytest.approx(math.sqrt((math.log(0.5) ** 2 + math.log(1.25) ** 2) / 3))
    assert scores["delta1"] == pytest.approx(100 / 3)  # ratios 1, 2, 1.25: only 1 is < 1.25
    assert scores["delta2"] == pytest.approx(200 / 3)
    assert scores["badpix"] == pytest.approx(200 / 3)
    mean = evaluate_ddff12([(prediction, gt), (gt, gt)])
    assert mean["mse"] == pytest.approx(0.01 / 3)
    assert evaluate_ddff12_sample(prediction, np.zeros_like(gt))["mse"] == 0.0
