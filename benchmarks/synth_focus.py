"""Thin-lens focal-stack rendering speed: the layered (occlusion-aware) renderer against the
per-pixel-σ gather approximation, in the same run, on a FoD500-like (5 slices, 256x256, FoD500
lens) and a DDFF-12-like stack (10 slices, 383x552, DDFF-12 lens and focus disparities).

    python benchmarks/synth_focus.py
    python benchmarks/synth_focus.py --aperture-scale 4 --repeats 9 --json out.json

The scene is a random texture over a smooth random depth field spanning the data set's depth
range (many depth edges, every layer large). --aperture-scale multiplies the aperture (divides
the f-number) to see how both renderers scale with blur. Prints the median time per stack, the
ratio, the largest σ, and the mean |layered − gather| difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from anydepth.focus import FOD500_FOCUS_DISTANCES_M
from anydepth.synth.focus_writers import ddff12_focus_distances_m
from anydepth.synth.thin_lens import LENS_PRESETS, _auto_layer_count, focal_stack

CASES = {
    "FoD500-like 5x256x256": ((256, 256), "fod500", np.asarray(FOD500_FOCUS_DISTANCES_M), (0.1, 3.0)),
    "DDFF-12-like 10x383x552": ((383, 552), "ddff12", ddff12_focus_distances_m(), (0.5, 7.0)),
}


def make_scene(size, depth_range, seed=0):
    rng = np.random.default_rng(seed)
    height, width = size
    aif = rng.random((height, width, 3)).astype(np.float32)
    field = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 12)
    field = (field - field.min()) / (field.max() - field.min())
    near, far = depth_range
    return aif, 1.0 / (1 / near + (1 / far - 1 / near) * field)  # uniform in inverse depth


def median_seconds(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--aperture-scale", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"median of {args.repeats}, aperture x{args.aperture_scale:g}, OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads")
    print(f"{'case':>24} | {'max σ px':>8} | {'layers':>6} | {'layered':>9} | {'gather':>9} | {'layered/gather':>14} | mean |diff|")
    rows = []
    for name, (size, lens_name, focus_m, depth_range) in CASES.items():
        preset = LENS_PRESETS[lens_name]
        lens = replace(preset, f_number=preset.f_number / args.aperture_scale)
        aif, depth = make_scene(size, depth_range)
        layered = median_seconds(lambda: focal_stack(aif, depth, focus_m, lens, mode="layered"), args.repeats)
        gather = median_seconds(lambda: focal_stack(aif, depth, focus_m, lens, mode="gather"), args.repeats)
        stack_layered = focal_stack(aif, depth, focus_m, lens, mode="layered")
        stack_gather = focal_stack(aif, depth, focus_m, lens, mode="gather")
        sigma_max = float(lens.slice_sigmas_px(stack_layered).max())
        layers = _auto_layer_count(1.0 / depth, lens, np.asarray(focus_m), 0.5)
        difference = float(np.abs(stack_layered.slices - stack_gather.slices).mean())
        rows.append({"case": name, "max_sigma_px": sigma_max, "layers": layers, "layered_s": layered,
                     "gather_s": gather, "ratio": layered / gather, "mean_abs_difference": difference})
        print(f"{name:>24} | {sigma_max:8.2f} | {layers:6d} | {layered * 1e3:6.0f} ms | {gather * 1e3:6.0f} ms | "
              f"{layered / gather:13.1f}x | {difference:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"aperture_scale": args.aperture_scale, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
