"""Depth Anything V2 forward time: anydepth against its peers, same weights, same input, one run.

Peers: Hugging Face transformers' `DepthAnythingForDepthEstimation` (SDPA attention in its DINOv2
backbone, the faster of its two modes; `--hf-eager` adds the eager mode) and, with
`--official PATH_TO_CHECKOUT`, the authors' Depth-Anything-V2 code (which, without xFormers, falls
back to an explicit softmax(QK^T)V).

    python benchmarks/dav2_speed.py                       # ViT-S, 518x518 and 266x350, CPU
    python benchmarks/dav2_speed.py --encoder vitb --sizes 518x518
    python benchmarks/dav2_speed.py --official ~/src/Depth-Anything-V2 --device cuda

Prints the median time per forward (batch 1, fp32, no grad; contenders timed round-robin) and
the ratio peer / anydepth
(> 1 means anydepth is faster).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from anydepth.foundation import DepthAnythingV2, export_hf_folder, get_config
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: official-layout random weights
from tests.support.weights import random_state_dict  # noqa: E402


def interleaved_medians(runs: dict, repeats: int, warmup: int, device: str) -> dict[str, float]:
    """Median seconds per call of each run, timed round-robin (one call of each per round) so that
    a slow phase of the machine hurts every contender alike."""
    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        for run in runs.values():
            run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def load_transformers_peer(model: DepthAnythingV2, eager: bool):
    from transformers import DepthAnythingForDepthEstimation

    with tempfile.TemporaryDirectory() as folder:
        export_hf_folder(model, folder)
        peer = DepthAnythingForDepthEstimation.from_pretrained(folder).eval()
    peer.backbone.config._attn_implementation = "eager" if eager else "sdpa"
    return peer


def load_official_peer(checkout: Path, encoder: str, state_dict: dict):
    """The authors' model class from a checkout of their repository (not part of anydepth)."""
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:  # their dpt.py imports Compose only for infer_image's pre-processing
            stand_in = types.ModuleType("torchvision")
            stand_in.transforms = types.ModuleType("torchvision.transforms")
            stand_in.transforms.Compose = object
            sys.modules["torchvision"], sys.modules["torchvision.transforms"] = stand_in, stand_in.transforms
    sys.path.insert(0, str(checkout))
    from depth_anything_v2.dpt import DepthAnythingV2 as Official

    config = get_config(encoder)
    peer = Official(encoder=encoder, features=config.features, out_channels=list(config.out_channels))
    peer.load_state_dict(state_dict, strict=True)
    return peer.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="vits", choices=["vits", "vitb", "vitl"])
    parser.add_argument("--sizes", default="518x518,266x350", help="comma-separated HxW network inputs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--official", type=Path, help="path to a checkout of DepthAnything/Depth-Anything-V2")
    parser.add_argument("--hf-eager", action="store_true", help="also time transformers with eager attention")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    torch.manual_seed(0)
    state_dict = random_state_dict(args.encoder, seed=0)
    ours = DepthAnythingV2(args.encoder)
    ours.load_state_dict(state_dict)
    models = {"anydepth": ours.eval()}
    try:
        models["transformers-sdpa"] = load_transformers_peer(ours, eager=False)
        if args.hf_eager:
            models["transformers-eager"] = load_transformers_peer(ours, eager=True)
    except ImportError:
        print("transformers is not installed: pip install transformers (the test extra) to compare against it")
    if args.official:
        models["official"] = load_official_peer(args.official, args.encoder, state_dict)
    for model in models.values():
        model.to(args.device)

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"Depth Anything V2 {args.encoder} forward, fp32, batch 1, median of {args.repeats} ({device_name}, torch {torch.__version__})")
    print(f"{'input':>9} | " + " | ".join(f"{name:>18}" for name in models) + " | ratios peer/anydepth")
    results = []
    for size in args.sizes.split(","):
        height, width = (int(v) for v in size.lower().split("x"))
        x = torch.randn(1, 3, height, width, device=args.device)
        runs = {
            name: (lambda model=model: model(pixel_values=x).predicted_depth) if name.startswith("transformers")
            else (lambda model=model: model(x))
            for name, model in models.items()
        }
        with torch.inference_mode():
            times = interleaved_medians(runs, args.repeats, args.warmup, args.device)
        ratios = {name: times[name] / times["anydepth"] for name in times if name != "anydepth"}
        results.append({"input": size, "seconds": times, "ratio_peer_over_anydepth": ratios})
        print(f"{size:>9} | " + " | ".join(f"{times[name] * 1000:15.1f} ms" for name in models) + " | "
              + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))
    if args.json:
        args.json.write_text(json.dumps({"encoder": args.encoder, "device": device_name, "results": results}, indent=2))


if __name__ == "__main__":
    main()
