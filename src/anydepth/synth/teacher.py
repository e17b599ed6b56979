"""A small Depth Anything V2 trained on rendered RGB-D views of procedural scenes: the stand-in
teacher (events) and prior (focus) when the official weights are not at hand."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from anydepth import viz
from anydepth.foundation.finetune import train_on_rgbd
from anydepth.foundation.model import DepthAnythingV2
from anydepth.synth.scenes import PinholeCamera, random_scene, render
from anydepth.synth.sequences import random_trajectory


def rendered_rgbd(count: int, resolution: tuple[int, int] = (192, 256), depth_ranges=((0.5, 8.0),),
                  horizontal_fov_deg: float = 60.0, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` (BGR uint8 (H, W, 3), depth (H, W) metres, 0 = no hit) views of scenes with seeds
    seed, seed+1, ...; scene i takes its depth range from `depth_ranges` in turn."""
    camera = PinholeCamera.with_fov(resolution[0], resolution[1], horizontal_fov_deg)
    pairs = []
    for index in range(count):
        scene = random_scene(seed + index, tuple(depth_ranges[index % len(depth_ranges)]))
        rotation, position = random_trajectory(seed + index).pose(0.3 * (index % 5))
        position = position * np.array([1.0, 0.6, 1.0])
        rgb, depth = render(scene, camera, rotation, position)
        pairs.append((viz.to_uint8(rgb[..., ::-1]).copy(), np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)))
    return pairs


def train_synthetic_teacher(encoder: str = "vitt", pairs: list | None = None, steps: int = 600, input_size: int = 196,
                            lr: float = 5e-4, batch: int = 8, seed: int = 0,
                            progress: Callable[[float], None] | None = None) -> DepthAnythingV2:
    """A fresh DAv2 `encoder` trained with the affine-invariant disparity loss on `pairs`
    (default: 48 rendered views of 0.5-8 m scenes). Returns the model in eval mode."""
    torch.manual_seed(seed)
    pairs = pairs if pairs is not None else rendered_rgbd(48, seed=seed)
    model = DepthAnythingV2(encoder)
    model.depth_head.open_output()
    train_on_rgbd(model, pairs, steps=steps, lr=lr, input_size=input_size, batch=batch, progress=progress)
    return model.eval()
