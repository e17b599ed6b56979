"""DPT head of Depth Anything V2.

Parameter names follow the official code (`depth_head.*`). The forward pass is split in the
three stages that students need to reach into (DepthAnyEvent-R puts a recurrent layer between
`reassemble` and `fuse`):

    reassemble: tapped tokens -> 4 feature maps at 1/4, 1/8, 1/16, 1/32 of the input grid x 14,
                each projected to `features` channels (`scratch.layerN_rn`)
    fuse:       RefineNet fusion from the coarsest to the finest level
    predict:    output convolutions, upsampling to (14 * patch_h, 14 * patch_w), final activation
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convolutions with bias."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """RefineNet fusion: (coarse path [+ rcu1(skip)]) -> rcu2 -> bilinear resize -> 1x1 conv.

    With `size` None the path is upsampled by 2, else resized to `size` (h, w).
    """

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, path: torch.Tensor, skip: torch.Tensor | None = None, size=None,
                refined_skip: torch.Tensor | None = None) -> torch.Tensor:
        """refined_skip: resConfUnit1(skip) computed before (then skip is not read)."""
        if refined_skip is not None:
            path = path + refined_skip
        elif skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            path = F.interpolate(path, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(path)


FINAL_ACTIVATIONS = {"relu": lambda: nn.ReLU(True), "sigmoid": nn.Sigmoid, "softplus": nn.Softplus, "none": nn.Identity}


class DPTHead(nn.Module):
    """DPT decoder. Output (B, 1, 14 * patch_h, 14 * patch_w) after `final_activation`: "relu" for
    DAv2's relative inverse depth, "sigmoid" for its metric head (the model multiplies by
    max_depth), "softplus" for Depth AnyEvent. align_corners: of the final upsampling (DAv2 True,
    Depth AnyEvent False); the fusion blocks always use True, as in all released code."""

    def __init__(
        self,
        in_channels: int,
        features: int,
        out_channels: tuple[int, ...],
        final_activation: str = "relu",
        align_corners: bool = True,
    ):
        super().__init__()
        self.align_corners = align_corners
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, channels, 1) for channels in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = nn.Module()
        for level, channels in enumerate(out_channels, start=1):
            setattr(self.scratch, f"layer{level}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
        for level in range(1, 5):
            setattr(self.scratch, f"refinenet{level}", FeatureFusionBlock(features))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        final = FINAL_ACTIVATIONS[final_activation]()
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(32, 1, 1),
            final,
        )
        # channels-last weights: the head's convolutions then run in the faster NHWC kernels
        self.to(memory_format=torch.channels_last)

    def open_output(self) -> None:
        """Set the bias of the last convolution to 1, so that a fresh head starts with positive
        outputs and its final ReLU open (a head at 0 there gets no gradient and stays dead)."""
        with torch.no_grad():
            self.scratch.output_conv2[2].bias.fill_(1.0)

    def reassemble(self, tapped: list[tuple[torch.Tensor, torch.Tensor]], patch_h: int, patch_w: int) -> list[torch.Tensor]:
        """Tapped (tokens (B, N, D), cls) -> [layer1_rn .. layer4_rn], each (B, features, h_i, w_i)
        with (h_i, w_i) = (4, 2, 1, 1/2) x (patch_h, patch_w)."""
        return [self.reassemble_level(index, tokens, patch_h, patch_w) for index, (tokens, _cls) in enumerate(tapped)]

    def reassemble_level(self, index: int, tokens: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
        """Level `index` (0 = finest) of `reassemble` from its patch tokens (B, N, D)."""
        # a (B, D, h, w) view of the tokens without a copy: channels-last strides, which the
        # convolutions keep through the whole head (about 25 % faster on CPU than NCHW)
        x = tokens.reshape(tokens.shape[0], patch_h, patch_w, tokens.shape[-1]).permute(0, 3, 1, 2)
        x = self.resize_layers[index](self.projects[index](x))
        return getattr(self.scratch, f"layer{index + 1}_rn")(x)

    def fuse(self, levels: list[torch.Tensor], refined: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """[layer1_rn .. layer4_rn] -> fused map (B, features, 2 h_1, 2 w_1). refined: {level index
        (0 = finest, up to 2): `refine_skip` of that level}, computed before (TTO keeps those of
        levels that do not change)."""
        layer1, layer2, layer3, layer4 = levels
        refined = refined or {}
        path = self.scratch.refinenet4(layer4, size=layer3.shape[-2:])
        path = self.scratch.refinenet3(path, layer3, size=layer2.shape[-2:], refined_skip=refined.get(2))
        path = self.scratch.refinenet2(path, layer2, size=layer1.shape[-2:], refined_skip=refined.get(1))
        return self.scratch.refinenet1(path, layer1, refined_skip=refined.get(0))

    def refine_skip(self, index: int, level: torch.Tensor) -> torch.Tensor:
        """What `fuse` adds for level `index` (0 = finest, up to 2): its fusion block's resConfUnit1."""
        return getattr(self.scratch, f"refinenet{index + 1}").resConfUnit1(level)

    def predict(self, fused: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
        """Fused map -> (B, 1, 14 patch_h, 14 patch_w) after the final activation."""
        x = self.scratch.output_conv1(fused)
        x = F.interpolate(x, (patch_h * 14, patch_w * 14), mode="bilinear", align_corners=self.align_corners)
        return self.scratch.output_conv2(x)

    def forward(self, tapped, patch_h: int, patch_w: int) -> torch.Tensor:
        return self.predict(self.fuse(self.reassemble(tapped, patch_h, patch_w)), patch_h, patch_w)
