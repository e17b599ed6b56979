"""Focal stack -> metric depth: focus volume, DFF depth and AiF, DAv2 on the AiF, the linear
baseline and test-time optimisation; and the files a person looks at."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anydepth import fileio, viz
from anydepth.errors import InputError
from anydepth.focus.dfv import DFV, predict_stack
from anydepth.focus.measures import dff_from_volume, focus_volume
from anydepth.focus.stack import FocalStack, in_unit
from anydepth.focus.tto import (
    FAST,
    FASTEST,
    PAPER,
    TTOConfig,
    TTOResult,
    confidence_map,
    dff_statistics,
    linear_baseline,
    run_tto,
    with_precision,
)
from anydepth.foundation.model import DepthAnythingV2

# CLI names of the classical measures
MEASURE_ALIASES = {"laplacian": "laplacian_energy", "sml": "sum_modified_laplacian", "tenengrad": "tenengrad",
                   "variance": "grey_variance"}
TTO_MODES = {"paper": PAPER, "fast": FAST, "fastest": FASTEST}


@dataclass
class FocusDepth:
    """Everything of one stack, (H, W) maps in the stack's unit (metres or disparity):
    dff (the focus expectation), linear (DAv2 mapped by the confidence-weighted fit; None without
    a prior), depth (the final answer: TTO, or linear with tto "off", or dff without a prior),
    confidence in [0, 1], aif (H, W, 3) uint8 RGB, volume (N, H, W), and the TTO result (losses,
    time) when run."""

    unit: str
    dff: np.ndarray
    linear: np.ndarray | None
    depth: np.ndarray
    confidence: np.ndarray
    aif: np.ndarray
    volume: np.ndarray
    tto: TTOResult | None = None


def focus_volume_of(stack: FocalStack, method: str = "laplacian", dfv: DFV | None = None) -> np.ndarray:
    """(N, H, W) focus probabilities by the DFV network or a classical measure."""
    if method == "dfv":
        if dfv is None:
            raise InputError("the dfv focus volume needs DFV weights (--dfv-weights DFF-DFV.tar)")
        _, _, volume = predict_stack(dfv, stack.slices, stack.positions)
        return volume
    return focus_volume(stack, MEASURE_ALIASES.get(method, method))


def estimate_depth(stack: FocalStack, model: DepthAnythingV2 | None, method: str = "laplacian", dfv: DFV | None = None,
                   tto: str | TTOConfig = "fast", confidence: str = "stack", input_size: int | None = None,
                   progress=None, precision: str | None = None) -> FocusDepth:
    """The whole focal-stack pipeline on one stack: focus volume, DFF depth and AiF, DAv2 on the AiF,
    the linear fit to DFF, and test-time optimisation. tto: "paper", "fast", "fastest", "off" or a
    TTOConfig; confidence: "stack" or "volume" (with the TTO config's tau, default the median);
    input_size: DAv2's input size (default: the TTO config's). model None: no prior, the focus
    volume and DFF alone (depth = dff; tto must be "off"). The DFF statistics and the confidence are
    computed once and passed to the linear fit and TTO. precision: "fp32", "bf16" or "fp16" (CUDA)
    for the DAv2 prior and the TTO (`anydepth.precision`); None: fp32 for the prior and the TTO
    recipe's own autocast."""
    volume = focus_volume_of(stack, method, dfv)
    dff = dff_from_volume(volume, stack.positions, stack)
    aif = viz.to_uint8(np.clip(dff.aif, 0, 1))
    aif_bgr = np.ascontiguousarray(aif[..., ::-1])
    slices = stack.float_slices()
    if model is None:
        if tto != "off":
            raise InputError("test-time optimisation needs the Depth Anything prior (tto must be 'off' without one)")
        weights = confidence_map(confidence, dff.variance, slices)
        return FocusDepth(stack.unit, dff.depth, None, dff.depth.astype(np.float32), weights.astype(np.float32),
                          aif, volume)
    if tto == "off":
        config = None
    else:
        config = TTO_MODES[tto] if isinstance(tto, str) else tto
        config = dataclasses.replace(with_precision(config, precision), confidence=confidence,
                                     input_size=input_size or config.input_size)
    size = input_size or (config.input_size if config else 518)
    statistics = dff_statistics(volume, stack.positions, dff)
    weights = confidence_map(confidence, statistics[1], slices, config.tau if config else None)
    linear, *_ = linear_baseline(model, aif_bgr, volume, stack.positions, stack.unit, slices, confidence, size,
                                 statistics=statistics, weights=weights, precision=precision or "fp32")
    result = None
    depth = linear
    if config is not None:
        result = run_tto(model, aif_bgr, volume, stack.positions, stack.unit, slices, config, progress,
                         statistics=statistics, weights=weights)
        depth = result.depth
    return FocusDepth(stack.unit, dff.depth, linear.astype(np.float32), depth.astype(np.float32),
                      weights.astype(np.float32), aif, volume, result)


def write_focus_outputs(result: FocusDepth, out_dir: str | Path, name: str = "stack",
                        disparity_scale: float | None = None) -> list[Path]:
    """depth_m.npy (float32 metres, the answer), dff_m.npy (float32 metres, depth from focus alone,
    to compare), depth_mm.png (16-bit millimetres), depth.png (colour), aif.png, confidence.png,
    loss.png (TTO loss curve) and summary.png (AiF | DFF | result | confidence; no result panel
    without a prior, where the result is the DFF)."""
    out = Path(out_dir) / name
    depth_m = in_unit(result.depth, result.unit, "metres", disparity_scale).astype(np.float32)
    dff_m = in_unit(result.dff, result.unit, "metres", disparity_scale).astype(np.float32)
    written = [out / "depth_m.npy", out / "depth_mm.png", out / "depth.png", out / "aif.png", out / "confidence.png",
               out / "dff_m.npy"]
    fileio.write_npy(written[0], depth_m)
    fileio.write_npy(written[5], dff_m)
    fileio.write_image(written[1], np.clip(np.round(depth_m * 1000), 0, 65535).astype(np.uint16))
    fileio.write_image(written[2], viz.colorize_depth(depth_m))
    fileio.write_image(written[3], result.aif)
    fileio.write_image(written[4], viz.colorize(result.confidence, "viridis", 0.0, 1.0))
    if result.tto is not None and result.tto.losses:
        curve = viz.plot_curves({"TTO": result.tto.losses[:-1]}, xlabel="iteration", ylabel=f"focus loss ({result.unit}²)",
                                logy=True, title=f"TTO: {result.tto.iterations} iterations, {result.tto.seconds:.1f} s",
                                size=(5, 3))
        written.append(fileio.write_image(out / "loss.png", curve))
    panels = {"all-in-focus": result.aif, "DFF": viz.colorize_depth(dff_m)}
    if result.linear is not None:
        panels["result" if result.tto is None else "TTO"] = viz.colorize_depth(depth_m)
    panels["confidence"] = viz.colorize(result.confidence, "viridis", 0.0, 1.0)
    written.append(fileio.write_image(out / "summary.png", viz.plot_panels(panels)))
    return written
