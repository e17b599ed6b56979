"""Event representation throughput: anydepth's fused kernels against plain-numpy references
(`np.add.at` scatter, the way E2VID / E2Depth build voxel grids in numpy) in the same run.

    python benchmarks/events.py                      # 10 M events at 640x480
    python benchmarks/events.py --events 2000000 --size 260x346 --repeats 5

Streams: "uniform" (every pixel equally likely: the worst case for caches) and "edges" (events on
a few moving edges, closer to a real recording). Prints events/s (median) and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numba
import numpy as np

from anydepth.events import EventArray, reference
from anydepth.events import representations as rep

CASES = {
    "tencode": (rep.tencode, reference.tencode),
    "voxel grid (B=5, normalised)": (lambda e: rep.voxel_grid(e, 5, True), lambda e: reference.voxel_grid(e, 5, True)),
    "voxel grid (B=5, raw)": (lambda e: rep.voxel_grid(e, 5, False), lambda e: reference.voxel_grid(e, 5, False)),
    "histogram": (rep.histogram, reference.histogram),
    "time surface": (rep.time_surface, None),
}


def uniform_stream(count: int, height: int, width: int, seed: int = 0, duration_us: int = 50_000) -> EventArray:
    rng = np.random.default_rng(seed)
    return EventArray(
        rng.integers(0, width, count).astype(np.uint16), rng.integers(0, height, count).astype(np.uint16),
        np.sort(rng.integers(0, duration_us, count)).astype(np.int64), rng.integers(0, 2, count).astype(np.int8),
        (height, width))


def edge_stream(count: int, height: int, width: int, seed: int = 0, duration_us: int = 50_000) -> EventArray:
    """Events near 8 straight edges sweeping across the sensor, in time order."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, count)).astype(np.int64)
    edge = rng.integers(0, 8, count)
    angle = np.linspace(0, np.pi, 8, endpoint=False)[edge]
    along = rng.uniform(-1, 1, count) * max(height, width)
    offset = (t / duration_us - 0.5) * width + (edge - 3.5) * width / 10 + rng.normal(0, 1.5, count)
    cx, cy = width / 2 + offset * np.cos(angle) - along * np.sin(angle), height / 2 + offset * np.sin(angle) + along * np.cos(angle)
    keep = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    while keep.sum() < count:  # top up with re-drawn positions on the same edges
        missing = ~keep
        along[missing] = rng.uniform(-0.5, 0.5, missing.sum()) * min(height, width)
        cx, cy = width / 2 + offset * np.cos(angle) - along * np.sin(angle), height / 2 + offset * np.sin(angle) + along * np.cos(angle)
        cx, cy = np.clip(cx, 0, width - 1), np.clip(cy, 0, height - 1)
        keep = np.ones(count, bool)
    return EventArray(cx.astype(np.uint16), cy.astype(np.uint16), t, (rng.random(count) < 0.5).astype(np.int8), (height, width))


def median_seconds(function, events, repeats: int) -> float:
    function(events.slice_index(0, 1000))  # compile
    function(events)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(events)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--size", default="480x640", help="HxW")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--reference-repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    print(f"{args.events / 1e6:g} M events at {width}x{height}, numba {numba.__version__} with {numba.get_num_threads()} threads; "
          f"median of {args.repeats} (numpy reference: {args.reference_repeats})")
    print(f"{'stream':>8} | {'representation':>29} | {'anydepth':>12} | {'numpy np.add.at':>15} | speed-up")
    rows = []
    for stream_name, make in (("uniform", uniform_stream), ("edges", edge_stream)):
        events = make(args.events, height, width)
        for name, (fast, slow) in CASES.items():
            seconds = median_seconds(fast, events, args.repeats)
            slow_seconds = median_seconds(slow, events, args.reference_repeats) if slow else float("nan")
            if slow:
                np.testing.assert_allclose(fast(events), slow(events), atol=1e-3)
            rows.append({"stream": stream_name, "representation": name, "events_per_s": args.events / seconds,
                         "reference_events_per_s": args.events / slow_seconds, "speedup": slow_seconds / seconds})
            print(f"{stream_name:>8} | {name:>29} | {args.events / seconds / 1e6:8.0f} M/s | "
                  f"{args.events / slow_seconds / 1e6:11.1f} M/s | {slow_seconds / seconds:6.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"events": args.events, "size": [height, width], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
