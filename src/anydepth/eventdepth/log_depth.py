"""Normalised log depth, the output of the metric students (E2Depth, EReFormer): the conversion to
and from metres, and what those students share on top of `EventDepthModel` (`LogDepthModel`).

D̂ in [0, 1] is metres through depth = D_max · exp(α (D̂ − 1)), with D_max = 80 m and α = 3.70378
(the official `clip_distance` and `reg_factor` of E2Depth and EReFormer): D̂ = 1 is D_max,
D̂ = 0 is D_max · e^−α (1.97 m for 80 m).
"""

from __future__ import annotations

import numpy as np
import torch

from anydepth.errors import InputError
from anydepth.eventdepth.base import SPACES, EventDepthModel

CLIP_DISTANCE_M = 80.0  # D_max, official `clip_distance` (evaluation.py, training configs)
REG_FACTOR = 3.70378  # α, official `reg_factor` (dataset.py, evaluation.py)


def log_depth_to_depth(log_depth, max_depth: float = CLIP_DISTANCE_M, alpha: float = REG_FACTOR):
    """Normalised log depth D̂ (any shape, numpy or torch) -> depth in metres,
    D_max · exp(α (D̂ − 1)). As official `evaluation.prepare_depth_data` (no inversion unless the
    model was trained on inverse depth, which the released E2Depth was not)."""
    exp = torch.exp if isinstance(log_depth, torch.Tensor) else np.exp
    return max_depth * exp(alpha * (log_depth - 1.0))


def depth_to_log_depth(depth_m, max_depth: float = CLIP_DISTANCE_M, alpha: float = REG_FACTOR, eps: float = 0.0):
    """Depth in metres (any shape, numpy or torch) -> normalised log depth
    1 + log(clip(d, 0, D_max) / D_max + eps) / α, clipped to [0, 1]: the inverse of
    `log_depth_to_depth`. eps = 0 gives E2Depth's training targets (its loader divides by the
    frame's maximum, which is D_max whenever the frame reaches it); eps = 1e-6 EReFormer's (official
    `DENSE_Data.prepare_depth`). Depth <= 0 gives 0; NaN stays NaN."""
    if isinstance(depth_m, torch.Tensor):
        ratio = depth_m.clamp(0.0, max_depth) / max_depth
        return (1.0 + torch.log(ratio + eps) / alpha).clamp(0.0, 1.0)
    ratio = np.clip(depth_m, 0.0, max_depth) / max_depth
    with np.errstate(divide="ignore"):
        return np.clip(1.0 + np.log(ratio + eps) / alpha, 0.0, 1.0)


class LogDepthModel(EventDepthModel):
    """A metric student whose network outputs normalised log depth D̂ (its `config` has
    `max_depth` and `alpha`). Subclasses implement `event_image`, `prepare_images`, `forward` and
    `raw_at_size` (the padding cropped away)."""

    output_kind = "metric"
    native_space = "log_depth"

    def to_log_depth(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Network output (N, 1, h, w) -> normalised log depth D̂ (N, H, W) in [0, 1] at `size`."""
        return self.raw_at_size(raw, size)

    def to_depth(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Network output (N, 1, h, w) -> metres (N, H, W) at `size` (H, W):
        max_depth · exp(α (D̂ − 1)) of `to_log_depth`."""
        return log_depth_to_depth(self.to_log_depth(raw, size), self.config.max_depth, self.config.alpha)

    def to_space(self, raw_map: torch.Tensor, space: str) -> torch.Tensor:
        """D̂ (N, H, W) -> itself ("log_depth"), metres ("depth") or 1 / metres ("disparity")."""
        if space not in SPACES:
            raise InputError(f"unknown space {space!r}; choose one of {', '.join(SPACES)}")
        if space == "log_depth":
            return raw_map
        depth = log_depth_to_depth(raw_map, self.config.max_depth, self.config.alpha)
        return depth if space == "depth" else 1.0 / depth

    def depth_to_space(self, depth_m: np.ndarray, space: str) -> np.ndarray:
        """Also "log_depth": D̂ of the model's D_max and α (E2Depth's targets), NaN where invalid."""
        if space != "log_depth":
            return super().depth_to_space(depth_m, space)
        valid = np.isfinite(depth_m)
        log_depth = depth_to_log_depth(np.nan_to_num(depth_m, nan=1.0), self.config.max_depth, self.config.alpha)
        return np.where(valid, log_depth, np.nan).astype(np.float32)
