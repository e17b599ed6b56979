"""Architecture table of Depth Anything V2: one entry per encoder, plus small custom configs.

The numbers are those of the official code (`depth_anything_v2/dpt.py`, `dinov2.py`):
embedding size, depth, heads, FFN kind of the DINOv2 ViT, the four tapped blocks (0-based), and the
DPT head's `features` and `out_channels`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from anydepth.errors import InputError

PATCH_SIZE = 14
PRETRAIN_IMAGE_SIZE = 518  # pos_embed covers 37 x 37 patches + 1 class token
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DepthAnythingConfig:
    """Everything needed to build a `DepthAnythingV2` model.

    head: "relative" (ReLU, relative inverse depth) or "metric" (sigmoid x max_depth, metres).
    pos_embed_interpolation: "official" (DINOv2: bicubic with scale factor (n + 0.1) / 37) or
        "size" (bicubic to the exact patch grid, as Hugging Face transformers does). They differ
        slightly whenever the input is not 518 x 518.
    """

    encoder: str = "vits"
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    ffn: str = "mlp"  # "mlp" or "swiglu"
    tapped_blocks: tuple[int, ...] = (2, 5, 8, 11)
    features: int = 64
    out_channels: tuple[int, ...] = (48, 96, 192, 384)
    head: str = "relative"
    max_depth: float = 20.0
    mlp_ratio: float = 4.0
    image_size: int = PRETRAIN_IMAGE_SIZE
    pos_embed_interpolation: str = "official"
    head_align_corners: bool = True

    def __post_init__(self):
        if self.head not in ("relative", "metric"):
            raise InputError(f"head must be 'relative' or 'metric', got {self.head!r}")
        if self.ffn not in ("mlp", "swiglu"):
            raise InputError(f"ffn must be 'mlp' or 'swiglu', got {self.ffn!r}")
        if self.pos_embed_interpolation not in ("official", "size"):
            raise InputError(f"pos_embed_interpolation must be 'official' or 'size', got {self.pos_embed_interpolation!r}")
        if self.embed_dim % self.num_heads:
            raise InputError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if len(self.tapped_blocks) != 4 or len(self.out_channels) != 4:
            raise InputError("a DPT head needs exactly 4 tapped blocks and 4 out_channels")
        if max(self.tapped_blocks) >= self.depth or min(self.tapped_blocks) < 0:
            raise InputError(f"tapped_blocks {self.tapped_blocks} outside 0..{self.depth - 1}")

    def replace(self, **changes) -> "DepthAnythingConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DepthAnythingConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown Depth Anything config fields: {sorted(unknown)}")
        values = dict(values)
        for key in ("tapped_blocks", "out_channels"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


ENCODERS: dict[str, DepthAnythingConfig] = {
    "vits": DepthAnythingConfig("vits", 384, 12, 6, "mlp", (2, 5, 8, 11), 64, (48, 96, 192, 384)),
    "vitb": DepthAnythingConfig("vitb", 768, 12, 12, "mlp", (2, 5, 8, 11), 128, (96, 192, 384, 768)),
    "vitl": DepthAnythingConfig("vitl", 1024, 24, 16, "mlp", (4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
    "vitg": DepthAnythingConfig("vitg", 1536, 40, 24, "swiglu", (9, 19, 29, 39), 384, (1536, 1536, 1536, 1536)),
    # Small custom configs for tests, CPU demos and self-trained teachers.
    "vitt": DepthAnythingConfig("vitt", 192, 6, 3, "mlp", (1, 2, 4, 5), 32, (24, 48, 96, 192)),
    "vitp": DepthAnythingConfig("vitp", 48, 4, 2, "mlp", (0, 1, 2, 3), 16, (8, 16, 32, 48)),
}

OFFICIAL_ENCODERS = ("vits", "vitb", "vitl", "vitg")


def get_config(encoder: str, **overrides) -> DepthAnythingConfig:
    """The preset for `encoder` ('vits', 'vitb', 'vitl', 'vitg', or the small 'vitt', 'vitp'),
    with optional field overrides (e.g. head='metric', max_depth=80)."""
    if encoder not in ENCODERS:
        raise InputError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[encoder].replace(**overrides) if overrides else ENCODERS[encoder]
