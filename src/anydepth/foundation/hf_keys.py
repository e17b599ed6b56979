"""Key mapping between the official Depth Anything V2 checkpoints and the Hugging Face
`transformers` layout (`DepthAnythingForDepthEstimation`, hub repos `Depth-Anything-V2-*-hf`),
and the `config.json` / `preprocessor_config.json` those repos hold.

official                                   Hugging Face (hub files, transformers 4 names)
pretrained.cls_token / pos_embed / mask_token  backbone.embeddings.cls_token / position_embeddings / mask_token
pretrained.patch_embed.proj                backbone.embeddings.patch_embeddings.projection
pretrained.blocks.i.norm1 / norm2          backbone.encoder.layer.i.norm1 / norm2
pretrained.blocks.i.attn.qkv (fused)       ...attention.attention.{query,key,value}  (split in 3 along dim 0)
pretrained.blocks.i.attn.proj              ...attention.output.dense
pretrained.blocks.i.ls1.gamma / ls2.gamma  ...layer_scale1.lambda1 / layer_scale2.lambda1
pretrained.blocks.i.mlp.fc1 / fc2          ...mlp.fc1 / fc2
pretrained.blocks.i.mlp.w12 / w3 (ViT-g)   ...mlp.weights_in / weights_out
pretrained.norm                            backbone.layernorm
depth_head.projects.i                      neck.reassemble_stage.layers.i.projection
depth_head.resize_layers.i (i = 0, 1, 3)   neck.reassemble_stage.layers.i.resize
depth_head.scratch.layer{i+1}_rn           neck.convs.i
depth_head.scratch.refinenet{k}            neck.fusion_stage.layers.{4-k}  (reverse order)
    out_conv / resConfUnit{j}.conv{m}          projection / residual_layer{j}.convolution{m}
depth_head.scratch.output_conv1            head.conv1
depth_head.scratch.output_conv2.0 / .2     head.conv2 / head.conv3

transformers >= 5 renames a few of these in memory (attention.q_proj/k_proj/v_proj/o_proj,
mlp.gate_proj/up_proj/down_proj); `hf_to_official` accepts both spellings.
"""

from __future__ import annotations

import re

import torch

from anydepth.errors import InputError
from anydepth.foundation.config import IMAGENET_MEAN, IMAGENET_STD, PATCH_SIZE, PRETRAIN_IMAGE_SIZE

_QKV_HF4 = ("attention.attention.query", "attention.attention.key", "attention.attention.value")
_QKV_HF5 = ("attention.q_proj", "attention.k_proj", "attention.v_proj")

# (official suffix inside a block, HF suffix inside a layer) for one-to-one renames
_BLOCK_RENAMES = [
    ("norm1", "norm1"),
    ("norm2", "norm2"),
    ("attn.proj", "attention.output.dense"),
    ("ls1.gamma", "layer_scale1.lambda1"),
    ("ls2.gamma", "layer_scale2.lambda1"),
    ("mlp.fc1", "mlp.fc1"),
    ("mlp.fc2", "mlp.fc2"),
    ("mlp.w12", "mlp.weights_in"),
    ("mlp.w3", "mlp.weights_out"),
]
_FUSION_RENAMES = [
    ("out_conv", "projection"),
    ("resConfUnit1.conv1", "residual_layer1.convolution1"),
    ("resConfUnit1.conv2", "residual_layer1.convolution2"),
    ("resConfUnit2.conv1", "residual_layer2.convolution1"),
    ("resConfUnit2.conv2", "residual_layer2.convolution2"),
]
_GLOBAL_RENAMES = [
    ("pretrained.cls_token", "backbone.embeddings.cls_token"),
    ("pretrained.pos_embed", "backbone.embeddings.position_embeddings"),
    ("pretrained.mask_token", "backbone.embeddings.mask_token"),
    ("pretrained.patch_embed.proj", "backbone.embeddings.patch_embeddings.projection"),
    ("pretrained.norm", "backbone.layernorm"),
    ("depth_head.scratch.output_conv1", "head.conv1"),
    ("depth_head.scratch.output_conv2.0", "head.conv2"),
    ("depth_head.scratch.output_conv2.2", "head.conv3"),
]


def _rename_table() -> list[tuple[str, str]]:
    """(official regex, HF template) pairs; the block/level index is the first group."""
    table = [(re.escape(o) + r"(\.weight|\.bias)?$", h + r"\1") for o, h in _GLOBAL_RENAMES]
    for official, hf in _BLOCK_RENAMES:
        table.append((r"pretrained\.blocks\.(\d+)\." + re.escape(official) + r"(\.weight|\.bias)?$",
                      r"backbone.encoder.layer.\1." + hf + r"\2"))
    table += [
        (r"depth_head\.projects\.(\d+)\.(weight|bias)$", r"neck.reassemble_stage.layers.\1.projection.\2"),
        (r"depth_head\.resize_layers\.(\d+)\.(weight|bias)$", r"neck.reassemble_stage.layers.\1.resize.\2"),
    ]
    return table


_TABLE = _rename_table()


def _inverse_table() -> list[tuple[str, str]]:
    """(HF regex, official template) pairs for the one-to-one renames."""
    table = [(re.escape(h) + r"(\.weight|\.bias)?$", o + r"\1") for o, h in _GLOBAL_RENAMES]
    table += [(r"backbone\.encoder\.layer\.(\d+)\." + re.escape(h) + r"(\.weight|\.bias)?$",
               r"pretrained.blocks.\1." + o + r"\2") for o, h in _BLOCK_RENAMES]
    table += [
        (r"neck\.reassemble_stage\.layers\.(\d+)\.projection\.(weight|bias)$", r"depth_head.projects.\1.\2"),
        (r"neck\.reassemble_stage\.layers\.(\d+)\.resize\.(weight|bias)$", r"depth_head.resize_layers.\1.\2"),
    ]
    return table


_INVERSE_TABLE = _inverse_table()
_FUSION_TO_HF = dict(_FUSION_RENAMES)
_FUSION_TO_OFFICIAL = {h: o for o, h in _FUSION_RENAMES}


def _rename(key: str, table: list[tuple[str, str]]) -> str:
    """The first table entry matching `key`, expanded; KeyError(key) when none does."""
    for pattern, template in table:
        match = re.match(pattern, key)
        if match:
            return match.expand(template)
    raise KeyError(key)


def official_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official state dict -> Hugging Face hub layout (transformers 4 key names)."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        qkv = re.match(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        rn = re.match(r"depth_head\.scratch\.layer(\d)_rn\.weight$", key)
        fusion = re.match(r"depth_head\.scratch\.refinenet(\d)\.(.+)\.(weight|bias)$", key)
        if qkv:
            for name, part in zip(_QKV_HF4, value.chunk(3, dim=0)):
                converted[f"backbone.encoder.layer.{qkv[1]}.{name}.{qkv[2]}"] = part.clone()
        elif rn:
            converted[f"neck.convs.{int(rn[1]) - 1}.weight"] = value
        elif fusion and fusion[2] in _FUSION_TO_HF:
            converted[f"neck.fusion_stage.layers.{4 - int(fusion[1])}.{_FUSION_TO_HF[fusion[2]]}.{fusion[3]}"] = value
        else:
            converted[_rename(key, _TABLE)] = value
    return converted


def hf_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face layout (transformers 4 or 5 names) -> official state dict.
    Unknown keys raise KeyError naming the key."""
    state_dict = dict(state_dict)
    converted: dict[str, torch.Tensor] = {}
    # fuse query/key/value (either spelling) back into qkv
    layers = sorted({int(m[1]) for k in state_dict if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", k))})
    for layer in layers:
        prefix = f"backbone.encoder.layer.{layer}."
        for names in (_QKV_HF4, _QKV_HF5):
            for kind in ("weight", "bias"):
                keys = [f"{prefix}{name}.{kind}" for name in names]
                if all(k in state_dict for k in keys):
                    converted[f"pretrained.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([state_dict.pop(k) for k in keys])
        # transformers 5 in-memory SwiGLU: gate_proj/up_proj -> w12, down_proj -> w3
        for kind in ("weight", "bias"):
            gate, up = f"{prefix}mlp.gate_proj.{kind}", f"{prefix}mlp.up_proj.{kind}"
            if gate in state_dict and up in state_dict:
                converted[f"pretrained.blocks.{layer}.mlp.w12.{kind}"] = torch.cat([state_dict.pop(gate), state_dict.pop(up)])
            down = f"{prefix}mlp.down_proj.{kind}"
            if down in state_dict:
                converted[f"pretrained.blocks.{layer}.mlp.w3.{kind}"] = state_dict.pop(down)
        for kind in ("weight", "bias"):
            o_proj = f"{prefix}attention.o_proj.{kind}"
            if o_proj in state_dict:
                state_dict[f"{prefix}attention.output.dense.{kind}"] = state_dict.pop(o_proj)

    for key, value in state_dict.items():
        conv = re.match(r"neck\.convs\.(\d)\.weight$", key)
        fusion = re.match(r"neck\.fusion_stage\.layers\.(\d)\.(.+)\.(weight|bias)$", key)
        if conv:
            converted[f"depth_head.scratch.layer{int(conv[1]) + 1}_rn.weight"] = value
        elif fusion and fusion[2] in _FUSION_TO_OFFICIAL:
            converted[f"depth_head.scratch.refinenet{4 - int(fusion[1])}.{_FUSION_TO_OFFICIAL[fusion[2]]}.{fusion[3]}"] = value
        else:
            converted[_rename(key, _INVERSE_TABLE)] = value
    return converted


def is_hf_layout(state_dict: dict) -> bool:
    return any(k.startswith("backbone.embeddings.") for k in state_dict)


def is_official_layout(state_dict: dict) -> bool:
    return any(k.startswith("pretrained.") for k in state_dict)


def hf_config_dict(config) -> dict:
    """The `config.json` of a Hugging Face `DepthAnythingForDepthEstimation` equivalent to a
    `DepthAnythingConfig`: the fields of the hub's `Depth-Anything-V2-*-hf` repos (1-based
    `out_indices` and their `stageN` names, reassemble factors 4, 2, 1, 0.5) plus
    `depth_estimation_type` and `max_depth`.

    `max_depth` (metres) is written as an integer, as the hub's metric repos hold it (20 indoor,
    80 outdoor) and as transformers >= 5 types it (`int | None`; 20.0 fails validation there);
    relative heads get transformers' default 1. A metric head with a fractional max_depth raises
    InputError: transformers cannot hold it.
    """
    if config.head == "metric":
        if not float(config.max_depth).is_integer():
            raise InputError(
                f"max_depth {config.max_depth} m cannot be exported: transformers' DepthAnythingConfig "
                "holds max_depth as an integer (the hub's metric repos use 20 and 80)"
            )
        max_depth = int(config.max_depth)
    else:
        max_depth = 1
    out_indices = [block + 1 for block in config.tapped_blocks]
    return {
        "model_type": "depth_anything",
        "architectures": ["DepthAnythingForDepthEstimation"],
        "backbone_config": {
            "model_type": "dinov2",
            "architectures": ["Dinov2Model"],
            "image_size": config.image_size,
            "patch_size": 14,
            "hidden_size": config.embed_dim,
            "num_attention_heads": config.num_heads,
            "num_hidden_layers": config.depth,
            "mlp_ratio": int(config.mlp_ratio) if float(config.mlp_ratio).is_integer() else config.mlp_ratio,
            "layerscale_value": 1.0,
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
            "qkv_bias": True,
            "use_swiglu_ffn": config.ffn == "swiglu",
            "out_features": [f"stage{index}" for index in out_indices],
            "out_indices": out_indices,
            "reshape_hidden_states": False,
            "apply_layernorm": True,
        },
        "patch_size": 14,
        "reassemble_hidden_size": config.embed_dim,
        "reassemble_factors": [4, 2, 1, 0.5],
        "neck_hidden_sizes": list(config.out_channels),
        "fusion_hidden_size": config.features,
        "head_in_index": -1,
        "head_hidden_size": 32,
        "depth_estimation_type": config.head,
        "max_depth": max_depth,
    }


def hf_preprocessor_config_dict(input_size: int = PRETRAIN_IMAGE_SIZE) -> dict:
    """The `preprocessor_config.json` of the hub's `Depth-Anything-V2-*-hf` repos
    (`DPTImageProcessor`): resize keeping the aspect ratio towards input_size x input_size (518 on
    the hub), sides rounded to multiples of 14, bicubic (PIL resample 3), /255, ImageNet mean/std,
    no padding. A smaller `input_size` only makes a faster (coarser) pipeline."""
    if not isinstance(input_size, int) or input_size < PATCH_SIZE:
        raise InputError(f"input_size must be an integer >= {PATCH_SIZE} pixels, got {input_size!r}")
    return {
        "image_processor_type": "DPTImageProcessor",
        "do_resize": True,
        "size": {"height": input_size, "width": input_size},
        "keep_aspect_ratio": True,
        "ensure_multiple_of": PATCH_SIZE,
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
        "do_pad": False,
    }
