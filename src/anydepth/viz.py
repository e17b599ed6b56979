"""Pictures people look at: float maps as 8/16-bit images, colour-mapped depth, event pictures,
loss curves, panels side by side, and videos. Every picture is an (H, W, 3) RGB uint8 array; files
are written by `anydepth.fileio` (images) or `VideoWriter` (videos), HTML by `anydepth.report`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anydepth.errors import InputError

_LUT_CACHE: dict[str, np.ndarray] = {}


def colormap_lut(name: str = "Spectral_r") -> np.ndarray:
    """(256, 3) uint8 RGB lookup table of a matplotlib colormap."""
    if name not in _LUT_CACHE:
        import matplotlib

        cmap = matplotlib.colormaps.get_cmap(name)
        _LUT_CACHE[name] = (cmap(np.arange(256))[:, :3] * 255).astype(np.uint8)
    return _LUT_CACHE[name]


def to_uint8(image: np.ndarray, strict: bool = False) -> np.ndarray:
    """An image in [0, 1] (float, any shape) as uint8 0–255: clipped, rounded, NaN -> 0; uint8 is
    returned as it is, bool as 0 / 255. strict: raise InputError for values outside [0, 1] beyond
    rounding (e.g. an image already scaled to 0–255) instead of clipping them."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if strict and image.size and (float(np.nanmin(image)) < -1e-3 or float(np.nanmax(image)) > 1.0 + 1e-3):
        raise InputError(f"image values must lie in [0, 1], got [{float(np.nanmin(image)):g}, {float(np.nanmax(image)):g}]")
    return np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(values: np.ndarray) -> np.ndarray:
    """Min-max scaling of a relative map to the full 0..65535 range (NaN -> the minimum; a
    constant or empty-range map -> 0)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if not np.isfinite(high - low) or high <= low:
        return np.zeros(values.shape, dtype=np.uint16)
    return np.round((np.nan_to_num(values, nan=low) - low) / (high - low) * 65535.0).astype(np.uint16)


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


def colorize_depth(depth: np.ndarray, kind: str = "metric", floor: float = 1e-3) -> np.ndarray:
    """Depth (H, W) as a Spectral_r picture with near = red, min-max scaled. kind "metric": depth
    in metres, shown as 1 / max(depth, floor); "relative": a relative depth-like map (larger =
    farther), shown negated; "disparity": relative disparity (larger = nearer), shown as it is."""
    if kind == "metric":
        shown = 1.0 / np.maximum(depth, floor)
    elif kind == "relative":
        shown = -depth
    elif kind == "disparity":
        shown = depth
    else:
        raise ValueError(f"unknown depth kind {kind!r} (metric, relative, disparity)")
    return colorize(shown, "Spectral_r")


def colorize_like(values: np.ndarray, reference: np.ndarray, cmap: str = "Spectral_r") -> np.ndarray:
    """(H, W) map -> (H, W, 3) RGB uint8 on the 2–98 percentile range of `reference`'s finite
    values, so that maps compared with one reference share its colour scale (NaN shown as the low
    end); min-max scaled when the reference has no finite value."""
    reference = np.asarray(reference)
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return colorize(values, cmap)
    low, high = np.percentile(finite, [2, 98])
    return colorize(np.nan_to_num(values, nan=low), cmap, vmin=low, vmax=high)


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
        return to_uint8(np.clip(grid.transpose(1, 2, 0), 0, 1))
    if kind == "voxel":
        signed = grid.sum(axis=0)
        limit = float(np.percentile(np.abs(signed[signed != 0]), 99)) if (signed != 0).any() else 1.0
        return colorize(signed, "bwr", vmin=-limit, vmax=limit)
    if kind == "histogram":
        negative, positive = grid[0], grid[1]
        limit = max(float(np.percentile(grid[grid > 0], 99)) if (grid > 0).any() else 1.0, 1.0)
        red, blue = np.clip(positive / limit, 0, 1), np.clip(negative / limit, 0, 1)
        picture = np.stack([1 - blue, 1 - red - blue, 1 - red], axis=-1)
        return to_uint8(picture)
    if kind == "time_surface":
        return colorize(grid.max(axis=0), "magma", vmin=0.0, vmax=1.0)
    raise ValueError(f"unknown representation kind {kind!r}")


# --------------------------------------------------------------------------- figures (matplotlib, Agg)

def _render(figure) -> np.ndarray:
    """A matplotlib Figure drawn on an Agg canvas, as (H, W, 3) RGB uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def plot_curves(series: dict[str, Sequence[float]], title: str = "", xlabel: str = "step", ylabel: str = "loss",
                logy: bool = False, x: Sequence[float] | None = None, size: tuple[float, float] = (6.0, 3.6),
                dpi: int = 100) -> np.ndarray:
    """Line plot of named curves (e.g. loss per step) as an (H, W, 3) uint8 RGB array. x: the
    abscissae (the first len(curve) of them for each curve); default 1, 2, 3, ... logy: log scale
    when every finite value is positive. Drawn with matplotlib's Agg backend (no display needed)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi)
    axes = figure.add_subplot(1, 1, 1)
    for name, values in series.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        abscissae = np.arange(1, len(values) + 1) if x is None else np.asarray(x, dtype=np.float64)[:len(values)]
        axes.plot(abscissae, values, label=str(name), linewidth=1.6)
    if logy and all(np.all(np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))] > 0) for v in series.values()):
        axes.set_yscale("log")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    if series:
        axes.legend(frameon=False)
    return _render(figure)


def plot_panels(panels: dict[str, np.ndarray], panel_size: float = 4.0, dpi: int = 80) -> np.ndarray:
    """Pictures side by side, each under its title, as one (H, W, 3) uint8 RGB array (each panel
    `panel_size` inches square at `dpi`)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(panel_size * len(panels), panel_size), dpi=dpi)
    for index, (title, panel) in enumerate(panels.items()):
        axis = figure.add_subplot(1, len(panels), index + 1)
        axis.imshow(panel)
        axis.set_title(title)
        axis.axis("off")
    return _render(figure)


# --------------------------------------------------------------------------- videos

class VideoWriter:
    """RGB uint8 frames (all one size) into a video as they come: .mp4 (OpenCV, mp4v codec) or
    .gif (Pillow, written at close). Use as a context manager, or call close()."""

    SUFFIXES = (".mp4", ".gif")

    def __init__(self, target: str | Path, fps: float = 20.0):
        self.target, self.fps = Path(target), float(fps)
        if self.target.suffix.lower() not in self.SUFFIXES:
            raise InputError("video must end in .mp4 or .gif", self.target)
        self._writer, self._frames = None, []

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) RGB uint8 frame."""
        if self.target.suffix.lower() == ".gif":
            self._frames.append(np.ascontiguousarray(rgb))
            return
        import cv2

        if self._writer is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.target), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                           (rgb.shape[1], rgb.shape[0]))
            if not self._writer.isOpened():
                raise InputError("OpenCV cannot write mp4 here; use .gif", self.target)
        self._writer.write(np.ascontiguousarray(rgb[..., ::-1]))

    def close(self) -> Path:
        """Finish the file; returns its path."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._frames:
            from PIL import Image

            self.target.parent.mkdir(parents=True, exist_ok=True)
            images = [Image.fromarray(frame) for frame in self._frames]
            images[0].save(self.target, save_all=True, append_images=images[1:], duration=int(1000 / self.fps), loop=0)
            self._frames = []
        return self.target

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
