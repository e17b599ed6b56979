"""Training Depth Anything V2 models on RGB-D pairs: a small DAv2-architecture prior or teacher
learned on synthetic scenes when the official weights are not at hand.

The loss is affine-invariant in disparity, as DAv2's relative head is: per image, the prediction is
aligned to 1 / depth by the closed-form least-squares scale and shift over valid pixels, and the
mean absolute residual is minimised (MiDaS-style scale-and-shift-invariant loss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from anydepth.foundation.model import DepthAnythingV2
from anydepth.foundation.transform import image_to_tensor
from anydepth.metrics.align import scale_shift_lstsq


def affine_invariant_disparity_loss(prediction: torch.Tensor, depth_m: torch.Tensor) -> torch.Tensor:
    """prediction (B, H, W) relative disparity, depth_m (B, H, W) metres (<= 0 or non-finite =
    invalid) -> mean over images of mean |s p + t - 1/d| on valid pixels, (s, t) solved per image."""
    valid = torch.isfinite(depth_m) & (depth_m > 0)
    disparity = torch.where(valid, 1.0 / depth_m.clamp_min(1e-6), torch.zeros_like(depth_m))
    scale, shift = scale_shift_lstsq(prediction, disparity, valid)
    aligned = scale[:, None, None] * prediction + shift[:, None, None]
    residual = torch.where(valid, (aligned - disparity).abs(), torch.zeros_like(aligned))
    return (residual.sum((-2, -1)) / valid.sum((-2, -1)).clamp_min(1)).mean()


def train_on_rgbd(model: DepthAnythingV2, pairs: Iterable[tuple[np.ndarray, np.ndarray]], steps: int,
                  lr: float = 2e-4, input_size: int = 196, batch: int = 4,
                  progress: Callable[[float], None] | None = None) -> list[float]:
    """Train `model` in place for `steps` AdamW steps on batches of (BGR uint8 (H, W, 3), depth (H, W)
    metres) pairs drawn in order from `pairs` (cycled). Returns the loss per step."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no training pairs")
    device = next(model.parameters()).device
    inputs = [image_to_tensor(bgr, input_size)[0] for bgr, _ in pairs]
    targets = [torch.as_tensor(depth, dtype=torch.float32) for _, depth in pairs]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    model.train()
    losses = []
    for step in range(steps):
        chosen = [(step * batch + k) % len(pairs) for k in range(batch)]
        x = torch.stack([inputs[i] for i in chosen]).to(device)
        target = torch.stack([targets[i] for i in chosen]).to(device)
        prediction = F.interpolate(model(x)[:, None], target.shape[-2:], mode="bilinear", align_corners=True)[:, 0]
        loss = affine_invariant_disparity_loss(prediction, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(losses[-1])
    model.eval()
    return losses
