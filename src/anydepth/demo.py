"""`anydepth demo`: both pipelines end to end on data made on the spot, and a visual report.

Events: two synthetic domains, a teacher (official DAv2 when its weights are at hand, otherwise a
small DAv2-architecture model trained here on rendered RGB-D), its pseudo-labels on the target
domain, a DepthAnyEvent-R student distilled from them next to the same student trained on
synthetic source-domain ground truth only (and, in the full demo, supervised on the target),
streaming prediction over a held-out recording, and the Depth AnyEvent metric table.

Focus: thin-lens focal stacks of rendered scenes (and of NYU RGB-D samples when a folder of them is
given or found in ../shared/realdata), focus volume, DFF depth and all-in-focus image, the prior
on the AiF, the linear fit and test-time optimisation, and their metric table.

Everything lands in OUT: report.html (self-contained), the figures as PNG, results.json, and the
intermediate data, teacher and students (reused by a rerun).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anydepth import viz
from anydepth.atomic import write_json
from anydepth.distill.experiment import REGIMES, SIZES, SOURCE, TARGET, ExperimentResult, run_experiment
from anydepth.eventdepth.base import DepthStream
from anydepth.eventdepth.registry import load_model
from anydepth.events.dataset import open_sequence
from anydepth.events.representations import tencode
from anydepth.focus.pipeline import estimate_depth
from anydepth.focus.stack import in_unit
from anydepth.focus.tto import FAST
from anydepth.foundation.model import DepthAnythingV2
from anydepth.metrics import depth as metrics
from anydepth.metrics.align import align_scale_shift
from anydepth.report import Figure, Report, Table
from anydepth.synth.focus_sets import FOCUS_LAYOUTS, make_stack, rendered_scene, rgbd_scenes

REALDATA_NYU = Path("..") / "shared" / "realdata" / "nyu_rgbd"


@dataclass(frozen=True)
class DemoSize:
    """events: the distillation experiment's size name; regimes trained; focus_*: stacks and TTO."""

    events: str
    regimes: tuple[str, ...]
    focus_scenes: int
    focus_resolution: tuple[int, int]
    tto_iterations: int
    tto_input: int
    rgbd_scenes: int


QUICK = DemoSize("quick", ("synth", "distilled"), 1, (383, 552), 20, 126, 1)
FULL = DemoSize("demo", REGIMES, 1, (383, 552), 60, 196, 3)


def find_official_weights(weights: str | None) -> Path | None:
    """The ViT-S DAv2 weights given, or found in the cache; None when there are none (no download)."""
    from anydepth.foundation.weights import resolve_weights
    from anydepth.errors import WeightsNotFoundError

    if weights is not None:
        return resolve_weights(weights=weights)
    try:
        return resolve_weights("vits", download=False)
    except WeightsNotFoundError:
        return None


def disparity_view(depth_like: np.ndarray, gt_m: np.ndarray | None = None) -> np.ndarray:
    """A depth-like map as disparity for display; when ground truth is given, aligned to 1/gt by
    least squares so that every panel shares the ground truth's colour scale."""
    disparity = 1.0 / np.maximum(np.asarray(depth_like, np.float64), 1e-6)
    if gt_m is None:
        return disparity
    return align_scale_shift(disparity, 1.0 / gt_m)


# ---- events -----------------------------------------------------------------------------------------
def events_section(report: Report, experiment: ExperimentResult, teacher: DepthAnythingV2, out: Path, log) -> dict:
    """Tables and figures of the event experiment; returns the numbers for results.json."""
    size = experiment.size
    metrics_shown = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2")
    names = {"synth": "Synth (source GT only)", "distilled": "Distilled (target pseudo-labels)",
             "supervised": "Supervised (target GT)"}
    rows = [[names[r], *[experiment.scores[r].summary.get(m, float("nan")) for m in metrics_shown]] for r in experiment.scores]
    table = Table(f"DepthAnyEvent-R on held-out target sequences — protocol {size.protocol}",
                  ["student", *metrics_shown], rows,
                  note="AbsRel, SqRel (/d*²), RMSE (m), RMSE log: lower is better; δ1, δ2: higher is better. "
                       "Per frame, the prediction is aligned to the ground truth by least-squares scale and shift in depth "
                       "(Depth AnyEvent protocol, GT clipped to 80 m without the official per-frame stretch); "
                       "mean over frames per sequence, then over sequences.",
                  highlight={"abs_rel": "min", "rmse": "min", "delta1": "max"})

    folder = experiment.out / "data" / "target_test" / "seq_00"
    students = {r: load_model("depthanyevent-r", p) for r, p in experiment.students.items()}
    streams = {r: DepthStream(m) for r, m in students.items()}
    panels, latency = [], {}
    with open_sequence(folder) as sequence:
        picks = set(np.linspace(1, len(sequence) - 1, 3).round().astype(int).tolist())
        for sample in sequence:
            predictions = {r: stream.step(sample.events) for r, stream in streams.items()}
            if sample.index not in picks:
                continue
            gt = np.where(np.isfinite(sample.depth_m) & (sample.depth_m > 0), sample.depth_m, np.nan)
            gt_disparity = 1.0 / gt
            frame_rgb = sample.frame[..., ::-1] if sample.frame.ndim == 3 else np.repeat(sample.frame[..., None], 3, 2)
            teacher_disparity = align_scale_shift(teacher.infer_image(sample.frame, size.teacher_input), gt_disparity)
            t_ms = sample.timestamp_us / 1000
            panels += [(f"t={t_ms:.0f} ms · events (Tencode, 50 ms)", viz.render_events(tencode(sample.events), "tencode")),
                       (f"t={t_ms:.0f} ms · frame (teacher input)", np.ascontiguousarray(frame_rgb)),
                       (f"t={t_ms:.0f} ms · ground truth", viz.colorize_like(gt_disparity, gt_disparity)),
                       (f"t={t_ms:.0f} ms · teacher on the frame", viz.colorize_like(teacher_disparity, gt_disparity))]
            panels += [(f"t={t_ms:.0f} ms · student: {r}", viz.colorize_like(disparity_view(predictions[r], gt), gt_disparity))
                       for r in predictions]
        latency = {r: s.mean_latency_ms for r, s in streams.items()}
    columns = 4 + len(students)
    figure = Figure("Streaming prediction on a held-out target recording (inverse depth, near = red; "
                    "each panel aligned to the ground truth for display)", panels, columns=columns, min_width=120)
    curves = viz.plot_curves({r: [h["loss"] for h in experiment.histories[r]] for r in experiment.histories},
                         title="student training loss (SSI + 0.25 gradient, disparity space)", logy=True)
    loss_figure = Figure("Training", [("loss per step", curves)], columns=2)
    timing = Table("Where the time went", ["stage", "seconds"],
                   [[k.replace("_", " "), v] for k, v in experiment.seconds.items()] +
                   [[f"streaming latency per 50 ms window ({r})", latency[r] / 1000] for r in latency], digits=2)
    text = (f"Source domain — {SOURCE.name}. Target domain — {TARGET.name}. {size.source_sequences} source, "
            f"{size.target_train_sequences} target training and {size.target_test_sequences} held-out target sequence(s) "
            f"of {size.seconds:g} s at {size.resolution[0]}x{size.resolution[1]}. Teacher: {experiment.teacher}. "
            f"Students: DepthAnyEvent-R ({teacher.config.encoder} encoder, initialised from the teacher), Tencode input, "
            f"{size.student_steps} steps of batch {size.batch_size} x {size.sequence_length}-window clips each, same recipe "
            f"for every regime.")
    report.add_section("Event camera: distilling the frame model into an event student", table, figure, loss_figure, timing, text=text)
    return {"table": {r: experiment.scores[r].summary for r in experiment.scores}, "latency_ms": latency,
            "seconds": experiment.seconds, "teacher": experiment.teacher}


# ---- focus -----------------------------------------------------------------------------------------
def focus_scenes(size: DemoSize, rgbd: list):
    """(name, RGB float (H, W, 3), depth metres): the RGB-D samples, then rendered scenes (the quick
    demo renders none when it has a sample)."""
    samples = rgbd[:size.rgbd_scenes]
    for name, rgb, depth in samples:
        yield f"NYU {name}", rgb, depth
    rendered = 0 if (size is QUICK and samples) else size.focus_scenes
    for index in range(rendered):
        aif, depth = rendered_scene(7000 + index, FOCUS_LAYOUTS["ddff12"])
        yield f"rendered scene {index + 1}", aif, depth


def focus_section(report: Report, prior: DepthAnythingV2, prior_description: str, size: DemoSize,
                  rgbd: list, log, precision: str | None = None) -> dict:
    layout = dataclasses.replace(FOCUS_LAYOUTS["ddff12"], resolution=size.focus_resolution)
    tto = dataclasses.replace(FAST, iterations=size.tto_iterations, input_size=size.tto_input)
    columns = ["scene", "method", "abs_rel", "rmse", "delta1"]
    rows, numbers, panels, curves = [], {}, [], {}
    from tqdm import tqdm

    scenes = list(focus_scenes(size, rgbd))
    for name, aif, depth in tqdm(scenes, desc="focus", unit="stack", disable=None):
        stack = make_stack(aif, depth, layout)  # in DDFF-12 disparity, its ground truth too
        truth_m = stack.ground_truth_in("metres")
        valid = truth_m > 0
        started = time.perf_counter()
        result = estimate_depth(stack, prior, "sml", tto=tto, confidence="stack", input_size=size.tto_input,
                                precision=precision)
        seconds = time.perf_counter() - started
        maps = {"DFF (focus only)": result.dff, "DAv2 + linear fit": result.linear, "DAv2 + TTO": result.depth}
        numbers[name] = {}
        for method, values in maps.items():
            metres = in_unit(values, stack.unit, "metres", stack.disparity_scale)
            scores = {"abs_rel": metrics.abs_rel(metres, truth_m, valid), "rmse": metrics.rmse(metres, truth_m, valid),
                      "delta1": metrics.delta(metres, truth_m, valid)}
            numbers[name][method] = scores
            rows.append([name, method, scores["abs_rel"], scores["rmse"], scores["delta1"]])
        truth_disparity = stack.ground_truth
        panels += [(f"{name} · near focus slice", _rgb8(stack.slices[-1])), (f"{name} · all-in-focus", result.aif),
                   (f"{name} · confidence", viz.colorize(result.confidence, "magma", 0.0, 1.0)),
                   (f"{name} · ground truth", viz.colorize_like(truth_disparity, truth_disparity))]
        panels += [(f"{name} · {method}", viz.colorize_like(values, truth_disparity)) for method, values in maps.items()]
        if result.tto is not None:
            curves[name] = result.tto.losses
        numbers[name]["seconds"] = seconds
    mean_rows = []
    for method in ("DFF (focus only)", "DAv2 + linear fit", "DAv2 + TTO"):
        values = [numbers[n][method] for n in numbers]
        mean_rows.append(["mean", method, *[float(np.mean([v[k] for v in values])) for k in ("abs_rel", "rmse", "delta1")]])
    table = Table("Focal stacks → metric depth (metres, valid ground truth)", columns, rows + mean_rows,
                  note="AbsRel and RMSE (m): lower is better; δ1 (max ratio < 1.25): higher is better. "
                       "DFF: focus expectation over the stack; linear: the prior's relative depth mapped by the "
                       "confidence-weighted fit to DFF; TTO: the prior fine-tuned on the stack (FAST recipe).")
    figure = Figure("Focus pipeline (inverse depth, near = red)", panels, columns=7, min_width=120)
    loss = Figure("Test-time optimisation", [("TTO loss per iteration", viz.plot_curves(curves, title="TTO loss", xlabel="iteration", logy=True))], columns=2)
    text = (f"Thin-lens stacks of {len(FOCUS_LAYOUTS['ddff12'].focus_distances_m)} slices (DDFF-12 focus positions) at "
            f"{size.focus_resolution[0]}x{size.focus_resolution[1]}; focus measure: sum-modified Laplacian; prior: "
            f"{prior_description}; TTO: last {tto.last_k} encoder blocks, lr {tto.lr:g}, up to {tto.iterations} iterations "
            f"at input {tto.input_size}.")
    report.add_section("Focal stack: focus, Depth Anything V2 and test-time optimisation", table, figure, loss, text=text)
    return numbers


def _rgb8(image: np.ndarray) -> np.ndarray:
    image = viz.to_uint8(image)
    return np.ascontiguousarray(image if image.ndim == 3 else np.repeat(image[..., None], 3, 2))


# ---- the run -----------------------------------------------------------------------------------------
def run_demo(out: str | Path = "anydepth-demo", quick: bool = False, weights: str | None = None,
             rgbd: str | Path | None = None, log=print, device: str = "cpu", precision: str | None = None) -> Path:
    """Run the demo; returns the path of report.html. device: where the networks run (data are made
    on the CPU); precision: their arithmetic (`anydepth.precision`; None: each stage's default)."""
    started = time.perf_counter()
    out = Path(out)
    size = QUICK if quick else FULL
    experiment_size = SIZES[size.events]
    official = find_official_weights(weights)
    rgbd_folder = Path(rgbd) if rgbd is not None else (REALDATA_NYU if REALDATA_NYU.is_dir() else None)
    rgbd_samples = rgbd_scenes(rgbd_folder) if rgbd_folder is not None else []  # a bad folder fails first
    report = Report("anydepth demo", "Depth Anything V2 for event cameras and focal stacks, end to end on data made on the spot",
                    device=device)
    if official is None:
        report.add_notice("No official Depth Anything V2 weights were found (none given, none in the cache), so the teacher "
                          "and the focus prior are a small DAv2-architecture model trained here on rendered RGB-D in "
                          "a few seconds. The numbers show the method working, not the quality of the real DAv2: rerun "
                          "with --weights depth_anything_v2_vits.pth for that.", "warning")
    else:
        report.add_notice(f"Teacher and focus prior: the official Depth Anything V2 weights {official}.", "info")
    if quick:
        report.add_notice("--quick: every stage is cut to a minimum (one sequence per split, a few training steps); "
                          "run without --quick for the full demo.", "info")
    log(f"anydepth demo{' --quick' if quick else ''} -> {out}")
    experiment = run_experiment(out / "events", experiment_size, teacher_weights=official, regimes=size.regimes, log=log,
                                device=device, precision=precision)
    teacher = experiment.teacher_model
    results = {"events": events_section(report, experiment, teacher, out, log)}
    results["focus"] = focus_section(report, teacher.to(device), experiment.teacher, size, rgbd_samples, log, precision)
    results["seconds"] = time.perf_counter() - started
    report.subtitle += f" · {results['seconds']:.0f} s on {device}"
    path = report.write(out / "report.html")
    report.write_images(out / "figures")
    write_json(out / "results.json", results)
    print(report.to_text())
    log(f"report: {path.resolve()}  ({results['seconds']:.0f} s)")
    return path
