"""An event depth student over a dataset under a Depth AnyEvent protocol (the authors' test.py, `anydepth.metrics.protocols`).

    model = load_model("depthanyevent-r", "depthanyevent_r_vits.pth")
    result = evaluate_dataset(model, "MVSEC/outdoor_day", protocol="dae-mvsec")
    print(result.table())
    result.to_csv("metrics.csv"); result.to_json("metrics.json")

As the authors' `test.py`: every sequence starts from a zero recurrent state, which is carried from
window to window through the whole sequence (windows without ground truth included); every frame
with ground truth is scored by `evaluate_event_frame`; a sequence scores the nan-mean of its frames
and the dataset the nan-mean of its sequences (not of all frames). A model that carries a run
config with a `trainer` section (`model.run_config`, Depth AnyEvent checkpoints) has its
`use_scaleshift`, `use_logdepth`, `clip_distance` and `reg_factor` applied to the protocol, as
their test.py does (`apply_trainer`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from anydepth.atomic import atomic_write
from anydepth.distill.sequences import find_sequences, sequence_name
from anydepth.errors import InputError
from anydepth.eventdepth.base import DepthStream, EventDepthModel
from anydepth.events.dataset import open_sequence
from anydepth.metrics.protocols import EventDepthProtocol, SequenceScores, apply_trainer, evaluate_event_frame, get_protocol

TABLE_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "delta1", "delta2", "delta3")


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) map -> (h, w) by bilinear interpolation (half-pixel centres, no antialiasing);
    unchanged when already of that size."""
    depth = np.asarray(depth, dtype=np.float32)
    if tuple(depth.shape) == tuple(size):
        return depth
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(depth))[None, None]
    return F.interpolate(tensor, size=tuple(int(v) for v in size), mode="bilinear", align_corners=False)[0, 0].numpy()


def _finite_or_none(value):
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass
class EvaluationResult:
    """Scores of one model over one dataset.

    per_sequence: sequence name -> metric -> nan-mean over its scored frames;
    summary: metric -> nan-mean over sequences; frames: sequence name -> number of scored frames;
    settings: the protocol as applied (after a checkpoint's trainer section); trainer: the
    settings taken from that section (their names), empty when none.
    """

    protocol: str
    model: str
    per_sequence: dict[str, dict[str, float]]
    summary: dict[str, float]
    frames: dict[str, int]
    weights: str | None = None
    dataset: str | None = None
    window_ms: float = 50.0
    scores: SequenceScores | None = field(default=None, repr=False)
    settings: EventDepthProtocol | None = None
    trainer: dict = field(default_factory=dict)

    @property
    def metric_names(self) -> list[str]:
        rows = [self.summary, *self.per_sequence.values()]
        return list(dict.fromkeys(key for row in rows for key in row))

    def table(self, metrics=TABLE_METRICS) -> str:
        """Paper-style table: one row per sequence, then "mean" (over sequences), 3 decimals."""
        names = [*self.per_sequence, "mean"]
        width = max(8, *(len(name) for name in names))
        columns = [max(9, len(metric) + 1) for metric in metrics]
        header = f"{'sequence':<{width}} {'frames':>7}" + "".join(f"{metric:>{w}}" for metric, w in zip(metrics, columns))
        lines = [header, "-" * len(header)]
        rows = [(name, self.frames.get(name, 0), self.per_sequence[name]) for name in self.per_sequence]
        rows.append(("mean", sum(self.frames.values()), self.summary))
        for index, (name, count, values) in enumerate(rows):
            if index == len(rows) - 1:
                lines.append("-" * len(header))
            cells = "".join(f"{values.get(metric, float('nan')):>{w}.3f}" for metric, w in zip(metrics, columns))
            lines.append(f"{name:<{width}} {count:>7d}{cells}")
        return "\n".join(lines)

    def to_csv(self, path) -> Path:
        """One row per sequence and a final "mean" row; columns sequence, frames, every metric
        (NaN written as an empty cell)."""
        metrics = self.metric_names

        def write(temporary: str) -> None:
            with open(temporary, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["sequence", "frames", *metrics])
                rows = [(name, self.frames.get(name, 0), values) for name, values in self.per_sequence.items()]
                rows.append(("mean", sum(self.frames.values()), self.summary))
                for name, count, values in rows:
                    cells = [_finite_or_none(values.get(metric)) for metric in metrics]
                    writer.writerow([name, count, *("" if v is None else repr(v) for v in cells)])

        return atomic_write(path, write)

    def to_dict(self) -> dict:
        """JSON-ready: protocol settings (as applied), the run config's trainer settings taken,
        model, weights, dataset, per-sequence, summary and frame counts; NaN as None."""
        protocol = asdict(self.settings or get_protocol(self.protocol))
        protocol["window_ms"] = self.window_ms
        return {
            "protocol": protocol,
            "trainer": dict(self.trainer),
            "model": self.model,
            "weights": self.weights,
            "dataset": self.dataset,
            "per_sequence": {name: {k: _finite_or_none(v) for k, v in values.items()}
                             for name, values in self.per_sequence.items()},
            "summary": {k: _finite_or_none(v) for k, v in self.summary.items()},
            "frames": dict(self.frames),
        }

    def to_json(self, path) -> Path:
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        return atomic_write(path, lambda temporary: Path(temporary).write_text(text + "\n", encoding="utf-8"))


def count_samples(dataset_path, window_ms: float = 50.0, limit: int | None = None) -> int:
    """Windows `evaluate_dataset` will run over (for a progress bar's total; `limit` counts scored
    frames, so with it this is an estimate)."""
    total = 0
    for sequence in find_sequences(dataset_path):
        with open_sequence(sequence, window_ms=window_ms) as samples:
            total += len(samples) if limit is None else min(len(samples), limit)
    return total


def evaluate_dataset(model: EventDepthModel, dataset_path, protocol: EventDepthProtocol | str = "dae-mvsec",
                     window_ms: float = 50.0, progress: Callable[[int], None] | None = None, predictions_out=None,
                     limit: int | None = None, model_name: str | None = None, weights=None,
                     use_trainer: bool = True, precision: str = "fp32") -> EvaluationResult:
    """Score `model` on every sequence of `dataset_path` (see `find_sequences`: a DSEC root, a folder
    of MVSEC pairs or of voxel folders, or one sequence) under `protocol` (a name of PROTOCOLS or
    an `EventDepthProtocol`).

    When `use_trainer` (test.py without --discard_train_args) and the model's `run_config` has a
    `trainer` section, its use_scaleshift / use_logdepth / clip_distance / reg_factor replace the
    protocol's align / log_depth / clip / reg_factor (`apply_trainer`; `result.trainer` names
    them). With log_depth, the map scored is the network's normalised log depth: `to_depth` of a
    relative model (DepthAnyEvent's raw output, as test.py), `to_log_depth` of a metric one.

    Each sequence runs through a fresh `DepthStream` (zero state at its start, the state carried
    from window to window, as the authors' test.py), on each sample's events [t - window_ms, t)
    or, for voxel folders, on its precomputed voxel grid. Samples without ground truth still move
    the state of a recurrent model but are not scored (stateless models skip them). The
    prediction, at the sensor resolution, is resized bilinearly to the ground truth's shape when
    they differ. Note: a model whose `output_kind` is "metric" evaluated under an aligning
    protocol (every `dae-*`) is still aligned by least-squares scale and shift (unless its run
    config's trainer section says otherwise); use protocol "metric" to score metric depth as is.

    progress(1) is called after every window; predictions_out: a folder where each scored frame's
    prediction (float32, at the ground truth's shape) is saved as <sequence>/<index:06d>.npy;
    limit: at most this many scored frames per sequence. model_name / weights: recorded in the
    result (default: the model's class name). precision: the network's arithmetic ("fp32", "bf16",
    "fp16" on CUDA; `anydepth.precision`); alignment and metrics stay float32/float64.
    """
    settings = get_protocol(protocol) if isinstance(protocol, str) else protocol
    settings, trainer = apply_trainer(settings, getattr(model, "run_config", None) if use_trainer else None)
    output = "log_depth" if settings.log_depth and model.output_kind == "metric" else "depth"
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1 frame, got {limit}")
    root = Path(dataset_path)
    sequences = find_sequences(root)
    scores = SequenceScores()
    frames: dict[str, int] = {}
    recurrent = bool(getattr(model, "recurrent", False))
    predictions_root = None if predictions_out is None else Path(predictions_out)
    for sequence in sequences:
        name = sequence_name(sequence, root)
        frames[name] = 0
        stream = DepthStream(model, precision=precision)
        with open_sequence(sequence, window_ms=window_ms) as samples:
            for sample in samples:
                if limit is not None and frames[name] >= limit:
                    break
                has_gt = sample.depth_m is not None
                if has_gt or recurrent:
                    window, representation = sample.event_window()
                    depth = stream.step(window, representation=representation, output=output)
                if has_gt:
                    gt = np.asarray(sample.depth_m, dtype=np.float32)
                    depth = resize_depth(depth, gt.shape)
                    scores.add(name, evaluate_event_frame(depth, gt, settings).scores)
                    frames[name] += 1
                    if predictions_root is not None:
                        target = predictions_root / name / f"{sample.index:06d}.npy"
                        atomic_write(target, lambda temporary, d=depth: np.save(temporary, d))
                if progress is not None:
                    progress(1)
    if not any(frames.values()):
        raise InputError("no sample with ground truth depth to score", root)
    return EvaluationResult(
        protocol=settings.name,
        model=model_name or type(model).__name__,
        per_sequence=scores.per_sequence(),
        summary=scores.summary(),
        frames={name: count for name, count in frames.items() if count},
        weights=None if weights is None else str(weights),
        dataset=str(root),
        window_ms=float(window_ms),
        scores=scores,
        settings=settings,
        trainer=trainer,
    )


__all__ = ["EvaluationResult", "TABLE_METRICS", "count_samples", "evaluate_dataset", "resize_depth"]
