"""Depth from focus with test-time optimisation on real texture and real depth: focal stacks
rendered with the thin-lens model from the NYU RGB-D scenes in ../shared/realdata/nyu_rgbd
(DDFF-12 layout: 10 slices, 383x552, metrics in disparity over GT > 0).

    python benchmarks/focus.py                                    # prior trained here, CPU
    python benchmarks/focus.py --weights depth_anything_v2_vits.pth --input-size 518 --device cuda

Rows: DFF (classical focus measure), linear (DAv2 on the AiF, fitted to DFF), TTO-paper (encoder,
Adam 1e-5, 500 iterations) and TTO-fast (the FAST recipe), with both at the same input size; and
the time TTO-fast needs to reach TTO-paper's final loss, measured in the same run. Without
--weights (no official file can be downloaded here), a small DAv2-architecture prior ("vitt") is
first trained on rendered synthetic RGB-D (never on NYU), and the table says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from anydepth.focus import FocalStack
from anydepth.focus.pipeline import estimate_depth
from anydepth.focus.tto import FAST, PAPER
from anydepth.foundation import DepthAnythingV2, load_depth_anything
from anydepth.metrics import evaluate_ddff12_sample
from anydepth.synth.focus_sets import FOCUS_LAYOUTS, make_stack, rgbd_scenes
from anydepth.synth.teacher import rendered_rgbd, train_synthetic_teacher

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "nyu_rgbd"


def synthetic_prior(steps: int, input_size: int, seed: int = 0) -> DepthAnythingV2:
    """A 'vitt' DAv2 trained on rendered RGB-D views of procedural scenes (0.5-8 m)."""
    return train_synthetic_teacher("vitt", rendered_rgbd(48, seed=seed), steps=steps, input_size=input_size, seed=seed)


def synthetic_stacks(count: int, seed: int = 1000):
    """Held-out rendered scenes (seeds never used for the prior), as (name, aif, depth)."""
    from anydepth.synth.focus_sets import rendered_scene

    layout = FOCUS_LAYOUTS["ddff12"]
    for index in range(count):
        aif, depth = rendered_scene(seed + index, layout)
        yield f"synthetic_{seed + index}", aif, depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="official DAv2 weights (default: a prior trained on synthetic scenes)")
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--prior-steps", type=int, default=400)
    parser.add_argument("--input-size", type=int, default=196, help="DAv2 input size for every row")
    parser.add_argument("--paper-iterations", type=int, default=500)
    parser.add_argument("--measure", default="sml")
    parser.add_argument("--scenes", default="nyu", choices=["nyu", "synthetic"],
                        help="NYU RGB-D (real texture and depth) or held-out rendered scenes (in the prior's domain)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.scenes == "nyu" and not REALDATA.is_dir():
        raise SystemExit(f"needs {REALDATA}")

    started = time.perf_counter()
    if args.weights:
        model, prior = load_depth_anything(args.encoder, args.weights), f"DAv2 from {args.weights}"
    else:
        model = synthetic_prior(args.prior_steps, args.input_size)
        prior = f"vitt prior trained {args.prior_steps} steps on synthetic RGB-D ({time.perf_counter() - started:.0f} s)"
    model = model.to(args.device).eval()
    layout = FOCUS_LAYOUTS["ddff12"]
    paper = dataclasses.replace(PAPER, iterations=args.paper_iterations, input_size=args.input_size)
    fast = dataclasses.replace(FAST, input_size=args.input_size)
    rows = {"DFF": [], "linear": [], "TTO-paper": [], "TTO-fast": []}
    timing = []
    scenes = rgbd_scenes(REALDATA) if args.scenes == "nyu" else synthetic_stacks(3)
    for name, aif, depth in scenes:
        synthetic = make_stack(aif, depth, layout)
        truth = synthetic.disparity()
        stack = FocalStack(synthetic.stack, synthetic.focus_positions, "disparity", disparity_scale=0.141238)
        slow = estimate_depth(stack, model, args.measure, tto=paper, confidence="stack")
        quick = estimate_depth(stack, model, args.measure, tto=fast, confidence="stack")
        rows["DFF"].append(evaluate_ddff12_sample(slow.dff, truth))
        rows["linear"].append(evaluate_ddff12_sample(slow.linear, truth))
        rows["TTO-paper"].append(evaluate_ddff12_sample(slow.depth, truth))
        rows["TTO-fast"].append(evaluate_ddff12_sample(quick.depth, truth))
        # the reducible part of the loss (the focus spread is a floor no prediction removes)
        start, target = slow.tto.losses[0] - slow.tto.floor, slow.tto.losses[-1] - slow.tto.floor
        fast_excess = [loss - quick.tto.floor for loss in quick.tto.losses]
        reached = next((t for loss, t in zip(fast_excess, quick.tto.elapsed) if loss <= target), None)
        timing.append({"scene": name, "paper_s": slow.tto.seconds, "paper_start_excess": start, "paper_final_excess": target,
                       "fast_s": quick.tto.seconds, "fast_final_excess": fast_excess[-1], "fast_s_to_paper_loss": reached})
        print(f"{name}: reducible loss {start:.3e} -> TTO-paper {target:.3e} in {slow.tto.seconds:.1f} s, TTO-fast "
              f"{fast_excess[-1]:.3e} in {quick.tto.seconds:.1f} s; fast reached the paper's final loss after "
              f"{'never' if reached is None else f'{reached:.1f} s'}")
    source = "NYU RGB-D" if args.scenes == "nyu" else "held-out rendered scenes"
    print(f"\n{source} -> thin-lens DDFF-12-like stacks ({len(timing)} scenes), metrics in disparity; prior: {prior}; "
          f"DAv2 input {args.input_size}; focus measure {args.measure}")
    print(f"{'method':>10} | {'MSE':>10} | {'RMS':>8} | {'AbsRel':>7} | {'δ1 %':>6} | {'δ2 %':>6} | {'δ3 %':>6}")
    table = {}
    for method, scores in rows.items():
        mean = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
        table[method] = mean
        print(f"{method:>10} | {mean['mse']:10.3e} | {mean['rms']:8.4f} | {mean['abs_rel']:7.3f} | {mean['delta1']:6.1f} | "
              f"{mean['delta2']:6.1f} | {mean['delta3']:6.1f}")
    paper_s = np.mean([t["paper_s"] for t in timing])
    reach = [t["fast_s_to_paper_loss"] for t in timing if t["fast_s_to_paper_loss"] is not None]
    if reach:
        print(f"time to the paper's final loss: TTO-paper {paper_s:.1f} s, TTO-fast {np.mean(reach):.1f} s "
              f"({paper_s / np.mean(reach):.1f}x faster; reached in {len(reach)}/{len(timing)} scenes)")
    if args.json:
        args.json.write_text(json.dumps({"prior": prior, "table": table, "timing": timing}, indent=2))


if __name__ == "__main__":
    main()
