"""Depth Anything V2 = DINOv2 backbone (`pretrained`) + DPT head (`depth_head`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from anydepth.foundation.config import PATCH_SIZE, DepthAnythingConfig, get_config
from anydepth.foundation.dinov2 import DinoVisionTransformer
from anydepth.foundation.dpt import DPTHead
from anydepth.foundation.transform import image_to_tensor, resize_prediction
from anydepth.precision import autocast


class DepthAnythingV2(nn.Module):
    """Depth Anything V2 in plain PyTorch.

    forward: normalised image (B, 3, H, W), H and W multiples of 14 -> (B, H, W) float32:
        relative inverse depth (affine-invariant disparity, >= 0, larger = nearer) for
        head="relative"; metric depth in metres in [0, max_depth] for head="metric".
    """

    def __init__(self, config: DepthAnythingConfig | str = "vits"):
        super().__init__()
        if isinstance(config, str):
            config = get_config(config)
        self.config = config
        self.pretrained = DinoVisionTransformer(config)
        self.depth_head = DPTHead(
            config.embed_dim, config.features, config.out_channels,
            "sigmoid" if config.head == "metric" else "relu", config.head_align_corners,
        )

    @staticmethod
    def patch_grid(x: torch.Tensor) -> tuple[int, int]:
        """(patch_h, patch_w) of an input (B, 3, H, W)."""
        height, width = x.shape[-2:]
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"input sides must be multiples of {PATCH_SIZE}, got {height}x{width}")
        return height // PATCH_SIZE, width // PATCH_SIZE

    def tapped_features(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The four tapped encoder levels: [(patch tokens (B, N, D), class token (B, D))] x 4."""
        return self.pretrained.forward_tapped(x, self.config.tapped_blocks)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four DPT levels after `scratch.layerN_rn`: (B, features, h_i, w_i), finest first.
        This is where DepthAnyEvent-R inserts its recurrent layers."""
        patch_h, patch_w = self.patch_grid(x)
        return self.depth_head.reassemble(self.tapped_features(x), patch_h, patch_w)

    def decode(self, levels: list[torch.Tensor], patch_h: int, patch_w: int,
               refined: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """DPT levels (as from `feature_maps`) -> depth (B, 14 patch_h, 14 patch_w). refined: see
        `DPTHead.fuse`."""
        prediction = self.depth_head.predict(self.depth_head.fuse(levels, refined), patch_h, patch_w)
        if self.config.head == "metric":
            return prediction[:, 0] * self.config.max_depth
        return torch.relu(prediction[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch_h, patch_w = self.patch_grid(x)
        return self.decode(self.feature_maps(x), patch_h, patch_w)

    @torch.no_grad()
    def infer_image(self, image_bgr: np.ndarray, input_size: int = 518, precision: str = "fp32") -> np.ndarray:
        """The official `infer_image`: BGR uint8 (H, W, 3) (or grey (H, W)) -> float32 (H, W)
        prediction at the input resolution (relative disparity, or metres for a metric head).
        precision: "fp32", "bf16" or "fp16" (CUDA) for the network (`anydepth.precision`); the
        resize back to the input resolution runs in float32."""
        height, width = image_bgr.shape[:2]
        parameter = next(self.parameters())
        x = image_to_tensor(image_bgr, input_size).to(device=parameter.device, dtype=parameter.dtype)
        with autocast(parameter.device, precision):
            raw = self.forward(x)
        return resize_prediction(raw.float(), height, width)[0].cpu().numpy()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
