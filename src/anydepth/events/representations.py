"""Event representations (Tencode, voxel grid, histogram, time surface): numpy in and out, or torch in and out.

Each function takes an `EventArray` (or the same fields as torch tensors through
`from_tensors`) and returns a float32 grid (C, H, W) for the sensor size:

- `tencode`       (3, H, W) in [0, 1]: (p, 1 - t_n, 1 - p) of the last event per pixel
                  (Depth AnyEvent's Tencode divided by 255); empty pixels 0.
- `voxel_grid`    (B, H, W): 2p - 1 spread over the two nearest of B bins, time scaled to
                  [0, B - 1] by the first and last event (the B - 1 convention); bilinear over
                  pixels for fractional coordinates; optional normalisation over non-zero voxels.
- `histogram`     (2, H, W): event counts, channel 0 negative, channel 1 positive.
- `time_surface`  (2, H, W): exp(-(t_ref - t_last) / tau) per polarity, 0 where no event.
- `tencode_from_voxels` (3, H, W): Tencode of precomputed voxels (the official MVSEC path).

Degenerate windows are defined, never NaN: an empty window gives zeros; a window whose events
share one timestamp puts them all at t_n = 0 (Tencode G = 1, voxel bin 0), as E2VID does.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import torch

from anydepth.errors import InputError
from anydepth.events import kernels
from anydepth.events.container import EventArray


PARALLEL_MIN_EVENTS = 500_000  # below this, one thread beats the cost of starting two


def _time_scale(events: EventArray, span_to: float) -> tuple[int, float]:
    """(t_first, factor) mapping t to (t - t_first) * factor in [0, span_to]; factor 0 for a
    window of one timestamp."""
    t_first, t_last = int(events.t[0]), int(events.t[-1])
    span = t_last - t_first
    return t_first, (span_to / span if span > 0 else 0.0)


def _float_coordinates(events: EventArray) -> bool:
    return events.x.dtype.kind == "f" or events.y.dtype.kind == "f"


def tencode(events: EventArray) -> np.ndarray:
    """(3, H, W) float32 Tencode in [0, 1]. For each pixel, the last event in time order gives
    R = p, G = 1 - t_n, B = 1 - p with t_n = (t - t_first) / (t_last - t_first); so the newest
    positive event is (1, 0, 0) and the oldest negative (0, 1, 1). Multiply by 255 for the
    official 0..255 scale; apply ImageNet normalisation before a ViT."""
    height, width = events.sensor_size
    if not len(events):
        return np.zeros((3, height, width), np.float32)
    t_first = int(events.t[0])
    span = float(max(int(events.t[-1]) - t_first, 1))  # one timestamp: every event at t_n = 0
    workers = _workers(len(events))
    if not workers:
        grid = np.zeros((3, height, width), np.float32)
        kernels.tencode_serial(events.x, events.y, events.t, events.p, t_first, span, width, grid.reshape(3, -1))
        return grid
    grid = np.empty((3, height, width), np.float32)
    with _clean_scratch(f"tencode{workers}", (workers, height * width), np.int32, -1) as last:
        if span < kernels.STAMP_LIMIT_US:  # stamps 2 (t - t_first) + p: the pixel pass reads only the table
            kernels.tencode_stamp_chunks(events.x, events.y, events.t, events.p, t_first, width, last)
            kernels.tencode_stamp_pixels(last, span, grid.reshape(3, -1))
        else:  # event indices, then t and p read per pixel
            kernels.last_index_chunks(events.x, events.y, events.p, width, 0, last)
            kernels.tencode_pixels(events.t, events.p, t_first, span, last, grid.reshape(3, -1))
    return grid


def voxel_grid(events: EventArray, bins: int = 5, normalize: bool = True) -> np.ndarray:
    """(bins, H, W) float32 voxel grid. Time t_b = (bins - 1) (t - t_first) / (t_last - t_first);
    each event adds (2p - 1)(1 - |t_b - b|) to the two bins b around t_b (and splits over the four
    neighbouring pixels for fractional coordinates). normalize: (v - mean) / std over non-zero
    voxels (population std), zeros stay zero; unchanged when that std is 0."""
    if bins < 1:
        raise InputError(f"a voxel grid needs at least one bin, got {bins}")
    height, width = events.sensor_size
    if not len(events):
        return np.zeros((bins, height, width), np.float32)
    if _float_coordinates(events):
        grid = np.zeros((bins, height, width), np.float32)
        t_first, scale = _time_scale(events, bins - 1)
        kernels.voxel_bilinear(events.x, events.y, events.t, events.p, t_first, scale, grid)
        if normalize:
            kernels.normalize_nonzero(grid)
        return grid
    t_first = int(events.t[0])
    span = max(int(events.t[-1]) - t_first, 1)  # one timestamp: every event at position 0
    workers = _workers(len(events))
    if not workers:
        grid = np.zeros((bins, height, width), np.float32)
        kernels.voxel_planes(events.x, events.y, events.t, events.p, t_first, span, width, grid.reshape(bins, -1))
        if normalize:
            kernels.normalize_nonzero(grid)
        return grid
    grid = np.empty((bins, height, width), np.float32)
    with _clean_scratch(f"voxel{workers}", (workers, bins, 2 * height * width), np.float32, 0) as pairs:
        reached, moments = kernels.voxel_pairs(events.x, events.y, events.t, events.p, t_first, span, width, pairs, grid.reshape(bins, -1))
        count, total, squares = np.add(kernels.voxel_merge(pairs, reached, grid.reshape(bins, -1)), moments.sum(axis=0))
    if normalize and count:
        mean = total / count
        variance = squares / count - mean * mean
        if variance > 0:
            kernels.standardize_nonzero(grid.reshape(-1), np.float32(mean), np.float32(1.0 / np.sqrt(variance)))
    return grid


def _workers(count: int) -> int:
    """0 below PARALLEL_MIN_EVENTS: the serial kernels, which write the grid directly (a parallel
    region costs a thread wake-up, milliseconds when the cores are busy); else the number of
    chunks for the chunked kernels: one per thread (one is fine: they lay out their scratch for
    large grids)."""
    return numba.get_num_threads() if count >= PARALLEL_MIN_EVENTS else 0


_SCRATCH = threading.local()


def _scratch(kind: str, shape: tuple[int, ...], dtype, fill=None) -> np.ndarray:
    """A per-thread work buffer of `shape` for `kind`, reused across calls: its pages are already
    mapped, so the random writes of the next call do not page-fault. New buffers are filled with
    `fill` (None: left as allocated; the kernels zero them)."""
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    buffer = buffers.get(kind)
    if buffer is None or buffer.shape != shape:
        buffer = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        buffers[kind] = buffer
    return buffer


class _clean_scratch:
    """A per-thread scratch that holds `fill` everywhere between calls, because the kernels that
    read it put `fill` back (last-event tables: int32 -1; voxel pairs: float32 0), so no call has
    to clear it. Dropped if a call fails half-way, so it is never reused dirty."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype, fill):
        self.name, self.shape, self.dtype, self.fill = name, shape, dtype, fill

    def __enter__(self) -> np.ndarray:
        return _scratch(self.name, self.shape, self.dtype, fill=self.fill)

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None:
            _SCRATCH.buffers.pop(self.name, None)


def normalize_voxel_grid(grid: np.ndarray) -> np.ndarray:
    """The voxel normalisation of `voxel_grid` on a copy of an existing (B, H, W) grid."""
    grid = np.array(grid, dtype=np.float32, copy=True)
    kernels.normalize_nonzero(grid)
    return grid


def histogram(events: EventArray, clip: float | None = None) -> np.ndarray:
    """(2, H, W) float32 event counts (channel 0: p = 0 negative, channel 1: positive), optionally
    clipped (the Depth AnyEvent code clips at 200). Fractional coordinates are truncated."""
    height, width = events.sensor_size
    workers = _workers(len(events))
    if not workers:
        grid = np.zeros((2, height, width), np.float32)
        if len(events):
            kernels.histogram(events.x, events.y, events.p, grid)
    else:
        grid = np.empty((2, height, width), np.float32)
        counts = _scratch("histogram", (workers, 2 * height * width), np.int32)
        kernels.histogram_chunks(events.x, events.y, events.p, width, counts, grid.reshape(2, -1))
    if clip is not None:
        np.minimum(grid, clip, out=grid)
    return grid


def time_surface(events: EventArray, tau_us: float = 50_000.0, t_ref_us: int | None = None) -> np.ndarray:
    """(2, H, W) float32 exponential time surface per polarity: exp(-(t_ref - t_last) / tau) of
    the last event at each pixel, 0 where none fell (float32 arithmetic). t_ref defaults to the
    last event's time."""
    if tau_us <= 0:
        raise InputError(f"tau must be positive, got {tau_us} µs")
    height, width = events.sensor_size
    if not len(events):
        return np.zeros((2, height, width), np.float32)
    t_ref = int(events.t[-1]) if t_ref_us is None else int(t_ref_us)
    inv_tau = np.float32(1.0 / tau_us)
    workers = _workers(len(events))
    if not workers:
        surface = np.zeros((2, height, width), np.float32)
        kernels.time_surface_serial(events.x, events.y, events.t, events.p, t_ref, inv_tau, width, surface.reshape(2, -1))
        return surface
    surface = np.empty((2, height, width), np.float32)
    plane = height * width
    with _clean_scratch(f"time surface{workers}", (workers, 2 * plane), np.int32, -1) as last:
        kernels.last_index_chunks(events.x, events.y, events.p, width, plane, last)
        kernels.time_surface_pixels(events.t, t_ref, inv_tau, last, surface.reshape(-1))
    return surface


def tencode_from_voxels(voxels: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 Tencode in [0, 1] from a (B, H, W) voxel grid, as the official code does
    for precomputed MVSEC voxels: bins in order, a positive voxel in bin i sets (1, g_i, 0), a
    negative one (0, g_i, 1), with g_i = 1 - i / (B - 1); later bins overwrite earlier ones."""
    voxels = np.asarray(voxels)
    if voxels.ndim != 3:
        raise InputError(f"voxels must be (B, H, W), got shape {voxels.shape}")
    bins, height, width = voxels.shape
    green_levels = 1.0 - np.linspace(0.0, 1.0, bins, dtype=np.float32) if bins > 1 else np.ones(1, np.float32)
    out = np.zeros((3, height, width), np.float32)
    for index in range(bins):
        positive, negative = voxels[index] > 0, voxels[index] < 0
        out[0][positive], out[1][positive], out[2][positive] = 1.0, green_levels[index], 0.0
        out[0][negative], out[1][negative], out[2][negative] = 0.0, green_levels[index], 1.0
    return out


REPRESENTATIONS = {
    "tencode": tencode,
    "voxel": voxel_grid,
    "histogram": histogram,
    "time_surface": time_surface,
}


def from_tensors(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, p: torch.Tensor, sensor_size, representation: str = "tencode", **options) -> torch.Tensor:
    """Torch in and out: the events as 1-D tensors (any device; t in µs, p 0/1 or -1/+1), the
    grid as a float32 tensor on the same device."""
    if representation not in REPRESENTATIONS:
        raise InputError(f"unknown representation {representation!r}; choose one of {', '.join(REPRESENTATIONS)}")
    device = x.device
    events = EventArray.from_arrays(*(v.detach().cpu().numpy() for v in (x, y, t, p)), sensor_size=sensor_size)
    return torch.from_numpy(REPRESENTATIONS[representation](events, **options)).to(device)
