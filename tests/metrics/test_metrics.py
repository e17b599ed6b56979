"""Metric known answers (computed by hand in the comments), alignment, and the protocols; the
Depth AnyEvent presets against a reference made with the authors' own code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anydepth.errors import InputError
from anydepth.metrics import (
    METRICS_KEYWORDS,
    OFFICIAL_METRICS,
    PROTOCOLS,
    EventDepthProtocol,
    SequenceScores,
    abs_rel,
    align_median,
    align_scale_shift,
    apply_trainer,
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
from anydepth.metrics.protocols import center_crop
from tests.support import DATA


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
    quirk = evaluate_event_frame(prediction, gt, EventDepthProtocol("quirk", stretch_gt=True, align=False)).scores
    assert quirk["abs_rel"] == pytest.approx((10 / 20 + 20 / 40) / 2, rel=1e-5)
    corrected = evaluate_event_frame(prediction, gt, EventDepthProtocol("fixed", stretch_gt=False, align=False)).scores
    assert corrected["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    assert corrected["delta1"] == 1.0


def test_dae_protocol_aligns_in_linear_depth_and_clips():
    rng = np.random.default_rng(3)
    gt = rng.uniform(2.0, 70.0, size=(20, 30))
    gt[0, 0] = 80.0  # the farthest point equals the clip: no stretch
    gt[1, 1] = np.nan
    prediction = 0.1 * gt + 2.0  # affine in depth: perfect after alignment
    prediction[1, 1] = 1e3
    scores = evaluate_event_frame(prediction, gt, "dae-mvsec").scores
    assert scores["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert scores["delta1"] == 1.0
    assert set(k for k in scores if k.startswith("10_")) == {f"10_{k}" for k in OFFICIAL_METRICS}
    # one pixel with error: |d - d*| known by hand
    bad = gt.copy()
    bad[1, 1] = 40.0
    prediction = bad.copy()
    prediction[2, 2] = bad[2, 2] + 5.0
    scores = evaluate_event_frame(prediction, bad, EventDepthProtocol("raw", stretch_gt=False, align=False)).scores
    valid = (bad > 0) & (bad < 80)
    assert scores["mae"] == pytest.approx(5.0 / valid.sum())
    assert scores["rmse"] == pytest.approx(math.sqrt(25.0 / valid.sum()))


def test_frame_without_valid_pixels_is_nan_and_sequences_average_by_sequence():
    scores = evaluate_event_frame(np.ones((4, 4)), np.zeros((4, 4)), "dae-mvsec").scores
    assert math.isnan(scores["abs_rel"]) and all(math.isnan(v) for v in scores.values())
    table = SequenceScores()
    for value in (0.1, 0.3, float("nan")):
        table.add("outdoor_day1", {"abs_rel": value})
    table.add("outdoor_night1", {"abs_rel": 0.6})
    assert table.per_sequence()["outdoor_day1"]["abs_rel"] == pytest.approx(0.2)
    assert table.summary()["abs_rel"] == pytest.approx(0.4)  # mean of sequences, not of frames


def test_dae_frame_by_hand_in_float32():
    # GT max 40 -> stretched x2: [[20, 40], [80, 0]]; no alignment, prediction clipped to [0, 80].
    gt = np.array([[10.0, 20.0], [40.0, np.nan]])
    prediction = np.array([[25.0, 40.0], [90.0, 5.0]])
    frame = evaluate_event_frame(prediction, gt, EventDepthProtocol("raw", align=False))
    np.testing.assert_array_equal(frame.target, np.float32([[20, 40], [80, 0]]))
    np.testing.assert_array_equal(frame.prediction, np.float32([[25, 40], [80, 5]]))
    np.testing.assert_array_equal(frame.error_map, np.float32([[5, 0], [0, 5]]))
    assert (frame.scale, frame.shift) == (1.0, 0.0)
    m = frame.metrics
    assert list(m) == list(METRICS_KEYWORDS)
    # valid: 0 < gt < 80 and 0 < pred < 80 -> pixels (gt 20, pred 25) and (40, 40)
    assert m["_abs_rel_diff"].dtype == np.float32 and m["_threshold_delta_1.25"].dtype == np.float64
    assert m["_abs_rel_diff"] == pytest.approx((5 / 20 + 0) / 2, rel=1e-6)  # eps 1e-5 in the denominator
    assert m["_squ_rel_diff"] == pytest.approx((25 / 400 + 0) / 2, rel=1e-6)
    assert m["_RMS_linear"] == pytest.approx(math.sqrt(25 / 2), rel=1e-6)
    assert m["_RMS_log"] == pytest.approx(math.sqrt(math.log(0.8) ** 2 / 2), rel=1e-5)
    assert m["_SILog"] == pytest.approx(math.log(0.8) ** 2 / 2 - (math.log(0.8) / 2) ** 2, rel=1e-4)
    assert (m["_mean_target_depth"], m["_median_target_depth"]) == (30.0, 30.0)
    assert (m["_mean_prediction_depth"], m["_median_prediction_depth"], m["_median_diff"]) == (32.5, 32.5, 2.5)
    assert m["_mean_depth_error"] == 2.5
    assert m["_threshold_delta_1.25"] == 1.0  # 25 / 20.00001 = 1.2499994 <= 1.25
    # below 10 m: no pixel -> NaN; below 30 m: only (20, 25)
    assert all(math.isnan(v) for k, v in m.items() if k.startswith("_10_"))
    assert m["_30_abs_rel_diff"] == pytest.approx(0.25, rel=1e-6) and m["_30_median_diff"] == 5.0


def test_dae_log_depth_conversion_by_hand():
    # p = 1 -> exp(0) = 1, p = 0 -> exp(-3.70378); divided by the max (1) and times 80
    gt = np.array([[80.0, 2.0], [0.0, 1.0]])
    prediction = np.array([[1.0, 0.0], [0.5, 0.0]])
    frame = evaluate_event_frame(prediction, gt, EventDepthProtocol("log", align=False, log_depth=True))
    np.testing.assert_allclose(frame.prediction, [[80, 80 * math.exp(-3.70378)], [80 * math.exp(-3.70378 / 2), 80 * math.exp(-3.70378)]], rtol=1e-6)
    assert frame.prediction.dtype == np.float32
    # valid: gt 2 and 1 (gt 80 is the max, gt 0 invalid); predictions 1.971 m both
    assert frame.metrics["_mean_depth_error"] == pytest.approx((0.0287 + 0.9713) / 2, rel=1e-3)


def test_dae_presets_match_the_authors_code():
    """tests/data/dae_evaluation_reference.npz was written by the authors' test.py `run` and
    evaluation.py `add_to_metrics` (Tesla-SHT/depthanyevent e1a80bf, run from their checkout with
    their MVSEC loader's `get_depth_map` reading each GT, torch 2.13 / numpy 2.4, one thread), on
    six 8x10 frames with NaN / zero GT and settings from a trainer section (scale-shift, log depth,
    clip 50 m, reg_factor 5, none), and by their `main()` over two sequences (3 and 4 frames, one
    singular) for the per-sequence and mean values. Every value must be identical."""
    ref = np.load(DATA / "dae_evaluation_reference.npz")
    names = ref["names"].item().decode().split(",")
    assert names == list(METRICS_KEYWORDS)
    for gt, prediction, (scaleshift, logdepth, clip, reg), expected in zip(ref["gt"], ref["prediction"], ref["trainer"], ref["metrics"]):
        trainer = {"use_scaleshift": bool(scaleshift), "use_logdepth": bool(logdepth), "clip_distance": clip, "reg_factor": reg}
        protocol, _ = apply_trainer("dae-mvsec", {"trainer": trainer})
        frame = evaluate_event_frame(prediction, gt, protocol)
        np.testing.assert_array_equal(np.array([frame.metrics[k] for k in names], np.float64), expected, err_msg=str(trainer))
    table = SequenceScores()
    start = 0
    for sequence, length in zip(("seq_a", "seq_b"), ref["agg_lengths"]):
        for gt, prediction in zip(ref["agg_gt"][start:start + length], ref["agg_prediction"][start:start + length]):
            table.add(sequence, evaluate_event_frame(prediction, gt, "dae-mvsec").metrics)
        start += length
    rows = [table.per_sequence()["seq_a"], table.per_sequence()["seq_b"], table.summary()]
    np.testing.assert_array_equal(np.array([[row[k] for k in names] for row in rows], np.float64), ref["agg_metrics"])
    # the float64 arithmetic (the corrected presets') is close but not identical
    gt, prediction = ref["gt"][0], ref["prediction"][0]
    wide = evaluate_event_frame(prediction, gt, EventDepthProtocol("f64", precision="float64")).metrics
    assert wide["_SILog"] == pytest.approx(ref["metrics"][0][names.index("_SILog")], rel=1e-3)


def test_nonfinite_prediction_poisons_the_fit_and_singular_fit_is_zero():
    gt = np.random.default_rng(4).uniform(1, 60, (6, 7))
    prediction = gt.copy()
    prediction[0, 0] = np.nan
    frame = evaluate_event_frame(prediction, gt, "dae-mvsec")
    assert math.isnan(frame.scale) and all(math.isnan(v) for v in frame.metrics.values())
    frame = evaluate_event_frame(np.full((6, 7), 3.0), gt, "dae-mvsec")
    assert (frame.scale, frame.shift) == (0.0, 0.0) and math.isnan(frame.metrics["_abs_rel_diff"])


def test_trainer_section_overrides_as_test_py():
    protocol, taken = apply_trainer("dae-mvsec", {"trainer": {"use_scaleshift": False, "clip_distance": 50, "lr": 1e-4}})
    assert taken == {"use_scaleshift": False, "clip_distance": 50}  # other keys ignored
    assert (protocol.align, protocol.clip, protocol.log_depth, protocol.reg_factor) == (False, 50.0, False, 3.70378)
    assert protocol.precision == "float32" and protocol.stretch_gt
    corrected, _ = apply_trainer("dae-mvsec-corrected", {"trainer": {"use_logdepth": True, "reg_factor": 2.0}})
    assert corrected.log_depth and corrected.reg_factor == 2.0 and corrected.precision == "float64" and corrected.align
    assert apply_trainer("dae-mvsec", {"model": {}}) == (PROTOCOLS["dae-mvsec"], {})
    assert apply_trainer("dae-mvsec", None) == (PROTOCOLS["dae-mvsec"], {})
    assert apply_trainer("metric", {"trainer": {"use_scaleshift": True}}) == (PROTOCOLS["metric"], {})
    for bad in ({"use_scaleshift": "yes"}, {"clip_distance": -1}, {"reg_factor": float("nan")}, {"clip_distance": True}):
        with pytest.raises(InputError, match="trainer"):
            apply_trainer("dae-mvsec", {"trainer": bad})
    with pytest.raises(InputError, match="precision"):
        EventDepthProtocol("x", precision="float16")


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
