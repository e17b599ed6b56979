"""The DDFF-12 table: DFF, the linear fit and TTO (volume and stack confidence) scored with the
DFV protocol (`anydepth.metrics.evaluate_ddff12`, metrics in disparity, GT > 0), as in the
paper's table. `anydepth focus eval` prints it; Python users call `evaluate_ddff12_split`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anydepth.errors import InputError
from anydepth.focus.dfv import DFV
from anydepth.focus.pipeline import estimate_depth
from anydepth.foundation.model import DepthAnythingV2
from anydepth.metrics import evaluate_ddff12

ROWS = ("DFF", "linear", "TTO (volume confidence)", "TTO (stack confidence)")
COLUMNS = (("mse", "MSE", "9.6f"), ("rms", "RMS", "7.4f"), ("abs_rel", "AbsRel", "7.3f"), ("delta1", "δ1 %", "6.1f"),
           ("delta2", "δ2 %", "6.1f"), ("delta3", "δ3 %", "6.1f"), ("badpix", "badpix %", "8.2f"),
           ("bumpiness", "bump", "6.2f"))


@dataclass
class DDFF12Table:
    """Mean DDFF-12 metrics per method (`ROWS`) over `samples` stacks of `split`."""

    split: str
    samples: int
    focus_volume: str
    tto: str
    rows: dict[str, dict[str, float]]

    def lines(self) -> list[str]:
        """The table as printed by `anydepth focus eval`."""
        header = f"{'method':>24} | " + " | ".join(f"{title:>{int(fmt.split('.')[0])}}" for _, title, fmt in COLUMNS)
        lines = [f"DDFF-12 {self.split}, {self.samples} samples, metrics in disparity (GT > 0); focus volume "
                 f"{self.focus_volume}, TTO {self.tto}", header]
        for name, scores in self.rows.items():
            lines.append(f"{name:>24} | " + " | ".join(f"{scores[key]:{fmt}}" for key, _, fmt in COLUMNS))
        return lines

    def to_dict(self) -> dict:
        return {"samples": self.samples, "table": self.rows}


def check_scorable(samples, count: int | None = None) -> int:
    """The number of stacks to score (the first `count`, default all); an `InputError` when the split
    has no ground truth or no stack."""
    if not samples.has_ground_truth:
        raise InputError(f"the DDFF-12 {samples.split} split has no ground truth (no disp_{samples.split}) to score "
                         f"against; evaluate train or val, or write its depth maps with `anydepth focus run FILE "
                         f"--split {samples.split}`", samples.path)
    count = len(samples) if count is None else min(count, len(samples))
    if count == 0:
        raise InputError(f"no {samples.split} samples", samples.path)
    return count


def evaluate_ddff12_split(samples, model: DepthAnythingV2, focus_volume: str = "laplacian", dfv: DFV | None = None,
                          tto: str = "fast", input_size: int | None = None, count: int | None = None,
                          precision: str = "fp32", progress: Callable[[int], None] | None = None) -> DDFF12Table:
    """Run the pipeline twice per stack (volume and stack confidence) on the first `count` stacks
    of `samples` (a `DDFF12Samples` with ground truth, e.g. `read_ddff12(path, split="val")`) and
    score the four rows. progress: called with 1 after each stack."""
    count = check_scorable(samples, count)
    pairs = {name: [] for name in ROWS}
    for index in range(count):
        stack = samples[index]
        truth = stack.ground_truth
        runs = {confidence: estimate_depth(stack, model, focus_volume, dfv, tto, confidence, input_size,
                                           precision=precision)
                for confidence in ("volume", "stack")}
        pairs["DFF"].append((runs["volume"].dff, truth))
        pairs["linear"].append((runs["stack"].linear, truth))
        pairs["TTO (volume confidence)"].append((runs["volume"].depth, truth))
        pairs["TTO (stack confidence)"].append((runs["stack"].depth, truth))
        if progress is not None:
            progress(1)
    rows = {name: evaluate_ddff12(values) for name, values in pairs.items()}
    return DDFF12Table(samples.split, count, focus_volume, tto, rows)
