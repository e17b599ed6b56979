"""Depth Anything V2: the foundation model that both pipelines build on."""

from anydepth.foundation.checkpoint import (
    export_hf_folder,
    load_depth_anything_file,
    read_state_dict,
    save_checkpoint,
)
from anydepth.foundation.config import ENCODERS, DepthAnythingConfig, get_config
from anydepth.foundation.model import DepthAnythingV2
from anydepth.foundation.weights import cache_dir, official_weights, resolve_weights


def load_depth_anything(
    encoder: str | None = None,
    weights=None,
    variant: str = "relative",
    layout: str = "official",
    device: str = "cpu",
) -> DepthAnythingV2:
    """A ready-to-run Depth Anything V2 in eval mode.

    weights: a file (official .pth, Hugging Face safetensors, or anydepth checkpoint); its encoder
    is read from the file, and must match `encoder` when both are given. None looks in the cache
    and then downloads the official release for `encoder` (default 'vits') and `variant`
    ('relative', 'metric-hypersim', 'metric-vkitti').
    """
    head = max_depth = None
    if weights is None:
        encoder = encoder or "vits"
        release = official_weights(encoder, variant, layout)
        head, max_depth = release.head, release.max_depth
    path = resolve_weights(encoder or "vits", weights, variant, layout)
    return load_depth_anything_file(path, encoder=encoder, head=head, max_depth=max_depth).to(device)


__all__ = [
    "ENCODERS",
    "DepthAnythingConfig",
    "DepthAnythingV2",
    "cache_dir",
    "export_hf_folder",
    "get_config",
    "load_depth_anything",
    "load_depth_anything_file",
    "official_weights",
    "read_state_dict",
    "resolve_weights",
    "save_checkpoint",
]
