"""Fused numba loops behind the event representations: one pass over the events, writing
straight into the output grid. Plain-numpy references live in the tests and benchmarks.

All kernels take x, y (uint16 or float32), t (int64 µs), p (int8 0/1), sorted by t.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def tencode_hwc(x, y, t, p, t_first, inv_span, out):
    """out (H, W, 3) float32 = (p, 1 - t_n, 1 - p) of the last event per pixel, in time order.
    t_n = (t - t_first) * inv_span. Fractional coordinates are truncated, as the official code."""
    for i in range(t.shape[0]):
        xi = int(x[i])
        yi = int(y[i])
        pol = np.float32(p[i])
        out[yi, xi, 0] = pol
        out[yi, xi, 1] = np.float32(1.0 - (t[i] - t_first) * inv_span)
        out[yi, xi, 2] = np.float32(1.0) - pol


@numba.njit(cache=True, nogil=True, parallel=True)
def voxel_integer(x, y, t, p, t_first, span, width, bins, partial):
    """Voxel accumulation for integer coordinates, split over threads.

    partial: (chunks, (bins + 1) * H * W) float32 scratch (any content: each chunk zeroes its own
    row first); chunk c accumulates events [c n / chunks, (c + 1) n / chunks) into partial[c]. The
    extra plane takes the zero-weight spill of the last bin, so the loop has no branch. The bin
    position is ((t - t_first) (bins - 1)) / span, multiplied before dividing as the official code
    does, so an event on a bin boundary puts exactly 0 into the next bin. `reduce_planes` sums the
    chunks.
    """
    chunks = partial.shape[0]
    plane = partial.shape[1] // (bins + 1)
    n = t.shape[0]
    steps = bins - 1
    for c in numba.prange(chunks):
        grid = partial[c]
        grid[:] = 0.0
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            position = np.float64((t[i] - t_first) * steps) / span
            lower = np.int64(position)
            weight = np.float32(position - lower)
            value = np.float32(2 * p[i] - 1)
            k = lower * plane + np.int64(y[i]) * width + np.int64(x[i])
            grid[k] += value - value * weight
            grid[k + plane] += value * weight


@numba.njit(cache=True, nogil=True, parallel=True)
def reduce_planes(partial, out, workers):
    """out (size,) = sum over chunks of partial[:, :size], in parallel over pixel ranges.
    Returns (count, sum, sum of squares) of the non-zero values, for the normalisation."""
    chunks = partial.shape[0]
    size = out.shape[0]
    counts = np.zeros(workers, np.int64)
    sums = np.zeros(workers, np.float64)
    squares = np.zeros(workers, np.float64)
    for w in numba.prange(workers):
        count = 0
        total = 0.0
        square = 0.0
        for j in range(w * size // workers, (w + 1) * size // workers):
            value = partial[0, j]
            for c in range(1, chunks):
                value += partial[c, j]
            out[j] = value
            if value != 0:
                count += 1
                total += value
                square += value * value
        counts[w] = count
        sums[w] = total
        squares[w] = square
    return counts.sum(), sums.sum(), squares.sum()


@numba.njit(cache=True, nogil=True, parallel=True)
def standardize_nonzero(flat, mean, inv_std, workers):
    """In place over the non-zero values: (v - mean) * inv_std."""
    size = flat.shape[0]
    for w in numba.prange(workers):
        for j in range(w * size // workers, (w + 1) * size // workers):
            if flat[j] != 0:
                flat[j] = np.float32((flat[j] - mean) * inv_std)


@numba.njit(cache=True, nogil=True)
def voxel_bilinear(x, y, t, p, t_first, scale, out):
    """As `voxel_integer` for fractional coordinates: bilinear over the 4 neighbouring pixels too."""
    bins, height, width = out.shape
    for i in range(t.shape[0]):
        position = (t[i] - t_first) * scale
        lower = int(position)
        wt = position - lower
        value = 2.0 * p[i] - 1.0
        x0 = int(np.floor(x[i]))
        y0 = int(np.floor(y[i]))
        wx = x[i] - x0
        wy = y[i] - y0
        for db in range(2):
            b = lower + db
            if b >= bins:
                continue
            w_b = wt if db else 1.0 - wt
            for dy in range(2):
                yy = y0 + dy
                if yy < 0 or yy >= height:
                    continue
                w_y = wy if dy else 1.0 - wy
                for dx in range(2):
                    xx = x0 + dx
                    if xx < 0 or xx >= width:
                        continue
                    w_x = wx if dx else 1.0 - wx
                    out[b, yy, xx] += np.float32(value * w_b * w_y * w_x)


@numba.njit(cache=True, nogil=True)
def normalize_nonzero(grid):
    """In place: (v - mean) / std over the non-zero values (population std), zeros stay zero;
    left unchanged when std is 0 (as E2Depth's loader)."""
    flat = grid.reshape(-1)
    count = 0
    total = 0.0
    squares = 0.0
    for i in range(flat.shape[0]):
        v = flat[i]
        if v != 0:
            count += 1
            total += v
            squares += v * v
    if count == 0:
        return
    mean = total / count
    variance = squares / count - mean * mean
    if variance <= 0:
        return
    inv_std = 1.0 / np.sqrt(variance)
    for i in range(flat.shape[0]):
        if flat[i] != 0:
            flat[i] = np.float32((flat[i] - mean) * inv_std)


@numba.njit(cache=True, nogil=True)
def histogram(x, y, p, out):
    """out (2, H, W) float32 += 1 per event at [p, y, x] (channel 0 negative, 1 positive)."""
    for i in range(x.shape[0]):
        out[p[i], int(y[i]), int(x[i])] += 1.0


@numba.njit(cache=True, nogil=True)
def last_timestamp(x, y, t, p, out):
    """out (2, H, W) int64: timestamp of the last event per polarity and pixel (left as is where
    no event fell)."""
    for i in range(t.shape[0]):
        out[p[i], int(y[i]), int(x[i])] = t[i]
