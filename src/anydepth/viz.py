"""Pictures people look at: colour-mapped depth and side-by-side panels."""

from __future__ import annotations

import numpy as np

_LUT_CACHE: dict[str, np.ndarray] = {}


def colormap_lut(name: str = "Spectral_r") -> np.ndarray:
    """(256, 3) uint8 RGB lookup table of a matplotlib colormap."""
    if name not in _LUT_CACHE:
        import matplotlib

        cmap = matplotlib.colormaps.get_cmap(name)
        _LUT_CACHE[name] = (cmap(np.arange(256))[:, :3] * 255).astype(np.uint8)
    return _LUT_CACHE[name]


def normalize_to_uint8(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Min-max (or [vmin, vmax]) scaling to 0..255 uint8, as the official DAv2 CLI does
    ((d - min) / (max - min) * 255, truncated). Non-finite values map to 0; a constant map to 0."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    low = float(values[finite].min()) if vmin is None and finite.any() else (vmin or 0.0)
    high = float(values[finite].max()) if vmax is None and finite.any() else (vmax if vmax is not None else 1.0)
    span = high - low
    scaled = np.zeros_like(values) if span <= 0 else (np.clip(values, low, high) - low) / span * 255.0
    return np.where(finite, scaled, 0.0).astype(np.uint8)


def colorize(values: np.ndarray, cmap: str = "Spectral_r", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(H, W) map -> (H, W, 3) RGB uint8. For DAv2 disparity with Spectral_r, near is red."""
    return colormap_lut(cmap)[normalize_to_uint8(values, vmin, vmax)]


def grayscale(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(H, W) map -> (H, W, 3) grey uint8 (min-max scaled)."""
    return np.repeat(normalize_to_uint8(values, vmin, vmax)[..., None], 3, axis=-1)


def render_events(grid: np.ndarray, kind: str) -> np.ndarray:
    """A representation grid (C, H, W) as an (H, W, 3) RGB uint8 picture.

    tencode: its three channels as RGB (new positive red, old negative cyan, empty black);
    voxel: the sum over bins on a diverging map (positive red, negative blue, zero white);
    histogram: positive counts red, negative blue, on white; time_surface: the newer of the two
    polarities on the magma map.
    """
    grid = np.asarray(grid, dtype=np.float32)
    if kind == "tencode":
        return (np.clip(grid.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
    if kind == "voxel":
        signed = grid.sum(axis=0)
        limit = float(np.percentile(np.abs(signed[signed != 0]), 99)) if (signed != 0).any() else 1.0
        return colorize(signed, "bwr", vmin=-limit, vmax=limit)
    if kind == "histogram":
        negative, positive = grid[0], grid[1]
        limit = max(float(np.percentile(grid[grid > 0], 99)) if (grid > 0).any() else 1.0, 1.0)
        red, blue = np.clip(positive / limit, 0, 1), np.clip(negative / limit, 0, 1)
        picture = np.stack([1 - blue, 1 - red - blue, 1 - red], axis=-1)
        return (np.clip(picture, 0, 1) * 255).round().astype(np.uint8)
    if kind == "time_surface":
        return colorize(grid.max(axis=0), "magma", vmin=0.0, vmax=1.0)
    raise ValueError(f"unknown representation kind {kind!r}")
