"""The Depth AnyEvent claim, scaled down to run on a CPU: distilling a frame-based depth model into
an event student on the target domain beats training the student on synthetic ground truth from
another domain, and comes close to supervision on the target domain.

1. Two synthetic domains with different scene statistics and sensors (`SOURCE`, `TARGET`), written
   in the DSEC layout: source sequences (the student's "EventScape"), target training sequences
   (unlabelled for distillation) and held-out target test sequences.
2. A teacher: the official Depth Anything V2 when its weights are given, otherwise a small
   DAv2-architecture model trained here on rendered RGB-D views of varied procedural scenes.
3. Pseudo-labels of the teacher on the target training frames.
4. One student architecture (DepthAnyEvent-R, encoder of the teacher, initialised from the
   teacher) trained three ways with the same recipe: Synth (source ground truth), Distilled
   (target pseudo-labels), Supervised (target ground truth).
5. All three scored on the held-out target sequences with the Depth AnyEvent protocol.

Every stage caches its output in OUT (data, teacher, labels, students), so a rerun continues.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


from anydepth.atomic import write_json
from anydepth.distill.config import DataConfig, DataSource, LossConfig, ModelSpec, OptimConfig, TrainConfig
from anydepth.distill.evaluate import EvaluationResult, evaluate_dataset
from anydepth.distill.pseudolabels import generate_pseudolabels
from anydepth.distill.trainer import Trainer
from anydepth.foundation.checkpoint import load_depth_anything_file, save_checkpoint
from anydepth.foundation.model import DepthAnythingV2
from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence
from anydepth.synth.teacher import rendered_rgbd, train_synthetic_teacher

Log = Callable[[str], None]


@dataclass(frozen=True)
class Domain:
    """Scene statistics and sensor of one domain: depth range, field of view, event simulator."""

    name: str
    depth_range_m: tuple[float, float]
    horizontal_fov_deg: float
    simulator: dict
    seed: int
    objects: int = 10


SOURCE = Domain("source: sparse synthetic streets 2-30 m (5 objects), 70° lens, clean sensor", (2.0, 30.0), 70.0,
                {"contrast_pos": 0.2, "contrast_neg": 0.2, "threshold_sigma": 0.03, "refractory_us": 100.0,
                 "shot_noise_hz": 0.1}, 1000, objects=5)
TARGET = Domain("target: cluttered rooms 0.8-8 m (25 objects), 90° lens, noisy high-threshold sensor", (0.8, 8.0), 90.0,
                {"contrast_pos": 0.35, "contrast_neg": 0.3, "threshold_sigma": 0.06, "refractory_us": 500.0,
                 "shot_noise_hz": 2.0, "leak_hz": 0.5}, 2000, objects=25)
TEACHER_RANGES = ((0.5, 6.0), (1.0, 15.0), (2.0, 40.0))  # the teacher sees all kinds of scenes (a foundation model)


@dataclass(frozen=True)
class ExperimentSize:
    """How big each stage is. resolution (H, W) of the sensors; seconds per sequence; teacher_*:
    the stand-in teacher (ignored with official weights); student_*: the student recipe."""

    resolution: tuple[int, int] = (96, 128)
    seconds: float = 1.5
    internal_fps: float = 500.0
    depth_hz: float = 20.0
    source_sequences: int = 4
    target_train_sequences: int = 4
    target_test_sequences: int = 2
    teacher_encoder: str = "vitp"
    teacher_images: int = 96
    teacher_steps: int = 600
    teacher_input: int = 126
    student_steps: int = 900
    student_lr: float = 3e-4
    batch_size: int = 4
    sequence_length: int = 3
    student_input: tuple[int, int] = (98, 126)
    protocol: str = "dae-mvsec-corrected"


SIZES = {
    "quick": ExperimentSize(seconds=0.6, source_sequences=1, target_train_sequences=1, target_test_sequences=1,
                            teacher_images=24, teacher_steps=60, student_steps=20, batch_size=2, sequence_length=2),
    "demo": ExperimentSize(seconds=1.0, source_sequences=2, target_train_sequences=2, target_test_sequences=1,
                           teacher_images=64, teacher_steps=300, student_steps=100),
    "claim": ExperimentSize(),
}
REGIMES = ("synth", "distilled", "supervised")


@dataclass
class ExperimentResult:
    """Scores per regime on the held-out target sequences, with everything needed to show them."""

    size: ExperimentSize
    teacher: str
    teacher_model: DepthAnythingV2 | None = None
    scores: dict[str, EvaluationResult] = field(default_factory=dict)
    histories: dict[str, list[dict]] = field(default_factory=dict)
    students: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    out: Path | None = None

    def rows(self, metrics=("abs_rel", "rmse", "delta1")) -> list[list]:
        return [[regime, *[self.scores[regime].summary.get(m, float("nan")) for m in metrics]] for regime in self.scores]

    def table(self, metrics=("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1")) -> str:
        lines = [f"{'regime':<12}" + "".join(f"{m:>10}" for m in metrics)]
        for row in self.rows(metrics):
            lines.append(f"{row[0]:<12}" + "".join(f"{v:>10.3f}" for v in row[1:]))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"size": asdict(self.size), "teacher": self.teacher, "protocol": self.size.protocol,
                "domains": {"source": asdict(SOURCE), "target": asdict(TARGET)},
                "scores": {r: {"summary": s.summary, "per_sequence": s.per_sequence, "frames": s.frames} for r, s in self.scores.items()},
                "seconds": self.seconds, "students": self.students}


# ---- stages -------------------------------------------------------------------------------------------
def _write_sequence(spec: EventSequenceSpec, folder: Path) -> None:
    if (folder / ".complete").is_file():
        return
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    write_event_sequence(generate_event_sequence(spec), staging, "dsec")
    (staging / ".complete").write_text("ok\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def make_domains(out: Path, size: ExperimentSize, log: Log = print) -> dict[str, Path]:
    """Write source, target_train and target_test sequences (DSEC layout) under OUT/data."""
    splits = {"source": (SOURCE, size.source_sequences, 0), "target_train": (TARGET, size.target_train_sequences, 0),
              "target_test": (TARGET, size.target_test_sequences, 500)}
    folders = {}
    for split, (domain, count, offset) in splits.items():
        folders[split] = out / "data" / split
        for index in range(count):
            spec = EventSequenceSpec(seconds=size.seconds, resolution=size.resolution, internal_fps=size.internal_fps,
                                     frame_hz=size.depth_hz, depth_hz=size.depth_hz, depth_range_m=domain.depth_range_m,
                                     horizontal_fov_deg=domain.horizontal_fov_deg, seed=domain.seed + offset + index,
                                     simulator=domain.simulator, objects=domain.objects)
            _write_sequence(spec, folders[split] / f"seq_{index:02d}")
        log(f"data: {count} {split.replace('_', ' ')} sequence(s) of {size.seconds:g} s at {size.resolution[0]}x{size.resolution[1]}")
    return folders


def make_teacher(out: Path, size: ExperimentSize, weights: str | Path | None = None, log: Log = print,
                 progress: Callable[[float], None] | None = None) -> tuple[DepthAnythingV2, Path, str]:
    """(teacher, its weights file, description). Official weights when given; otherwise a small
    DAv2 trained on rendered RGB-D views of varied scenes (cached in OUT/teacher.pth)."""
    if weights is not None:
        model = load_depth_anything_file(weights)
        return model.eval(), Path(weights), f"Depth Anything V2 {model.config.encoder} (official weights, {Path(weights).name})"
    path = out / "teacher.pth"
    description = (f"small DAv2-architecture model ({size.teacher_encoder}) trained here on {size.teacher_images} "
                   "rendered RGB-D views (not the official Depth Anything V2)")
    if path.is_file():
        return load_depth_anything_file(path).eval(), path, description
    pairs = rendered_rgbd(size.teacher_images, resolution=size.resolution, depth_ranges=TEACHER_RANGES, seed=50_000)
    model = train_synthetic_teacher(size.teacher_encoder, pairs, steps=size.teacher_steps, input_size=size.teacher_input,
                                    lr=5e-4, batch=8, progress=progress)
    save_checkpoint(model, path)
    log(f"teacher: {description}")
    return model, path, description


def student_config(regime: str, folders: dict[str, Path], labels: Path, teacher_path: Path, encoder: str,
                   size: ExperimentSize, out: Path, device: str = "auto", precision: str = "auto") -> TrainConfig:
    """The same DepthAnyEvent-R recipe for every regime; only the training data differ."""
    sources = {
        "synth": DataSource(str(folders["source"]), "gt", domain="source"),
        "distilled": DataSource(str(folders["target_train"]), "pseudo", str(labels), domain="target"),
        "supervised": DataSource(str(folders["target_train"]), "gt", domain="target"),
    }[regime]
    return TrainConfig(
        model=ModelSpec("depthanyevent-r", {"encoder": encoder, "activation": "relu", "inv_prediction": True,
                                            "input_size": tuple(size.student_input)}, init_dav2=str(teacher_path)),
        data=DataConfig(sources=(sources,), sequence_length=size.sequence_length, flip=True),
        optim=OptimConfig(lr=size.student_lr, weight_decay=0.01, schedule="cosine", warmup_steps=max(1, size.student_steps // 20)),
        loss=LossConfig("ssi"), regime=regime, steps=size.student_steps, batch_size=size.batch_size,
        checkpoint_every=max(10, size.student_steps // 4), log_every=5, image_every=max(10, size.student_steps // 4),
        seed=0, device=device, precision=precision, out=str(out / "students" / regime))


def run_experiment(out: str | Path, size: ExperimentSize | str = "claim", teacher_weights: str | Path | None = None,
                   regimes=REGIMES, log: Log = print, progress: bool = True, device: str = "cpu",
                   precision: str | None = None) -> ExperimentResult:
    """All stages (cached in `out`); returns the scores of each regime on the held-out target.
    device: where the teacher labels and the students train and run; precision: their arithmetic
    (`anydepth.precision`; None: fp32 labels and evaluation, the trainer's "auto")."""
    out = Path(out)
    size = SIZES[size] if isinstance(size, str) else size
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    folders = make_domains(out, size, log)
    seconds["data"] = time.perf_counter() - started

    started = time.perf_counter()
    teacher, teacher_path, teacher_description = make_teacher(out, size, teacher_weights, log)
    seconds["teacher"] = time.perf_counter() - started

    started = time.perf_counter()
    labels = out / "pseudolabels"
    teacher = teacher.to(device)
    summary = generate_pseudolabels(folders["target_train"], teacher, labels, teacher.config.encoder,
                                    input_size=size.teacher_input, precision=precision or "fp32")
    log(f"pseudo-labels: {summary.computed} computed, {summary.skipped} already there ({labels})")
    seconds["pseudolabels"] = time.perf_counter() - started

    result = ExperimentResult(size, teacher_description, teacher, out=out, seconds=seconds)
    for regime in regimes:
        started = time.perf_counter()
        config = student_config(regime, folders, labels, teacher_path, teacher.config.encoder, size, out, device,
                                precision or "auto")
        trained = Trainer(config, progress=progress).run()
        result.histories[regime] = trained.history
        result.students[regime] = Path(config.out) / "student.pth"
        seconds[f"train_{regime}"] = time.perf_counter() - started
        started = time.perf_counter()
        result.scores[regime] = evaluate_dataset(trained.student, folders["target_test"], size.protocol,
                                                 model_name=f"depthanyevent-r ({regime})", weights=str(result.students[regime]),
                                                 precision=precision or "fp32")
        seconds[f"eval_{regime}"] = time.perf_counter() - started
    write_json(out / "results.json", result.to_dict())
    return result


__all__ = ["Domain", "ExperimentResult", "ExperimentSize", "REGIMES", "SIZES", "SOURCE", "TARGET", "make_domains",
           "make_teacher", "run_experiment", "student_config"]
