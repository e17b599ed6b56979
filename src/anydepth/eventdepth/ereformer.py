"""EReFormer (Liu, Li, Fan, Tian, "Event-based Monocular Dense Depth Estimation with Recurrent
Transformers", arXiv 2212.02791; official code liuxu0303/EReFormer) as a plain PyTorch module.

EReFormer = Swin-S encoder (embed 96, depths 2-2-18-2, heads 3-6-12-24, window 7) + one GRViT per
stage (a gated recurrent unit around a linear attention over the stage's tokens, whose state is
carried from window to window) + a Swin decoder: two residual Swin blocks at 1/32, then per level
two Swin blocks, patch splitting (x2) and a "spatial transformer fusion" of the skip connection
(two cross-attention Swin blocks whose queries come from the decoder and keys/values from the
encoder, added to the upsampled tokens); a final LayerNorm, 3x3 conv, bicubic x4 upsampling and a
head (3x3 conv 96 -> 32, ReLU, 1x1 conv, sigmoid). Its output is the normalised log depth
D̂ ∈ [0, 1]; metres are depth = D_max · exp(α (D̂ − 1)) with D_max = 80 m (`clip_distance`) and
α = 3.70378 (`reg_factor`), as the official `evaluation.py`.

Parameter names are those of the official state dict (`transformerrecurrent.SwinTransformer...`,
`transformerrecurrent.GRViT_0...`, `transformerrecurrent.decoder2_query0...`), so an official
checkpoint loads with `load_state_dict(strict=True)`; 89,529,119 parameters with 3 input channels.

Differences from the official code, none of which changes the output where the official code runs:
- their decoder sizes are fixed at construction from `img_size` (the model only runs on inputs of
  exactly that size, which must be multiples of 16); ours takes them from the encoder's grids, so it
  runs at any input size and equals theirs at theirs;
- GRViT's attention (elu(q) + 1)(elu(k) + 1)ᵀ v is computed as (elu(q) + 1)((elu(k) + 1)ᵀ v), which
  is the same product re-associated: O(N d²) time and memory instead of O(N²) (an N x N matrix per
  head would need gigabytes at DSEC resolution);
- the recurrent state is passed in and returned instead of living on the module.

Inputs. Their released loader feeds 3-channel images (`events/frames_white/*.png` of the DENSE
dataset, BGR / 255, no further normalisation) cropped to 224 x 224 at rows 33:257, columns 121:345;
their JSON config declares `img_size` [256, 336] (the commented-out crop rows 1:257, columns 5:341)
and `in_chans` 3, and their Swin is built with 3 input channels whatever `in_chans` says. `prepare`
makes a `num_bins`-bin voxel grid (3 by default, to fit that layout), normalised over its non-zero
voxels as their `normalize_voxelgrid` (config `normalize`), and pads it with zeros, centred, to
multiples of 16 = 2**num_decoders (their `CropParameters`) instead of cropping, so that the depth
covers the whole sensor; `to_depth` crops the padding away. Weights trained with their released
loader expect the rendered DENSE frames, not voxel grids: pass such a frame to `prepare` as a
(3, H, W) array (BGR / 255) with `normalize=False`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.errors import CheckpointError, InputError
from anydepth.eventdepth.base import ConfigDict, event_input
from anydepth.eventdepth.log_depth import CLIP_DISTANCE_M, REG_FACTOR, LogDepthModel  # same conversion as E2Depth
from anydepth.foundation.checkpoint import atomic_torch_save, load_strict, read_container, skip_weight_init
from anydepth.eventdepth.swin import CrossSwinBlock, PatchSplitting, SwinBlock, SwinTransformer
from anydepth.events.container import EventArray
from anydepth.events.representations import normalize_voxel_grid, voxel_grid

ARCH = "E2DepthTransformerRecurrent"  # the official class name, stored in checkpoints as "arch"
POS_EMBED_SIZE = 224  # the GRViT position embeddings are stored for a 224 x 224 input, then resized
NUM_DECODERS = 4  # official `num_decoders`: one GRViT state per encoder stage
PAD_MULTIPLE = 2**NUM_DECODERS  # the input grid of every stage is then exact down to 1/16


@dataclass(frozen=True)
class EReFormerConfig(ConfigDict):
    """Everything that builds an `EReFormer`: the official `config["model"]` fields (their names in
    brackets) plus the input and depth conversion settings.

    num_bins [in_chans]: input channels (voxel bins); the official model has 3.
    embed_dim, depths [depth], num_heads, window_size, patch_size, mlp_ratio: the Swin-S encoder;
      the decoder and GRViT widths follow as embed_dim · 2^i.
    img_size: (H, W) of the input their model was built for (their decoder only runs at exactly that
      size; ours runs at any size, so this is kept as a record of the training input).
    drop_path_rate / dropout: stochastic depth of the encoder and dropout of the decoder and GRViT
      MLPs (training only).
    normalize: standardise voxel grids over their non-zero voxels (official `normalize`).
    max_depth [clip_distance] metres and alpha [reg_factor]: depth = max_depth · exp(alpha (D̂ − 1)).
    """

    num_bins: int = 3
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    img_size: tuple[int, int] = (256, 336)
    drop_path_rate: float = 0.1
    dropout: float = 0.1
    normalize: bool = True
    max_depth: float = CLIP_DISTANCE_M
    alpha: float = REG_FACTOR

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))
        object.__setattr__(self, "img_size", tuple(int(s) for s in self.img_size))
        if len(self.depths) != NUM_DECODERS or len(self.num_heads) != NUM_DECODERS:
            raise InputError(f"EReFormer has {NUM_DECODERS} stages: depths and num_heads need {NUM_DECODERS} entries, "
                             f"got {self.depths} and {self.num_heads}")
        if self.num_bins < 1 or self.embed_dim < 1 or self.window_size < 2 or self.patch_size < 1:
            raise InputError(f"bad EReFormer sizes: num_bins {self.num_bins}, embed_dim {self.embed_dim}, "
                             f"window_size {self.window_size}, patch_size {self.patch_size}")
        for index, heads in enumerate(self.num_heads):
            if heads < 1 or (self.embed_dim * 2**index) % heads:
                raise InputError(f"stage {index} width {self.embed_dim * 2**index} is not divisible by {heads} heads")
        if any(d < 1 for d in self.depths):
            raise InputError(f"every stage needs at least one block, got depths {self.depths}")
        if len(self.img_size) != 2 or min(self.img_size) < 1:
            raise InputError(f"img_size must be (H, W), got {self.img_size}")
        if not (self.max_depth > 0 and self.alpha > 0):
            raise InputError(f"max_depth and alpha must be positive, got {self.max_depth} and {self.alpha}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels of the four stages (the official `features`, 96-192-384-768 for Swin-S)."""
        return tuple(self.embed_dim * 2**index for index in range(NUM_DECODERS))

    @classmethod
    def from_official(cls, config: dict) -> "EReFormerConfig":
        """From an official training config (the full JSON dict, as stored in their checkpoints
        under "config"): the `model` block, `data_loader.normalize` and the validation
        `clip_distance`. Keys anydepth adds when it saves (`mlp_ratio`, `reg_factor`,
        `drop_path_rate`, `dropout`) are read when present."""
        model = config.get("model")
        if not isinstance(model, dict):
            raise InputError("the config has no 'model' block")
        missing = [key for key in ("embed_dim", "depth", "num_heads", "window_size") if key not in model]
        if missing:
            raise InputError(f"the model block lacks {', '.join(missing)}")
        if int(model.get("num_decoders", NUM_DECODERS)) != NUM_DECODERS:
            raise InputError(f"num_decoders must be {NUM_DECODERS}, got {model['num_decoders']}")
        loader = config.get("data_loader") if isinstance(config.get("data_loader"), dict) else {}
        validation = loader.get("validation") if isinstance(loader.get("validation"), dict) else {}
        return cls(
            num_bins=int(model.get("in_chans", 3)),
            embed_dim=int(model["embed_dim"]),
            depths=tuple(model["depth"]),
            num_heads=tuple(model["num_heads"]),
            window_size=int(model["window_size"]),
            patch_size=int(model.get("patch_size", 4)),
            mlp_ratio=float(model.get("mlp_ratio", 4.0)),
            img_size=tuple(model.get("img_size", (256, 336))),
            drop_path_rate=float(model.get("drop_path_rate", 0.1)),
            dropout=float(model.get("dropout", 0.1)),
            normalize=bool(loader.get("normalize", True)),
            max_depth=float(validation.get("clip_distance", CLIP_DISTANCE_M)),
            alpha=float(model.get("reg_factor", REG_FACTOR)),
        )

    def to_official(self) -> dict:
        """The official config dict ("arch", "model", "data_loader"), readable by their `test.py`
        (which ignores the extra model keys)."""
        return {
            "arch": ARCH,
            "model": {
                "window_size": self.window_size,
                "pretrained": None,
                "embed_dim": self.embed_dim,
                "img_size": list(self.img_size),
                "num_decoders": NUM_DECODERS,
                "patch_size": self.patch_size,
                "in_chans": self.num_bins,
                "depth": list(self.depths),
                "num_heads": list(self.num_heads),
                "upsampling_method": "bilinear",
                "align_corners": True,
                "mlp_ratio": self.mlp_ratio,
                "drop_path_rate": self.drop_path_rate,
                "dropout": self.dropout,
                "reg_factor": self.alpha,
            },
            "data_loader": {"normalize": self.normalize, "validation": {"clip_distance": self.max_depth}},
        }



# ---- centred zero padding to multiples of 16 ---------------------------------------------------
def padding_for(size: tuple[int, int], multiple: int = PAD_MULTIPLE) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding that brings (H, W) to multiples of `multiple`,
    centred with the larger half on top / left (the official `CropParameters`)."""
    height, width = int(size[0]), int(size[1])
    extra_h, extra_w = (-height) % multiple, (-width) % multiple
    return math.ceil(extra_h / 2), extra_h // 2, math.ceil(extra_w / 2), extra_w // 2


# ---- the recurrent unit -----------------------------------------------------------------------
class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (the official ViT `Mlp`)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class GRViT(nn.Module):
    """Gated recurrent vision-transformer unit (official `GRViT`).

    forward(x (B, N, C), state (B, N, C) or None = zeros, pos_embed (1, N, C)) -> (y, new_state):
      p = x + pos_embed
      q, k, v = qkv_input(LN1(p)) + qkv_state(LN2(state))               (per head)
      a = proj((elu(q) + 1) (elu(k) + 1)ᵀ v)                            (unnormalised linear attention)
      z = sigmoid(update_gate([x, state]))
      new_state = (1 − z) · state + z · a
      y = p + a;  y = y + MLP(LN3(y))
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.qkv_input = nn.Linear(dim, 3 * dim, bias=False)
        self.qkv_state = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.update_gate = nn.Linear(2 * dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None, pos_embed: torch.Tensor):
        batch, tokens, channels = x.shape
        if state is None:
            state = torch.zeros_like(x)
        positioned = x + pos_embed
        heads = self.qkv_input(self.norm1(positioned)) + self.qkv_state(self.norm2(state))
        q, k, v = heads.view(batch, tokens, 3, self.num_heads, channels // self.num_heads).permute(2, 0, 3, 1, 4)
        keys_values = (F.elu(k) + 1).transpose(-2, -1) @ v  # (B, heads, d, d)
        attended = ((F.elu(q) + 1) @ keys_values).transpose(1, 2).reshape(batch, tokens, channels)
        attended = self.proj(attended)
        update = torch.sigmoid(self.update_gate(torch.cat([x, state], dim=2)))
        new_state = state * (1 - update) + attended * update
        y = positioned + attended
        return y + self.mlp(self.norm3(y)), new_state


def resize_pos_embed(pos_embed: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(1, S*S, C) position embedding of a square grid -> (1, h*w, C), bicubic (align_corners
    False), as the official `_resize_pos_embed`."""
    side = int(math.isqrt(pos_embed.shape[1]))
    grid = pos_embed.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=hw, mode="bicubic")
    return grid.permute(0, 2, 3, 1).reshape(1, hw[0] * hw[1], -1)


# ---- the network ------------------------------------------------------------------------------
class TransformerRecurrent(nn.Module):
    """The official `TransformerRecurrent` (everything under `transformerrecurrent.`).

    forward(x (B, num_bins, H, W), states: 4 tensors (B, h_i*w_i, C_i) or None) ->
    (D̂ (B, 1, H, W) in [0, 1], new states)."""

    def __init__(self, config: EReFormerConfig):
        super().__init__()
        widths, heads, window = config.widths, config.num_heads, config.window_size
        drop = config.dropout
        self.norm = nn.LayerNorm(widths[0], eps=1e-6)
        self.SwinTransformer = SwinTransformer(config.num_bins, config.embed_dim, config.depths, heads, window,
                                               config.patch_size, config.mlp_ratio, config.drop_path_rate)
        for index in range(NUM_DECODERS):
            self.add_module(f"GRViT_{index}", GRViT(widths[index], heads[index], mlp_ratio=2.0, dropout=drop))
        for index in range(NUM_DECODERS):
            side = POS_EMBED_SIZE // (config.patch_size * 2**index)
            self.register_parameter(f"pos_embed_{index}", nn.Parameter(torch.zeros(1, side * side, widths[index])))
            nn.init.trunc_normal_(getattr(self, f"pos_embed_{index}"), std=0.02)

        def block(level: int, shift: bool, ratio: int, cross: bool = False) -> nn.Module:
            kind = CrossSwinBlock if cross else SwinBlock
            return kind(widths[level], heads[level], ratio * widths[level], window, shift, dropout=drop)

        self.resblock_0, self.resblock_1 = block(3, False, 2), block(3, True, 2)
        self.decoder1_block0, self.decoder1_block1 = block(3, False, 2), block(3, True, 2)
        # decoder d = 2, 3, 4 works on encoder level 4 - d: PatchSplitting{d-1} from the level
        # below, cross-attention fusion with the skip (decoder{d}_query*), two Swin blocks
        for decoder, level in ((2, 2), (3, 1), (4, 0)):
            self.add_module(f"PatchSplitting{decoder - 1}", PatchSplitting(widths[level + 1], widths[level]))
            self.add_module(f"decoder{decoder}_query0", block(level, False, 4, cross=True))
            self.add_module(f"decoder{decoder}_query1", block(level, True, 4, cross=True))
            self.add_module(f"decoder{decoder}_block0", block(level, False, 4))
            self.add_module(f"decoder{decoder}_block1", block(level, True, 4))
        self.conv2d0 = nn.Conv2d(widths[0], 96, kernel_size=3, padding=1)
        self.head = nn.Sequential(
            nn.Conv2d(96, 32, kernel_size=3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(32, 1, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, states=None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        batch, _, height, width = x.shape
        features, shapes = self.SwinTransformer(x)
        states = states if states is not None else (None,) * NUM_DECODERS
        new_states = []
        for index in range(NUM_DECODERS):
            pos_embed = resize_pos_embed(getattr(self, f"pos_embed_{index}"), shapes[index])
            features[index], state = getattr(self, f"GRViT_{index}")(features[index], states[index], pos_embed)
            new_states.append(state)

        bottom = features[3]
        residual = self.resblock_1(self.resblock_0(bottom, shapes[3]), shapes[3])
        decoded = self.decoder1_block1(self.decoder1_block0(residual + bottom, shapes[3]), shapes[3])
        for decoder, level in ((2, 2), (3, 1), (4, 0)):
            upsampled = getattr(self, f"PatchSplitting{decoder - 1}")(decoded, shapes[level + 1], shapes[level])
            skip, hw = features[level], shapes[level]
            query = getattr(self, f"decoder{decoder}_query0")(upsampled, skip, hw)
            query = getattr(self, f"decoder{decoder}_query1")(query, skip, hw)
            decoded = getattr(self, f"decoder{decoder}_block0")(upsampled + query, hw)
            decoded = getattr(self, f"decoder{decoder}_block1")(decoded, hw)

        grid = self.norm(decoded).transpose(1, 2).reshape(batch, -1, *shapes[0])
        grid = F.interpolate(self.conv2d0(grid), size=(height, width), mode="bicubic", align_corners=True)
        return self.head(grid), tuple(new_states)


class EReFormer(LogDepthModel):
    """EReFormer: the official `E2DepthTransformerRecurrent` (parameters under
    `transformerrecurrent.`).

    forward(x (N, num_bins, h, w), state) -> (D̂ (N, 1, h, w) normalised log depth in [0, 1],
    new state). Any h, w work; `prepare` pads to multiples of 16, where every encoder grid is exact.
    The state is a tuple of the four GRViT states, (N, h_i·w_i, C_i) for the encoder grids
    h_i = ceil(h / 2^(i+2)), C_i = 96·2^i; None = zeros (a new sequence).
    """

    recurrent = True

    def __init__(self, config: EReFormerConfig | None = None, **overrides):
        super().__init__()
        config = EReFormerConfig() if config is None else config
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.transformerrecurrent = TransformerRecurrent(self.config)

    def state_shapes(self, batch: int, height: int, width: int) -> list[tuple[int, int, int]]:
        """Shapes of the four state tensors for inputs (batch, num_bins, height, width)."""
        shapes = []
        h, w = math.ceil(height / self.config.patch_size), math.ceil(width / self.config.patch_size)
        for width_i in self.config.widths:
            shapes.append((batch, h * w, width_i))
            h, w = (h + 1) // 2, (w + 1) // 2
        return shapes

    def zero_state(self, batch: int, height: int, width: int) -> tuple[torch.Tensor, ...]:
        """The explicit zero state for inputs (batch, num_bins, height, width) (same as None)."""
        return tuple(torch.zeros(shape, device=self.device) for shape in self.state_shapes(batch, height, width))

    def forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        if x.ndim != 4 or x.shape[1] != self.config.num_bins:
            raise InputError(f"EReFormer expects (N, {self.config.num_bins}, h, w), got {tuple(x.shape)}")
        if state is not None:
            expected = self.state_shapes(x.shape[0], x.shape[2], x.shape[3])
            got = [tuple(s.shape) for s in state] if isinstance(state, (list, tuple)) else None
            if got != expected:
                raise InputError(f"EReFormer state {got} does not fit an input {tuple(x.shape)} "
                                 f"(expected {expected}); reset the state when the input size changes")
        return self.transformerrecurrent(x, state)

    def event_image(self, window: EventArray | np.ndarray, representation: str | None = None) -> np.ndarray:
        """Events (-> `voxel_grid` with num_bins bins) or a precomputed (num_bins, H, W) voxel grid
        (representation="voxel") -> (num_bins, H, W) float32, normalised over non-zero voxels when
        `config.normalize`."""
        window = event_input(window, representation)
        bins = self.config.num_bins
        if isinstance(window, EventArray):
            return voxel_grid(window, bins, normalize=self.config.normalize)
        if representation != "voxel":
            raise InputError(f"EReFormer takes {bins}-bin voxel grids, not a {representation} image")
        if window.shape[0] != bins:
            raise InputError(f"EReFormer expects a ({bins}, H, W) input, got shape {window.shape}")
        return normalize_voxel_grid(window) if self.config.normalize else window

    def prepare_images(self, images: torch.Tensor, input_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Voxel grids (N, num_bins, H, W) -> (N, num_bins, h, w), zero-padded (centred) to
        multiples of 16. EReFormer runs at the input's own resolution: there is no `input_size`."""
        if input_size is not None:
            raise InputError(f"EReFormer runs at the input's own resolution (padded to a multiple of {PAD_MULTIPLE}); "
                             "input_size does not apply")
        top, bottom, left, right = padding_for(images.shape[-2:])
        return F.pad(images, (left, right, top, bottom))

    def raw_at_size(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Network output (N, 1, h, w) -> (N, H, W) at `size` (H, W): when (h, w) is the padded
        size `prepare_images` gives for `size`, the padding is cropped away; otherwise the map is
        resized (bilinear, in log depth)."""
        height, width = int(size[0]), int(size[1])
        top, bottom, left, right = padding_for((height, width))
        if tuple(raw.shape[-2:]) == (height + top + bottom, width + left + right):
            return raw[:, 0, top:top + height, left:left + width]
        return F.interpolate(raw, (height, width), mode="bilinear", align_corners=False)[:, 0]


# ---- the official checkpoint container -------------------------------------------------------
def load_ereformer(path: str | Path, config: EReFormerConfig | None = None, **overrides) -> EReFormer:
    """Build EReFormer from a checkpoint in the official trainer's container: a torch dict with
    `arch` ("E2DepthTransformerRecurrent"), `state_dict` and `config` (the full training JSON;
    `epoch`, `optimizer`, `monitor_best`, `logger` are ignored). The weights must match exactly.

    config: the config for a file that carries none (a file's own config is never replaced);
    overrides: fields to change after reading it (e.g. normalize=False, max_depth=...).
    Anything that does not fit raises a one-line CheckpointError naming the file."""
    path = Path(path)
    container = read_container(path)
    if not isinstance(container, dict) or not isinstance(container.get("state_dict"), dict):
        found = f"keys {', '.join(map(str, list(container)[:5]))}" if isinstance(container, dict) else f"a {type(container).__name__}"
        raise CheckpointError(f"not an EReFormer checkpoint (expected a dict with arch, config, state_dict; found {found})", path)
    stored = container.get("config")
    arch = container.get("arch", stored.get("arch") if isinstance(stored, dict) else None)
    if arch is not None and arch != ARCH:
        raise CheckpointError(f"holds architecture {arch!r}, not {ARCH!r} (EReFormer)", path)
    if isinstance(stored, dict):
        if config is not None:
            raise CheckpointError("carries its own config; pass overrides instead of a config", path)
        try:
            config = EReFormerConfig.from_official(stored)
        except (InputError, TypeError, ValueError) as error:
            raise CheckpointError(f"bad model config ({error})", path) from None
    elif config is None:
        raise CheckpointError("carries no config; pass config=EReFormerConfig(...)", path)
    try:
        config = dataclasses.replace(config, **overrides)
    except (InputError, TypeError) as error:
        raise CheckpointError(f"bad config override ({error})", path) from None
    with skip_weight_init():
        model = EReFormer(config)
    if not all(isinstance(v, torch.Tensor) for v in container["state_dict"].values()):
        raise CheckpointError("state_dict is not a dict of tensors", path)
    load_strict(model, container["state_dict"], path, f"EReFormer {_describe(model.config)}")
    return model.eval()


def _describe(config: EReFormerConfig) -> str:
    return (f"({config.num_bins} bins, embed {config.embed_dim}, depths {'-'.join(map(str, config.depths))}, "
            f"heads {'-'.join(map(str, config.num_heads))}, window {config.window_size})")


def save_ereformer(model: EReFormer, path: str | Path, epoch: int = 0) -> None:
    """Write the official trainer's container atomically (temp file + rename): {"arch":
    "E2DepthTransformerRecurrent", "epoch", "config": <official config dict>, "state_dict"}; their
    `test.py` loads its `state_dict`."""
    container = {
        "arch": ARCH,
        "epoch": int(epoch),
        "config": model.config.to_official(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    atomic_torch_save(container, path)
