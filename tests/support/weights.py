"""Weights in the official layouts filled with deterministic random values, for the tests and the
benchmarks (the official files cannot be downloaded in CI; speed does not depend on the values)."""

from __future__ import annotations

import math

import torch
from torch import nn

from anydepth.focus.dfv import DFV, DFVConfig
from anydepth.foundation.checkpoint import skip_weight_init
from anydepth.foundation.config import DepthAnythingConfig, get_config
from anydepth.foundation.model import DepthAnythingV2


def random_state_dict(config: DepthAnythingConfig | str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random weights in the official layout (see `random_weights`).

    Used in place of the official files, which cannot be downloaded in CI.
    """
    if isinstance(config, str):
        config = get_config(config)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in DepthAnythingV2(config).state_dict().items()}
    return random_weights(shapes, seed)


def loaded_model(config: DepthAnythingConfig | str, state_dict: dict[str, torch.Tensor]) -> DepthAnythingV2:
    """A Depth Anything V2 built without random initialisation and loaded strictly, in eval mode
    (what the loaders do; seconds fewer for vitb than building and then loading)."""
    with skip_weight_init():
        model = DepthAnythingV2(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def random_weights(shapes: dict[str, torch.Size], seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random tensors for a state dict's shapes, with magnitudes that keep
    activations in a sane range: norm weights near 1, LayerScale 0.1, biases and tokens small,
    conv/linear weights scaled by 1/sqrt(fan-in). Every tensor is drawn from one CPU generator in
    sorted key order, so the result is the same on every machine."""
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        noise = torch.randn(shape, generator=generator)
        parts = key.split(".")
        if key == "depth_head.scratch.output_conv2.2.bias":
            value = 1.0 + 0.0 * noise  # keep the final ReLU mostly open, so outputs are informative
        elif key.endswith(".gamma"):
            value = 0.1 + 0.02 * noise
        elif len(parts) > 1 and "norm" in parts[-2] and key.endswith(".weight"):
            value = 1.0 + 0.1 * noise
        elif key.endswith(".bias") or key.endswith("_token") or len(shape) < 2:
            value = 0.02 * noise
        elif key.endswith("pos_embed"):
            value = 0.05 * noise
        else:
            fan_in = shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1)
            if "resize_layers" in key and len(shape) == 4 and parts[2] in ("0", "1"):
                fan_in = shape[0]  # transposed conv: (in, out, k, k), each output sees `in` inputs
            value = noise / fan_in**0.5
        state_dict[key] = value.contiguous()
    return state_dict


def random_dfv_state_dict(config: DFVConfig | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random DFV weights: `random_weights` over the model's shapes, then made
    sane for a network of BatchNorms in eval mode and 3-D convs: BN weight 1 + 0.1·n, running_var
    exp(0.1·n) > 0, num_batches_tracked 0, Conv3d weights divided by sqrt(kernel volume) and the
    final cost conv (1 output channel) multiplied by 20 so that the softmax is peaked."""
    with torch.device("meta"):
        model = DFV(config or DFVConfig())
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state_dict = random_weights(shapes, seed)
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
            state_dict[prefix + "weight"] = 1.0 + 5.0 * state_dict[prefix + "weight"]
            state_dict[prefix + "running_var"] = torch.exp(5.0 * state_dict[prefix + "running_var"])
            state_dict[prefix + "num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        elif isinstance(module, nn.Conv3d):
            kernel_volume = math.prod(module.kernel_size)
            gain = 20.0 if module.out_channels == 1 else 1.0  # cost logits: a peaked softmax, not a flat one
            state_dict[prefix + "weight"] = gain * state_dict[prefix + "weight"] / kernel_volume**0.5
    return state_dict


# ----------------------------------------------------------------------------------------------
# Inference on one stack
