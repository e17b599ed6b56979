"""Thin-lens defocus: circle of confusion, blur in pixels, and focal stacks rendered from an
all-in-focus (AiF) image and a metric depth map, returned as `anydepth.focus.FocalStack`s.

    CoC = A · |d − s| / d · f / (s − f),   A = f / N        (metres, diameter on the sensor)
    σ_px = CoC / (2 · pixel pitch)                           (Gaussian standard deviation, pixels)

d is the depth of the scene point, s the focus distance, f the focal length, N the f-number; all in
metres. Since |d − s| / d = s · |1/s − 1/d|, the blur is proportional to |1/d − 1/s| for a fixed
focus: uniform steps in inverse depth are uniform steps in blur.

Two renderers of one focus slice:

- `render_layered`: the standard layered defocus model. Depth is cut into K fronto-parallel layers
  (uniform in inverse depth, or at inverse-depth quantiles); each layer's premultiplied colour and
  its alpha are blurred with the layer's own Gaussian and composited back to front with the "over"
  operator, then divided by the accumulated coverage. A near layer therefore hides what is behind
  it (a sharp near object keeps a sharp edge in front of a blurred background, and far blur never
  spreads over it), while a blurred near object spreads over a sharp background, as real optics do.
  What a near object hides is unknown (not inpainted): where its blurred edge turns partly
  transparent, the division by coverage fills in from the visible background around the hole.
- `render_gather`: the cheap approximation. The AiF image is blurred once at a ladder of sigmas,
  and each pixel blends the two levels around its own σ (weights matching the variance σ²).
  No occlusion handling: near a depth edge, background pixels gather foreground colour.

Blurs are `cv2.GaussianBlur` with radius ceil(4σ) and reflected borders (BORDER_REFLECT_101);
a layer is blurred only inside its bounding box plus that radius, which is exact.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace

import cv2
import numba
import numpy as np

from anydepth.errors import InputError
from anydepth.focus.stack import DDFF12_DISPARITY_SCALE, FocalStack, check_unit

RENDER_MODES = ("layered", "gather")
LAYER_SPACINGS = ("inverse", "quantile")


# --------------------------------------------------------------------------- thin-lens formulas

def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _coerce(*values):
    """Numpy or torch operands for the formulas: all torch (same device, a floating dtype) when any
    argument is a tensor, else numpy arrays / Python floats (float32 inputs stay float32)."""
    tensors = [v for v in values if _is_tensor(v)]
    if tensors:
        torch = sys.modules["torch"]
        reference = tensors[0]
        dtype = reference.dtype if reference.is_floating_point() else torch.float64
        return [v.to(dtype) if _is_tensor(v) else torch.as_tensor(v, dtype=dtype, device=reference.device)
                for v in values]
    coerced = []
    for v in values:
        if isinstance(v, (float, np.floating)):
            coerced.append(v)
        else:
            array = np.asarray(v)
            coerced.append(array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64))
    return coerced


def _all_positive(value) -> bool:
    """True when every element is > 0 (NaN counts as not positive); numpy, torch or float."""
    if _is_tensor(value):
        return bool((value > 0).all())
    return bool(np.all(np.asarray(value) > 0))


def _check_optics(depth_m, focus_m, focal_length_m, f_number) -> None:
    if not (_all_positive(focal_length_m) and _all_positive(f_number)):
        raise InputError("focal length and f-number must be positive")
    if not _all_positive(focus_m - focal_length_m):
        raise InputError("focus distance must be beyond the focal length (a thin lens cannot focus "
                         "closer than f)")
    if not _all_positive(depth_m):
        raise InputError("depth must be positive (metres) at every point")


def circle_of_confusion(depth_m, focus_m, focal_length_m, f_number):
    """Circle-of-confusion diameter on the sensor, metres: A·|d − s|/d · f/(s − f), A = f/N.

    depth_m, focus_m, focal_length_m, f_number: metres / metres / metres / unitless, numpy arrays,
    torch tensors or floats, broadcast together (e.g. depth (H, W) with focus (N, 1, 1) gives
    (N, H, W)); the result is a torch tensor when any input is one. Zero at d = s.
    Raises InputError when a focus distance is not beyond the focal length or a depth is not > 0.
    """
    depth_m, focus_m, focal_length_m, f_number = _coerce(depth_m, focus_m, focal_length_m, f_number)
    _check_optics(depth_m, focus_m, focal_length_m, f_number)
    aperture_m = focal_length_m / f_number
    return aperture_m * abs(depth_m - focus_m) / depth_m * focal_length_m / (focus_m - focal_length_m)


def blur_sigma_px(depth_m, focus_m, focal_length_m, f_number, pixel_pitch_m):
    """Gaussian blur standard deviation in pixels: CoC / (2 · pixel pitch) (a Gaussian whose
    diameter 2σ is the circle of confusion).

    Same broadcasting and types as `circle_of_confusion`; pixel_pitch_m in metres per pixel."""
    depth_m, focus_m, focal_length_m, f_number, pixel_pitch_m = _coerce(
        depth_m, focus_m, focal_length_m, f_number, pixel_pitch_m)
    if not _all_positive(pixel_pitch_m):
        raise InputError("pixel pitch must be positive")
    return circle_of_confusion(depth_m, focus_m, focal_length_m, f_number) / (2 * pixel_pitch_m)


@dataclass(frozen=True)
class ThinLens:
    """A thin lens on a pixel grid.

    focal_length_m: f in metres; f_number: N (aperture diameter A = f/N); pixel_pitch_m: sensor
    metres per image pixel; width_px: the image width the pitch refers to (lets `resized` rescale
    the pitch when the image is resampled), None when unknown."""

    focal_length_m: float
    f_number: float
    pixel_pitch_m: float
    width_px: int | None = None

    def __post_init__(self):
        if not (self.focal_length_m > 0 and self.f_number > 0 and self.pixel_pitch_m > 0):
            raise InputError(f"lens parameters must be positive: f={self.focal_length_m} m, "
                             f"N={self.f_number}, pitch={self.pixel_pitch_m} m")

    @property
    def aperture_m(self) -> float:
        """Aperture diameter A = f / N, metres."""
        return self.focal_length_m / self.f_number

    def coc_m(self, depth_m, focus_m):
        """`circle_of_confusion` with this lens (metres on the sensor)."""
        return circle_of_confusion(depth_m, focus_m, self.focal_length_m, self.f_number)

    def sigma_px(self, depth_m, focus_m):
        """`blur_sigma_px` with this lens (pixels)."""
        return blur_sigma_px(depth_m, focus_m, self.focal_length_m, self.f_number, self.pixel_pitch_m)

    def slice_sigmas_px(self, stack: FocalStack) -> np.ndarray:
        """Predicted blur σ (N, H, W) float32 pixels of each slice of `stack` at each pixel, from its
        ground truth and focus positions in metres (0 where the ground truth is invalid)."""
        depth_m = stack.ground_truth_in("metres")
        if depth_m is None:
            raise InputError("the stack has no ground truth to predict its blur from", stack.source)
        valid = depth_m > 0
        depth = np.where(valid, depth_m, 1.0).astype(np.float64)
        sigma = self.sigma_px(depth[None], stack.positions_in("metres")[:, None, None])
        return np.where(valid[None], sigma, 0.0).astype(np.float32)

    def resized(self, width_px: int) -> "ThinLens":
        """The same optics seen through an image resampled to `width_px` columns (pitch scaled)."""
        if self.width_px is None:
            raise InputError("lens has no reference width_px; cannot rescale its pixel pitch")
        if width_px <= 0:
            raise InputError(f"width must be positive, got {width_px}")
        return replace(self, pixel_pitch_m=self.pixel_pitch_m * self.width_px / width_px, width_px=int(width_px))


# One table of lens presets. The numbers not published with a data set are assumptions, said so.
LENS_PRESETS: dict[str, ThinLens] = {
    # Phone main camera (Pixel-7-like: f 6.8 mm, f/1.85, 2.4 µm binned pixels, 4080 px wide), the
    # kind that shot ../shared/realdata/phone_focal_stacks. Deep depth of field: σ ≈ 13 px at
    # 4080 px (d 2.2 m, s 0.35 m), under 1 px once resized to 256 px.
    "phone": ThinLens(focal_length_m=6.8e-3, f_number=1.85, pixel_pitch_m=2.4e-6, width_px=4080),
    # DDFF-12 (Lytro Illum sub-aperture images, 552 px wide): f / pitch = 521.4052 px, the
    # sub-aperture focal length of DDFF-12's calibration; pitch 20 µm (the Illum's microlens pitch,
    # assumed) gives f = 10.43 mm; f/2.0 is the Illum's constant aperture. σ ≤ ~2.5 px over the
    # DDFF-12 range (disparity 0.02–0.28 px).
    "ddff12": ThinLens(focal_length_m=521.4052 * 20e-6, f_number=2.0, pixel_pitch_m=20e-6, width_px=552),
    # FoD500 / DefocusNet's Blender camera: f 2.9 mm, f/1 (DefocusNet README); the sensor width is
    # not published: 3.2 mm over 256 px (12.5 µm) is assumed, giving σ ≤ ~3.4 px (d 3 m, s 0.1 m).
    "fod500": ThinLens(focal_length_m=2.9e-3, f_number=1.0, pixel_pitch_m=12.5e-6, width_px=256),
}


def get_lens(name: str) -> ThinLens:
    """A preset from `LENS_PRESETS` by name."""
    if name not in LENS_PRESETS:
        raise InputError(f"unknown lens preset {name!r}; choose one of {', '.join(LENS_PRESETS)}")
    return LENS_PRESETS[name]


# --------------------------------------------------------------------------- rendering helpers

def _check_scene(aif, depth_m) -> tuple[np.ndarray, np.ndarray]:
    aif = np.asarray(aif)
    depth_m = np.asarray(depth_m)
    if aif.ndim != 3 or aif.shape[2] != 3 or aif.shape[0] == 0 or aif.shape[1] == 0:
        raise InputError(f"aif must be (H, W, 3), got shape {aif.shape}")
    if not np.issubdtype(aif.dtype, np.floating):
        raise InputError(f"aif must be float (linear intensities), got {aif.dtype}; convert uint8 with image / 255")
    if depth_m.shape != aif.shape[:2]:
        raise InputError(f"depth {depth_m.shape} does not match aif {aif.shape[:2]}")
    if not np.all(np.isfinite(depth_m) & (depth_m > 0)):
        raise InputError("depth must be positive and finite at every pixel (fill invalid pixels before rendering)")
    return np.ascontiguousarray(aif, dtype=np.float32), depth_m.astype(np.float64)


def _check_focus(focus_m, lens: ThinLens) -> np.ndarray:
    focus = np.atleast_1d(np.asarray(focus_m, dtype=np.float64))
    if focus.ndim != 1 or focus.size == 0:
        raise InputError(f"focus distances must be a non-empty 1-D list, got shape {focus.shape}")
    if not np.all(np.isfinite(focus)):
        raise InputError("focus distances must be finite")
    bad = focus[focus <= lens.focal_length_m]
    if bad.size:
        raise InputError(f"focus distance {bad[0]:g} m is inside the focal length {lens.focal_length_m:g} m")
    return focus


def blur_radius(sigma_px: float) -> int:
    """Kernel radius used for a Gaussian of std `sigma_px`: ceil(4σ), at least 1 (0 for σ = 0)."""
    return 0 if sigma_px <= 0 else max(1, math.ceil(4.0 * sigma_px))


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of an (H, W) or (H, W, C≤4) float32 image: kernel radius `blur_radius(σ)`,
    reflected borders (BORDER_REFLECT_101). σ = 0 returns a copy."""
    radius = blur_radius(sigma_px)
    if radius == 0:
        return image.copy()
    size = 2 * radius + 1
    return cv2.GaussianBlur(image, (size, size), sigmaX=float(sigma_px), sigmaY=float(sigma_px),
                            borderType=cv2.BORDER_REFLECT_101)


@dataclass
class _Layers:
    """Depth layers, far to near: label (H, W) int32 with 0 = farthest; inverse_depth (K,) the mean
    1/depth of each layer's pixels (so a fronto-parallel plane gets its exact blur); boxes (K, 4)
    the layer's bounding box (y0, y1, x0, x1), end exclusive."""

    label: np.ndarray
    inverse_depth: np.ndarray
    boxes: np.ndarray


def _sigma_per_inverse_depth(lens: ThinLens, focus: np.ndarray) -> np.ndarray:
    """dσ/d(1/d) for each focus distance: σ = c_s · |1/s − 1/d| with c_s = A f s / ((s − f) 2 p)."""
    f = lens.focal_length_m
    return lens.aperture_m * f * focus / ((focus - f) * 2 * lens.pixel_pitch_m)


def _auto_layer_count(inverse_depth: np.ndarray, lens: ThinLens, focus: np.ndarray, sigma_step_px: float) -> int:
    span = float(inverse_depth.max() - inverse_depth.min())
    blur_span = float(_sigma_per_inverse_depth(lens, focus).max()) * span
    return int(np.clip(math.ceil(blur_span / sigma_step_px), 1, 64))


def _split_layers(depth_m: np.ndarray, count: int, spacing: str) -> _Layers:
    inverse = 1.0 / depth_m
    low, high = float(inverse.min()), float(inverse.max())
    if spacing == "inverse":
        if high - low <= 1e-12 * max(high, 1e-30) or count == 1:
            label = np.zeros(inverse.shape, np.int64)
        else:
            label = np.clip(((inverse - low) / (high - low) * count).astype(np.int64), 0, count - 1)
    elif spacing == "quantile":
        edges = np.unique(np.quantile(inverse, np.linspace(0.0, 1.0, count + 1))[1:-1])
        label = np.searchsorted(edges, inverse, side="right")
    else:
        raise InputError(f"layer spacing must be one of {', '.join(LAYER_SPACINGS)}, got {spacing!r}")
    sizes = np.bincount(label.ravel())
    used = np.flatnonzero(sizes)
    remap = np.zeros(sizes.size, np.int32)
    remap[used] = np.arange(used.size, dtype=np.int32)
    label = remap[label]  # int32, 0 = farthest
    inverse_depth = np.bincount(label.ravel(), weights=inverse.ravel()) / sizes[used]
    height, width = label.shape
    boxes = np.zeros((used.size, 4), np.int64)
    rows, cols = np.arange(height), np.arange(width)
    for k in range(used.size):
        mask = label == k
        ys, xs = rows[mask.any(axis=1)], cols[mask.any(axis=0)]
        boxes[k] = (ys[0], ys[-1] + 1, xs[0], xs[-1] + 1)
    return _Layers(label, inverse_depth, boxes)


@numba.njit(cache=True, nogil=True)
def _premultiplied_layer(label, k, aif, y0, x0, out):
    """out (h, w, 4) float32 = (aif·α, α) over label[y0:y0+h, x0:x0+w], α = (label == k)."""
    height, width = out.shape[0], out.shape[1]
    for y in range(height):
        for x in range(width):
            if label[y0 + y, x0 + x] == k:
                out[y, x, 0] = aif[y0 + y, x0 + x, 0]
                out[y, x, 1] = aif[y0 + y, x0 + x, 1]
                out[y, x, 2] = aif[y0 + y, x0 + x, 2]
                out[y, x, 3] = 1.0
            else:
                out[y, x, 0] = 0.0
                out[y, x, 1] = 0.0
                out[y, x, 2] = 0.0
                out[y, x, 3] = 0.0


@numba.njit(cache=True, nogil=True)
def _over(blurred, colour, coverage, y0, x0):
    """Composite a blurred premultiplied layer (h, w, 4) over colour (H, W, 3) / coverage (H, W)
    at (y0, x0): colour = c + (1 − a)·colour, coverage = a + (1 − a)·coverage."""
    height, width = blurred.shape[0], blurred.shape[1]
    for y in range(height):
        for x in range(width):
            a = blurred[y, x, 3]
            keep = np.float32(1.0) - a
            for c in range(3):
                colour[y0 + y, x0 + x, c] = blurred[y, x, c] + keep * colour[y0 + y, x0 + x, c]
            coverage[y0 + y, x0 + x] = a + keep * coverage[y0 + y, x0 + x]


def _composite_layers(aif: np.ndarray, layers: _Layers, sigmas: np.ndarray) -> np.ndarray:
    """Back-to-front "over" compositing of blurred premultiplied layers, divided by the coverage.
    Each layer is built, blurred and composited inside its bounding box grown by the blur radius
    (outside it the blurred layer is exactly 0); the numba kernels fuse the per-pixel passes."""
    height, width = layers.label.shape
    colour = np.zeros((height, width, 3), np.float32)
    coverage = np.zeros((height, width), np.float32)
    for k, sigma in enumerate(sigmas):
        radius = blur_radius(float(sigma))
        y0, y1, x0, x1 = layers.boxes[k]
        y0, y1 = max(0, y0 - radius), min(height, y1 + radius)
        x0, x1 = max(0, x0 - radius), min(width, x1 + radius)
        premultiplied = np.empty((y1 - y0, x1 - x0, 4), np.float32)
        _premultiplied_layer(layers.label, k, aif, y0, x0, premultiplied)
        _over(gaussian_blur(premultiplied, float(sigma)), colour, coverage, y0, x0)
    return colour / np.maximum(coverage, np.float32(1e-12))[..., None]


def _layer_sigmas(layers: _Layers, focus_m: float, lens: ThinLens) -> np.ndarray:
    return np.asarray(lens.sigma_px(1.0 / layers.inverse_depth, focus_m), dtype=np.float64)


def _blur_levels(aif: np.ndarray, sigma_max: float, ratio: float, sigma_min: float = 0.5):
    """Blur ladder for the gather renderer: σ = 0, sigma_min, sigma_min·ratio, ... ≥ sigma_max."""
    sigmas = [0.0]
    if sigma_max > 0:
        sigmas.append(sigma_min)
        while sigmas[-1] < sigma_max:
            sigmas.append(sigmas[-1] * ratio)
    levels = np.stack([gaussian_blur(aif, s) for s in sigmas])
    return np.asarray(sigmas), levels


@numba.njit(cache=True, nogil=True)
def _gather_kernel(level_sigmas, levels, sigma_map, out):
    """out[y, x] = blend of the two ladder levels around sigma_map[y, x] (one fused pass; serial:
    numba's OpenMP threads keep spinning after a parallel loop and slow OpenCV's next blurs).

    level_sigmas (J,) ascending from 0, J >= 2; levels (J, H, W, C) float32; sigma_map (H, W)
    float64; out (H, W, C) float32. The weight t of the upper level matches the variance: a
    mixture (1 − t)·G(σ0) + t·G(σ1) has variance (1 − t)·σ0² + t·σ1² = σ². σ beyond the ladder
    takes its last level."""
    count = level_sigmas.shape[0]
    height, width, channels = out.shape
    for y in range(height):
        for x in range(width):
            sigma = sigma_map[y, x]
            j = 0
            while j < count - 2 and level_sigmas[j + 1] <= sigma:
                j += 1
            v0 = level_sigmas[j] * level_sigmas[j]
            v1 = level_sigmas[j + 1] * level_sigmas[j + 1]
            t = (sigma * sigma - v0) / (v1 - v0)
            t = min(max(t, 0.0), 1.0)
            for c in range(channels):
                lower = levels[j, y, x, c]
                out[y, x, c] = np.float32(lower + t * (levels[j + 1, y, x, c] - lower))


def _gather(level_sigmas: np.ndarray, levels: np.ndarray, sigma_map: np.ndarray) -> np.ndarray:
    """Per-pixel blend of the blur ladder (see `_gather_kernel`); (H, W, 3) float32."""
    if len(level_sigmas) == 1:
        return levels[0].copy()
    out = np.empty(levels.shape[1:], np.float32)
    _gather_kernel(np.ascontiguousarray(level_sigmas, np.float64), levels,
                   np.ascontiguousarray(sigma_map, np.float64), out)
    return out


# --------------------------------------------------------------------------- public renderers

def render_layered(aif, depth_m, focus_m: float, lens: ThinLens, *, layers: int | None = None,
                   spacing: str = "inverse", sigma_step_px: float = 0.5) -> np.ndarray:
    """One defocused image by the layered model (occlusion-aware; see the module docstring).

    aif (H, W, 3) float, linear intensities; depth_m (H, W) metres, > 0 everywhere; focus_m
    metres, beyond the focal length. layers: number of depth layers, or None to choose it so that
    neighbouring layers differ by at most `sigma_step_px` of blur (1..64); spacing "inverse"
    (uniform in 1/depth) or "quantile" (equal pixel counts). Returns (H, W, 3) float32.
    """
    stack = focal_stack(aif, depth_m, [focus_m], lens, mode="layered", layers=layers,
                        spacing=spacing, sigma_step_px=sigma_step_px)
    return stack.slices[0]


def render_gather(aif, depth_m, focus_m: float, lens: ThinLens, *, level_ratio: float = math.sqrt(2.0)) -> np.ndarray:
    """One defocused image by the per-pixel-σ gather approximation (no occlusion handling).

    Same arguments as `render_layered`; level_ratio: ratio of neighbouring σ in the blur ladder.
    Returns (H, W, 3) float32."""
    return focal_stack(aif, depth_m, [focus_m], lens, mode="gather", level_ratio=level_ratio).slices[0]


def focal_stack(aif, depth_m, focus_distances_m, lens: ThinLens, mode: str = "layered", *,
                focus_unit: str = "metres", disparity_scale: float = DDFF12_DISPARITY_SCALE,
                layers: int | None = None, spacing: str = "inverse", sigma_step_px: float = 0.5,
                level_ratio: float = math.sqrt(2.0)) -> FocalStack:
    """Render a focal stack of an AiF image with metric depth through a thin lens.

    aif (H, W, 3) float linear intensities; depth_m (H, W) metres, > 0 everywhere;
    focus_distances_m (N,) metres, each beyond the focal length (else InputError), in slice order,
    strictly monotonic (as every FocalStack); mode "layered" (occlusion-aware, `render_layered`) or
    "gather" (fast, `render_gather`); focus_unit "metres" or "disparity" for the stack's positions
    and ground truth (disparity = disparity_scale / metres; DDFF-12's scale 0.141238 by default).
    layers, spacing, sigma_step_px: layered mode (see `render_layered`); level_ratio: gather mode.
    The layer split (layered) or the blur ladder (gather) is built once and shared by all slices.
    Slices stay within the AiF's value range.
    Returns an `anydepth.focus.FocalStack`: slices (N, H, W, 3) float32, positions in `focus_unit`,
    ground truth (depth_m, or its disparity), the AiF, disparity_scale; the lens and the mode are
    the caller's (`ThinLens.slice_sigmas_px` predicts the blur of each slice).
    """
    if mode not in RENDER_MODES:
        raise InputError(f"render mode must be one of {', '.join(RENDER_MODES)}, got {mode!r}")
    check_unit(focus_unit)
    if sigma_step_px <= 0 or level_ratio <= 1:
        raise InputError("sigma_step_px must be > 0 and level_ratio > 1")
    aif, depth = _check_scene(aif, depth_m)
    focus = _check_focus(focus_distances_m, lens)
    slices = _render(aif, depth, focus, lens, mode, layers, spacing, sigma_step_px, level_ratio)
    stack = FocalStack(slices, focus, "metres", depth.astype(np.float32), aif.copy(),
                       disparity_scale=float(disparity_scale))
    return stack.to_unit(focus_unit)


def _render(aif: np.ndarray, depth: np.ndarray, focus: np.ndarray, lens: ThinLens, mode: str,
            layers: int | None = None, spacing: str = "inverse", sigma_step_px: float = 0.5,
            level_ratio: float = math.sqrt(2.0)) -> np.ndarray:
    """The slices (N, H, W, 3) float32 of checked inputs (`focal_stack`'s arguments)."""
    if mode == "layered":
        if layers is not None and layers < 1:
            raise InputError(f"layers must be >= 1, got {layers}")
        count = layers if layers is not None else _auto_layer_count(1.0 / depth, lens, focus, sigma_step_px)
        split = _split_layers(depth, count, spacing)
        slices = [_composite_layers(aif, split, _layer_sigmas(split, s, lens)) for s in focus]
    else:
        sigma_maps = [np.asarray(lens.sigma_px(depth, s), dtype=np.float64) for s in focus]
        level_sigmas, levels = _blur_levels(aif, max(float(m.max()) for m in sigma_maps), level_ratio)
        slices = [_gather(level_sigmas, levels, m) for m in sigma_maps]
    return np.stack(slices).astype(np.float32, copy=False)
