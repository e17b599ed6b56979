"""Per-window latency of the event depth students, split into reading, representation and the
network, on an MVSEC-sized stream (260x346, 50 ms windows).

    python benchmarks/eventdepth_latency.py                  # every registered model, CPU
    python benchmarks/eventdepth_latency.py --models depthanyevent depthanyevent-r --device cuda
    python benchmarks/eventdepth_latency.py --official-dae ~/src/depthanyevent   # + the authors' networks

The events are written to a plain HDF5 file first and read back window by window through
`open_events`, as `anydepth events predict` does. All models run interleaved window by window (each
carrying its own recurrent state), so load on a shared machine slows all rows alike. Weights are
deterministic random values (speed does not depend on them). Prints medians in ms and
DepthAnyEvent-R's cost over DepthAnyEvent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from anydepth.events import open_events
from anydepth.eventdepth import MODELS, load_model


def write_stream(path: Path, height: int, width: int, windows: int, events_per_window: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    count = windows * events_per_window
    with h5py.File(path, "w") as handle:
        handle["x"] = rng.integers(0, width, count).astype(np.uint16)
        handle["y"] = rng.integers(0, height, count).astype(np.uint16)
        handle["t"] = np.sort(rng.integers(0, windows * 50_000, count)).astype(np.int64)
        handle["p"] = rng.integers(0, 2, count).astype(np.int8)
        handle.attrs["sensor_size"] = (height, width)
    return path


def time_models(names: list[str], path: Path, windows: int, device: str, warmup: int) -> dict[str, dict[str, float]]:
    """Every model on every window, interleaved window by window (the order rotates each window),
    so a busy machine slows all of them alike. The window is read once per model, as each would
    read it alone. Models whose dependencies are missing are reported and skipped."""
    models = {}
    for name in names:
        try:
            models[name] = load_model(name).to(device).eval()
        except ImportError as error:
            print(f"{name:>16} | not available ({error})")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = {name: {"read": [], "representation": [], "network": [], "output": []} for name in models}
    states = dict.fromkeys(models)
    order = list(models)
    with open_events(path) as reader, torch.inference_mode():
        for index, window_start in enumerate(range(0, windows * 50_000, 50_000)):
            for name in order:
                model = models[name]
                started = time.perf_counter()
                window = reader.read_time(window_start, window_start + 50_000)
                after_read = time.perf_counter()
                x = model.prepare(window)
                sync()
                after_prepare = time.perf_counter()
                raw, states[name] = model(x, states[name])
                sync()
                after_network = time.perf_counter()
                model.to_depth(raw, window.sensor_size).cpu()
                finished = time.perf_counter()
                if index >= warmup:
                    for part, seconds in (("read", after_read - started), ("representation", after_prepare - after_read),
                                          ("network", after_network - after_prepare), ("output", finished - after_network)):
                        times[name][part].append(seconds)
            order = order[1:] + order[:1]
    results = {}
    for name, parts in times.items():
        medians = {part: 1000.0 * statistics.median(values) for part, values in parts.items()}
        medians["total"] = sum(medians.values())
        medians["read+representation %"] = 100.0 * (medians["read"] + medians["representation"]) / medians["total"]
        medians["network_ms_per_window"] = [1000.0 * seconds for seconds in parts["network"]]
        results[name] = medians
    return results


def time_official_networks(checkout: Path, ours: dict, device: str, repeats: int = 10) -> dict[str, float]:
    """Network time of the authors' DepthAnyEvent / -R (a checkout of their release) and ours,
    interleaved in one loop on the same 266x350 input (vits, the released test config)."""
    import sys
    import types

    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:  # their dpt.py imports Compose for pre-processing only
            stand_in = types.ModuleType("torchvision")
            stand_in.transforms = types.ModuleType("torchvision.transforms")
            stand_in.transforms.Compose = object
            sys.modules["torchvision"], sys.modules["torchvision.transforms"] = stand_in, stand_in.transforms
    sys.path.insert(0, str(checkout))
    from models.dav2.dpt import DepthAnythingV2 as AuthorsDAE
    from models.rec_dav2.dpt import RecurrentDepthAnythingV2 as AuthorsDAER

    config = dict(encoder="vits", features=64, out_channels=[48, 96, 192, 384], activation="softplus",
                  inv_prediction=True, input_size_width=350, input_size_height=266)
    models = {"authors DepthAnyEvent": AuthorsDAE(**config), "authors DepthAnyEvent-R": AuthorsDAER(**config),
              "anydepth DepthAnyEvent": ours["depthanyevent"], "anydepth DepthAnyEvent-R": ours["depthanyevent-r"]}
    x = torch.randn(1, 3, 266, 350, device=device)
    states = dict.fromkeys(models)
    times = {name: [] for name in models}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        for name, model in models.items():
            model.to(device).eval()
        for round_index in range(repeats + 2):
            for name, model in models.items():
                sync()
                started = time.perf_counter()
                if name.endswith("-R"):
                    _, states[name] = model(x, states[name])
                else:
                    model(x)
                sync()
                if round_index >= 2:
                    times[name].append(time.perf_counter() - started)
    medians = {name: 1000.0 * statistics.median(values) for name, values in times.items()}
    for who in ("authors", "anydepth"):  # per-round ratios: a busy round slows both models of it
        medians[f"{who} DepthAnyEvent-R / DepthAnyEvent, median per round"] = statistics.median(
            r / v for r, v in zip(times[f"{who} DepthAnyEvent-R"], times[f"{who} DepthAnyEvent"]))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--size", default="260x346", help="HxW")
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--events-per-window", type=int, default=30_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--official-dae", type=Path, help="checkout of the Depth AnyEvent release, to time its networks too")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.windows - args.warmup} windows of 50 ms, {args.events_per_window:,} events each, {width}x{height}, "
          f"{device_name}, fp32, median ms per window")
    print(f"{'model':>16} | {'read':>6} | {'repr':>6} | {'network':>8} | {'output':>6} | {'total':>8} | read+repr")
    with tempfile.TemporaryDirectory() as folder:
        path = write_stream(Path(folder) / "stream.h5", height, width, args.windows, args.events_per_window)
        results = time_models(args.models, path, args.windows, args.device, args.warmup)
        for name, parts in results.items():
            print(f"{name:>16} | {parts['read']:6.2f} | {parts['representation']:6.2f} | {parts['network']:8.1f} | "
                  f"{parts['output']:6.2f} | {parts['total']:8.1f} | {parts['read+representation %']:5.2f} %")
    if "depthanyevent" in results and "depthanyevent-r" in results:
        ratio = results["depthanyevent-r"]["network"] / results["depthanyevent"]["network"]
        paired = statistics.median(r / v for r, v in zip(results["depthanyevent-r"]["network_ms_per_window"],
                                                          results["depthanyevent"]["network_ms_per_window"]))
        print(f"DepthAnyEvent-R network / DepthAnyEvent network: {ratio:.3f} (+{100 * (ratio - 1):.1f} %); "
              f"median of the per-window ratios {paired:.3f}")
    official = {}
    if args.official_dae:
        ours = {name: load_model(name) for name in ("depthanyevent", "depthanyevent-r")}
        official = time_official_networks(args.official_dae, ours, args.device)
        print("network only, 266x350, interleaved:")
        for name, ms in official.items():
            if "/" not in name:
                print(f"  {name:>26}: {ms:7.1f} ms")
        for who in ("authors", "anydepth"):
            ratio = official[f"{who} DepthAnyEvent-R"] / official[f"{who} DepthAnyEvent"]
            paired = official[f"{who} DepthAnyEvent-R / DepthAnyEvent, median per round"]
            print(f"  {who} DepthAnyEvent-R / DepthAnyEvent: {ratio:.3f}; median of the per-round ratios {paired:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"device": device_name, "size": [height, width], "results": results,
                                         "networks_interleaved_ms": official}, indent=2))


if __name__ == "__main__":
    main()
