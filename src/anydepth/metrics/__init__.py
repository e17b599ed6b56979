"""Depth metrics, alignment and the evaluation protocols of the papers (each names its convention)."""

from anydepth.metrics.align import align_median, align_scale_shift, scale_shift_lstsq
from anydepth.metrics.depth import abs_rel, badpix, bumpiness, delta, mae, mse, rmse, rmse_log, silog, sq_rel
from anydepth.metrics.protocols import (
    METRICS_KEYWORDS,
    OFFICIAL_METRICS,
    PROTOCOLS,
    EventDepthProtocol,
    EventFrameScore,
    SequenceScores,
    apply_trainer,
    evaluate_ddff12,
    evaluate_ddff12_sample,
    evaluate_event_frame,
    get_protocol,
)

__all__ = [
    "METRICS_KEYWORDS",
    "OFFICIAL_METRICS",
    "PROTOCOLS",
    "EventDepthProtocol",
    "EventFrameScore",
    "SequenceScores",
    "abs_rel",
    "align_median",
    "align_scale_shift",
    "apply_trainer",
    "badpix",
    "bumpiness",
    "delta",
    "evaluate_ddff12",
    "evaluate_ddff12_sample",
    "evaluate_event_frame",
    "get_protocol",
    "mae",
    "mse",
    "rmse",
    "rmse_log",
    "scale_shift_lstsq",
    "silog",
    "sq_rel",
]
