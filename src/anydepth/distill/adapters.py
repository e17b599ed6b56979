"""What training needs from each student, beyond the streaming interface of `EventDepthModel`:
its event representation at sensor resolution (so augmentations act on it and on the label
alike), the network input for a batch of such images, the raw output back at the image size, and
that output in the space a loss compares it in.

Spaces:
- "disparity": relative inverse depth, the space of DAv2 pseudo-labels (affine-invariant losses);
  DepthAnyEvent: the head output before `inv_prediction` (relu + inv_prediction: 1/d -> d);
  E2Depth / EReFormer: 1 / depth in metres;
- "log_depth": E2Depth's normalised log depth in [0, 1] (its sigmoid output), for metric ground truth;
- "depth": metres (metric students only).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from anydepth.errors import InputError
from anydepth.events.container import EventArray
from anydepth.eventdepth.base import EventDepthModel
from anydepth.eventdepth.depthanyevent import DepthAnyEvent
from anydepth.eventdepth.e2depth import CropParameters, E2Depth, log_depth_to_depth
from anydepth.eventdepth.ereformer import EReFormer, padding_for

SPACES = ("disparity", "log_depth", "depth")


def event_image(model: EventDepthModel, window: EventArray | np.ndarray, representation: str | None = None) -> np.ndarray:
    """The (C, H, W) float32 representation the model takes, at sensor resolution (raw events, or
    a precomputed array named by `representation`)."""
    return model.event_image(window, representation)


def run_network(model: EventDepthModel, images: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
    """images (N, C, h, w) event images -> (raw output (N, h, w) at the image size, state).
    DepthAnyEvent resizes to its input_size and back (bilinear); E2Depth and EReFormer pad to
    their stride and crop back."""
    height, width = images.shape[-2:]
    if isinstance(model, DepthAnyEvent):
        raw, state = model(model.prepare_image(images), state)
        return F.interpolate(raw, (height, width), mode="bilinear", align_corners=False)[:, 0], state
    if isinstance(model, E2Depth):
        crop = CropParameters(height, width, model.config.num_encoders)
        raw, state = model(crop.pad(images), state)
        return crop.crop(raw[:, 0]), state
    if isinstance(model, EReFormer):
        top, bottom, left, right = padding_for((height, width))
        raw, state = model(F.pad(images, (left, right, top, bottom)), state)
        return raw[:, 0, top:top + height, left:left + width], state
    raise InputError(f"no training adapter for {type(model).__name__}")


def native_space(model: EventDepthModel) -> str:
    """The space the raw output lives in: disparity for DepthAnyEvent trained here, log depth for
    E2Depth and EReFormer."""
    return "disparity" if isinstance(model, DepthAnyEvent) else "log_depth"


def to_space(model: EventDepthModel, raw: torch.Tensor, space: str) -> torch.Tensor:
    """Raw output (N, h, w) -> the same map in `space` (differentiable)."""
    if space not in SPACES:
        raise InputError(f"unknown space {space!r}; choose one of {', '.join(SPACES)}")
    if isinstance(model, DepthAnyEvent):
        if space != "disparity":
            raise InputError(f"DepthAnyEvent predicts relative depth; it trains in disparity space, not {space}")
        config = model.config
        if config.inv_prediction and config.activation == "relu":
            return config.scale_factor / raw.clamp_min(1e-6) - 1e-6
        if config.inv_prediction and config.activation == "sigmoid":
            return 1.0 - raw / config.scale_factor
        if config.activation == "softplus":
            return 1.0 / raw.clamp_min(1e-6)  # softplus outputs are read as depth by the authors' code
        return raw / config.scale_factor
    if space == "log_depth":
        return raw
    depth = log_depth_to_depth(raw, model.config.max_depth, model.config.alpha)
    return depth if space == "depth" else 1.0 / depth

