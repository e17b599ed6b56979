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

import copy
import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.errors import AnydepthWarning, CheckpointError, InputError
from anydepth.events.container import EventArray
from anydepth.events.representations import tencode, tencode_from_voxels, voxel_grid
from anydepth.eventdepth.base import SPACES, EventDepthModel, event_input
from anydepth.eventdepth.layers import RecurrentConvLayer
from anydepth.foundation.checkpoint import atomic_torch_save, infer_config, load_strict, read_container, skip_weight_init
from anydepth.foundation.config import IMAGENET_MEAN, IMAGENET_STD, get_config
from anydepth.foundation.dinov2 import DinoVisionTransformer
from anydepth.foundation.dpt import DPTHead
from anydepth.foundation.transform import network_size


# The smallest network input side of DepthAnyEvent-R: its coarsest level (1/28 of the input) must
# keep 3 px for the ConvLSTM's unpadded 3x3 convolution, i.e. 5 patches of 14 px.
MIN_RECURRENT_SIDE = 70

# What the authors' `get_depth_anything_v2` / `get_rec_depth_anything_v2` build when a field is
# absent from the `model` block.
AUTHORS_DEFAULTS = {
    "activation": "relu", "scale_factor": 1.0, "inv_prediction": False, "input_size_width": 518,
    "input_size_height": 518, "input_channels": 3, "recurrent_block_type": "convlstm",
}
# What the released test configs (configs/test/{dav2,recdav2}/*.json) state: a file with no config
# at all is read with these, and a warning names them.
RELEASED_MODEL_BLOCK = {"activation": "softplus", "scale_factor": 1.0, "inv_prediction": True,
                        "input_size_width": 350, "input_size_height": 266}
# Keys of the `model` block the authors' code knows (the rest is reported).
MODEL_BLOCK_KEYS = {"model_type", "encoder", "freeze_encoder", "nopretrain", "checkpoint_path", "input_type", *AUTHORS_DEFAULTS}


@dataclass(frozen=True)
class DepthAnyEventConfig:
    """Settings of DepthAnyEvent(-R); the names follow the `model` block of the authors' configs.

    representation: "tencode" (3 channels) or "voxel" (`input_channels` bins, through input_mapping).
    input_size: (height, width) lower-bound target of the resize, multiples of 14 after rounding.
    tencode_scale: the value of a full Tencode channel the network was trained on: 1.0 when the
    run config's `event_representation.normalize` is true (the released models), 255.0 when not.
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
    tencode_scale: float = 1.0

    def __post_init__(self):
        if self.activation not in ("relu", "sigmoid", "softplus"):
            raise InputError(f"activation must be relu, sigmoid or softplus, got {self.activation!r}")
        if self.representation not in ("tencode", "voxel"):
            raise InputError(f"representation must be tencode or voxel, got {self.representation!r}")
        if self.representation == "tencode" and self.input_channels != 3:
            raise InputError("a Tencode input has 3 channels")
        if self.recurrent_block_type not in ("convlstm", "convgru"):
            raise InputError(f"recurrent_block_type must be convlstm or convgru, got {self.recurrent_block_type!r}")
        object.__setattr__(self, "input_size", tuple(int(side) for side in self.input_size))
        if self.recurrent and min(self.input_size) < MIN_RECURRENT_SIDE:
            raise InputError(f"input_size of DepthAnyEvent-R must be at least {MIN_RECURRENT_SIDE} px per side "
                             f"(its ConvLSTMs shrink the 1/28 level by 2 px), got {self.input_size}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_authors(self) -> dict:
        """The `model` block of the authors' configs for this model (only keys their
        `get_depth_anything_v2` / `get_rec_depth_anything_v2` accept)."""
        return {
            "model_type": "RecDAv2" if self.recurrent else "DAv2", "encoder": self.encoder,
            "activation": self.activation, "scale_factor": self.scale_factor, "inv_prediction": self.inv_prediction,
            "input_size_width": self.input_size[1], "input_size_height": self.input_size[0],
            "freeze_encoder": False, "input_channels": self.input_channels,
            **({"recurrent_block_type": self.recurrent_block_type} if self.recurrent else {}),
        }

    def event_representation(self) -> dict:
        """The `data_loader.event_representation` block of the authors' configs for this model."""
        if self.representation == "tencode":
            return {"representation_type": "tencode", "normalize": self.tencode_scale == 1.0}
        return {"representation_type": "voxel_grid", "channels": self.input_channels, "normalize": True}


class RecurrentDPTHead(DPTHead):
    """DPT head with `gru_layer_1..4` between `layerN_rn` and the fusion blocks. A fresh state
    (None) skips the hidden half of the ConvLSTM gates (`ConvLSTM.skip_zero_hidden`): the first
    window equals an explicit zero state up to float summation."""

    def __init__(self, *args, cell: str = "convlstm", **kwargs):
        super().__init__(*args, **kwargs)
        features = self.scratch.layer1_rn.out_channels
        for level in range(1, 5):
            setattr(self, f"gru_layer_{level}", RecurrentConvLayer(features, features, 3, padding=0, recurrent_block_type=cell,
                                                                   skip_zero_hidden=True))
        self.to(memory_format=torch.channels_last)  # as the rest of the head: NHWC kernels throughout

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
    native_space = "disparity"
    takes_dav2_weights = True

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
        if self.recurrent and min(x.shape[-2:]) < MIN_RECURRENT_SIDE:
            raise InputError(f"DepthAnyEvent-R needs a network input of at least {MIN_RECURRENT_SIDE} px per side, "
                             f"got {tuple(x.shape[-2:])}")
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
    def event_image(self, window: EventArray | np.ndarray, representation: str | None = None) -> np.ndarray:
        """The (C, H, W) float32 event image the network takes. A Tencode model takes events
        (-> `tencode`), a Tencode image (representation="tencode", (3, H, W) in [0, 1]) or a voxel
        grid (representation="voxel", -> `tencode_from_voxels`, the official MVSEC path); it is
        returned on the `tencode_scale` the model was trained on. A voxel model takes events (->
        normalised `voxel_grid`) or an `input_channels`-bin voxel grid as it is."""
        window = event_input(window, representation)
        if self.config.representation == "tencode":
            if isinstance(window, EventArray):
                image = tencode(window)
            else:
                image = window if representation == "tencode" else tencode_from_voxels(window)
            return image if self.config.tencode_scale == 1.0 else image * np.float32(self.config.tencode_scale)
        if isinstance(window, EventArray):
            return voxel_grid(window, self.config.input_channels, normalize=True)
        if representation != "voxel":
            raise InputError(f"this DepthAnyEvent takes {self.config.input_channels}-bin voxel grids, not a {representation} image")
        if window.shape[0] != self.config.input_channels:
            raise InputError(f"expected {self.config.input_channels} voxel bins, got {window.shape[0]}")
        return window

    def prepare_images(self, images: torch.Tensor, input_size: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, C, H, W) event images -> network input: bicubic resize to the lower-bound size of
        `input_size` (h, w; default the configured one) and ImageNet normalisation of the first
        three channels (as the authors' `image2tensor`)."""
        target = self.config.input_size if input_size is None else tuple(int(side) for side in input_size)
        if len(target) != 2 or min(target) < 14:
            raise InputError(f"input_size must be (height, width) of at least 14 pixels, got {input_size}")
        height, width = network_size(images.shape[-2], images.shape[-1], target)
        x = F.interpolate(images, (height, width), mode="bicubic", align_corners=False)
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return torch.cat(((x[:, :3] - mean) / std, x[:, 3:]), dim=1)

    def raw_at_size(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, 1, h, w) -> (N, H, W), bilinear with align_corners=False."""
        return F.interpolate(raw, tuple(size), mode="bilinear", align_corners=False)[:, 0]

    def to_depth(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, 1, h, w) -> the relative depth-like map (N, H, W), as `raw_at_size`."""
        return self.raw_at_size(raw, size)

    # ---- training -------------------------------------------------------------------------------
    def to_space(self, raw_map: torch.Tensor, space: str) -> torch.Tensor:
        """The output (N, H, W) -> disparity, the only space DepthAnyEvent trains in: the head
        output before `inv_prediction` (ReLU + inv_prediction: 1 / d -> d; sigmoid: 1 - d -> d),
        divided by `scale_factor`; a softplus output is read as depth, as the authors' code does."""
        if space not in SPACES:
            raise InputError(f"unknown space {space!r}; choose one of {', '.join(SPACES)}")
        if space != "disparity":
            raise InputError(f"DepthAnyEvent predicts relative depth; it trains in disparity space, not {space}")
        config = self.config
        if config.inv_prediction and config.activation == "relu":
            return config.scale_factor / raw_map.clamp_min(1e-6) - 1e-6
        if config.inv_prediction and config.activation == "sigmoid":
            return 1.0 - raw_map / config.scale_factor
        if config.activation == "softplus":
            return 1.0 / raw_map.clamp_min(1e-6)
        return raw_map / config.scale_factor

    def init_for_training(self) -> None:
        """A ReLU head starts open (see `DPTHead.open_output`); other activations need nothing."""
        if self.config.activation == "relu":
            self.depth_head.open_output()

    def init_from_dav2(self, dav2_state_dict: dict[str, torch.Tensor]) -> None:
        init_from_dav2(self, dav2_state_dict)


# ---- checkpoints ----------------------------------------------------------------------------------
def load_depthanyevent(path, **overrides) -> DepthAnyEvent:
    """A Depth AnyEvent checkpoint, built exactly as the authors' `test.py` builds it and loaded
    with a strict key and shape match (their code uses strict=False).

    The released files hold {"state_dict", "config"} with `config` the whole JSON run config
    (`model`, `data_loader`, ..., optionally `trainer`); the model comes from its `model` block and
    the representation from `data_loader.event_representation`. Also read: a `config` that is a
    bare model block, a `config.json` beside a file without one (as `test.py`), and a plain state
    dict. Recurrence, recurrent cell, encoder and input channels are read from the weights and must
    agree with the config. A field the file does not state is taken as the authors' code takes it
    (or, with no config at all, as the released test configs state it) and an `AnydepthWarning`
    names it. `overrides` (DepthAnyEventConfig fields) replace the file's. The whole run config is
    kept as `model.run_config` (None when the file has none)."""
    container = read_container(path)
    state_dict = container.get("state_dict", container)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError("state_dict is not a dict of tensors", path)
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    run_config, block, source = _stated_config(container, path)
    config = _config_from_block(block, run_config, state_dict, path, source, overrides)
    with skip_weight_init():
        model = DepthAnyEvent(config)
    load_strict(model, state_dict, path, f"Depth AnyEvent{'-R' if model.recurrent else ''} {model.config.encoder}")
    model.run_config = run_config
    return model.eval()


def _stated_config(container: dict, path) -> tuple[dict | None, dict | None, str]:
    """(whole run config or None, model block or None, where it came from)."""
    stated, source = container.get("config"), "the checkpoint's config"
    if stated is None and "state_dict" in container:
        beside = Path(path).parent / "config.json"
        if beside.is_file():
            try:
                stated, source = json.loads(beside.read_text()), str(beside)
            except (OSError, ValueError) as error:
                raise CheckpointError(f"cannot read the config beside the checkpoint ({error})", beside) from None
    if stated is None:
        return None, None, "no config"
    if not isinstance(stated, dict):
        raise CheckpointError(f"{source} is a {type(stated).__name__}, not a JSON object", path)
    if isinstance(stated.get("model"), dict):
        return stated, stated["model"], source
    if set(stated) & MODEL_BLOCK_KEYS:
        return None, stated, source + " (a bare model block)"
    raise CheckpointError(f"{source} has neither a model section nor model fields (keys: {', '.join(map(str, stated)) or 'none'})", path)


def _config_from_block(block: dict | None, run_config: dict | None, state_dict: dict, path, source: str,
                       overrides: dict) -> DepthAnyEventConfig:
    """The DepthAnyEventConfig a model block (and the run config's event representation) states,
    checked against the weights; unstated fields are named in one warning."""
    block = dict(block or {})
    if block.get("model_type", "DAv2") not in ("DAv2", "RecDAv2"):
        raise CheckpointError(f"model_type {block['model_type']!r} in {source} is not a Depth AnyEvent model (DAv2 or RecDAv2)", path)
    recurrent = any(k.startswith("depth_head.gru_layer_") for k in state_dict)
    cell = "convgru" if any(".recurrent_block.reset_gate." in k for k in state_dict) else "convlstm"
    channels = int(state_dict["input_mapping.0.weight"].shape[1]) if "input_mapping.0.weight" in state_dict else 3
    encoder = _encoder_of(state_dict, path)
    values = {"encoder": encoder, "recurrent": recurrent, "input_channels": channels,
              **({"recurrent_block_type": cell} if recurrent else {})}
    unknown = sorted(set(block) - MODEL_BLOCK_KEYS)
    guessed = []

    kind = block.get("model_type")
    if kind is not None:
        if (kind == "RecDAv2") != recurrent:
            raise CheckpointError(f"{source} says model_type {kind} but the weights {'have' if recurrent else 'lack'} "
                                  "the recurrent layers depth_head.gru_layer_*", path)
    for key, found in (("encoder", encoder), ("input_channels", channels), ("recurrent_block_type", cell if recurrent else None)):
        if key in block and found is not None and block[key] != found:
            raise CheckpointError(f"{source} says {key} {block[key]!r} but the weights are {found!r}", path)

    defaults = AUTHORS_DEFAULTS if block else RELEASED_MODEL_BLOCK
    field_of = {"activation": "activation", "scale_factor": "scale_factor", "inv_prediction": "inv_prediction",
                "input_size_height": "input_size", "input_size_width": "input_size"}
    stated = {}
    for key in ("activation", "scale_factor", "inv_prediction", "input_size_height", "input_size_width"):
        if key in block:
            stated[key] = block[key]
        else:
            stated[key] = defaults[key]
            if field_of[key] not in overrides:
                guessed.append(f"{key}={defaults[key]!r}")
    values.update(activation=str(stated["activation"]), scale_factor=float(stated["scale_factor"]),
                  inv_prediction=bool(stated["inv_prediction"]),
                  input_size=(int(stated["input_size_height"]), int(stated["input_size_width"])))
    values.update(_representation(run_config, channels, path, source, overrides, guessed))
    values.update(overrides)
    if guessed:
        origin = "no config" if source == "no config" else f"not in {source}"
        warnings.warn(f"{path}: {origin}, assuming " + ", ".join(guessed)
                      + (" (as the authors' code does)" if block else " (as the released test configs)"),
                      AnydepthWarning, stacklevel=4)
    if unknown:
        warnings.warn(f"{path}: ignoring model fields the authors' code does not know: {', '.join(unknown)}",
                      AnydepthWarning, stacklevel=4)
    try:
        return DepthAnyEventConfig(**values)
    except (InputError, TypeError, ValueError) as error:
        raise CheckpointError(f"bad model config ({error})", path) from None


def _representation(run_config: dict | None, channels: int, path, source: str, overrides: dict, guessed: list) -> dict:
    """representation and tencode_scale from `data_loader.event_representation`."""
    described = ((run_config or {}).get("data_loader") or {}).get("event_representation")
    if not isinstance(described, dict):
        if channels == 3 and "representation" not in overrides:
            guessed.append("representation='tencode'")
        return {"representation": "tencode" if channels == 3 else "voxel"}
    kind = described.get("representation_type")
    if kind == "tencode":
        if channels != 3:
            raise CheckpointError(f"{source} says a Tencode input but the weights take {channels} channels", path)
        if described.get("white_frame", False):
            raise CheckpointError(f"{source} asks for a white-background Tencode (white_frame), which anydepth does not make", path)
        return {"representation": "tencode", "tencode_scale": 1.0 if described.get("normalize", True) else 255.0}
    if kind == "voxel_grid":
        bins = int(described.get("channels", channels))
        if bins != channels:
            raise CheckpointError(f"{source} says a {bins}-bin voxel grid but the weights take {channels} channels", path)
        if channels == 3:  # a 3-channel voxel model takes its voxels unmapped, as a Tencode model its image
            raise CheckpointError(f"{source} says a 3-bin voxel grid, which anydepth's Depth AnyEvent does not take", path)
        return {"representation": "voxel"}
    raise CheckpointError(f"{source} names event representation {kind!r}; anydepth's Depth AnyEvent takes tencode or voxel_grid", path)


def default_run_config(config: DepthAnyEventConfig) -> dict:
    """A whole run config in the authors' layout for a model that has none: the released MVSEC
    test settings (50 ms windows, the model's representation) and a `trainer` section that makes
    their `test.py` align the relative output (use_scaleshift) as the paper's protocol does. Their
    `test.py` takes the dataset path from `--datapath` and a `--config` replaces `data_loader`."""
    return {
        "name": f"anydepth DepthAnyEvent{'-R' if config.recurrent else ''}",
        "data_loader": {
            "dataset": "mvsec", "split": "test", "concatenate_sequences": False,
            "slicing": {"slicing_type": "sbt", "time_window_ms": 50},
            "event_representation": config.event_representation(),
            "preprocessing": [{"preprocessing_type": "Crop", "height": 260, "width": 346}],
            "load_images": False, "use_voxels": config.representation == "tencode",
            "batch_size": 1, "num_workers": 1, "pin_memory": False, "shuffle": False,
            "sequence_window": 1, "sequence_step": 1, "all_events": True,
        },
        "model": config.to_authors(),
        "trainer": {"use_scaleshift": True, "use_logdepth": False, "clip_distance": 80.0, "reg_factor": 3.70378},
    }


def save_depthanyevent(model: DepthAnyEvent, path, run_config: dict | None = None) -> None:
    """Write the released container atomically: {"state_dict", "config": the whole run config}.
    The run config is `run_config`, else the one the model was loaded with, else
    `default_run_config`; its `model` block and event representation are rewritten from the
    model, so the authors' `load_and_merge_config` + `fetch_model` rebuild this exact model."""
    run = copy.deepcopy(run_config if run_config is not None else getattr(model, "run_config", None))
    if run is None:
        run = default_run_config(model.config)
    run["model"] = model.config.to_authors()
    loader = run.setdefault("data_loader", {})
    loader["event_representation"] = {**(loader.get("event_representation") or {}), **model.config.event_representation()}
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_torch_save({"state_dict": state_dict, "config": run}, path)


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
