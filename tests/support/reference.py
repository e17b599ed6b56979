"""Plain-numpy reference implementations of the representations: slow, obvious, used by the tests
(as the definition the fused kernels must match) and by `benchmarks/events.py` (as the baseline).
Same conventions and outputs as `anydepth.events.representations`."""

from __future__ import annotations

import numpy as np

from anydepth.events.container import EventArray


def _normalized_time(events: EventArray, top: float) -> np.ndarray:
    t = events.t.astype(np.float64)
    span = t[-1] - t[0]
    return (t - t[0]) * top / span if span > 0 else np.zeros_like(t)


def tencode(events: EventArray) -> np.ndarray:
    height, width = events.sensor_size
    out = np.zeros((3, height, width), np.float32)
    if not len(events):
        return out
    x, y = events.x.astype(np.int64), events.y.astype(np.int64)
    flat = y * width + x
    # last event per pixel: the highest index among events on that pixel
    order = np.arange(len(events))
    last = np.full(height * width, -1, np.int64)
    np.maximum.at(last, flat, order)
    hit = last >= 0
    chosen = last[hit]
    t_n = _normalized_time(events, 1.0)
    pol = events.p.astype(np.float32)
    out.reshape(3, -1)[0, hit] = pol[chosen]
    out.reshape(3, -1)[1, hit] = (1.0 - t_n[chosen]).astype(np.float32)
    out.reshape(3, -1)[2, hit] = 1.0 - pol[chosen]
    return out


def voxel_grid(events: EventArray, bins: int = 5, normalize: bool = True) -> np.ndarray:
    height, width = events.sensor_size
    out = np.zeros((bins, height, width), np.float32)
    if not len(events):
        return out
    t = events.t.astype(np.float64)
    span = t[-1] - t[0]
    position = (t - t[0]) * (bins - 1) / span if span > 0 else np.zeros_like(t)
    lower = np.floor(position).astype(np.int64)
    value = 2.0 * events.p.astype(np.float64) - 1.0
    if events.x.dtype.kind != "f" and events.y.dtype.kind != "f":
        # integer pixels: two np.add.at passes (lower and upper bin), as the E2VID numpy code
        x, y = events.x.astype(np.int64), events.y.astype(np.int64)
        weight = position - lower
        np.add.at(out, (lower, y, x), (value * (1.0 - weight)).astype(np.float32))
        upper = lower + 1 < bins
        np.add.at(out, (lower[upper] + 1, y[upper], x[upper]), (value * weight)[upper].astype(np.float32))
        return _normalize(out) if normalize else out
    x, y = events.x.astype(np.float64), events.y.astype(np.float64)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    for db in (0, 1):
        b = lower + db
        w_t = 1.0 - np.abs(b - position)
        for dy in (0, 1):
            for dx in (0, 1):
                xx, yy = x0 + dx, y0 + dy
                w = value * w_t * (1.0 - np.abs(xx - x)) * (1.0 - np.abs(yy - y))
                keep = (b < bins) & (xx < width) & (yy < height) & (w != 0)
                np.add.at(out, (b[keep], yy[keep], xx[keep]), w[keep].astype(np.float32))
    return _normalize(out) if normalize else out


def _normalize(out: np.ndarray) -> np.ndarray:
    nonzero = out != 0
    if nonzero.any():
        mean = out[nonzero].mean(dtype=np.float64)
        std = out[nonzero].std(dtype=np.float64)
        if std > 0:
            out[nonzero] = ((out[nonzero] - mean) / std).astype(np.float32)
    return out


def histogram(events: EventArray) -> np.ndarray:
    height, width = events.sensor_size
    out = np.zeros((2, height, width), np.float32)
    np.add.at(out, (events.p.astype(np.int64), events.y.astype(np.int64), events.x.astype(np.int64)), 1.0)
    return out
