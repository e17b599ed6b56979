"""E2Depth (Hidalgo-Carrió, Gehrig, Scaramuzza, "Learning Monocular Dense Depth from Events",
3DV 2020; official code uzh-rpg/rpg_e2depth, built on rpg_e2vid) as a plain PyTorch module.

E2Depth = `UNetRecurrent`: a 5x5 head conv (bins -> 32), `num_encoders` recurrent encoders (5x5
stride-2 conv + ReLU, then a ConvLSTM whose hidden state is the encoder output), residual blocks at
the bottom, decoders (bilinear x2 + 5x5 conv + ReLU) with summed skips, a 1x1 prediction conv and a
sigmoid. Its output is the normalised log depth D̂ in [0, 1]; metres are
depth = D_max · exp(α (D̂ − 1)) with D_max = 80 m and α = 3.70378 (the official `clip_distance`
and `reg_factor`).

Module and parameter names are those of the official code, so an official state dict loads with
`load_state_dict(strict=True)` and `save_e2depth` writes a file the official `load_model` reads.

Inference follows the official `run_depth.py` / `DepthEstimator`: voxel grid normalised over its
non-zero voxels, reflection padding (centred) to a multiple of 2**num_encoders (`CropParameters`),
the recurrent state carried from window to window, the output cropped back to the sensor size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.errors import CheckpointError, InputError
from anydepth.eventdepth.base import ConfigDict, event_input
from anydepth.eventdepth.log_depth import CLIP_DISTANCE_M, REG_FACTOR, LogDepthModel
from anydepth.foundation.checkpoint import atomic_torch_save, load_strict, read_container, skip_weight_init
from anydepth.eventdepth.layers import ConvLayer, RecurrentConvLayer, ResidualBlock, TransposedConvLayer, UpsampleConvLayer
from anydepth.events.container import EventArray
from anydepth.events.representations import normalize_voxel_grid, voxel_grid

ARCH = "E2VIDRecurrent"  # the official class name, stored in every checkpoint as "arch"

# What the official BaseE2VID takes when a key is missing from the model config.
OFFICIAL_DEFAULTS = {
    "skip_type": "sum",
    "recurrent_block_type": "convlstm",
    "num_encoders": 4,
    "base_num_channels": 32,
    "num_residual_blocks": 2,
    "norm": None,
    "use_upsample_conv": True,
}


@dataclass(frozen=True)
class E2DepthConfig(ConfigDict):
    """Everything that builds an `E2Depth` model: the official checkpoint's `config["model"]`
    fields plus the log-depth conversion constants.

    skip_type: "sum" or "concat"; recurrent_block_type: "convlstm" or "convgru";
    norm: None, "BN" or "IN" (the official JSON writes "none" for None);
    use_upsample_conv: bilinear x2 + conv (True) or a transposed conv (False);
    max_depth: D_max in metres; alpha: α of depth = D_max · exp(α (D̂ − 1)).
    """

    num_bins: int = 5
    skip_type: str = "sum"
    recurrent_block_type: str = "convlstm"
    num_encoders: int = 3
    base_num_channels: int = 32
    num_residual_blocks: int = 2
    norm: str | None = None
    use_upsample_conv: bool = True
    max_depth: float = CLIP_DISTANCE_M
    alpha: float = REG_FACTOR

    def __post_init__(self):
        if isinstance(self.norm, str) and self.norm.lower() == "none":
            object.__setattr__(self, "norm", None)
        if self.norm not in (None, "BN", "IN"):
            raise InputError(f"norm must be None, 'BN' or 'IN', got {self.norm!r}")
        if self.skip_type not in ("sum", "concat"):
            raise InputError(f"skip_type must be 'sum' or 'concat', got {self.skip_type!r}")
        if self.recurrent_block_type not in ("convlstm", "convgru"):
            raise InputError(f"recurrent_block_type must be 'convlstm' or 'convgru', got {self.recurrent_block_type!r}")
        for name in ("num_bins", "num_encoders", "base_num_channels"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_residual_blocks < 0:
            raise InputError(f"num_residual_blocks must be >= 0, got {self.num_residual_blocks}")
        if not (self.max_depth > 0 and self.alpha > 0):
            raise InputError(f"max_depth and alpha must be positive, got {self.max_depth} and {self.alpha}")

    @property
    def stride(self) -> int:
        """Input height and width must be multiples of this (2**num_encoders)."""
        return 2**self.num_encoders

    @classmethod
    def from_official(cls, model_config: dict, max_depth: float = CLIP_DISTANCE_M, alpha: float = REG_FACTOR) -> "E2DepthConfig":
        """From an official `config["model"]` dict; missing keys take the official defaults
        (note: 4 encoders when `num_encoders` is absent, as BaseE2VID does)."""
        if "num_bins" not in model_config:
            raise InputError("the model config has no 'num_bins'")
        merged = {**OFFICIAL_DEFAULTS, **model_config}
        return cls(
            num_bins=int(merged["num_bins"]),
            skip_type=str(merged["skip_type"]),
            recurrent_block_type=str(merged["recurrent_block_type"]),
            num_encoders=int(merged["num_encoders"]),
            base_num_channels=int(merged["base_num_channels"]),
            num_residual_blocks=int(merged["num_residual_blocks"]),
            norm=None if merged["norm"] is None else str(merged["norm"]),
            use_upsample_conv=bool(merged["use_upsample_conv"]),
            max_depth=float(max_depth),
            alpha=float(alpha),
        )

    def to_official(self) -> dict:
        """The official `config["model"]` dict (norm None written as "none", as their JSON)."""
        return {
            "num_bins": self.num_bins,
            "skip_type": self.skip_type,
            "recurrent_block_type": self.recurrent_block_type,
            "num_encoders": self.num_encoders,
            "base_num_channels": self.base_num_channels,
            "num_residual_blocks": self.num_residual_blocks,
            "use_upsample_conv": self.use_upsample_conv,
            "norm": "none" if self.norm is None else self.norm,
        }


# ---- padding to the network size and cropping back ------------------------------------------
class CropParameters:
    """Centred reflection padding of an (H, W) input to multiples of 2**num_encoders, and the crop
    back (the official `CropParameters`, there built as (width, height, num_encoders)).

    Padding top/left take the larger half: top = ceil((H_pad − H) / 2), bottom = floor(...)."""

    def __init__(self, height: int, width: int, num_encoders: int):
        self.height, self.width = int(height), int(width)
        multiple = 2**num_encoders
        self.padded_height = multiple * math.ceil(self.height / multiple)
        self.padded_width = multiple * math.ceil(self.width / multiple)
        self.padding_top = math.ceil(0.5 * (self.padded_height - self.height))
        self.padding_bottom = math.floor(0.5 * (self.padded_height - self.height))
        self.padding_left = math.ceil(0.5 * (self.padded_width - self.width))
        self.padding_right = math.floor(0.5 * (self.padded_width - self.width))
        # the official crop window [iy0, iy1) x [ix0, ix1) about the padded centre
        self.iy0 = self.padded_height // 2 - self.height // 2
        self.iy1 = self.padded_height // 2 + math.ceil(self.height / 2)
        self.ix0 = self.padded_width // 2 - self.width // 2
        self.ix1 = self.padded_width // 2 + math.ceil(self.width / 2)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H_pad, W_pad), reflection padding."""
        if self.padded_height == self.height and self.padded_width == self.width:
            return x
        if self.padding_top >= self.height or self.padding_left >= self.width:
            raise InputError(f"a {self.height}x{self.width} input is too small to reflect-pad to "
                             f"{self.padded_height}x{self.padded_width}")
        return F.pad(x, (self.padding_left, self.padding_right, self.padding_top, self.padding_bottom), mode="reflect")

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        """(..., H_pad, W_pad) -> (..., H, W)."""
        return y[..., self.iy0:self.iy1, self.ix0:self.ix1]


class UNetRecurrent(nn.Module):
    """head -> recurrent encoders (skips kept) -> residual blocks -> decoders (each on
    skip(x, encoder output), deepest first) -> pred on skip(x, head) -> sigmoid.

    (N, num_bins, H, W), states -> (N, 1, H, W) in [0, 1], new states (one per encoder);
    H and W multiples of 2**num_encoders."""

    def __init__(self, config: E2DepthConfig):
        super().__init__()
        base, count, norm = config.base_num_channels, config.num_encoders, config.norm
        self.skip_type = config.skip_type
        widen = 1 if config.skip_type == "sum" else 2  # concatenated skips double the input channels
        self.head = ConvLayer(config.num_bins, base, kernel_size=5, stride=1, padding=2)
        self.encoders = nn.ModuleList(
            RecurrentConvLayer(base * 2**i, base * 2 ** (i + 1), kernel_size=5, stride=2, padding=2,
                               recurrent_block_type=config.recurrent_block_type, norm=norm)
            for i in range(count))
        deepest = base * 2**count
        self.resblocks = nn.ModuleList(ResidualBlock(deepest, deepest, norm=norm) for _ in range(config.num_residual_blocks))
        upsample = UpsampleConvLayer if config.use_upsample_conv else TransposedConvLayer
        self.decoders = nn.ModuleList(
            upsample(widen * channels, channels // 2, kernel_size=5, padding=2, norm=norm)
            for channels in (base * 2**i for i in range(count, 0, -1)))
        self.pred = ConvLayer(widen * base, 1, 1, activation=None, norm=norm)

    def skip(self, x, skipped):
        return x + skipped if self.skip_type == "sum" else torch.cat((x, skipped), 1)

    def forward(self, x, prev_states=None):
        head = self.head(x)
        x = head
        prev_states = [None] * len(self.encoders) if prev_states is None else prev_states
        blocks, states = [], []
        for encoder, prev_state in zip(self.encoders, prev_states):
            x, state = encoder(x, prev_state)
            blocks.append(x)
            states.append(state)
        for resblock in self.resblocks:
            x = resblock(x)
        for decoder, skipped in zip(self.decoders, reversed(blocks)):
            x = decoder(self.skip(x, skipped))
        return torch.sigmoid(self.pred(self.skip(x, head))), states


class E2Depth(LogDepthModel):
    """E2Depth: the official `E2VIDRecurrent` (parameters under `unetrecurrent.`).

    forward(x (N, num_bins, h, w), state) -> (normalised log depth (N, 1, h, w) in [0, 1], state);
    h, w multiples of 2**num_encoders (`prepare` pads to that). The state is a list with one entry
    per encoder: (hidden, cell) for ConvLSTM, hidden for ConvGRU, each (N, base·2^(i+1), h/2^(i+1),
    w/2^(i+1)); None = zeros.
    """

    recurrent = True

    def __init__(self, config: E2DepthConfig | None = None):
        super().__init__()
        self.config = E2DepthConfig() if config is None else config
        self.unetrecurrent = UNetRecurrent(self.config)

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        if x.ndim != 4 or x.shape[1] != self.config.num_bins:
            raise InputError(f"E2Depth expects (N, {self.config.num_bins}, h, w), got {tuple(x.shape)}")
        stride = self.config.stride
        if x.shape[2] % stride or x.shape[3] % stride:
            raise InputError(f"E2Depth input {x.shape[2]}x{x.shape[3]} is not a multiple of {stride}; use prepare()")
        if state is not None and len(state) != self.config.num_encoders:
            raise InputError(f"E2Depth state has {len(state)} entries, expected {self.config.num_encoders}")
        return self.unetrecurrent(x, state)

    def zero_state(self, batch: int, height: int, width: int) -> list:
        """The explicit zero state for inputs (batch, num_bins, height, width) (same as None)."""
        state = []
        for i in range(self.config.num_encoders):
            shape = (batch, self.config.base_num_channels * 2 ** (i + 1), height >> (i + 1), width >> (i + 1))
            zeros = torch.zeros(shape, device=self.device)
            state.append((zeros, zeros.clone()) if self.config.recurrent_block_type == "convlstm" else zeros)
        return state

    def event_image(self, window: EventArray | np.ndarray, representation: str | None = None) -> np.ndarray:
        """Events (-> `voxel_grid` with num_bins bins) or a precomputed voxel grid (num_bins, H, W)
        (representation="voxel") -> (num_bins, H, W) float32, normalised over its non-zero voxels
        as the official loader does."""
        window = event_input(window, representation)
        bins = self.config.num_bins
        if isinstance(window, EventArray):
            return voxel_grid(window, bins, normalize=True)
        if representation != "voxel":
            raise InputError(f"E2Depth takes {bins}-bin voxel grids, not a {representation} image")
        if window.shape[0] != bins:
            raise InputError(f"E2Depth expects a voxel grid ({bins}, H, W), got shape {window.shape}")
        return normalize_voxel_grid(window)

    def prepare_images(self, images: torch.Tensor, input_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Voxel grids (N, num_bins, H, W) -> (N, num_bins, h, w), reflection-padded to multiples of
        2**num_encoders. E2Depth runs at the input's own resolution: there is no `input_size`."""
        if input_size is not None:
            raise InputError("E2Depth runs at the input's own resolution (padded to a multiple of "
                             f"{self.config.stride}); input_size does not apply")
        return CropParameters(images.shape[-2], images.shape[-1], self.config.num_encoders).pad(images)

    def raw_at_size(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Network output (N, 1, h, w) -> (N, H, W) at `size` (H, W), the padding of
        `prepare_images` cropped away."""
        crop = CropParameters(size[0], size[1], self.config.num_encoders)
        if tuple(raw.shape[-2:]) != (crop.padded_height, crop.padded_width):
            raise InputError(f"output {tuple(raw.shape[-2:])} is not the padded size "
                             f"{(crop.padded_height, crop.padded_width)} of {tuple(size)}")
        return crop.crop(raw[:, 0])


# ---- the official checkpoint container -------------------------------------------------------
def load_e2depth(path: str | Path, **overrides) -> E2Depth:
    """Build E2Depth from an official checkpoint alone: a torch dict with `arch`
    ("E2VIDRecurrent"), `state_dict` and the model config in `model` (compressed files) or
    `config["model"]` (training checkpoints), as the official `load_model` reads it. D_max and α come
    from `config["depth_conversion"]` when anydepth wrote the file, else 80 m and 3.70378.
    overrides: `E2DepthConfig` fields replacing the file's (e.g. max_depth=100.0).
    The weights must match exactly; anything else raises a one-line CheckpointError."""
    path = Path(path)
    container = read_container(path)
    if not isinstance(container, dict) or "state_dict" not in container:
        found = f"keys {', '.join(map(str, list(container)[:5]))}" if isinstance(container, dict) else f"a {type(container).__name__}"
        raise CheckpointError(f"not an E2Depth checkpoint (expected a dict with arch, config, state_dict; found {found})", path)
    config_block = container.get("config") if isinstance(container.get("config"), dict) else {}
    arch = container.get("arch", config_block.get("arch"))
    if arch != ARCH:
        raise CheckpointError(f"holds architecture {arch!r}, not {ARCH!r} (E2Depth)", path)
    model_config = container.get("model", config_block.get("model"))
    if not isinstance(model_config, dict):
        raise CheckpointError("has no model config (neither 'model' nor 'config[\"model\"]')", path)
    conversion = config_block.get("depth_conversion", {})
    try:
        config = E2DepthConfig.from_official(model_config, conversion.get("clip_distance", CLIP_DISTANCE_M),
                                             conversion.get("reg_factor", REG_FACTOR))
    except (InputError, TypeError, ValueError) as error:
        raise CheckpointError(f"bad model config ({error})", path) from None
    if overrides:
        config = E2DepthConfig.from_dict({**config.to_dict(), **overrides})
    with skip_weight_init():
        model = E2Depth(config)
    state_dict = container["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError("state_dict is not a dict of tensors", path)
    load_strict(model, state_dict, path, f"E2Depth {_describe(model.config)}")
    return model.eval()


def _describe(config: E2DepthConfig) -> str:
    return (f"({config.num_bins} bins, {config.num_encoders} encoders, base {config.base_num_channels}, "
            f"{config.recurrent_block_type}, skip {config.skip_type})")


def save_e2depth(model: E2Depth, path: str | Path, epoch: int = 0, monitor_best: float = 0.0) -> None:
    """Write the official container atomically (temp file + rename): {"arch": "E2VIDRecurrent",
    "epoch", "monitor_best", "config": {"arch", "model", "depth_conversion"}, "state_dict"}; the
    official `load_model` reads it (it ignores `depth_conversion`)."""

    config = model.config
    container = {
        "arch": ARCH,
        "epoch": int(epoch),
        "monitor_best": float(monitor_best),
        "config": {
            "arch": ARCH,
            "model": config.to_official(),
            "depth_conversion": {"clip_distance": config.max_depth, "reg_factor": config.alpha},
        },
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    atomic_torch_save(container, path)
