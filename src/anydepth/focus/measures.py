"""Classical focus measures, the focus volume they give, and depth from focus (the expectation of
the focus position under the volume).

Every measure maps a grey slice (H, W) float32 in [0, 1] to a sharpness map (H, W) float32 >= 0,
aggregated over a `window` x `window` box (names after Pertuz et al., "Analysis of focus measure
operators for shape-from-focus", Pattern Recognition 2013):

- "laplacian_energy" (LAP1): mean over the window of L², L the 3x3 Laplacian.
- "laplacian_variance" (LAP4): variance over the window of L.
- "modified_laplacian" (LAP2): mean over the window of ML = |2I − I(x−1) − I(x+1)| + |2I − I(y−1) − I(y+1)|.
- "sum_modified_laplacian" (Nayar's SML): sum over the window of the ML values >= `threshold`.
- "tenengrad" (GRA6): mean over the window of Gx² + Gy² (3x3 Sobel).
- "grey_variance" (STA3, grey-level local variance): variance of I over the window.

Borders are reflected (BORDER_REFLECT_101). Everything is OpenCV filters on whole images.

Focus volume: p_i = softmax_i(log(m_i + eps) / temperature) per pixel, i.e. p_i ∝ m_i^(1/T): the
log makes the volume independent of the measure's scale, the temperature sets its sharpness.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from anydepth.errors import InputError
from anydepth.focus.stack import FocalStack

FOCUS_MEASURES = ("laplacian_energy", "laplacian_variance", "modified_laplacian", "sum_modified_laplacian",
                  "tenengrad", "grey_variance")
_BORDER = cv2.BORDER_REFLECT_101
_EPS = 1e-12


def _box_mean(image: np.ndarray, window: int) -> np.ndarray:
    return cv2.boxFilter(image, cv2.CV_32F, (window, window), normalize=True, borderType=_BORDER)


def _local_variance(image: np.ndarray, window: int) -> np.ndarray:
    mean = _box_mean(image, window)
    return np.maximum(_box_mean(image * image, window) - mean * mean, 0.0)


def _modified_laplacian(grey: np.ndarray) -> np.ndarray:
    kernel = np.array([[-1.0, 2.0, -1.0]], np.float32)
    return (np.abs(cv2.filter2D(grey, cv2.CV_32F, kernel, borderType=_BORDER))
            + np.abs(cv2.filter2D(grey, cv2.CV_32F, kernel.T, borderType=_BORDER)))


def measure_slice(grey: np.ndarray, measure: str = "laplacian_energy", window: int = 9,
                  threshold: float = 0.0) -> np.ndarray:
    """Focus measure of one grey image (H, W) float32 in [0, 1] -> (H, W) float32 >= 0 (see the module
    docstring for the measures; threshold is used by "sum_modified_laplacian" only)."""
    if measure not in FOCUS_MEASURES:
        raise InputError(f"focus measure must be one of {', '.join(FOCUS_MEASURES)}, got {measure!r}")
    if not (isinstance(window, (int, np.integer)) and window >= 1 and window % 2 == 1):
        raise InputError(f"window must be a positive odd integer, got {window!r}")
    grey = np.asarray(grey, dtype=np.float32)
    if measure in ("laplacian_energy", "laplacian_variance"):
        laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=1, borderType=_BORDER)
        if measure == "laplacian_energy":
            return _box_mean(laplacian * laplacian, window)
        return _local_variance(laplacian, window)
    if measure == "modified_laplacian":
        return _box_mean(_modified_laplacian(grey), window)
    if measure == "sum_modified_laplacian":
        ml = _modified_laplacian(grey)
        ml = np.where(ml >= threshold, ml, 0.0).astype(np.float32)
        return cv2.boxFilter(ml, cv2.CV_32F, (window, window), normalize=False, borderType=_BORDER)
    if measure == "tenengrad":
        gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=_BORDER)
        gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=_BORDER)
        return _box_mean(gx * gx + gy * gy, window)
    return _local_variance(grey, window)


def grey_slices(stack) -> np.ndarray:
    """(N, H, W) float32 grey in [0, 1] (Rec. 601 luma) of a FocalStack or of (N, H, W, 3) uint8 /
    float [0, 1] slices; (N, H, W) input is taken as grey already."""
    slices = stack.slices if isinstance(stack, FocalStack) else np.asarray(stack)
    if slices.ndim == 3:
        grey = slices
    elif slices.ndim == 4 and slices.shape[-1] == 3:
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        grey = slices.astype(np.float32) @ weights
    else:
        raise InputError(f"slices must be (N, H, W, 3) or (N, H, W), got shape {slices.shape}")
    if slices.shape[0] == 0:
        raise InputError("empty focal stack")
    grey = grey.astype(np.float32)
    return grey / 255.0 if slices.dtype == np.uint8 else grey


def focus_measure(stack, measure: str = "laplacian_energy", window: int = 9, threshold: float = 0.0) -> np.ndarray:
    """`measure_slice` of every slice of a FocalStack or (N, H, W[, 3]) array -> (N, H, W) float32."""
    return np.stack([measure_slice(g, measure, window, threshold) for g in grey_slices(stack)])


def softmax_volume(measure_values: np.ndarray, temperature: float = 0.25) -> np.ndarray:
    """Per-pixel softmax over N of log(m + eps) / temperature: (N, H, W) measures -> (N, H, W)
    float32 probabilities summing to 1 over N (p_i ∝ m_i^(1/T); uniform where all m are 0)."""
    if not temperature > 0:
        raise InputError(f"temperature must be positive, got {temperature}")
    values = np.asarray(measure_values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] == 0:
        raise InputError(f"measure values must be (N, H, W) with N >= 1, got shape {values.shape}")
    logits = np.log(np.maximum(values, 0.0) + _EPS) / temperature
    logits -= logits.max(axis=0, keepdims=True)
    weights = np.exp(logits)
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)


def focus_volume(stack, measure: str = "laplacian_energy", window: int = 9, temperature: float = 0.25) -> np.ndarray:
    """Focus probability volume (N, H, W) float32, softmax over N per pixel of a classical focus
    measure (`focus_measure`, then `softmax_volume`)."""
    return softmax_volume(focus_measure(stack, measure, window), temperature)


@dataclass
class DFFResult:
    """Depth from focus of one stack, all (H, W) float32 unless said.

    depth: μ = Σ_i p_i l_i, in the unit of the positions (metres or disparity).
    aif: (H, W, 3) Σ_i p_i x_i, float32 in [0, 1] (None without slices).
    variance: s = Σ_i p_i (l_i − μ)², the variance of the focus distribution (unit²).
    intensity_variance: per-pixel variance of grey intensity across the slices (None without slices);
      low where the stack is texture-less and DFF unreliable.
    """

    depth: np.ndarray
    aif: np.ndarray | None
    variance: np.ndarray
    intensity_variance: np.ndarray | None


def dff_from_volume(volume: np.ndarray, positions, slices=None) -> DFFResult:
    """Depth, AiF and confidence ingredients (focus variance, intensity variance) from a focus volume.

    volume (N, H, W) probabilities over N; positions (N,) focus positions l_i; slices: a FocalStack
    or (N, H, W, 3) uint8 / float [0, 1] array (optional; gives aif and intensity_variance).
    """
    volume = np.asarray(volume, dtype=np.float32)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1)
    if volume.ndim != 3 or volume.shape[0] != positions.size or positions.size == 0:
        raise InputError(f"volume must be (N, H, W) with N = {positions.size} positions, got shape {volume.shape}")
    levels = positions.astype(np.float32)[:, None, None]
    depth = (volume * levels).sum(axis=0)
    variance = (volume * (levels - depth[None]) ** 2).sum(axis=0)
    aif = intensity_variance = None
    if slices is not None:
        images = slices.float_slices() if isinstance(slices, FocalStack) else np.asarray(slices)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        if images.shape[:3] != volume.shape:
            raise InputError(f"slices {images.shape} do not match the volume {volume.shape}")
        aif = np.einsum("nhw,nhwc->hwc", volume, images.astype(np.float32, copy=False))
        intensity_variance = grey_slices(images).var(axis=0)
    return DFFResult(depth.astype(np.float32), aif, variance.astype(np.float32), intensity_variance)


def refine_gaussian(measure_values: np.ndarray, positions) -> np.ndarray:
    """Sub-slice focus position per pixel by 3-point Gaussian interpolation around the argmax.

    measure_values (N, H, W) > 0 (a focus measure, not probabilities); positions (N,) l_i, any
    spacing. A parabola is fitted to (l_i, log m_i) at the argmax k and its neighbours k ± 1; its
    vertex (a Gaussian's peak) is the focus position, clipped to [l_{k-1}, l_{k+1}]. At the first or
    last slice, or where the three points are not concave, the result is l_k. Returns (H, W) float32
    in the unit of the positions (fit in disparity / inverse depth where blur is linear in it).
    """
    values = np.asarray(measure_values, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1)
    if values.ndim != 3 or values.shape[0] != positions.size or positions.size == 0:
        raise InputError(f"measure values must be (N, H, W) with N = {positions.size}, got shape {values.shape}")
    count = positions.size
    peak = values.argmax(axis=0)
    refined = positions[peak]
    if count < 3:
        return refined.astype(np.float32)
    k = np.clip(peak, 1, count - 2)
    logs = np.log(np.maximum(values, 0.0) + _EPS)
    y0, y1, y2 = (np.take_along_axis(logs, (k + d)[None], axis=0)[0] for d in (-1, 0, 1))
    x0, x1, x2 = positions[k - 1], positions[k], positions[k + 1]
    # Vertex of the parabola through (x0, y0), (x1, y1), (x2, y2) (divided differences).
    slope01, slope12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curvature = (slope12 - slope01) / (x2 - x0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = 0.5 * (x0 + x1) - slope01 / (2.0 * curvature)
    low, high = np.minimum(x0, x2), np.maximum(x0, x2)
    usable = (peak == k) & (curvature < 0) & np.isfinite(vertex)
    refined = np.where(usable, np.clip(vertex, low, high), refined)
    return refined.astype(np.float32)
