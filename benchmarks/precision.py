"""Speed and error of reduced precision (`--precision bf16|fp16`) against fp32, per network, through
the same library calls the CLI makes (`infer_image`, `EventDepthModel.predict`, `estimate_depth`).

    python benchmarks/precision.py                         # CPU: fp32 vs bf16
    python benchmarks/precision.py --device cuda           # CUDA: fp32 vs bf16 vs fp16
    python benchmarks/precision.py --models dav2-vits depthanyevent-r --repeats 20

Every precision runs on the same inputs, interleaved call by call (the order rotates), so load on a
shared machine slows all columns alike. Weights are deterministic random values (speed does not
depend on them; the error of trained weights is of the same order, checked on the official ViT-S
where present: pass --dav2-weights). Error = mean |y_p - y_fp32| / mean |y_fp32| of the output
(depth maps at the input resolution; for recurrent students after `--steps` windows, the state
carried at each precision). TTO: the fast recipe on one rendered focal stack (final depth).
Prints a table; --out writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from anydepth.eventdepth import MODELS, load_model
from anydepth.events.container import EventArray
from anydepth.foundation.model import DepthAnythingV2
from anydepth.precision import PRECISIONS, check_precision


def relative_error(value: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean(np.abs(value - reference)) / max(np.mean(np.abs(reference)), 1e-12))


def interleaved(calls: dict[str, callable], repeats: int, sync) -> dict[str, float]:
    """Median seconds per call of each entry, interleaved and rotating; one warm-up call each."""
    for call in calls.values():
        call()
    sync()
    times = {name: [] for name in calls}
    order = list(calls)
    for repeat in range(repeats):
        for name in order[repeat % len(order):] + order[:repeat % len(order)]:
            started = time.perf_counter()
            calls[name]()
            sync()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def dav2_rows(encoder: str, weights: str | None, size: int, precisions, device, repeats, sync) -> dict:
    torch.manual_seed(0)  # PyTorch's own initialisation, seeded
    if weights:
        from anydepth.foundation import load_depth_anything
        model = load_depth_anything(encoder, weights)
    else:
        model = DepthAnythingV2(encoder)
        model.depth_head.open_output()  # a fresh relative head's ReLU would leave most outputs at 0
    model = model.to(device).eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size * 4 // 3, 3), dtype=np.uint8)
    outputs = {p: model.infer_image(image, size, p) for p in precisions}
    seconds = interleaved({p: (lambda p=p: model.infer_image(image, size, p)) for p in precisions}, repeats, sync)
    return {p: {"ms": 1000 * seconds[p], "error": relative_error(outputs[p], outputs["fp32"])} for p in precisions}


def student_rows(name: str, steps: int, precisions, device, repeats, sync) -> dict:
    torch.manual_seed(0)
    model = load_model(name).to(device).eval()
    height, width = 260, 346
    rng = np.random.default_rng(1)
    windows = []
    for step in range(steps):
        count = 30_000
        t = np.sort(rng.integers(step * 50_000, (step + 1) * 50_000, count)).astype(np.int64)
        windows.append(EventArray(rng.integers(0, width, count).astype(np.uint16),
                                  rng.integers(0, height, count).astype(np.uint16), t,
                                  rng.integers(0, 2, count).astype(np.int8), (height, width)))
    outputs = {}
    for p in precisions:
        state = None
        for window in windows:
            depth, state = model.predict(window, state, precision=p)
        outputs[p] = depth
    states = dict.fromkeys(precisions)

    def step(p):
        _, states[p] = model.predict(windows[0], states[p], precision=p)

    seconds = interleaved({p: (lambda p=p: step(p)) for p in precisions}, repeats, sync)
    return {p: {"ms": 1000 * seconds[p], "error": relative_error(outputs[p], outputs["fp32"])} for p in precisions}


def tto_rows(precisions, device, sync) -> dict:
    from anydepth.focus.pipeline import estimate_depth
    from anydepth.synth.focus_sets import get_layout, make_stack, rendered_scene

    layout = get_layout("ddff12")
    stack = make_stack(*rendered_scene(1000, layout), layout)
    torch.manual_seed(0)
    model = DepthAnythingV2("vits")
    model.depth_head.open_output()
    model = model.to(device).eval()
    rows = {}
    reference = None
    for p in precisions:
        sync()
        started = time.perf_counter()
        result = estimate_depth(stack, model, "laplacian", None, "fast", "stack", None, precision=p)
        sync()
        rows[p] = {"ms": 1000 * (time.perf_counter() - started), "iterations": result.tto.iterations}
        reference = result.depth if p == "fp32" else reference
        rows[p]["error"] = relative_error(result.depth, reference)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["dav2-vits", "dav2-vitb", *MODELS, "tto-fast"],
                        help="dav2-<encoder>, student names, tto-fast")
    parser.add_argument("--dav2-weights", help="official weights for the dav2-vits row (error of trained weights)")
    parser.add_argument("--size", type=int, default=518, help="DAv2 input size (default 518)")
    parser.add_argument("--steps", type=int, default=3, help="windows per student before the error is taken")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", help="JSON file for the table")
    args = parser.parse_args()
    precisions = [p for p in PRECISIONS if p != "fp16" or torch.device(args.device).type == "cuda"]
    for p in precisions:
        check_precision(p, args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    torch.manual_seed(0)
    table = {}
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"ms per call (median of {args.repeats}), error vs fp32")
    header = f"{'model':>18} | " + " | ".join(f"{p + ' ms':>9} | {'speed-up':>8} | {'error %':>8}" for p in precisions)
    print(header)
    for name in args.models:
        if name.startswith("dav2-"):
            encoder = name.split("-", 1)[1]
            rows = dav2_rows(encoder, args.dav2_weights if encoder == "vits" else None, args.size, precisions,
                             args.device, args.repeats, sync)
        elif name == "tto-fast":
            rows = tto_rows(precisions, args.device, sync)
        else:
            rows = student_rows(name, args.steps, precisions, args.device, args.repeats, sync)
        table[name] = rows
        base = rows["fp32"]["ms"]
        print(f"{name:>18} | " + " | ".join(f"{rows[p]['ms']:9.1f} | {base / rows[p]['ms']:7.2f}x | "
                                             f"{100 * rows[p]['error']:8.3f}" for p in precisions), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"device": args.device, "torch": torch.__version__,
                                              "threads": torch.get_num_threads(), "table": table}, indent=2))


if __name__ == "__main__":
    main()
