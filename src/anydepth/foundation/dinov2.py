"""DINOv2 vision transformer (patch 14, LayerScale, no registers), as used by Depth Anything V2.

Parameter names follow the official code (`pretrained.*` in its checkpoints), so an official
state dict loads with a strict key match. Attention runs through
`torch.nn.functional.scaled_dot_product_attention` (see `Attention` for the one exception).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anydepth.foundation.config import PATCH_SIZE, DepthAnythingConfig


class PatchEmbed(nn.Module):
    """(B, 3, H, W) image, H and W multiples of 14 -> (B, H/14 * W/14, D) tokens."""

    def __init__(self, embed_dim: int, patch_size: int = PATCH_SIZE, in_chans: int = 3):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    Through `scaled_dot_product_attention`, except when autograd records a CPU step under bf16
    autocast (test-time optimisation, training on the CPU): there softmax(q k^T / sqrt(d)) v is
    written out (the logits in bf16, the softmax in float32 under autocast), whose backward runs
    1.5-1.8x faster than SDPA's on the CPU for 281-697 tokens (1.05x at 1370, 518 px)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # unbind: one backward stack, not three zero-filled maps
        if x.requires_grad and x.device.type == "cpu" and torch.get_autocast_dtype("cpu") == torch.bfloat16 \
                and torch.is_autocast_enabled("cpu"):
            x = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        else:
            x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """SwiGLU FFN of ViT-g (hidden size 2/3 of the MLP's, rounded up to a multiple of 8)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(ffn(norm2(x)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, ffn: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        ffn_class = SwiGLUFFN if ffn == "swiglu" else Mlp
        self.mlp = ffn_class(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT. `forward_tapped` returns the normalised patch and class tokens of chosen blocks."""

    def __init__(self, config: DepthAnythingConfig):
        super().__init__()
        dim = config.embed_dim
        self.embed_dim = dim
        self.patch_size = PATCH_SIZE
        self.pos_embed_interpolation = config.pos_embed_interpolation
        grid = config.image_size // PATCH_SIZE
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused at inference, kept for key parity
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio, config.ffn) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def interpolate_pos_embed(self, patch_h: int, patch_w: int) -> torch.Tensor:
        """Position embedding (1, 1 + patch_h * patch_w, D) for a patch_h x patch_w token grid."""
        num_patches = self.pos_embed.shape[1] - 1
        if patch_h * patch_w == num_patches and patch_h == patch_w:
            return self.pos_embed
        side = int(math.sqrt(num_patches))
        dim = self.pos_embed.shape[-1]
        grid = self.pos_embed[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
        if self.pos_embed_interpolation == "official":
            # DINOv2: scale factor (n + 0.1) / side, no antialias; the output has n rows/cols.
            scale = ((patch_h + 0.1) / side, (patch_w + 0.1) / side)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        else:
            grid = F.interpolate(grid, size=(patch_h, patch_w), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, patch_h * patch_w, dim).to(self.pos_embed.dtype)
        return torch.cat((self.pos_embed[:, :1], grid), dim=1)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1 + H/14 * W/14, D) tokens with class token and position embedding."""
        patch_h, patch_w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        return tokens + self.interpolate_pos_embed(patch_h, patch_w)

    def forward_tapped(self, x: torch.Tensor, blocks: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Run the blocks up to the last tapped one.

        Returns, per tapped block in order, (patch tokens (B, N, D), class token (B, D)), both after
        the final LayerNorm, as the official `get_intermediate_layers(..., return_class_token=True)`.
        """
        tokens = self.prepare_tokens(x)
        tapped = []
        for index, block in enumerate(self.blocks[: max(blocks) + 1]):
            tokens = block(tokens)
            if index in blocks:
                normed = self.norm(tokens)
                tapped.append((normed[:, 1:], normed[:, 0]))
        return tapped
