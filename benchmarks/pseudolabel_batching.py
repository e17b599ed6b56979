"""Pseudo-label batching: is a label bit-identical whether its frame ran alone, in a full batch or in
a partial last batch, and what does running each frame alone cost?

For each teacher encoder (random weights in the official layout; speed and rounding do not depend
on the values) and DSEC-sized frames (480x640 BGR at input size 518), prints frames/s for batches of
1 and of B, the ratio, and whether the batched labels equal the lone ones bit for bit (`alone==batch`)
and whether a frame's label is the same at another position of a padded batch of B (`padded pos.`).

    python benchmarks/pseudolabel_batching.py [--device cuda] [--encoders vits,vitl] [--batch 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from anydepth.foundation import DepthAnythingV2
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: official-layout random weights
from tests.support.weights import random_state_dict  # noqa: E402
from anydepth.foundation.transform import as_bgr_uint8, image_to_tensor, resize_prediction


@torch.inference_mode()
def forward(model, frames, input_size):
    parameter = next(model.parameters())
    x = torch.cat([image_to_tensor(as_bgr_uint8(f), input_size) for f in frames]).to(parameter.device, parameter.dtype)
    return resize_prediction(model(x), *frames[0].shape[:2]).float().cpu().numpy()


def timed(function, device, repeats=3):
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--encoders", default="vits,vitl")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=518)
    args = parser.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(args.batch)]
    print(f"device {device}, frames 480x640, input {args.size}, batch {args.batch}")
    print(f"{'encoder':<8}{'alone f/s':>11}{'batch f/s':>11}{'ratio':>8}{'alone==batch':>14}{'padded pos.':>13}")
    for encoder in args.encoders.split(","):
        model = DepthAnythingV2(encoder)
        model.load_state_dict(random_state_dict(encoder))
        model = model.to(device).eval()
        alone = np.stack([forward(model, [f], args.size)[0] for f in frames])
        batched = forward(model, frames, args.size)
        shifted = forward(model, frames[1:] + frames[:1], args.size)  # frame 0 at the last position
        t_alone = timed(lambda: [forward(model, [f], args.size) for f in frames], device)
        t_batch = timed(lambda: forward(model, frames, args.size), device)
        n = len(frames)
        print(f"{encoder:<8}{n / t_alone:>11.1f}{n / t_batch:>11.1f}{t_alone / t_batch:>8.2f}"
              f"{str(np.array_equal(alone, batched)):>14}{str(np.array_equal(batched[0], shifted[-1])):>13}")


if __name__ == "__main__":
    main()
