"""DepthAnyEvent and DepthAnyEvent-R (Bartolomei et al., ICCV 2025): Depth Anything V2 on event
images, the latter with one recurrent layer per DPT level.

Architecture (the authors' `models/dav2` and `models/rec_dav2`):
- optional `input_mapping` (conv 3x3 -> 16, InstanceNorm, ReLU, conv 1x1 -> 3, InstanceNorm, ReLU)
  when the input has other than 3 channels (voxel grids);
- the DINOv2 encoder and DPT head of DAv2 (same parameter names), with the head's final
  upsampling done with align_corners=False and a configurable final activation (softplus in the
  released configs);
- DepthAnyEvent-R: after each `scratch.layerN_rn`, `gru_layerN` = 3x3 conv without padding + ReLU
  then a ConvLSTM whose hidden state replaces the map; the fusion blocks resize to the shrunk maps.

Pre-processing (their `infer_image`): the event image (Tencode in [0, 1], or voxels) is resized
with torch bicubic (align_corners=False) to the lower-bound size for the target (266, 350) rounded
to multiples of 14 (MVSEC 260x346 -> 266x350), ImageNet-normalised on its first three channels;
the output is resized back bilinearly (align_corners=False). With `inv_prediction` a ReLU output
becomes 1 / (d + 1e-6) and a sigmoid output 1 - d (a softplus output is left as is, as in their
code); then it is multiplied by `scale_factor`. The result is an affine-invariant depth-like map
that the evaluation protocol aligns (output_kind "relative").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.errors import CheckpointError, InputError
from anydepth.events.container import EventArray
from anydepth.events.representations import tencode, tencode_from_voxels, voxel_grid
from anydepth.eventdepth.base import EventDepthModel
from anydepth.eventdepth.layers import RecurrentConvLayer
from anydepth.foundation.checkpoint import atomic_torch_save, infer_config, load_strict, read_container
from anydepth.foundation.config import IMAGENET_MEAN, IMAGENET_STD, get_config
from anydepth.foundation.dinov2 import DinoVisionTransformer
from anydepth.foundation.dpt import DPTHead
from anydepth.foundation.transform import network_size


@dataclass(frozen=True)
class DepthAnyEventConfig:
    """Settings of DepthAnyEvent(-R); the names follow the `model` block of the authors' configs.

    representation: "tencode" (3 channels) or "voxel" (`input_channels` bins, through input_mapping).
    input_size: (height, width) lower-bound target of the resize, multiples of 14 after rounding.
    """

    encoder: str = "vits"
    recurrent: bool = False
    activation: str = "softplus"
    scale_factor: float = 1.0
    inv_prediction: bool = True
    input_size: tuple[int, int] = (266, 350)
    input_channels: int = 3
    representation: str = "tencode"
    recurrent_block_type: str = "convlstm"

    def __post_init__(self):
        if self.activation not in ("relu", "sigmoid", "softplus"):
            raise InputError(f"activation must be relu, sigmoid or softplus, got {self.activation!r}")
        if self.representation not in ("tencode", "voxel"):
            raise InputError(f"representation must be tencode or voxel, got {self.representation!r}")
        if self.representation == "tencode" and self.input_channels != 3:
            raise InputError("a Tencode input has 3 channels")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_authors(cls, model: dict) -> "DepthAnyEventConfig":
        """From the `model` block of the authors' JSON configs (model_type DAv2 / RecDAv2)."""
        kind = model.get("model_type", "DAv2")
        if kind not in ("DAv2", "RecDAv2"):
            raise InputError(f"model_type {kind!r} is not a Depth AnyEvent model (DAv2 or RecDAv2)")
        channels = int(model.get("input_channels", 3))
        return cls(
            encoder=model.get("encoder", "vits"),
            recurrent=kind == "RecDAv2",
            activation=model.get("activation", "relu"),
            scale_factor=float(model.get("scale_factor", 1.0)),
            inv_prediction=bool(model.get("inv_prediction", False)),
            input_size=(int(model.get("input_size_height", 518)), int(model.get("input_size_width", 518))),
            input_channels=channels,
            representation="tencode" if channels == 3 else "voxel",
            recurrent_block_type=model.get("recurrent_block_type", "convlstm"),
        )

    def to_authors(self) -> dict:
        """The `model` block of the authors' configs for this model."""
        return {
            "model_type": "RecDAv2" if self.recurrent else "DAv2", "encoder": self.encoder,
            "activation": self.activation, "scale_factor": self.scale_factor, "inv_prediction": self.inv_prediction,
            "input_size_width": self.input_size[1], "input_size_height": self.input_size[0],
            "freeze_encoder": False, "input_channels": self.input_channels,
            **({"recurrent_block_type": self.recurrent_block_type} if self.recurrent else {}),
        }


class RecurrentDPTHead(DPTHead):
    """DPT head with `gru_layer_1..4` between `layerN_rn` and the fusion blocks."""

    def __init__(self, *args, cell: str = "convlstm", **kwargs):
        super().__init__(*args, **kwargs)
        features = self.scratch.layer1_rn.out_channels
        for level in range(1, 5):
            setattr(self, f"gru_layer_{level}", RecurrentConvLayer(features, features, 3, padding=0, recurrent_block_type=cell))

    def recur(self, levels: list[torch.Tensor], states=None) -> tuple[list[torch.Tensor], tuple]:
        """Each level through its recurrent layer. states: (level 4, 3, 2, 1) as the authors order
        them, None = zeros. Returns the shrunk levels (finest first) and the new states."""
        states = states if states is not None else (None, None, None, None)
        outputs, new_states = [None] * 4, [None] * 4
        for slot, level in enumerate((4, 3, 2, 1)):
            outputs[level - 1], new_states[slot] = getattr(self, f"gru_layer_{level}")(levels[level - 1], states[slot])
        return outputs, tuple(new_states)


class InputMapping(nn.Sequential):
    """C-channel event tensor -> 3 channels for the ViT (used when C != 3)."""

    def __init__(self, channels: int):
        super().__init__(
            nn.Conv2d(channels, 16, 3, padding=1), nn.InstanceNorm2d(16), nn.ReLU(True),
            nn.Conv2d(16, 3, 1), nn.InstanceNorm2d(3), nn.ReLU(True),
        )


class DepthAnyEvent(EventDepthModel):
    """DepthAnyEvent (recurrent=False) and DepthAnyEvent-R (recurrent=True)."""

    output_kind = "relative"

    def __init__(self, config: DepthAnyEventConfig | None = None, **overrides):
        super().__init__()
        config = dataclasses.replace(config or DepthAnyEventConfig(), **overrides)
        self.config = config
        self.recurrent = config.recurrent
        dav2 = get_config(config.encoder)
        self.tapped_blocks = dav2.tapped_blocks
        self.input_mapping = InputMapping(config.input_channels) if config.input_channels != 3 else nn.Identity()
        self.pretrained = DinoVisionTransformer(dav2)
        head_class = RecurrentDPTHead if config.recurrent else DPTHead
        head_options = {"cell": config.recurrent_block_type} if config.recurrent else {}
        self.depth_head = head_class(dav2.embed_dim, dav2.features, dav2.out_channels, config.activation, False, **head_options)

    # ---- network ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """x (N, C, h, w) normalised, h and w multiples of 14 -> (raw (N, 1, h, w), state)."""
        x = self.input_mapping(x)
        patch_h, patch_w = x.shape[-2] // 14, x.shape[-1] // 14
        levels = self.depth_head.reassemble(self.pretrained.forward_tapped(x, self.tapped_blocks), patch_h, patch_w)
        if self.recurrent:
            levels, state = self.depth_head.recur(levels, state)
        depth = self.depth_head.predict(self.depth_head.fuse(levels), patch_h, patch_w)
        if self.config.inv_prediction:
            if self.config.activation == "relu":
                depth = 1.0 / (depth + 1e-6)
            elif self.config.activation == "sigmoid":
                depth = 1.0 - depth
        return depth * self.config.scale_factor, state

    # ---- pre- and post-processing --------------------------------------------------------------
    def event_image(self, window: EventArray | np.ndarray) -> np.ndarray:
        """The (C, H, W) float32 event image: Tencode (from events, or from a (B, H, W) voxel grid
        as the official MVSEC path) or a normalised voxel grid."""
        if self.config.representation == "tencode":
            return tencode(window) if isinstance(window, EventArray) else tencode_from_voxels(window)
        if isinstance(window, EventArray):
            return voxel_grid(window, self.config.input_channels, normalize=True)
        voxels = np.asarray(window, dtype=np.float32)
        if voxels.shape[0] != self.config.input_channels:
            raise InputError(f"expected {self.config.input_channels} voxel bins, got {voxels.shape[0]}")
        return voxels

    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) event image -> network input: bicubic resize to the lower-bound size and
        ImageNet normalisation of the first three channels (as the authors' `image2tensor`)."""
        height, width = network_size(image.shape[-2], image.shape[-1], self.config.input_size)
        x = F.interpolate(image, (height, width), mode="bicubic", align_corners=False)
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return torch.cat(((x[:, :3] - mean) / std, x[:, 3:]), dim=1)

    def prepare(self, window: EventArray | np.ndarray) -> torch.Tensor:
        image = torch.from_numpy(self.event_image(window))[None].to(self.device)
        return self.prepare_image(image)

    def to_depth(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, 1, h, w) -> (N, H, W), bilinear with align_corners=False."""
        return F.interpolate(raw, tuple(size), mode="bilinear", align_corners=False)[:, 0]


# ---- checkpoints ----------------------------------------------------------------------------------
def load_depthanyevent(path, **overrides) -> DepthAnyEvent:
    """A released Depth AnyEvent checkpoint: {"state_dict": ..., "config": <model block of their
    JSON config>}, loaded with a strict key and shape match (their code uses strict=False). A
    plain state dict is accepted too: recurrence is read from its keys, the encoder from its
    shapes, the rest from `overrides` (defaults: the released MVSEC/DSEC test configs)."""
    container = read_container(path)
    state_dict = {k.removeprefix("module."): v for k, v in container.get("state_dict", container).items()}
    if isinstance(container.get("config"), dict):
        config = DepthAnyEventConfig.from_authors(container["config"])
    else:
        recurrent = any(k.startswith("depth_head.gru_layer_") for k in state_dict)
        channels = state_dict["input_mapping.0.weight"].shape[1] if "input_mapping.0.weight" in state_dict else 3
        config = DepthAnyEventConfig(
            encoder=_encoder_of(state_dict, path), recurrent=recurrent, input_channels=int(channels),
            representation="tencode" if channels == 3 else "voxel")
    model = DepthAnyEvent(dataclasses.replace(config, **overrides))
    load_strict(model, state_dict, path, f"Depth AnyEvent{'-R' if model.recurrent else ''} {model.config.encoder}")
    return model.eval()


def save_depthanyevent(model: DepthAnyEvent, path) -> None:
    """Write the authors' container ({"state_dict", "config"}) atomically."""
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_torch_save({"state_dict": state_dict, "config": model.config.to_authors()}, path)


def init_from_dav2(model: DepthAnyEvent, dav2_state_dict: dict[str, torch.Tensor]) -> DepthAnyEvent:
    """Copy Depth Anything V2 weights (official layout) into the encoder and DPT head; the
    recurrent layers and the input mapping keep their fresh initialisation. The DAv2 encoder must
    match (CheckpointError otherwise)."""
    shared = {k: v for k, v in model.state_dict().items() if k.startswith(("pretrained.", "depth_head."))
              and not k.startswith("depth_head.gru_layer_")}
    partial = dict(model.state_dict())
    missing = sorted(set(shared) - set(dav2_state_dict))
    if missing:
        raise CheckpointError(f"Depth Anything V2 weights lack {len(missing)} keys of the {model.config.encoder} encoder/head (e.g. {missing[0]})")
    partial.update({k: dav2_state_dict[k] for k in shared})
    load_strict(model, partial, None, f"Depth AnyEvent {model.config.encoder}")
    return model


def _encoder_of(state_dict: dict, path) -> str:
    dav2_keys = {k: v for k, v in state_dict.items() if k.startswith(("pretrained.", "depth_head.")) and "gru_layer" not in k}
    return infer_config(dav2_keys, path).encoder
