"""Swin Transformer pieces of EReFormer, in the parameter layout of the official EReFormer code
(liuxu0303/EReFormer `model/swin.py`, itself the mmsegmentation-style Swin): attention in
`attn.w_msa` (`qkv`, or `q` + `kv` for cross attention, `proj`, `relative_position_bias_table`,
buffer `relative_position_index`), feed-forward in `ffn.layers.0.0` / `ffn.layers.1`, patch
embedding `patch_embed.projection` + `patch_embed.norm`, patch merging `downsample.norm` +
`downsample.reduction`, one output norm per stage `norm0..norm3`.

Tokens are (B, L, C) with L = h * w in row-major order; every module takes the grid size
`hw = (h, w)` explicitly. Grids that are not multiples of the window are padded at the bottom and
right inside the attention and cropped back, as the official code does; the shifted-window mask is
computed for the padded grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MASKED = -100.0  # the additive attention mask of the official Swin for tokens of other regions


# ---- windows ----------------------------------------------------------------------------------
def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of `window` -> (B * nW, window * window, C), windows in
    row-major order."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """The inverse of `window_partition`: (B * nW, window * window, C) -> (B, H, W, C)."""
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def relative_position_index(window: int) -> torch.Tensor:
    """(window², window²) int64: for tokens i = (yi, xi), j = (yj, xj) of one window, the row of
    the bias table, (yi − yj + window − 1) · (2 window − 1) + (xi − xj + window − 1)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return relative[0] * (2 * window - 1) + relative[1]


def shifted_window_mask(height: int, width: int, window: int, shift: int, device=None) -> torch.Tensor:
    """(nW, window², window²) additive mask of shifted-window attention on an (height, width) grid
    (multiples of `window`), after the cyclic shift by −shift: 0 between tokens of one region,
    −100 between tokens that the roll brought together from different regions."""
    regions = torch.zeros((1, height, width, 1), device=device)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            regions[:, rows, cols, :] = label
            label += 1
    labels = window_partition(regions, window)[..., 0]  # (nW, window²)
    different = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(different.shape, device=device).masked_fill(different, MASKED)


def drop_path(x: torch.Tensor, probability: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with `probability` in training
    and rescale the rest; the identity in evaluation."""
    if probability == 0.0 or not training:
        return x
    keep = 1.0 - probability
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


# ---- attention --------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head attention inside windows with a learned relative position bias.

    forward(query (B*nW, N, C), key (B*nW, N, C) or None for self-attention, mask (nW, N, N) or
    None) -> (B*nW, N, C). Self-attention projects with `qkv`; cross attention (`cross=True`)
    projects the query with `q` and the key tokens with `kv`."""

    def __init__(self, dim: int, num_heads: int, window: int, cross: bool = False, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        if cross:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        windows, tokens, channels = query.shape
        head_dim = channels // self.num_heads
        if key is None:
            q, k, v = self.qkv(query).view(windows, tokens, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        else:
            q = self.q(query).view(windows, tokens, self.num_heads, head_dim).transpose(1, 2)
            k, v = self.kv(key).view(windows, tokens, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = (q * self.scale) @ k.transpose(-2, -1)  # (B*nW, heads, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        scores = scores + bias.view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            regions = mask.shape[0]
            scores = scores.view(-1, regions, self.num_heads, tokens, tokens) + mask[None, :, None]
            scores = scores.view(-1, self.num_heads, tokens, tokens)
        attended = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(windows, tokens, channels)
        return self.proj_drop(self.proj(attended))


class ShiftedWindowAttention(nn.Module):
    """(Shifted) window attention on a token grid: pad to multiples of the window, roll by −shift
    (with the region mask), attend in windows (`w_msa`), roll back, crop.

    forward(query (B, h*w, C), hw, key (B, h*w, C) or None) -> (B, h*w, C)."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int = 0, cross: bool = False,
                 proj_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift must be in [0, {window}), got {shift}")
        self.window, self.shift, self.drop_path = window, shift, drop_path
        self.w_msa = WindowAttention(dim, num_heads, window, cross=cross, proj_drop=proj_drop)

    def _to_windows(self, tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        height, width = hw
        grid = tokens.view(tokens.shape[0], height, width, -1)
        pad_bottom, pad_right = (-height) % self.window, (-width) % self.window
        grid = F.pad(grid, (0, 0, 0, pad_right, 0, pad_bottom))
        if self.shift:
            grid = torch.roll(grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
        return window_partition(grid, self.window)

    def forward(self, query: torch.Tensor, hw: tuple[int, int], key: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, channels = query.shape
        height, width = hw
        if length != height * width:
            raise ValueError(f"{length} tokens do not form a {height}x{width} grid")
        padded_height = height + (-height) % self.window
        padded_width = width + (-width) % self.window
        mask = None
        if self.shift:
            mask = shifted_window_mask(padded_height, padded_width, self.window, self.shift, query.device)
        key_windows = None if key is None else self._to_windows(key, hw)
        attended = self.w_msa(self._to_windows(query, hw), key_windows, mask)
        grid = window_reverse(attended, self.window, padded_height, padded_width)
        if self.shift:
            grid = torch.roll(grid, shifts=(self.shift, self.shift), dims=(1, 2))
        grid = grid[:, :height, :width, :]
        return drop_path(grid.reshape(batch, length, channels), self.drop_path, self.training)


class FeedForward(nn.Module):
    """x + drop_path(Linear(GELU(Linear(x)))) with dropout after each linear (the official
    mmcv `FFN` with `add_identity`: parameters `layers.0.0` and `layers.1`)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout)),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return identity + drop_path(self.layers(x), self.drop_path, self.training)


# ---- blocks -----------------------------------------------------------------------------------
class SwinBlock(nn.Module):
    """Pre-norm Swin block: x + W-MSA(LN(x)) (shifted by window // 2 when `shift`), then
    x + FFN(LN(x)). forward(x (B, h*w, C), hw) -> (B, h*w, C)."""

    def __init__(self, dim: int, num_heads: int, hidden: int, window: int = 7, shift: bool = False,
                 dropout: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim, num_heads, window, window // 2 if shift else 0,
                                           proj_drop=dropout, drop_path=drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, hidden, dropout, drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return self.ffn(self.norm2(x), identity=x)


class CrossSwinBlock(nn.Module):
    """Swin block whose attention takes its queries from `query` and its keys and values from
    `key` (the same grid): q + W-MCA(LN1(q), LN2(k)), then q + FFN(LN3(q)).
    forward(query (B, h*w, C), key (B, h*w, C), hw) -> (B, h*w, C)."""

    def __init__(self, dim: int, num_heads: int, hidden: int, window: int = 7, shift: bool = False,
                 dropout: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim, num_heads, window, window // 2 if shift else 0, cross=True,
                                           proj_drop=dropout, drop_path=drop_path)
        self.norm3 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, hidden, dropout, drop_path)

    def forward(self, query: torch.Tensor, key: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        query = query + self.attn(self.norm1(query), hw, key=self.norm2(key))
        return self.ffn(self.norm3(query), identity=query)


# ---- resolution changes -----------------------------------------------------------------------
class PatchEmbed(nn.Module):
    """(B, C_in, H, W) -> tokens (B, h*w, dim) and (h, w) = (ceil(H / patch), ceil(W / patch)):
    zero padding at the bottom/right to multiples of `patch`, a patch x patch stride-patch
    convolution (`projection`), LayerNorm (`norm`)."""

    def __init__(self, in_channels: int, dim: int, patch: int = 4):
        super().__init__()
        self.patch = patch
        self.projection = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = F.pad(x, (0, (-x.shape[3]) % self.patch, 0, (-x.shape[2]) % self.patch))
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class PatchMerging(nn.Module):
    """Halve the grid: each 2x2 group of tokens (grid zero-padded at the bottom/right when odd) is
    concatenated channel-major as `F.unfold` orders it (c0 at (0,0), (0,1), (1,0), (1,1), then
    c1, ...), LayerNorm over 4C (`norm`), Linear 4C -> out without bias (`reduction`).
    forward(x (B, h*w, C), hw) -> (B, ceil(h/2)*ceil(w/2), out), (ceil(h/2), ceil(w/2))."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        batch, length, channels = x.shape
        height, width = hw
        grid = x.transpose(1, 2).reshape(batch, channels, height, width)
        grid = F.pad(grid, (0, width % 2, 0, height % 2))
        groups = F.unfold(grid, kernel_size=2, stride=2).transpose(1, 2)  # (B, h/2*w/2, 4C)
        return self.reduction(self.norm(groups)), ((height + 1) // 2, (width + 1) // 2)


class PatchSplitting(nn.Module):
    """Patch expanding (the decoder's inverse of patch merging): Linear C -> 4·out without bias
    (`increase`), each token becomes a 2x2 group (`F.fold`, the channel-major order of
    `PatchMerging`), LayerNorm over out (`norm`).

    forward(x (B, h*w, C), hw, out_hw) -> (B, H*W, out) with out_hw = (H, W), ceil(H/2) = h and
    ceil(W/2) = w: for an odd H (W) the last token row (column) of the input is dropped and the
    last output row (column) receives no token, so it is zero before the norm — as the official
    `PatchSplitting` (nn.Fold with output_size) does."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.out_dim = out_dim
        self.increase = nn.Linear(dim, 4 * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], out_hw: tuple[int, int]) -> torch.Tensor:
        batch = x.shape[0]
        height, width = hw
        out_height, out_width = out_hw
        if (math.ceil(out_height / 2), math.ceil(out_width / 2)) != (height, width):
            raise ValueError(f"cannot expand a {height}x{width} grid to {out_height}x{out_width}")
        groups = self.increase(x).transpose(1, 2).reshape(batch, -1, height, width)
        groups = groups[:, :, : out_height // 2, : out_width // 2].flatten(2)
        grid = F.fold(groups, (out_height, out_width), kernel_size=2, stride=2)  # (B, out, H, W)
        return self.norm(grid.flatten(2).transpose(1, 2))


# ---- the encoder ------------------------------------------------------------------------------
class SwinStage(nn.Module):
    """`depth` Swin blocks (every second one shifted), then optional patch merging (`downsample`).
    forward(x, hw) -> (stage output before merging, hw, merged tokens or None, merged hw)."""

    def __init__(self, dim: int, num_heads: int, hidden: int, depth: int, window: int,
                 drop_paths: list[float], out_dim: int | None):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, hidden, window, shift=index % 2 == 1, drop_path=drop_paths[index])
            for index in range(depth)
        )
        self.downsample = PatchMerging(dim, out_dim) if out_dim is not None else None

    def forward(self, x: torch.Tensor, hw: tuple[int, int]):
        for block in self.blocks:
            x = block(x, hw)
        if self.downsample is None:
            return x, hw, None, None
        merged, merged_hw = self.downsample(x, hw)
        return x, hw, merged, merged_hw


class SwinTransformer(nn.Module):
    """Swin encoder: patch embedding, len(depths) stages (channels embed_dim · 2^i, patch merging
    between stages), a LayerNorm on each stage output (`norm0..norm3`).

    forward(x (B, C_in, H, W)) -> ([tokens (B, h_i*w_i, embed_dim·2^i)], [(h_i, w_i)]) with
    h_0 = ceil(H / patch) and h_{i+1} = ceil(h_i / 2). Stochastic depth grows linearly from 0 to
    `drop_path_rate` over all blocks (training only)."""

    def __init__(self, in_channels: int = 3, embed_dim: int = 96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24),
                 window: int = 7, patch: int = 4, mlp_ratio: float = 4.0, drop_path_rate: float = 0.1):
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for index, depth in enumerate(depths):
            dim = embed_dim * 2**index
            last = index == len(depths) - 1
            start = sum(depths[:index])
            self.stages.append(SwinStage(dim, num_heads[index], int(mlp_ratio * dim), depth, window,
                                         rates[start:start + depth], None if last else 2 * dim))
        for index in range(len(depths)):
            self.add_module(f"norm{index}", nn.LayerNorm(embed_dim * 2**index))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
        x, hw = self.patch_embed(x)
        features, shapes = [], []
        for index, stage in enumerate(self.stages):
            out, out_hw, x, hw = stage(x, hw)
            features.append(getattr(self, f"norm{index}")(out))
            shapes.append(out_hw)
        return features, shapes
