"""Depth from focus with test-time optimisation on real texture and real depth: focal stacks
rendered with the thin-lens model from the NYU RGB-D scenes in ../shared/realdata/nyu_rgbd, and
held-out rendered scenes (DDFF-12 layout: 10 slices, 383x552, metrics in disparity over GT > 0).

    python benchmarks/focus.py --prior-steps 300 --json benchmarks/results/focus_cpu.json   # both sets, CPU
    python benchmarks/focus.py --weights depth_anything_v2_vits.pth --input-size 518 --device cuda

Rows per scene set: DFF (classical focus measure), linear (DAv2 on the AiF, fitted to DFF), and one
row per TTO recipe (`--recipes`): TTO-paper (encoder, Adam 1e-5, 500 iterations), TTO-fast (FAST:
the head's last layer solved in closed form at every step, the last 3 blocks and the head's output
convolutions 30 Adam steps, bfloat16 autocast also on the CPU), TTO-fast-fp32 (the same in float32),
TTO-fastest (FASTEST: the closed-form solve alone); all at the same input size, run stack by stack
in a rotating order so the machine's load falls on every recipe alike. Per recipe: its seconds,
the time it needs to reach TTO-paper's final (reducible) loss and the speed-up, paper's seconds
over that time, in the same run. Without --weights (no official file can be downloaded here), a
small DAv2-architecture prior ("vitt") is first trained on rendered synthetic RGB-D (never on NYU),
and the table says so. FAST's parameters were chosen on other rendered scenes (seeds 2000-2002),
never on NYU and never on the held-out scenes reported here (seeds 1000+).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from anydepth.focus import estimate_depth
from anydepth.focus.tto import FAST, FASTEST, PAPER
from anydepth.foundation import DepthAnythingV2, load_depth_anything
from anydepth.metrics import evaluate_ddff12_sample
from anydepth.synth.focus_sets import FOCUS_LAYOUTS, make_stack, rgbd_scenes
from anydepth.synth.teacher import rendered_rgbd, train_synthetic_teacher

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "nyu_rgbd"
RECIPES = {"paper": PAPER, "fast": FAST, "fast-fp32": dataclasses.replace(FAST, amp="off"), "fastest": FASTEST}


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


def time_to_loss(result, target_excess: float, config) -> float | None:
    """Seconds until the reducible loss (loss - floor) of a TTO run first reaches `target_excess`; with
    `loss_grid` only the final pass counts (the losses before it are on the network's grid)."""
    pairs = list(zip(result.losses, result.elapsed))
    pairs = pairs[-1:] if config.loss_grid else pairs
    return next((t for loss, t in pairs if loss - result.floor <= target_excess), None)


def run_set(scenes, model, recipes: dict, measure: str) -> dict:
    """Every recipe on every stack of one scene set; returns {"table", "timing"} and prints a line per stack."""
    layout = FOCUS_LAYOUTS["ddff12"]
    rows = {"DFF": [], "linear": []} | {f"TTO-{name}": [] for name in recipes}
    timing = []
    for index, (name, aif, depth) in enumerate(scenes):
        stack = make_stack(aif, depth, layout)  # in DDFF-12 disparity, its ground truth too
        truth = stack.ground_truth
        order = list(recipes)
        order = order[index % len(order):] + order[: index % len(order)]  # rotate: no recipe always runs first
        results = {recipe: estimate_depth(stack, model, measure, tto=recipes[recipe], confidence="stack") for recipe in order}
        first = results[order[0]]
        rows["DFF"].append(evaluate_ddff12_sample(first.dff, truth))
        rows["linear"].append(evaluate_ddff12_sample(first.linear, truth))
        paper = results["paper"].tto
        # the reducible part of the loss (the focus variance is a floor no prediction removes)
        start, target = paper.losses[0] - paper.floor, paper.losses[-1] - paper.floor
        entry = {"scene": name, "paper_start_excess": start, "paper_final_excess": target}
        for recipe in recipes:
            result = results[recipe].tto
            rows[f"TTO-{recipe}"].append(evaluate_ddff12_sample(results[recipe].depth, truth))
            entry[recipe] = {"seconds": result.seconds, "iterations": result.iterations,
                             "final_excess": result.losses[-1] - result.floor, "s_to_paper_loss": time_to_loss(result, target, recipes[recipe])}
        timing.append(entry)
        print(f"{name}: reducible loss {start:.3e} -> paper {target:.3e} in {paper.seconds:.1f} s; " + "; ".join(
            f"{recipe} {entry[recipe]['final_excess']:.3e} in {entry[recipe]['seconds']:.2f} s, paper's loss after "
            + ("never" if entry[recipe]["s_to_paper_loss"] is None else f"{entry[recipe]['s_to_paper_loss']:.2f} s")
            for recipe in recipes if recipe != "paper"), flush=True)
    table = {}
    for method, scores in rows.items():
        table[method] = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
    for recipe in recipes:
        seconds = [t[recipe]["seconds"] for t in timing]
        reach = [t[recipe]["s_to_paper_loss"] for t in timing]
        paper_s = [t["paper"]["seconds"] for t in timing]
        summary = table[f"TTO-{recipe}"]
        summary["seconds"] = float(np.mean(seconds))
        summary["final_excess_over_paper"] = float(np.mean([t[recipe]["final_excess"] / t["paper_final_excess"] for t in timing]))
        summary["reached"] = sum(r is not None for r in reach)
        # speed-up: paper's seconds over the seconds to reach paper's final loss (ratio of means, reached scenes)
        done = [(p, r) for p, r in zip(paper_s, reach) if r is not None]
        summary["s_to_paper_loss"] = float(np.mean([r for _, r in done])) if done else None
        summary["speedup"] = float(np.mean([p for p, _ in done]) / np.mean([r for _, r in done])) if done else None
        summary["speedup_whole_run"] = float(np.mean(paper_s) / np.mean(seconds))
    return {"table": table, "timing": timing}


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}")
    print(f"{'method':>17} | {'MSE':>9} | {'RMS':>7} | {'AbsRel':>6} | {'δ1 %':>5} | {'δ2 %':>5} | {'δ3 %':>5} | "
          f"{'s':>6} | {'s to paper':>10} | {'speed-up':>8} | {'final/paper':>11}")
    for method, mean in table.items():
        line = (f"{method:>17} | {mean['mse']:9.3e} | {mean['rms']:7.4f} | {mean['abs_rel']:6.3f} | {mean['delta1']:5.1f} | "
                f"{mean['delta2']:5.1f} | {mean['delta3']:5.1f}")
        if "seconds" in mean:
            reach = "never" if mean["s_to_paper_loss"] is None else f"{mean['s_to_paper_loss']:.2f}"
            speedup = "-" if mean["speedup"] is None else f"{mean['speedup']:.1f}x"
            line += (f" | {mean['seconds']:6.2f} | {reach:>10} | {speedup:>8} | "
                     f"{mean['final_excess_over_paper']:11.3f}")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="official DAv2 weights (default: a prior trained on synthetic scenes)")
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--prior-steps", type=int, default=400)
    parser.add_argument("--prior-file", type=Path,
                        help="the trained prior's state dict: loaded when it exists, else written after training")
    parser.add_argument("--input-size", type=int, default=196, help="DAv2 input size for every row")
    parser.add_argument("--paper-iterations", type=int, default=500)
    parser.add_argument("--measure", default="sml")
    parser.add_argument("--scenes", default="both", choices=["nyu", "synthetic", "both"],
                        help="NYU RGB-D (real texture and depth), held-out rendered scenes (in the prior's domain), or both")
    parser.add_argument("--synthetic-count", type=int, default=9, help="held-out rendered scenes (seeds 1000+)")
    parser.add_argument("--recipes", default="paper,fast,fast-fp32,fastest",
                        help=f"comma-separated, among {', '.join(RECIPES)} (paper is always run: it is the reference)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.synthetic_count < 1:
        raise SystemExit(f"--synthetic-count must be at least 1, got {args.synthetic_count}")
    if args.scenes != "synthetic" and not REALDATA.is_dir():
        raise SystemExit(f"needs {REALDATA}")
    names = ["paper"] + [name for name in args.recipes.split(",") if name and name != "paper"]
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}; choose among {', '.join(RECIPES)}")

    started = time.perf_counter()
    if args.weights:
        model, prior = load_depth_anything(args.encoder, args.weights), f"DAv2 from {args.weights}"
    elif args.prior_file and args.prior_file.is_file():
        model = DepthAnythingV2("vitt")
        model.load_state_dict(torch.load(args.prior_file, map_location="cpu", weights_only=True))
        prior = f"vitt prior trained on synthetic RGB-D by this script, loaded from {args.prior_file.name}"
    else:
        model = synthetic_prior(args.prior_steps, args.input_size)
        prior = f"vitt prior trained {args.prior_steps} steps on synthetic RGB-D ({time.perf_counter() - started:.0f} s)"
        if args.prior_file:
            torch.save(model.state_dict(), args.prior_file)
    model = model.to(args.device).eval()
    recipes = {name: dataclasses.replace(RECIPES[name], input_size=args.input_size) for name in names}
    recipes["paper"] = dataclasses.replace(recipes["paper"], iterations=args.paper_iterations)
    sets = {}
    if args.scenes in ("nyu", "both"):
        sets["nyu"] = run_set(rgbd_scenes(REALDATA), model, recipes, args.measure)
    if args.scenes in ("synthetic", "both"):
        sets["synthetic"] = run_set(synthetic_stacks(args.synthetic_count), model, recipes, args.measure)
    for name, result in sets.items():
        source = "NYU RGB-D" if name == "nyu" else "held-out rendered scenes"
        print_table(f"{source} -> thin-lens DDFF-12-like stacks ({len(result['timing'])} scenes), metrics in disparity; "
                    f"prior: {prior}; DAv2 input {args.input_size}; focus measure {args.measure}; device {args.device}",
                    result["table"])
    print("\ns: seconds per stack; s to paper: until the recipe's reducible loss first reaches TTO-paper's final one; "
          "speed-up: TTO-paper's seconds over that; final/paper: the recipe's final reducible loss over TTO-paper's")
    if args.json:
        recipes_json = {name: {k: v for k, v in dataclasses.asdict(config).items()} for name, config in recipes.items()}
        args.json.write_text(json.dumps({"prior": prior, "recipes": recipes_json, "sets": sets}, indent=2))


if __name__ == "__main__":
    main()
