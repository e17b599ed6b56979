"""Evaluation protocols that reproduce published tables.

Depth AnyEvent (`dae-*`, the authors' `test.py` + `evaluation.py`, commit e1a80bf), per frame:
  0. non-finite ground truth set to 0, as their MVSEC and DSEC loaders do;
  1. ground truth clipped to [0, clip], divided by its own maximum and multiplied by clip: a frame
     whose farthest valid point is nearer than clip is stretched. This is a quirk of the official
     code; `dae-*-corrected` skips the stretch (only the clip is applied);
  2. `align` (their `use_scaleshift`): the prediction is aligned to that ground truth by a
     least-squares scale and shift over pixels with ground truth > 0 (a non-finite prediction
     anywhere makes the fit, hence the frame, NaN, as in their code);
  3. `log_depth` (their `use_logdepth`): the prediction is a normalised log depth p, scored as
     exp(reg_factor (p - 1)) divided by its own maximum, times clip; otherwise it is clipped to
     [0, clip];
  4. valid pixels: 0 < gt < max(gt) and 0 < pred < max(gt) (strict, so the farthest pixel drops);
  5. metrics with eps = 1e-5 (OFFICIAL_METRICS: abs_rel, sq_rel (/ d*^2), rmse, rmse_log, silog
     (lam 1, no root), delta1-3 (ratio <= 1.25^k), mae, mean / median of gt and prediction, |median
     gt - median pred|); again with gt < 10, 20, 30 m. Empty selections give NaN.
  The `dae-*` presets compute in float32 with the official order of operations (ground truth and
  fit as their torch code, metrics as their numpy code), so every metric equals theirs; the
  `-corrected` presets (and `metric`) compute in float64, which moves SILog and RMS log by up to
  ~2e-4 relative. A frame whose ground truth (or log-depth prediction) has no finite positive
  value scores NaN where their code stops with an error.
  The sequence score is the nan-mean of its frames, the dataset score the nan-mean of its
  sequences, in the dtype of the frame metrics (float32 for `dae-*`, as theirs).
  A run config's `trainer` section overrides align / log_depth / clip / reg_factor as their
  `test.py` does (`apply_trainer`).

DDFF-12 (`ddff12`, DFV's `eval_DDFF12.py`), per sample, in disparity over gt > 0:
  mse, rms, log_rms, abs_rel (/ d*), sq_rel (/ d*), delta1-3 (%, ratio < 1.25^k), badpix (%, |e| > 0.07),
  bumpiness (%, Hessian norm clipped at 0.05); the dataset score is the mean over samples.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from anydepth.errors import InputError
from anydepth.metrics import depth as m
from anydepth.metrics.align import scale_shift_lstsq

DAE_EPS = 1e-5  # a Python float: numpy adds it in the array's dtype, as the official code does
REG_FACTOR = 3.70378  # test.py's default --reg_factor
# anydepth name -> the official name (without prefix) of each Depth AnyEvent frame metric.
OFFICIAL_METRICS = {
    "abs_rel": "abs_rel_diff", "sq_rel": "squ_rel_diff", "rmse": "RMS_linear", "rmse_log": "RMS_log",
    "silog": "SILog", "mean_gt": "mean_target_depth", "median_gt": "median_target_depth",
    "mean_pred": "mean_prediction_depth", "median_pred": "median_prediction_depth", "mae": "mean_depth_error",
    "median_diff": "median_diff", "delta1": "threshold_delta_1.25", "delta2": "threshold_delta_1.25^2",
    "delta3": "threshold_delta_1.25^3",
}
DAE_METRICS = tuple(OFFICIAL_METRICS)
_SHORT_NAMES = {official: short for short, official in OFFICIAL_METRICS.items()}
# Their `METRICS_KEYWORDS` (evaluation.py), in their order: the keys of their metrics dicts and CSV.
METRICS_KEYWORDS = (
    "_abs_rel_diff", "_squ_rel_diff", "_RMS_linear", "_RMS_log", "_SILog", "_mean_target_depth",
    "_median_target_depth", "_mean_prediction_depth", "_median_prediction_depth", "_mean_depth_error",
    "_median_diff", "_threshold_delta_1.25", "_threshold_delta_1.25^2", "_threshold_delta_1.25^3",
    "_10_mean_target_depth", "_10_median_target_depth", "_10_mean_prediction_depth", "_10_median_prediction_depth",
    "_10_abs_rel_diff", "_10_squ_rel_diff", "_10_RMS_linear", "_10_RMS_log", "_10_SILog", "_10_mean_depth_error",
    "_10_median_diff", "_10_threshold_delta_1.25", "_10_threshold_delta_1.25^2", "_10_threshold_delta_1.25^3",
    *(f"_{cutoff}_{name}" for cutoff in (20, 30) for name in (
        "abs_rel_diff", "squ_rel_diff", "RMS_linear", "RMS_log", "SILog", "mean_target_depth",
        "median_target_depth", "mean_prediction_depth", "median_prediction_depth", "mean_depth_error",
        "median_diff", "threshold_delta_1.25", "threshold_delta_1.25^2", "threshold_delta_1.25^3")),
)
DDFF_METRICS = ("mse", "rms", "log_rms", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "badpix", "bumpiness")
PRECISIONS = ("float32", "float64")


@dataclass(frozen=True)
class EventDepthProtocol:
    """Settings of a Depth AnyEvent style evaluation.

    clip: metres (their `clip_distance`); align: least-squares scale and shift (`use_scaleshift`);
    log_depth: the prediction is a normalised log depth (`use_logdepth`) converted with
    `reg_factor`; crop: (height, width) centre crop applied to prediction and ground truth before
    scoring, or None; precision: "float32" (the official arithmetic) or "float64";
    honour_trainer: whether a checkpoint's `trainer` section overrides align, log_depth, clip and
    reg_factor (see `apply_trainer`).
    """

    name: str
    clip: float = 80.0
    stretch_gt: bool = True
    align: bool = True
    log_depth: bool = False
    reg_factor: float = REG_FACTOR
    cutoffs: tuple[float, ...] = (10.0, 20.0, 30.0)
    crop: tuple[int, int] | None = None
    precision: str = "float32"
    honour_trainer: bool = True
    description: str = ""

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not (isinstance(self.clip, (int, float)) and math.isfinite(self.clip) and self.clip > 0):
            raise InputError(f"clip distance must be a positive number of metres, got {self.clip!r}")


PROTOCOLS: dict[str, EventDepthProtocol] = {
    "dae-mvsec": EventDepthProtocol("dae-mvsec", description="Depth AnyEvent on MVSEC (260x346), official code to the bit (float32, GT stretch quirk)"),
    "dae-dsec": EventDepthProtocol("dae-dsec", crop=(320, 640), description="Depth AnyEvent on DSEC, centre crop 320x640, official code to the bit (float32, GT stretch quirk)"),
    "dae-mvsec-corrected": EventDepthProtocol("dae-mvsec-corrected", stretch_gt=False, precision="float64", description="as dae-mvsec without the GT stretch, in float64"),
    "dae-dsec-corrected": EventDepthProtocol("dae-dsec-corrected", stretch_gt=False, crop=(320, 640), precision="float64", description="as dae-dsec without the GT stretch, in float64"),
    "metric": EventDepthProtocol("metric", stretch_gt=False, align=False, precision="float64", honour_trainer=False, description="metric prediction, no alignment, no GT stretch, float64"),
}
# A run config's trainer key (test.py) -> the protocol field it sets.
TRAINER_FIELDS = {"use_scaleshift": "align", "use_logdepth": "log_depth", "clip_distance": "clip", "reg_factor": "reg_factor"}


def get_protocol(name: str) -> EventDepthProtocol:
    if name not in PROTOCOLS:
        raise InputError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def apply_trainer(protocol: EventDepthProtocol | str, run_config: dict | None) -> tuple[EventDepthProtocol, dict]:
    """The protocol as the authors' `test.py` runs it for a checkpoint whose run config is `run_config`.

    test.py reads `use_scaleshift`, `use_logdepth`, `reg_factor` and `clip_distance` from the
    run config's `trainer` section, each one present replacing the command line's value (here:
    the protocol's), and ignores the section's other keys. Returns (protocol, the settings taken
    under their names, empty when nothing was taken). Protocols with `honour_trainer` False and
    run configs without a `trainer` section leave the protocol as it is.
    """
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    trainer = (run_config or {}).get("trainer") if isinstance(run_config, dict) else None
    if not protocol.honour_trainer or trainer is None:
        return protocol, {}
    if not isinstance(trainer, dict):
        raise InputError(f"the run config's trainer section must be a mapping, got {type(trainer).__name__}")
    taken = {key: trainer[key] for key in TRAINER_FIELDS if key in trainer}
    for key in ("use_scaleshift", "use_logdepth"):
        if key in taken and not isinstance(taken[key], bool):
            raise InputError(f"trainer.{key} must be true or false, got {taken[key]!r}")
    for key in ("clip_distance", "reg_factor"):
        value = taken.get(key)
        if key in taken and (isinstance(value, bool) or not isinstance(value, (int, float))
                             or not math.isfinite(value) or value <= 0):
            raise InputError(f"trainer.{key} must be a positive number, got {value!r}")
    changes = {TRAINER_FIELDS[key]: (float(value) if key in ("clip_distance", "reg_factor") else value)
               for key, value in taken.items()}
    return dataclasses.replace(protocol, **changes), taken


def center_crop(array: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Centre crop of the last two axes to size (h, w); None returns the array unchanged."""
    if size is None:
        return array
    height, width = array.shape[-2:]
    if size[0] > height or size[1] > width:
        raise InputError(f"crop {size[0]}x{size[1]} is larger than the {height}x{width} map")
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return array[..., top : top + size[0], left : left + size[1]]


@dataclass(frozen=True)
class EventFrameScore:
    """One frame scored under a Depth AnyEvent protocol (what their test.py's `run` returns).

    metrics: official name ("_abs_rel_diff", "_10_SILog", ...; METRICS_KEYWORDS order) -> numpy
        scalar in the protocol's precision (the delta fractions float64, as theirs), NaN for an empty
        selection; `scores` gives the same under anydepth's names ("abs_rel", "10_silog", ...);
    prediction: (H, W) metres as scored (aligned, then clipped or converted from log depth);
    target: (H, W) ground truth metres as scored (cleaned, clipped, stretched);
    scale, shift: the least-squares fit (1 and 0 when the protocol does not align, NaN when the
        prediction is not finite, 0 and 0 when the system is singular, as theirs);
    error_map: (H, W) |target - prediction| metres on every pixel (their `maemap`).
    """

    metrics: dict[str, np.floating]
    prediction: np.ndarray
    target: np.ndarray
    scale: float
    shift: float
    error_map: np.ndarray

    @property
    def scores(self) -> dict[str, np.floating]:
        """The metrics under anydepth's names: "abs_rel", ... and "10_abs_rel", ... (see OFFICIAL_METRICS)."""
        return {_short_name(key): value for key, value in self.metrics.items()}


def _short_name(official: str) -> str:
    name = official[1:]
    if name in _SHORT_NAMES:
        return _SHORT_NAMES[name]
    cutoff, _, base = name.partition("_")
    return f"{cutoff}_{_SHORT_NAMES[base]}"


def _frame_metrics(target: np.ndarray, prediction: np.ndarray, mask: np.ndarray, prefix: str) -> dict[str, np.floating]:
    """Official names -> values over mask & 0 < target < max & 0 < prediction < max, in the arrays'
    dtype and the official order of operations (evaluation.py's `add_to_metrics`)."""
    finite = target[~np.isnan(target)]
    peak = np.amax(finite) if finite.size else np.nan
    with np.errstate(invalid="ignore"):
        valid = mask & (target > 0) & (target < peak) & (prediction > 0) & (prediction < peak)
    gt, pred = target[valid], prediction[valid]
    eps = DAE_EPS
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean / median of an empty selection: NaN
        ratio = np.maximum(gt / (pred + eps), pred / (gt + eps))
        log_diff = np.log(gt + eps) - np.log(pred + eps)
        abs_diff = np.abs(gt - pred)
        values = {
            "abs_rel": (abs_diff / (gt + eps)).mean(),
            "sq_rel": (abs_diff**2 / (gt**2 + eps)).mean(),
            "rmse": np.sqrt((abs_diff**2).mean()),
            "rmse_log": np.sqrt((log_diff**2).mean()),
            "silog": (log_diff**2).mean() - log_diff.mean() ** 2,
            "mean_gt": gt.mean(),
            "median_gt": np.median(gt),
            "mean_pred": pred.mean(),
            "median_pred": np.median(pred),
            "mae": abs_diff.mean(),
            "median_diff": np.abs(np.median(gt) - np.median(pred)),
            "delta1": np.mean(ratio <= 1.25),
            "delta2": np.mean(ratio <= 1.25**2),
            "delta3": np.mean(ratio <= 1.25**3),
        }
    return {f"{prefix}{OFFICIAL_METRICS[name]}": value for name, value in values.items()}


def _fit_scale_shift(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, float]:
    """test.py's alignment: least squares over target > 0 in torch, in the arrays' dtype; a
    non-finite value of either map makes scale and shift NaN (their masked sums do)."""
    prediction_t, target_t = torch.from_numpy(prediction)[None], torch.from_numpy(target)[None]
    scale, shift = scale_shift_lstsq(prediction_t, target_t, target_t > 0)
    if not (torch.isfinite(prediction_t).all() and torch.isfinite(target_t).all()):
        scale, shift = torch.full_like(scale, float("nan")), torch.full_like(shift, float("nan"))
    aligned = scale[:, None, None] * prediction_t + shift[:, None, None]
    return aligned[0].numpy(), float(scale[0]), float(shift[0])


def evaluate_event_frame(prediction, gt_depth, protocol: EventDepthProtocol | str = "dae-mvsec") -> EventFrameScore:
    """One frame under a Depth AnyEvent protocol (see the module docstring for the steps).

    prediction: (H, W) the model's map (metres for metric models, any affine depth when aligned,
        a normalised log depth in [0, 1] when `protocol.log_depth`); cast to the protocol's precision.
    gt_depth: (H, W) metres, 0, NaN or infinity = invalid.
    Returns an `EventFrameScore`: every metric of the official METRICS_KEYWORDS under their names
    (`.metrics`) and ours (`.scores`), the scored prediction, scale and shift, and the error map.
    """
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    dtype = np.dtype(protocol.precision)
    prediction = np.array(center_crop(np.asarray(prediction), protocol.crop), dtype=dtype)
    gt = np.array(center_crop(np.asarray(gt_depth), protocol.crop), dtype=dtype)
    if prediction.shape != gt.shape or prediction.ndim != 2 or not gt.size:
        raise InputError(f"prediction {prediction.shape} and ground truth {gt.shape} must be non-empty (H, W) maps of one shape")
    clip = protocol.clip
    gt[~np.isfinite(gt)] = 0  # as the official MVSEC and DSEC loaders
    target = np.clip(gt, 0, clip)
    if protocol.stretch_gt:
        with np.errstate(invalid="ignore"):
            target = target / np.amax(target)  # 0 / 0 -> NaN: a frame without valid ground truth
        target *= clip
    scale, shift = 1.0, 0.0
    if protocol.align:
        prediction, scale, shift = _fit_scale_shift(prediction, target)
    if protocol.log_depth:
        with np.errstate(over="ignore", invalid="ignore"):
            depth = np.exp(float(protocol.reg_factor) * (prediction - np.ones_like(prediction)))
            finite = depth[~np.isnan(depth)]
            depth = depth / (np.amax(finite) if finite.size else np.nan)
        depth *= clip
    else:
        depth = np.clip(prediction, 0, clip)
    everywhere = np.ones(target.shape, dtype=bool)
    computed = _frame_metrics(target, depth, everywhere, "_")
    for cutoff in protocol.cutoffs:
        computed.update(_frame_metrics(target, depth, everywhere & (np.nan_to_num(target) < cutoff), f"_{cutoff:g}_"))
    ordered = [key for key in METRICS_KEYWORDS if key in computed] + [key for key in computed if key not in METRICS_KEYWORDS]
    return EventFrameScore(metrics={key: computed[key] for key in ordered}, prediction=depth, target=target,
                           scale=scale, shift=shift, error_map=np.abs(target - depth))


def nanmean_dicts(rows: list[dict[str, float]]) -> dict[str, np.floating]:
    """Key-wise nan-mean of metric dicts, in the dtype of the values (float32 metrics average in
    float32, as test.py's np.nanmean); NaN where every value is NaN."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    means = {}
    for key in keys:
        values = np.array([row.get(key, np.nan) for row in rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all NaN
            means[key] = np.nanmean(values)
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
