"""The focal stack every depth-from-focus reader returns, every focus measure takes and the
thin-lens renderer (`anydepth.synth.thin_lens`) makes; focus units and the data sets' focus tables.

A stack is N slices of one scene, slice i focused at position l_i. Positions are either distances
in metres or disparities in pixels (DDFF-12: disparity = 0.141238 / metres); converting between
the two needs the scale, which the stack carries when its reader knows it and the caller passes
otherwise (there is no silent default).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from anydepth.errors import InputError

FOCUS_UNITS = ("metres", "disparity")
# DDFF-12 (Lytro Illum light fields): disparity_px = DDFF12_DISPARITY_SCALE / depth_m (m·px), the
# product of the sub-aperture baseline (K2 / f_lens · 1e-3 m) and the sub-aperture focal length
# 521.4052 px.
DDFF12_DISPARITY_SCALE = 0.141238
DDFF12_FOCUS_DISPARITIES = np.linspace(0.28, 0.02, 10)  # pixels, slice order (near to far), as DFV's loader
FOD500_FOCUS_DISTANCES_M = (0.1, 0.15, 0.3, 0.7, 1.5)  # metres, slice order, as DFV's loader


def metres_to_disparity(metres, scale: float | None) -> np.ndarray:
    """Disparity = scale / metres (scale in m·px; DDFF-12: 0.141238). 0 stays 0 (invalid both ways),
    as does any non-finite or non-positive value. Returns float64 with the input's shape.
    The only metres <-> disparity conversion of anydepth: everything else calls it."""
    if scale is None:
        raise InputError("converting between metres and disparity needs a disparity scale "
                         "(disparity = scale / metres; DDFF-12: 0.141238)")
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"disparity scale must be a positive number, got {scale}")
    metres = np.asarray(metres, dtype=np.float64)
    valid = np.isfinite(metres) & (metres > 0)
    disparity = np.zeros(metres.shape, np.float64)
    disparity[valid] = scale / metres[valid]
    return disparity


def disparity_to_metres(disparity, scale: float | None) -> np.ndarray:
    """Metres = scale / disparity (the same reciprocal map as `metres_to_disparity`; 0 = invalid)."""
    return metres_to_disparity(disparity, scale)


def check_unit(unit: str) -> None:
    """InputError unless `unit` is one of FOCUS_UNITS."""
    if unit not in FOCUS_UNITS:
        raise InputError(f"focus unit must be one of {', '.join(FOCUS_UNITS)}, got {unit!r}")


def in_unit(values, unit: str, target: str, scale: float | None = None) -> np.ndarray:
    """`values` (any shape) given in `unit` expressed in `target` ("metres" or "disparity"): a
    float64 copy when the units agree, else scale / value (`metres_to_disparity`; 0 = invalid)."""
    check_unit(unit)
    check_unit(target)
    if unit == target:
        return np.array(values, dtype=np.float64)
    return metres_to_disparity(values, scale)


@dataclass
class FocalStack:
    """N focus slices of one scene with their focus positions.

    slices (N, H, W, 3): uint8 0–255 or float32 in [0, 1], RGB, slice order as stored (a list of
      (H, W, 3) arrays is stacked, after checking they have one size).
    positions (N,) float64: focus position of each slice in `unit`, strictly monotonic, > 0.
    unit: "metres" (focus distance) or "disparity" (pixels, larger = nearer).
    ground_truth (H, W) float32 or None: depth (unit "metres") or disparity (unit "disparity") of
      each pixel, in the unit of the positions, 0 = invalid.
    aif (H, W, 3) or None: all-in-focus image, same dtype convention as the slices.
    disparity_scale: m·px relating the two units (disparity = scale / metres), None when unknown.
    source: where the stack was read from (for messages), None when built in memory.
    """

    slices: np.ndarray
    positions: np.ndarray
    unit: str = "metres"
    ground_truth: np.ndarray | None = None
    aif: np.ndarray | None = None
    disparity_scale: float | None = None
    source: str | None = None

    def __post_init__(self):
        where = self.source
        if isinstance(self.slices, (list, tuple)):  # one array per slice: sizes must agree
            shapes = [np.shape(image) for image in self.slices]
            for index, shape in enumerate(shapes[1:], start=1):
                if shape != shapes[0]:
                    raise InputError(f"slices differ in size: slice {index} is {shape}, slice 0 is {shapes[0]}", where)
            self.slices = np.stack(self.slices) if shapes else np.zeros((0, 0, 0, 3), np.uint8)
        slices = np.asarray(self.slices)
        if slices.ndim != 4 or slices.shape[-1] != 3:
            raise InputError(f"focal stack slices must be (N, H, W, 3), got shape {slices.shape}", where)
        if slices.shape[0] == 0 or slices.shape[1] == 0 or slices.shape[2] == 0:
            raise InputError(f"empty focal stack (shape {slices.shape})", where)
        if slices.dtype == np.float64:
            slices = slices.astype(np.float32)
        if slices.dtype not in (np.uint8, np.float32):
            raise InputError(f"focal stack slices must be uint8 or float32, got {slices.dtype}", where)
        if slices.dtype == np.float32 and not np.isfinite(slices).all():
            raise InputError("focal stack slices contain NaN or infinity", where)
        self.slices = slices
        if self.unit not in FOCUS_UNITS:
            raise InputError(f"focus unit must be one of {', '.join(FOCUS_UNITS)}, got {self.unit!r}", where)
        positions = np.asarray(self.positions, dtype=np.float64).reshape(-1)
        if positions.size != slices.shape[0]:
            raise InputError(f"{slices.shape[0]} slices but {positions.size} focus positions", where)
        if not (np.isfinite(positions).all() and (positions > 0).all()):
            raise InputError(f"focus positions must be finite and positive, got {positions.tolist()}", where)
        if positions.size > 1:
            steps = np.diff(positions)
            if not ((steps > 0).all() or (steps < 0).all()):
                raise InputError(f"focus positions must be strictly monotonic, got {positions.tolist()}", where)
        self.positions = positions
        height, width = slices.shape[1:3]
        if self.ground_truth is not None:
            truth = np.asarray(self.ground_truth, dtype=np.float32)
            if truth.shape != (height, width):
                raise InputError(f"ground truth is {truth.shape}, slices are {(height, width)}", where)
            self.ground_truth = np.where(np.isfinite(truth) & (truth > 0), truth, 0.0).astype(np.float32)
        if self.aif is not None:
            aif = np.asarray(self.aif)
            if aif.shape != (height, width, 3):
                raise InputError(f"AiF image is {aif.shape}, slices are {(height, width, 3)}", where)
            self.aif = aif.astype(np.float32) if aif.dtype == np.float64 else aif
        if self.disparity_scale is not None and not (np.isfinite(self.disparity_scale) and self.disparity_scale > 0):
            raise InputError(f"disparity scale must be positive, got {self.disparity_scale}", where)

    @property
    def count(self) -> int:
        """N, the number of slices."""
        return int(self.slices.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the slices."""
        return int(self.slices.shape[1]), int(self.slices.shape[2])

    def float_slices(self) -> np.ndarray:
        """Slices as (N, H, W, 3) float32 in [0, 1] (uint8 divided by 255)."""
        return self.slices.astype(np.float32) / 255.0 if self.slices.dtype == np.uint8 else self.slices

    def positions_in(self, unit: str, scale: float | None = None) -> np.ndarray:
        """Focus positions (N,) float64 in `unit`; scale (m·px) defaults to the stack's own and is
        required when the units differ and the stack has none."""
        check_unit(unit)
        return in_unit(self.positions, self.unit, unit, None if unit == self.unit else self._scale(scale))

    def ground_truth_in(self, unit: str, scale: float | None = None) -> np.ndarray | None:
        """Ground truth (H, W) float32 in `unit` (0 = invalid), None when the stack has none; scale as
        in `positions_in`."""
        check_unit(unit)
        if self.ground_truth is None:
            return None
        if unit == self.unit:
            return self.ground_truth.copy()
        return in_unit(self.ground_truth, self.unit, unit, self._scale(scale)).astype(np.float32)

    def to_unit(self, unit: str, scale: float | None = None) -> "FocalStack":
        """The same stack with positions and ground truth converted to `unit` (value = scale / value;
        0 stays 0). Slice order is unchanged, so metres increasing become disparities decreasing."""
        if unit == self.unit:
            return replace(self)
        scale = self._scale(scale)
        return replace(self, positions=self.positions_in(unit, scale), unit=unit,
                       ground_truth=self.ground_truth_in(unit, scale), disparity_scale=scale)

    def _scale(self, scale: float | None) -> float:
        scale = self.disparity_scale if scale is None else scale
        if scale is None:
            raise InputError("converting between metres and disparity needs a scale (disparity = scale / metres; "
                             "DDFF-12: 0.141238)", self.source)
        return float(scale)
