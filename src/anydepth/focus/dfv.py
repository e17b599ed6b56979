"""DFV: deep depth from focus with a differential focus volume (Yang, Huang, Zhou, CVPR 2022).

A plain-PyTorch re-implementation of the authors' `DFFNet` (official code fuy34/DFV,
`models/DFFNet.py`, `models/featExactor2.py`, `models/submodule.py`, `models/utils.py`) in its
evaluation path. Module and parameter names follow the official state dict (after stripping the
DataParallel `module.` prefix), so `DFF-DFV.tar` loads with strict=True.

    DFV = ResNet-18 + pyramid pooling feature extractor, shared over the N slices
          (features at 1/4, 1/8, 1/16, 1/32 of the input, 16/32/64/128 channels)
        + focus volume (B, C, N, h, w) per level; DFV takes adjacent-slice differences
          (the last slot keeps the raw slice), FV takes the raw features
        + coarse-to-fine 3-D conv decoders (levels 1..4)
        + softmax over N, expectation and standard deviation against the focus positions.

Shapes: stack (B, N, 3, H, W) ImageNet-normalised, H and W multiples of 32 (at least 64);
focus positions (B, N) in the unit the result should have (disparity for DDFF-12, metres
otherwise). The network itself does not know the unit: depth = Σ_i p_i · l_i.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.errors import CheckpointError, InputError
from anydepth.foundation.checkpoint import atomic_torch_save, load_strict, read_container, skip_weight_init

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Parameters of the level-4 network (DFV and FV alike), counted as the official eval script
# counts them (including the unused ImageNet classifier `encoder.fc` of torchvision's ResNet-18).
DFV_PARAMETERS = 19_501_484
OFFICIAL_DFV_FILE_NAME = "DFF-DFV.tar"
CONFIG_KEY = "anydepth_config"  # extra key in saved containers; the official scripts ignore it


@dataclass(frozen=True)
class DFVConfig:
    """level: number of decoder levels (1..4; the released models use 4).
    use_diff: True = DFV (differential focus volume), False = FV (plain focus volume)."""

    level: int = 4
    use_diff: bool = True

    def __post_init__(self):
        if self.level not in (1, 2, 3, 4):
            raise InputError(f"DFV level must be 1, 2, 3 or 4, not {self.level}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DFVConfig":
        return cls(level=int(values.get("level", 4)), use_diff=bool(values.get("use_diff", True)))


# ----------------------------------------------------------------------------------------------
# 2-D feature extractor: torchvision's ResNet-18 (same names) + PSM/ICNet style pyramid pooling


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (parameter names conv1, bn1, conv2, bn2, downsample.{0,1})."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class ResNet18(nn.Module):
    """torchvision.models.resnet18 layout. `fc` (1000 ImageNet classes) is never used but is part
    of the official checkpoint, so it is kept for a strict load."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, 1000)


class ConvBnLeaky(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + LeakyReLU(0.1), names `cbr_unit.{0,1}` (their conv2DBatchNormRelu)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.cbr_unit = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.1, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cbr_unit(x)


def _pool_sizes(extent: int) -> list[int]:
    """Four pooling divisors 1..extent//2 as the official code draws them (np.linspace, truncated)."""
    return [int(v) for v in np.linspace(1, extent // 2, 4).astype(int)]


class PyramidPooling(nn.Module):
    """ICNet-style sum fusion: x + Σ 0.25 · up(conv(avgpool_k(x))) over four kernel sizes, then
    ReLU(·/2). Kernel sizes go from the largest (global) to the smallest, as in the official code."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.path_module_list = nn.ModuleList(ConvBnLeaky(channels, channels, 1, 0) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        kernels = [(int(h / s), int(w / s)) for s in _pool_sizes(min(h, w))][::-1]
        fused = x
        for module, kernel in zip(self.path_module_list, kernels):
            pooled = module(F.avg_pool2d(x, kernel, stride=kernel, padding=0))
            fused = fused + 0.25 * F.interpolate(pooled, size=(h, w), mode="bilinear", align_corners=False)
        return F.relu(fused / 2.0)


class FeatureExtractor(nn.Module):
    """Per-slice features (B·N, C, H/s, W/s) at s = 32, 16, 8, 4 with C = 128, 64, 32, 16."""

    def __init__(self):
        super().__init__()
        self.encoder = ResNet18()
        self.pyramid_pooling = PyramidPooling(512)
        self.upconv6 = nn.Sequential(nn.Upsample(scale_factor=2), ConvBnLeaky(512, 256))
        self.iconv5 = ConvBnLeaky(512, 256)
        self.upconv5 = nn.Sequential(nn.Upsample(scale_factor=2), ConvBnLeaky(256, 128))
        self.iconv4 = ConvBnLeaky(256, 128)
        self.upconv4 = nn.Sequential(nn.Upsample(scale_factor=2), ConvBnLeaky(128, 64))
        self.iconv3 = ConvBnLeaky(128, 64)
        self.proj6 = ConvBnLeaky(512, 128, 1, 0)
        self.proj5 = ConvBnLeaky(256, 64, 1, 0)
        self.proj4 = ConvBnLeaky(128, 32, 1, 0)
        self.proj3 = ConvBnLeaky(64, 16, 1, 0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        e = self.encoder
        x = e.maxpool(e.relu(e.bn1(e.conv1(images))))
        c4 = e.layer1(x)  # 1/4, 64
        c8 = e.layer2(c4)  # 1/8, 128
        c16 = e.layer3(c8)  # 1/16, 256
        c32 = self.pyramid_pooling(e.layer4(c16))  # 1/32, 512
        c16 = self.iconv5(torch.cat((c16, self.upconv6(c32)), 1))
        c8 = self.iconv4(torch.cat((c8, self.upconv5(c16)), 1))
        c4 = self.iconv3(torch.cat((c4, self.upconv4(c8)), 1))
        return self.proj6(c32), self.proj5(c16), self.proj4(c8), self.proj3(c4)


# ----------------------------------------------------------------------------------------------
# 3-D decoder (after the authors' decoderBlock, itself from high-res-stereo)


def conv3d_bn(in_channels: int, out_channels: int, kernel_size: int, padding: int, bias: bool = False) -> nn.Sequential:
    """Conv3d + BatchNorm3d (names `0`, `1`); with bias=True the Conv3d alone (their sepConv3d)."""
    conv = nn.Conv3d(in_channels, out_channels, kernel_size, 1, padding, bias=bias)
    return nn.Sequential(conv) if bias else nn.Sequential(conv, nn.BatchNorm3d(out_channels))


class Projection3d(nn.Module):
    """1x1 projection of a (B, C, D, H, W) volume done as a Conv2d on (B, C, D, H·W) (their projfeat3d)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        return self.bn(self.conv1(x.reshape(b, c, d, h * w))).reshape(b, -1, d, h, w)


class ResidualBlock3d(nn.Module):
    """Two 3x3x3 conv+BN with a residual connection (their sepConv3dBlock, stride 1)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.downsample = None if in_channels == out_channels else Projection3d(in_channels, out_channels)
        self.conv1 = conv3d_bn(in_channels, out_channels, 3, 1)
        self.conv2 = conv3d_bn(out_channels, out_channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(identity + self.conv2(y))


class DecoderBlock(nn.Module):
    """Two residual 3-D blocks, optional 3-D pyramid pooling, then either (up=True) trilinear x2 in
    H, W + conv to channels/2 — the volume handed to the next finer level — or (up=False, the finest
    level) the classifier to one cost channel. `classify` exists on every level (the official
    training uses it for deep supervision) but in evaluation only the finest level runs it."""

    def __init__(self, in_channels: int, channels: int, up: bool = False, pool: bool = False):
        super().__init__()
        self.pool = pool
        self.convs = nn.Sequential(ResidualBlock3d(in_channels, channels), ResidualBlock3d(channels, channels))
        self.classify = nn.Sequential(conv3d_bn(channels, channels, 3, 1), nn.ReLU(inplace=True), conv3d_bn(channels, 1, 3, 1, bias=True))
        self.up = None
        if up:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=(1, 2, 2), mode="trilinear", align_corners=False),
                conv3d_bn(channels, channels // 2, 3, 1),
                nn.ReLU(inplace=True),
            )
        if pool:
            self.pool_convs = nn.ModuleList(conv3d_bn(channels, channels, 1, 0) for _ in range(4))

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        """(B, C_in, N, h, w) -> (B, C/2, N, 2h, 2w) if up, else cost (B, N, h, w)."""
        volume = self.convs(volume)
        if self.pool:
            d, h, w = volume.shape[2:]
            fused = volume
            for conv, s in zip(self.pool_convs, _pool_sizes(min(d, h, w))):
                kernel = (int(d / s), int(h / s), int(w / s))
                pooled = conv(F.avg_pool3d(volume, kernel, stride=kernel))
                fused = fused + 0.25 * F.interpolate(pooled, size=(d, h, w), mode="trilinear", align_corners=False)
            volume = F.relu(fused / 2.0)
        if self.up is not None:
            return self.up(volume)
        return self.classify(volume).squeeze(1)


# (input channels, channels, up, pool) of decoder3..6 per level, as in the official DFFNet
_DECODERS = {
    1: {"decoder3": (16, 16, False, False)},
    2: {"decoder3": (32, 32, False, False), "decoder4": (32, 32, True, False)},
    3: {"decoder3": (32, 32, False, False), "decoder4": (64, 32, True, False), "decoder5": (64, 64, True, True)},
    4: {
        "decoder3": (32, 32, False, False), "decoder4": (64, 32, True, False),
        "decoder5": (128, 64, True, True), "decoder6": (128, 128, True, True),
    },
}


class DFV(nn.Module):
    """The DFV / FV network (official `DFFNet`, evaluation path)."""

    def __init__(self, config: DFVConfig | None = None):
        super().__init__()
        self.config = config or DFVConfig()
        self.feature_extraction = FeatureExtractor()
        for name, (in_channels, channels, up, pool) in _DECODERS[self.config.level].items():
            setattr(self, name, DecoderBlock(in_channels, channels, up=up, pool=pool))

    @staticmethod
    def differential(volume: torch.Tensor) -> torch.Tensor:
        """(B, C, N, h, w): slot i holds f_i − f_{i+1}; the last slot keeps f_{N−1}."""
        return torch.cat([volume[:, :, :-1] - volume[:, :, 1:], volume[:, :, -1:]], dim=2)

    def forward(self, stack: torch.Tensor, focus_positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """stack (B, N, 3, H, W) float, ImageNet-normalised, H and W multiples of 32 (≥ 64), N ≥ 2;
        focus_positions (B, N) (or (N,)), the value each slice stands for.

        Returns (expectation (B, H, W) = Σ_i p_i l_i, std (B, H, W) = sqrt(Σ_i p_i (l_i − μ)²),
        probability (B, N, H, W), softmax over N) — the official eval outputs (pred, std, focusMap)
        without their squeezes. The std is computed without gradient, as in the official code.
        """
        if stack.ndim != 5 or stack.shape[2] != 3:
            raise InputError(f"DFV expects a stack (B, N, 3, H, W), got {tuple(stack.shape)}")
        b, n, c, h, w = stack.shape
        if h % 32 or w % 32 or h < 64 or w < 64:
            raise InputError(f"DFV needs H and W multiples of 32 and at least 64, got {h}x{w} (use predict_stack to pad)")
        if n < 2:
            raise InputError(f"DFV needs at least 2 slices, got {n}")
        focus_positions = torch.as_tensor(focus_positions, dtype=stack.dtype, device=stack.device)
        if focus_positions.ndim == 1:
            focus_positions = focus_positions.expand(b, n)
        if tuple(focus_positions.shape) != (b, n):
            raise InputError(f"focus positions must have shape ({b}, {n}), got {tuple(focus_positions.shape)}")

        features = self.feature_extraction(stack.reshape(b * n, c, h, w))
        volumes = []  # coarse to fine: 1/32, 1/16, 1/8, 1/4, each (B, C, N, h_s, w_s)
        for feature, scale in zip(features, (32, 16, 8, 4)):
            volume = feature.reshape(b, n, -1, h // scale, w // scale).permute(0, 2, 1, 3, 4)
            volumes.append(self.differential(volume) if self.config.use_diff else volume)

        level = self.config.level
        names = ["decoder6", "decoder5", "decoder4", "decoder3"][4 - level:]
        volume = volumes[4 - level]
        for i, name in enumerate(names):
            volume = getattr(self, name)(volume)
            if i + 1 < len(names):
                volume = torch.cat((volume, volumes[4 - level + i + 1]), dim=1)
        cost = F.interpolate(volume, size=(h, w), mode="bilinear", align_corners=False)
        probability = F.softmax(cost, dim=1)
        positions = focus_positions[:, :, None, None]
        expectation = (probability * positions).sum(1, keepdim=True)
        with torch.no_grad():
            std = torch.sqrt((probability * (expectation - positions) ** 2).sum(1))
        return expectation[:, 0], std, probability


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# Checkpoints


def _infer_level(state_dict: dict, path) -> int:
    for level in (4, 3, 2, 1):
        if f"decoder{level + 2}.convs.0.conv1.0.weight" in state_dict:
            return level
    raise CheckpointError("not a DFV checkpoint (no decoder3..decoder6 keys)", path)


def load_dfv(path: str | Path, use_diff: bool | None = None, level: int | None = None) -> DFV:
    """Build a DFV/FV model from a checkpoint and load it strictly; returns it in eval mode.

    Container: the official {"epoch", "iters", "best", "state_dict"} with DataParallel `module.`
    keys (a plain state dict is accepted too). Keys containing 'disp' are dropped, as the official
    eval script does. use_diff: if None, the container's `anydepth_config` when `save_dfv` wrote
    it, else the official scripts' rule: True (DFV) iff the file is named exactly 'DFF-DFV.tar',
    otherwise False (FV) — the two variants have identical keys, so the file cannot tell.
    level: if None, from the decoder keys present.
    """
    path = Path(path)
    container = read_container(path)
    state_dict = container.get("state_dict", container)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError("not a DFV checkpoint: 'state_dict' is not a dict of tensors", path)
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items() if "disp" not in k}
    saved = container.get(CONFIG_KEY) if isinstance(container.get(CONFIG_KEY), dict) else None
    if use_diff is None:
        use_diff = bool(saved["use_diff"]) if saved and "use_diff" in saved else path.name == OFFICIAL_DFV_FILE_NAME
    if level is None:
        level = int(saved["level"]) if saved and "level" in saved else _infer_level(state_dict, path)
    config = DFVConfig(level=level, use_diff=use_diff)
    with skip_weight_init():
        model = DFV(config)
    name = "DFV" if config.use_diff else "FV"
    load_strict(model, state_dict, path, f"{name} level {config.level}")
    return model.eval()


def save_dfv(model: DFV, path: str | Path, epoch: int = 0, iters: int = 0, best: float = float("inf")) -> None:
    """Write the official container atomically ({"epoch", "iters", "best", "state_dict"} with
    `module.` keys, loadable by the authors' scripts) plus `anydepth_config` (level, use_diff)."""
    state_dict = {f"module.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    container = {"epoch": int(epoch), "iters": int(iters), "best": float(best), "state_dict": state_dict,
                 CONFIG_KEY: model.config.to_dict()}
    atomic_torch_save(container, path)


def predict_stack(
    model: DFV, stack_rgb: np.ndarray, focus_positions, device: str | torch.device | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run DFV on one focal stack with the official pre-processing.

    stack_rgb (N, H, W, 3) RGB, uint8 (0..255) or float (0..1); focus_positions (N,) (disparity
    for the DDFF-12 models, the unit of the result). Pre-processing as the official DDFF-12 loader:
    to [0, 1], reflect-pad bottom and right to multiples of 32 (at least 64), ImageNet normalisation;
    outputs are cropped back to H x W.

    Returns depth (H, W) float32 = Σ p_i l_i, std (H, W) float32, probability (N, H, W) float32.
    """
    stack = np.asarray(stack_rgb)
    if stack.ndim != 4 or stack.shape[-1] != 3 or min(stack.shape[:3]) < 1:
        raise InputError(f"stack must be (N, H, W, 3) RGB, got shape {stack.shape}")
    n, h, w, _ = stack.shape
    positions = np.asarray(focus_positions, dtype=np.float32).reshape(-1)
    if positions.shape[0] != n:
        raise InputError(f"{positions.shape[0]} focus positions for a stack of {n} slices")
    if not np.all(np.isfinite(positions)):
        raise InputError("focus positions must be finite")
    if stack.dtype == np.uint8:
        images = stack.astype(np.float32) / 255.0
    elif np.issubdtype(stack.dtype, np.floating):
        images = stack.astype(np.float32)
    else:
        raise InputError(f"stack must be uint8 or float, got {stack.dtype}")
    padded_h, padded_w = max(64, -(-h // 32) * 32), max(64, -(-w // 32) * 32)
    if padded_h - h >= h or padded_w - w >= w:
        # numpy's reflect pad needs pad < side; the official loader never meets such small images
        raise InputError(f"stack of {h}x{w} is too small to reflect-pad to {padded_h}x{padded_w}")
    images = np.pad(images, ((0, 0), (0, padded_h - h), (0, padded_w - w), (0, 0)), mode="reflect")
    images = (images - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    if device is None:
        device = next(model.parameters()).device
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))[None].to(device)
    with torch.no_grad():
        depth, std, probability = model(tensor, torch.from_numpy(positions)[None].to(device))
    return (
        depth[0, :h, :w].cpu().numpy().astype(np.float32),
        std[0, :h, :w].cpu().numpy().astype(np.float32),
        probability[0, :, :h, :w].cpu().numpy().astype(np.float32),
    )
