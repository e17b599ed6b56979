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
