"""Evaluation protocols that reproduce published tables.

Depth AnyEvent (`dae-*`, official `test.py` + `evaluation.py`), per frame:
  1. ground truth clipped to [0, clip], divided by its own maximum (NaN ignored) and multiplied by
     clip: a frame whose farthest valid point is nearer than clip is stretched. This is a quirk of
     the official code; `dae-*-corrected` skips the stretch (only the clip is applied);
  2. prediction (metric or relative depth) aligned to that ground truth by a least-squares scale
     and shift in linear depth over pixels with ground truth > 0 (`align=False` skips it, for
     metric predictions), then clipped to [0, clip];
  3. valid pixels: 0 < gt < max(gt) and 0 < pred < max(gt) (strict, so the farthest pixel drops);
  4. metrics with eps = 1e-5: abs_rel, sq_rel (/ d*^2), rmse, rmse_log, silog (lam 1, no root),
     delta1-3 (ratio <= 1.25^k), mae; again with gt < 10, 20, 30 m (keys prefixed "10_", ...).
  Frames with no valid pixel give NaN; the sequence score is the nan-mean of its frames, the
  dataset score the nan-mean of its sequences.

DDFF-12 (`ddff12`, DFV's `eval_DDFF12.py`), per sample, in disparity over gt > 0:
  mse, rms, log_rms, abs_rel (/ d*), sq_rel (/ d*), delta1-3 (%, ratio < 1.25^k), badpix (%, |e| > 0.07),
  bumpiness (%, Hessian norm clipped at 0.05); the dataset score is the mean over samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anydepth.errors import InputError
from anydepth.metrics import depth as m
from anydepth.metrics.align import scale_shift_lstsq

DAE_EPS = 1e-5
DAE_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "delta1", "delta2", "delta3", "mae")
DDFF_METRICS = ("mse", "rms", "log_rms", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "badpix", "bumpiness")


@dataclass(frozen=True)
class EventDepthProtocol:
    """Settings of a Depth AnyEvent style evaluation.

    crop: (height, width) centre crop applied to prediction and ground truth before scoring, or None.
    """

    name: str
    clip: float = 80.0
    stretch_gt: bool = True
    align: bool = True
    cutoffs: tuple[float, ...] = (10.0, 20.0, 30.0)
    crop: tuple[int, int] | None = None
    description: str = ""


PROTOCOLS: dict[str, EventDepthProtocol] = {
    "dae-mvsec": EventDepthProtocol("dae-mvsec", description="Depth AnyEvent on MVSEC (260x346), official code, GT stretch quirk"),
    "dae-dsec": EventDepthProtocol("dae-dsec", crop=(320, 640), description="Depth AnyEvent on DSEC, centre crop 320x640, official code, GT stretch quirk"),
    "dae-mvsec-corrected": EventDepthProtocol("dae-mvsec-corrected", stretch_gt=False, description="as dae-mvsec without the GT stretch"),
    "dae-dsec-corrected": EventDepthProtocol("dae-dsec-corrected", stretch_gt=False, crop=(320, 640), description="as dae-dsec without the GT stretch"),
    "metric": EventDepthProtocol("metric", stretch_gt=False, align=False, description="metric prediction, no alignment, no GT stretch"),
}


def get_protocol(name: str) -> EventDepthProtocol:
    if name not in PROTOCOLS:
        raise InputError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def center_crop(array: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Centre crop of the last two axes to size (h, w); None returns the array unchanged."""
    if size is None:
        return array
    height, width = array.shape[-2:]
    if size[0] > height or size[1] > width:
        raise InputError(f"crop {size[0]}x{size[1]} is larger than the {height}x{width} map")
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return array[..., top : top + size[0], left : left + size[1]]


def _dae_metrics(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    eps = DAE_EPS
    return {
        "abs_rel": m.abs_rel(prediction, target, mask, eps=eps),
        "sq_rel": m.sq_rel(prediction, target, mask, denominator="gt2", eps=eps),
        "rmse": m.rmse(prediction, target, mask),
        "rmse_log": m.rmse_log(prediction, target, mask, eps=eps),
        "silog": m.silog(prediction, target, mask, lam=1.0, root=False, eps=eps),
        "delta1": m.delta(prediction, target, mask, 1, inclusive=True, eps=eps),
        "delta2": m.delta(prediction, target, mask, 2, inclusive=True, eps=eps),
        "delta3": m.delta(prediction, target, mask, 3, inclusive=True, eps=eps),
        "mae": m.mae(prediction, target, mask),
    }


def prepare_event_gt(gt_depth: np.ndarray, protocol: EventDepthProtocol) -> np.ndarray:
    """Ground truth (H, W) metres (NaN or 0 = invalid) as the protocol scores it."""
    target = np.clip(np.asarray(gt_depth, dtype=np.float64), 0.0, protocol.clip)
    if protocol.stretch_gt:
        finite = target[np.isfinite(target)]
        peak = finite.max() if finite.size else 0.0
        if peak > 0:
            target = target / peak * protocol.clip
    return target


def evaluate_event_frame(prediction: np.ndarray, gt_depth: np.ndarray, protocol: EventDepthProtocol | str = "dae-mvsec") -> dict[str, float]:
    """Metrics of one frame under a Depth AnyEvent protocol.

    prediction: (H, W) depth-like map (metres for metric models; any affine depth when aligned).
    gt_depth: (H, W) metres, NaN or 0 = invalid.
    Returns the metrics of DAE_METRICS plus the same prefixed with each cut-off ("10_abs_rel", ...).
    """
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    prediction = center_crop(np.asarray(prediction, dtype=np.float64), protocol.crop)
    gt_depth = center_crop(np.asarray(gt_depth, dtype=np.float64), protocol.crop)
    if prediction.shape != gt_depth.shape or prediction.ndim != 2:
        raise InputError(f"prediction {prediction.shape} and ground truth {gt_depth.shape} must be (H, W) maps of one shape")
    target = prepare_event_gt(gt_depth, protocol)
    if protocol.align:
        scale, shift = scale_shift_lstsq(prediction, target, mask=target > 0)
        prediction = scale * prediction + shift
    prediction = np.clip(prediction, 0.0, protocol.clip)

    finite = target[np.isfinite(target)]
    peak = finite.max() if finite.size else 0.0
    with np.errstate(invalid="ignore"):
        valid = (target > 0) & (target < peak) & (prediction > 0) & (prediction < peak)
    scores = _dae_metrics(prediction, target, valid)
    for cutoff in protocol.cutoffs:
        with np.errstate(invalid="ignore"):
            near = valid & (np.nan_to_num(target) < cutoff)
        for key, value in _dae_metrics(prediction, target, near).items():
            scores[f"{cutoff:g}_{key}"] = value
    return scores


def nanmean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    """Key-wise nan-mean of metric dicts (NaN where every value is NaN)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    means = {}
    for key in keys:
        values = np.array([row.get(key, np.nan) for row in rows], dtype=np.float64)
        means[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return means


@dataclass
class SequenceScores:
    """Accumulates per-frame metrics by sequence; the protocol's means in `summary()`."""

    frames: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def add(self, sequence: str, metrics: dict[str, float]) -> None:
        self.frames.setdefault(sequence, []).append(metrics)

    def per_sequence(self) -> dict[str, dict[str, float]]:
        return {name: nanmean_dicts(rows) for name, rows in self.frames.items()}

    def summary(self) -> dict[str, float]:
        """Mean over sequences of the per-sequence nan-means."""
        return nanmean_dicts(list(self.per_sequence().values()))


def evaluate_ddff12_sample(pred_disparity: np.ndarray, gt_disparity: np.ndarray) -> dict[str, float]:
    """DDFF-12 metrics of one sample (disparity in pixels, gt 0 = invalid), as DFV's `calmetrics`
    with ignore_zero=True. A sample without valid pixels scores 0 everywhere, as in that code."""
    pred = np.asarray(pred_disparity, dtype=np.float64)
    gt = np.asarray(gt_disparity, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise InputError(f"prediction {pred.shape} and ground truth {gt.shape} must be (H, W) maps of one shape")
    gt = np.nan_to_num(gt)
    valid = gt > 0
    count = int(valid.sum())
    if count == 0:
        return dict.fromkeys(DDFF_METRICS, 0.0)
    p, t = pred[valid], gt[valid]
    err = p - t
    scores = {"mse": float(np.sum(err**2) / count)}
    scores["rms"] = float(np.sqrt(scores["mse"]))
    positive = p > 0  # the reference's masked log drops non-positive predictions from the sum only
    scores["log_rms"] = float(np.sqrt(np.sum((np.log(p[positive]) - np.log(t[positive])) ** 2) / count))
    scores["abs_rel"] = float(np.sum(np.abs(err) / t) / count)
    scores["sq_rel"] = float(np.sum(err**2 / t) / count)
    nonzero = p != 0  # the reference's masked division drops p == 0 from the accuracy count
    ratio = np.maximum(p[nonzero] / t[nonzero], t[nonzero] / p[nonzero])
    for k in (1, 2, 3):
        scores[f"delta{k}"] = float(100.0 * np.sum(ratio < 1.25**k) / count)
    scores["badpix"] = float(100.0 * np.sum(np.abs(err) > 0.07) / count)
    scores["bumpiness"] = m.bumpiness(pred, gt, valid, clip=0.05)
    return scores


def evaluate_ddff12(samples) -> dict[str, float]:
    """Mean over (pred_disparity, gt_disparity) samples of `evaluate_ddff12_sample`."""
    rows = [evaluate_ddff12_sample(pred, gt) for pred, gt in samples]
    if not rows:
        raise InputError("no samples to evaluate")
    return {key: float(np.mean([row[key] for row in rows])) for key in DDFF_METRICS}
