"""Winograd F(m x m, 3 x 3) convolution for CPU inference, in plain torch ops.

A 3x3 convolution (stride 1) computes each m x m block of its output from an (m + 2) x (m + 2)
tile of its input with (m + 2)^2 multiplies per input/output channel pair instead of 9 m^2 (Lavin
and Gray, CVPR 2016): 2.25x fewer for m = 2, 4x fewer for m = 4, 5.1x for m = 6. Here that is

    weights  U = G w G^T        (a^2, C_in, C_out), a = m + 2, computed once per weight version
    input    V = B^T d B        one (a^2 x a^2) matrix product per band of tiles, (a^2, tiles, C_in)
    product  M = V U            a^2 batched GEMMs (tiles x C_in) @ (C_in x C_out)
    output   Y = A^T M A + bias one (m^2 x a^2) matrix product, written to (N, C_out, H, W)

with the tile transforms written as Kronecker products so that each stage is a single matrix
product. The result equals `F.conv2d(x, w, bias, padding=p)` up to float rounding: relative
error (max |error| / max |output|) about 3e-7 for m = 2, 1e-5 for m = 4 and m = 6 in float32 (the
transforms add and subtract values of similar size), against 2e-7 for the plain convolution.
U takes a^2 / 9 times the memory of the weights (4x for m = 4). The output is channels-last, as
the DPT head's convolutions.

Used only where it pays and is allowed: see `pays_off` and `allowed`. Training (autograd),
tracing and export keep the plain convolution, so exported graphs are unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction

import torch

# Interpolation points of F(m x m, 3 x 3) (m + 1 finite points and infinity), the usual choices
# for float32: small magnitudes, symmetric, so the transforms stay well conditioned. The second
# point is 1 in each: `conv3x3` adds the bias at that point.
POINTS = {
    2: (0, 1, -1),
    4: (0, 1, -1, 2, -2),
    6: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)),
}
TILES = tuple(POINTS)

# Below this many output pixels per map the fixed costs of the transforms outweigh the saved
# multiplies (measured in DepthAnyEvent-R on a 2-core AVX-512 CPU, 128 -> 256 channel ConvLSTM
# gates: its 74 x 98, 36 x 48 and 17 x 23 levels gain, the 8 x 11 level does not).
MIN_PIXELS = 256

# Tiles per band (see `conv3x3`): 3 tile rows of the largest DepthAnyEvent-R level; the band's
# temporaries (about 3 MB for F(4, 3), 128 -> 256 channels) then stay in the 2 MB L2 per core
# of two threads, which measured faster there than 1 or 5 rows per band.
CHUNK_TILES = 96


def matrices(tile: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T (m, a), G (a, 3), B^T (a, a)) of F(m x m, 3 x 3), a = m + 2, by Toom-Cook on `POINTS`
    (Lavin and Gray, section 4), exact in fractions: for the finite points p_j, A^T[i, j] = p_j^i,
    G[j, k] = p_j^k / prod_{l != j} (p_j - p_l), and row j of B^T holds the coefficients (lowest
    first) of prod_{l != j} (x - p_l); the point at infinity adds A^T[:, -1] = e_(m-1),
    G[-1] = e_2 and the coefficients of prod_l (x - p_l) as the last row of B^T."""
    if tile not in POINTS:
        raise ValueError(f"Winograd tile must be one of {TILES}, got {tile}")
    points = [Fraction(p) for p in POINTS[tile]]
    size = len(points) + 1

    def coefficients(roots):  # of prod (x - root), lowest power first, padded to `size`
        poly = [Fraction(1)]
        for root in roots:
            poly = [(poly[k - 1] if k else 0) - root * (poly[k] if k < len(poly) else 0) for k in range(len(poly) + 1)]
        return poly + [Fraction(0)] * (size - len(poly))

    a_t = [[p**i for p in points] + [Fraction(int(i == tile - 1))] for i in range(tile)]
    g = []
    for j, p in enumerate(points):
        scale = Fraction(1)
        for q in points[:j] + points[j + 1 :]:
            scale *= p - q
        g.append([p**k / scale for k in range(3)])
    g.append([Fraction(0), Fraction(0), Fraction(1)])
    b_t = [coefficients(points[:j] + points[j + 1 :]) for j in range(len(points))] + [coefficients(points)]
    return tuple(torch.tensor([[float(v) for v in row] for row in rows], dtype=dtype) for rows in (a_t, g, b_t))


def transform_weight(weight: torch.Tensor, tile: int) -> torch.Tensor:
    """Conv weight (C_out, C_in, 3, 3) -> U = G w G^T as (a^2, C_in, C_out), contiguous, in the
    weight's dtype (computed in float64)."""
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"Winograd F(m, 3) needs a 3x3 kernel, got {tuple(weight.shape[-2:])}")
    _, g, _ = matrices(tile)
    g = g.to(weight.device)
    u = torch.einsum("ik,ockl,jl->ijco", g, weight.detach().to(torch.float64), g)
    return u.reshape(-1, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


class WeightCache:
    """Transformed weights of one convolution, recomputed when the weight changes: a new
    tensor, device or dtype, or an in-place update (the tensor's version counter, which optimiser
    steps and `load_state_dict` advance; an inference tensor has none, so the owner calls `clear`
    when it loads a state dict). Keys: (tile, first input channel, last + 1)."""

    def __init__(self):
        self._entries: dict[tuple, tuple[tuple, torch.Tensor]] = {}

    def clear(self) -> None:
        self._entries.clear()

    def get(self, weight: torch.Tensor, tile: int, channels: slice = slice(None)) -> torch.Tensor:
        key = (tile, channels.start, channels.stop)
        version = None if weight.is_inference() else weight._version
        stamp = (weight.data_ptr(), weight.device, weight.dtype, version, tuple(weight.shape))
        entry = self._entries.get(key)
        if entry is None or entry[0] != stamp:
            entry = (stamp, transform_weight(weight[:, channels], tile))
            self._entries[key] = entry
        return entry[1]


def allowed(x: torch.Tensor) -> bool:
    """Whether the Winograd path may replace the plain convolution for x: CPU float32 without
    autograd, and not while tracing, compiling or exporting (those keep the plain graph)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling() and not torch.onnx.is_in_onnx_export())


def pays_off(height: int, width: int) -> bool:
    """Whether an output map of height x width pixels is large enough for the Winograd path."""
    return height * width >= MIN_PIXELS


def conv3x3(inputs: tuple[torch.Tensor, ...], weight_t: torch.Tensor, bias: torch.Tensor | None, tile: int,
            padding: int = 1, epilogue: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """3x3 convolution, stride 1, zero `padding` (0 or 1), of the channel concatenation of `inputs`
    (each (N, C_i, H, W), any memory format) with `weight_t` = `transform_weight(w, tile)`
    (a^2, sum C_i, C_out) -> (N, C_out, H + 2 padding - 2, W + 2 padding - 2), channels-last
    strides (dense when both output sides are multiples of `tile`, else a crop of such a map).
    `bias` (C_out,) or None.

    The tiles go through the transforms and GEMMs in bands of about `CHUNK_TILES` tiles, so that
    each band's temporaries stay in cache (and below the size at which the allocator maps fresh
    pages on every call). `epilogue(convolved, target)`, if given, writes each band's output
    instead of a copy: both are (..., C_out) views of the same shape, `convolved` with the bias
    added; an elementwise function applied there (an activation) costs no extra pass over the map."""
    input_matrix, output_matrix = _kron_matrices(tile, weight_t.dtype, weight_t.device)
    a = tile + 2
    first = inputs[0]
    batch, height, width = first.shape[0], first.shape[-2], first.shape[-1]
    channels = sum(x.shape[1] for x in inputs)
    out_h, out_w = height + 2 * padding - 2, width + 2 * padding - 2
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a 3x3 convolution with padding {padding} has no output for a {height}x{width} map")
    if weight_t.shape[:2] != (a * a, channels):
        raise ValueError(f"transformed weight {tuple(weight_t.shape)} does not fit F({tile}, 3) on {channels} channels")
    tiles_h, tiles_w = -(-out_h // tile), -(-out_w // tile)
    # zero-padded NHWC input covering every tile (the last tiles may reach past the map: cropped below)
    padded = first.new_empty((batch, tile * tiles_h + 2, tile * tiles_w + 2, channels))
    padded[:, :padding].zero_()
    padded[:, padding + height :].zero_()
    padded[:, padding : padding + height, :padding].zero_()
    padded[:, padding : padding + height, padding + width :].zero_()
    start = 0
    for x in inputs:
        padded[:, padding : padding + height, padding : padding + width, start : start + x.shape[1]] = x.permute(0, 2, 3, 1)
        start += x.shape[1]
    row = padded.stride(1)
    tiled = padded.as_strided((a, a, batch, tiles_h, tiles_w, channels),
                              (row, channels, padded.stride(0), tile * row, tile * channels, 1))
    out_channels = weight_t.shape[-1]
    result = first.new_empty((batch, tiles_h * tile, tiles_w * tile, out_channels))
    bands = -(-tiles_h // max(1, CHUNK_TILES // (batch * tiles_w)))
    band = -(-tiles_h // bands)  # tile rows per band, as even as the bands allow
    for top in range(0, tiles_h, band):
        rows = min(band, tiles_h - top)
        count = batch * rows * tiles_w
        data = tiled[:, :, :, top : top + rows].reshape(a * a, count * channels)  # the band's tiles (a copy)
        transformed = torch.mm(input_matrix, data).view(a * a, count, channels)
        product = torch.bmm(transformed, weight_t)                                  # (a^2, tiles, C_out)
        if bias is not None:  # A^T's column of the point 1 is all ones: a bias there reaches every output
            product[a + 1].add_(bias)
        convolved = torch.mm(output_matrix, product.view(a * a, -1))
        convolved = convolved.view(tile, tile, batch, rows, tiles_w, out_channels).permute(2, 3, 0, 4, 1, 5)
        target = result[:, top * tile : (top + rows) * tile].view(batch, rows, tile, tiles_w, tile, out_channels)
        if epilogue is None:
            target.copy_(convolved)
        else:
            epilogue(convolved, target)
    return result[:, :out_h, :out_w].permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=None)
def _kron_matrices(tile: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B^T kron B^T (a^2, a^2), A^T kron A^T (m^2, a^2)): the 2-D tile transforms on flattened tiles."""
    at, _, bt = (matrix.to(device) for matrix in matrices(tile))
    return torch.kron(bt, bt).to(dtype), torch.kron(at, at).to(dtype)
