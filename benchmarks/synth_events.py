"""Event simulator throughput: `EventSimulator.simulate` on a DAVIS-sized sequence, against ESIM's
per-pixel loop (transcribed in plain Python, the reference of tests/test_synth_esim.py) in the same run.

    python benchmarks/synth_events.py                           # 2 s at 1 kHz, 260x346, CPU
    python benchmarks/synth_events.py --seconds 1 --size 480x640 --device cuda

The frames are a textured pattern (a sum of separable sinusoids, numpy) drifting diagonally with a
slow flicker. Timed: rendering alone, `simulate` on frames held in memory, and rendering +
`simulate` streamed from a generator (no frame kept). Prints frames/s, events/s and seconds
(median of --repeats), then the per-pixel loop on a crop and the speed ratio in pixel-frames/s.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import numpy as np
import torch

from anydepth.synth import EventSimulator


class MovingTexture:
    """Frame k of a (H, W) float32 texture in [0.05, 0.95] translated by k * speed px (x and y)."""

    def __init__(self, height: int, width: int, rate_hz: float, speed_px_s: float = 80.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.height, self.width, self.rate_hz = height, width, rate_hz
        self.speed = speed_px_s / rate_hz
        self.terms = [(rng.uniform(0.5, 1.0), rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5), rng.uniform(0, 2 * math.pi))
                      for _ in range(6)]
        self.x = np.arange(width, dtype=np.float32)
        self.y = np.arange(height, dtype=np.float32)

    def __call__(self, k: int) -> np.ndarray:
        shift = np.float32(k * self.speed)
        frame = np.full((self.height, self.width), 0.5, np.float32)
        flicker = 1.0 + 0.1 * math.sin(2 * math.pi * 3.0 * k / self.rate_hz)
        total = sum(a for a, *_ in self.terms)
        for a, kx, ky, phase in self.terms:
            frame += np.outer(np.cos(ky * (self.y - 0.5 * shift)), np.sin(kx * (self.x - shift) + phase)) * np.float32(0.45 * a / total * flicker)
        return np.clip(frame, 0.05, 0.95, out=frame)


def per_pixel_loop(log_levels: np.ndarray, times: np.ndarray, threshold: float) -> int:
    """ESIM's loop over pixels and crossings (rpg_esim imageCallback) in Python; returns the count."""
    reference = log_levels[0].copy()
    count = 0
    for f in range(1, len(times)):
        for i in range(log_levels.shape[1]):
            old, new = log_levels[f - 1, i], log_levels[f, i]
            if new == old:
                continue
            polarity = 1.0 if new >= old else -1.0
            while True:
                cross = reference[i] + polarity * threshold
                if (polarity > 0 and old < cross <= new) or (polarity < 0 and new <= cross < old):
                    _ = (cross - old) * (times[f] - times[f - 1]) / (new - old)  # the interpolated time
                    reference[i] = cross
                    count += 1
                else:
                    break
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="frames per second")
    parser.add_argument("--size", default="260x346", help="HxW")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crop", type=int, default=32, help="side of the crop the per-pixel loop runs on")
    parser.add_argument("--scene", action="store_true",
                        help="also time the whole pipeline on a ray-cast procedural scene (anydepth synth events)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    count = int(round(args.seconds * args.rate))
    step_us = int(round(1e6 / args.rate))
    times = np.arange(count, dtype=np.int64) * step_us
    texture = MovingTexture(height, width, args.rate)
    options = dict(contrast_pos=0.2, contrast_neg=0.2, threshold_sigma=0.03, refractory_us=100, shot_noise_hz=0.1, seed=0,
                   device=args.device)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    start = time.perf_counter()
    frames = np.stack([texture(k) for k in range(count)])
    render_s = time.perf_counter() - start

    in_memory, streamed, events = [], [], None
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        events = EventSimulator(**options).simulate(frames, times)
        sync()
        in_memory.append(time.perf_counter() - start)
        start = time.perf_counter()
        EventSimulator(**options).simulate((texture(k), t) for k, t in enumerate(times))
        sync()
        streamed.append(time.perf_counter() - start)
    simulate_s, stream_s = statistics.median(in_memory), statistics.median(streamed)

    crop = min(args.crop, height, width)
    loop_frames = min(count, 100)
    crop_log = np.log(frames[:loop_frames, :crop, :crop].reshape(loop_frames, -1).astype(np.float64) + 1e-3)
    start = time.perf_counter()
    loop_events = per_pixel_loop(crop_log, times[:loop_frames], 0.2)
    loop_s = time.perf_counter() - start

    pixel_frames = height * width * (count - 1)
    loop_pixel_frames = crop * crop * (loop_frames - 1)
    rows = [
        ("render (numpy texture)", render_s, count / render_s, None),
        ("simulate, frames in memory", simulate_s, count / simulate_s, len(events) / simulate_s),
        ("render + simulate, generator", stream_s, count / stream_s, len(events) / stream_s),
    ]
    if args.scene:
        from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence

        spec = EventSequenceSpec(seconds=args.seconds, resolution=(height, width), internal_fps=args.rate)
        generate_event_sequence(EventSequenceSpec(seconds=0.01, resolution=(height, width), internal_fps=args.rate))  # compile
        start = time.perf_counter()
        sequence = generate_event_sequence(spec)
        scene_s = time.perf_counter() - start
        rows.append(("scene ray-cast + simulate", scene_s, count / scene_s, len(sequence.events) / scene_s))
    print(f"{count} frames {height}x{width} at {args.rate:g} Hz ({args.seconds:g} s), {len(events)} events, "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'step':32s} {'seconds':>9s} {'frames/s':>10s} {'events/s':>12s}")
    for name, seconds, frames_per_s, events_per_s in rows:
        print(f"{name:32s} {seconds:9.3f} {frames_per_s:10.0f} {'' if events_per_s is None else f'{events_per_s:12.3e}'}")
    ours = pixel_frames / simulate_s
    reference = loop_pixel_frames / loop_s
    print(f"ESIM per-pixel loop (Python), {crop}x{crop} crop, {loop_frames} frames: {loop_s:.2f} s, {loop_events} events, "
          f"{reference:.3e} pixel-frames/s; EventSimulator {ours:.3e} pixel-frames/s, ratio {ours / reference:.0f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"frames": count, "size": [height, width], "events": len(events), "render_s": render_s,
                       "simulate_s": simulate_s, "render_and_simulate_s": stream_s, "loop_pixel_frames_per_s": reference,
                       "simulate_pixel_frames_per_s": ours, "device": args.device}, handle, indent=2)


if __name__ == "__main__":
    main()
