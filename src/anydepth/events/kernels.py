"""Fused numba loops behind the event representations. Plain-numpy references live in
the tests (`tests/support/reference.py`), which compare the two.

All kernels take x, y (uint16 or float32), t (int64 µs), p (int8 0/1), sorted by t. Each exists
once as a loop over a range (`_..._range`), called by a serial kernel (streaming windows: no
thread start-up, which costs milliseconds on a loaded machine) and by a `parallel=True` kernel
that splits the events into chunks, each with its own scratch, merged in a pass over the pixels
on the calling thread (a few milliseconds of streaming: less than a second parallel region, whose
thread wake-up costs more on a busy machine).

Scratch conventions (the buffers are reused across calls by `representations`):
- last-event tables are int32 (chunks, size) and hold -1 everywhere between calls: the per-event
  pass writes event indices (or Tencode's stamps 2 (t - t_first) + p), the pixel pass reads them
  and puts -1 back, so no call fills them;
- voxel pairs are float32 (chunks, bins, 2 H W) and hold 0 everywhere between calls: per chunk and
  lower bin, the lower- and upper-bin contributions of a pixel side by side (one cache line per
  event); the merges (each chunk's own output bins on its thread, then the bins several chunks
  feed on the calling thread) read them tile by tile and write the zeros back.
"""

from __future__ import annotations

import numba
import numpy as np


# ---- last event per pixel: Tencode and the time surface ---------------------------------------
@numba.njit(cache=True, nogil=True, inline="always")
def _last_index_range(x, y, p, width, plane, start, stop, last):
    xs, ys, ps = x[start:stop], y[start:stop], p[start:stop]  # indexed from 0: no wraparound checks
    for j in range(xs.shape[0]):
        last[np.uint64(ps[j]) * np.uint64(plane) + np.uint64(ys[j]) * np.uint64(width) + np.uint64(xs[j])] = start + j


@numba.njit(cache=True, nogil=True, parallel=True)
def last_index_chunks(x, y, p, width, plane, last):
    """last (chunks, size) int32, all -1 on entry: last[c, p * plane + y * width + x] = index of the
    last event there among chunk c's events [c n / chunks, (c + 1) n / chunks) (plane 0: polarity
    ignored, as Tencode)."""
    chunks = last.shape[0]
    n = x.shape[0]
    for c in numba.prange(chunks):
        _last_index_range(x, y, p, width, plane, c * n // chunks, (c + 1) * n // chunks, last[c])


@numba.njit(cache=True, nogil=True, inline="always")
def _take_last(last, j):
    """The latest chunk's event index at j (-1 if none), and -1 written back to every chunk."""
    chosen = np.int32(-1)
    for c in range(last.shape[0] - 1, -1, -1):
        if chosen < 0:
            chosen = last[c, j]
        last[c, j] = -1
    return chosen


@numba.njit(cache=True, nogil=True, inline="always")
def _tencode_range(t, p, t_first, span, last, out, start, stop):
    for j in range(start, stop):
        i = _take_last(last, j)
        if i >= 0:
            polarity = np.float32(p[i])
            out[0, j] = polarity
            out[1, j] = np.float32(1.0 - (t[i] - t_first) / span)
            out[2, j] = np.float32(1.0) - polarity
        else:
            out[0, j] = 0.0
            out[1, j] = 0.0
            out[2, j] = 0.0


@numba.njit(cache=True, nogil=True)
def tencode_pixels(t, p, t_first, span, last, out):
    """out (3, H * W) float32 = (p, 1 - t_n, 1 - p) of the event in `last` per pixel, 0 where
    none; t_n = (t - t_first) / span in float64 per pixel, as the reference. Resets `last`."""
    _tencode_range(t, p, t_first, span, last, out, 0, out.shape[1])


# Tencode's stamps: 2 (t - t_first) + p per event, so the pixel pass reads everything it needs from
# the table (no random reads of t and p). An int32 holds them while t - t_first < 2^30 µs (17.9 min).
STAMP_LIMIT_US = 1 << 30
STAMP_TILE = 4096  # pixels per step of `tencode_stamp_pixels`: its table rows and output stay in L1 / L2


@numba.njit(cache=True, nogil=True, inline="always")
def _stamp_range(x, y, t, p, t_first, width, start, stop, last):
    xs, ys, ts, ps = x[start:stop], y[start:stop], t[start:stop], p[start:stop]  # indexed from 0
    for j in range(xs.shape[0]):
        last[np.uint32(ys[j]) * np.uint32(width) + np.uint32(xs[j])] = np.int32(((ts[j] - t_first) << 1) | np.int64(ps[j]))


@numba.njit(cache=True, nogil=True, parallel=True)
def tencode_stamp_chunks(x, y, t, p, t_first, width, last):
    """last (chunks, H W) int32, all -1 on entry: last[c, y * width + x] = 2 (t - t_first) + p of the
    last event there among chunk c's events [c n / chunks, (c + 1) n / chunks) (p 0 or 1). Needs
    t - t_first < STAMP_LIMIT_US (else the stamps overflow: use `last_index_chunks`)."""
    chunks = last.shape[0]
    n = x.shape[0]
    for c in numba.prange(chunks):
        _stamp_range(x, y, t, p, t_first, width, c * n // chunks, (c + 1) * n // chunks, last[c])


@numba.njit(cache=True, nogil=True, inline="always")
def _tencode_stamp_tile(last, span, out, j0, j1):
    """Pixels [j0, j1): the latest chunk's stamp (branch-free select), decoded; then -1 written back."""
    chunks = last.shape[0]
    for j in range(j0, j1):
        stamp = last[chunks - 1, j]
        for c in range(chunks - 2, -1, -1):
            other = last[c, j]
            stamp = stamp if stamp >= 0 else other
        hit = stamp >= 0
        polarity = np.float32(stamp & 1)
        green = np.float32(1.0 - np.float64(stamp >> 1) / span)
        out[0, j] = polarity if hit else np.float32(0)
        out[1, j] = green if hit else np.float32(0)
        out[2, j] = (np.float32(1) - polarity) if hit else np.float32(0)
    for c in range(chunks):
        last[c, j0:j1] = -1


@numba.njit(cache=True, nogil=True)
def tencode_stamp_pixels(last, span, out):
    """out (3, H W) float32 = (p, 1 - t_n, 1 - p) of the latest stamp per pixel in `last`, 0 where
    none; t_n = (t - t_first) / span in float64, as the reference. Resets `last`, tile by tile."""
    size = out.shape[1]
    for j0 in range(0, size, STAMP_TILE):
        _tencode_stamp_tile(last, span, out, j0, min(j0 + STAMP_TILE, size))


@numba.njit(cache=True, nogil=True, inline="always")
def _time_surface_range(t, t_ref, inv_tau, last, out, start, stop):
    for j in range(start, stop):
        i = _take_last(last, j)
        if i >= 0:
            out[j] = np.exp(np.float32(t[i] - t_ref) * inv_tau)
        else:
            out[j] = 0.0


@numba.njit(cache=True, nogil=True)
def time_surface_pixels(t, t_ref, inv_tau, last, out):
    """out (2 H W) float32 = exp((t - t_ref) * inv_tau) of the event in `last`, 0 where none.
    Resets `last`."""
    _time_surface_range(t, t_ref, inv_tau, last, out, 0, out.shape[0])


@numba.njit(cache=True, nogil=True)
def tencode_serial(x, y, t, p, t_first, span, width, out):
    """One thread, for streaming windows: out (3, H * W) float32 zeroed; every event writes its
    pixel, so the last one in time order wins (no index table, no pixel pass). t_n = (t - t_first)
    / span in float64, bit-identical to the reference."""
    for i in range(t.shape[0]):
        k = np.int64(y[i]) * width + np.int64(x[i])
        polarity = np.float32(p[i])
        out[0, k] = polarity
        out[1, k] = np.float32(1.0 - (t[i] - t_first) / span)
        out[2, k] = np.float32(1.0) - polarity


@numba.njit(cache=True, nogil=True)
def time_surface_serial(x, y, t, p, t_ref, inv_tau, width, out):
    """One thread, for streaming windows: out (2, H * W) float32 zeroed. Events newest first;
    the first to reach a pixel (the last in time order) writes exp((t - t_ref) * inv_tau) > 0,
    later ones see a non-zero value and skip, so exp runs once per touched pixel. (Where exp
    underflows to 0, older events also give 0: the same surface.)"""
    for i in range(t.shape[0] - 1, -1, -1):
        polarity = np.int64(p[i])
        k = np.int64(y[i]) * width + np.int64(x[i])
        if out[polarity, k] == 0:
            out[polarity, k] = np.exp(np.float32(t[i] - t_ref) * inv_tau)


# ---- voxel grid ----------------------------------------------------------------------------------
# Time is sorted, so the events whose position (t - t_first) (B - 1) / span has lower bin b form one
# index range [starts[b], starts[b + 1]) (found by binary search on integer thresholds): within it
# the bin is a constant and each event only needs its weight. Events are handled in blocks: a
# vectorised pass computes the pixel and both contributions of a block (the reference's float64
# operations, rounded to float32 as it does), then a scalar loop scatters them.
VOXEL_BLOCK = 512


@numba.njit(cache=True, nogil=True)
def voxel_bin_starts(t, t_first, span, bins):
    """(bins + 1,) int64: events [starts[b], starts[b + 1]) have lower bin b, i.e. (t - t_first)
    (bins - 1) in [b span, (b + 1) span); the last range holds the events at t_first + span (weight
    0). Integer thresholds, so an event on a bin boundary gets weight exactly 0."""
    steps = bins - 1
    starts = np.empty(bins + 1, np.int64)
    starts[0] = 0
    for b in range(1, bins):
        starts[b] = np.searchsorted(t, t_first + (b * span + steps - 1) // steps)
    starts[bins] = t.shape[0]
    return starts


@numba.njit(cache=True, nogil=True, inline="always")
def _voxel_block(xs, ys, ts, ps, t_first, steps, b, span, width, pixel, low, high):
    """One block of events of lower bin b (vectorised; slices index from 0, so no wraparound
    checks): pixel index, float32((2p - 1)(1 - w)) and float32((2p - 1) w) with w = (t - t_first)
    steps / span - b in float64 (span float64), the reference's operations bit for bit: t - t_first
    is exact in float64 (below 2^53), so float64(t - t_first) * steps rounds once as the reference's
    product does; 2p - 1 is +-1, so its product is a sign, applied after the float32 rounding
    (which is symmetric). Float products and a sign select instead of 64-bit integer multiplies:
    about 8 % less time per block."""
    fsteps = np.float64(steps)
    fb = np.float64(b)
    for j in range(xs.shape[0]):
        weight = np.float64(ts[j] - t_first) * fsteps / span - fb
        negative = ps[j] == 0
        pixel[j] = np.uint32(ys[j]) * np.uint32(width) + np.uint32(xs[j])
        below = np.float32(1.0 - weight)
        above = np.float32(weight)
        low[j] = -below if negative else below
        high[j] = -above if negative else above


@numba.njit(cache=True, nogil=True, inline="always")
def _voxel_range(x, y, t, p, t_first, span, steps, width, b, start, stop, lower, upper):
    """Events [start, stop), all of lower bin b, in order: lower[pixel] += (2p - 1)(1 - w),
    upper[pixel] += (2p - 1) w (any 1-D float32 views: planes or the halves of interleaved pairs)."""
    pixel = np.empty(VOXEL_BLOCK, np.uint32)
    low = np.empty(VOXEL_BLOCK, np.float32)
    high = np.empty(VOXEL_BLOCK, np.float32)
    for s in range(start, stop, VOXEL_BLOCK):
        e = min(s + VOXEL_BLOCK, stop)
        _voxel_block(x[s:e], y[s:e], t[s:e], p[s:e], t_first, steps, b, np.float64(span), width, pixel, low, high)
        for j in range(e - s):
            k = pixel[j]
            lower[k] += low[j]
            upper[k] += high[j]


@numba.njit(cache=True, nogil=True)
def voxel_planes(x, y, t, p, t_first, span, width, out):
    """Integer coordinates, one thread: out (bins, H * W) float32 zeroed, += (2p - 1)(1 - w) at the
    lower bin and (2p - 1) w at the next (w = 0 exactly for the last events, which add that 0 to
    their own bin). Bins from the last to the first, so each voxel sums its lower-bin contributions
    in time order, then its upper-bin ones: the order of the reference's two `np.add.at` passes,
    hence the same float32 sums bit for bit."""
    bins = out.shape[0]
    steps = bins - 1
    starts = voxel_bin_starts(t, t_first, span, bins)
    for b in range(steps, -1, -1):
        _voxel_range(x, y, t, p, t_first, span, steps, width, b, starts[b], starts[b + 1], out[b], out[min(b + 1, steps)])


@numba.njit(cache=True, nogil=True)
def voxel_chunk_bounds(starts, chunks):
    """(chunks + 1,) int64: chunk c takes events [bounds[c], bounds[c + 1]), about n / chunks each;
    an inner bound within n / (256 chunks) events of a bin start moves onto it (else one chunk
    reaches a few events into the next bin range: a whole pair plane filled, merged and cleared
    for them). starts: `voxel_bin_starts`."""
    bins = starts.shape[0] - 1
    n = starts[bins]
    slack = n // (256 * chunks)
    bounds = np.empty(chunks + 1, np.int64)
    bounds[0], bounds[chunks] = 0, n
    for c in range(1, chunks):
        even = c * n // chunks
        bounds[c] = even
        for b in range(1, bins):
            if abs(starts[b] - even) <= slack:
                bounds[c] = starts[b]
    return bounds


@numba.njit(cache=True, nogil=True, parallel=True)
def voxel_pairs(x, y, t, p, t_first, span, width, pairs, out):
    """Integer coordinates, split over threads: pairs (chunks, bins, 2 H W) float32, all 0 on entry
    (the merges put the zeros back). Chunk c takes the events of `voxel_chunk_bounds` and, for each
    lower bin b its events reach, accumulates in pairs[c, b] at [2 pixel] the lower-bin and at
    [2 pixel + 1] the upper-bin contributions (both in one cache line: the footprint of one bin
    range is 8 bytes per pixel). The events at t_first + span (lower bin B - 1, weight 0) join bin
    range B - 2 with weight exactly 1 (adding +-0 to bin B - 2 and their value to bin B - 1), so
    bin range B - 1 stays empty.

    Then, still on its thread, chunk c merges the output bins of out (bins, H W) float32 that it is
    the first chunk to feed (`_merge_first`); `voxel_merge` adds the other chunks' shares on the
    calling thread. With one chunk per thread and a bound on a bin start (the usual case), one
    output bin per bound is left to it. Returns reached (chunks, bins) bool (which pairs[c, b] hold
    contributions) and moments (chunks, 3) float64: (count of non-zero values, sum, sum of squares)
    over the bins only chunk c feeds, for the normalisation."""
    chunks, bins = pairs.shape[0], pairs.shape[1]
    steps = bins - 1
    n = t.shape[0]
    starts = voxel_bin_starts(t, t_first, span, bins)
    if steps > 0:
        starts[steps] = n
    bounds = voxel_chunk_bounds(starts, chunks)
    reached = _voxel_reached(starts, bounds)
    first, feeders = voxel_feeds(reached)
    moments = np.zeros((chunks, 3))
    for c in numba.prange(chunks):
        for b in range(bins):
            start, stop = max(starts[b], bounds[c]), min(starts[b + 1], bounds[c + 1])
            if start < stop:
                pair = pairs[c, b]
                _voxel_range(x, y, t, p, t_first, span, steps, width, b, start, stop, pair[0::2], pair[1::2])
        count, total, square = _merge_first(pairs, reached, first, feeders, c, out)
        moments[c, 0] = count
        moments[c, 1] = total
        moments[c, 2] = square
    return reached, moments


@numba.njit(cache=True, nogil=True)
def _voxel_reached(starts, bounds):
    """(chunks, bins) bool: whether chunk c has events of lower bin b. Computed before the
    parallel loop: writing it from inside made numba's scatter loop 20 % slower."""
    chunks, bins = bounds.shape[0] - 1, starts.shape[0] - 1
    reached = np.empty((chunks, bins), np.bool_)
    for c in range(chunks):
        for b in range(bins):
            reached[c, b] = max(starts[b], bounds[c]) < min(starts[b + 1], bounds[c + 1])
    return reached


@numba.njit(cache=True, nogil=True)
def voxel_feeds(reached):
    """Per output bin o, from reached (chunks, bins): first[o] the lowest chunk whose pairs feed o
    (-1 if none) and feeders[o] how many chunks do. pairs[c, b] feeds bin b (its lower halves) and
    bin min(b + 1, bins - 1) (its upper halves)."""
    chunks, bins = reached.shape
    first = np.full(bins, -1, np.int64)
    feeders = np.zeros(bins, np.int64)
    for c in range(chunks):
        for o in range(bins):
            fed = reached[c, o] or (o > 0 and reached[c, o - 1])
            if fed:
                feeders[o] += 1
                if first[o] < 0:
                    first[o] = c
    return first, feeders


MERGE_TILE = 4096  # pixels per step of the merges: their planes and pairs stay in L1 / L2


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _merge_first(pairs, reached, first, feeders, c, out):
    """Chunk c's part of the merge, tile by tile: every output bin o with first[o] == c becomes
    chunk c's lower halves of pairs[c, o] plus upper halves of pairs[c, o - 1] (0 where none);
    pairs whose two output bins are both first fed by c get their zeros back here (the others in
    `voxel_merge`, which still reads them). Returns the moments of the bins only c feeds."""
    bins = pairs.shape[1]
    steps = bins - 1
    size = out.shape[1]
    count, total, square = 0, 0.0, 0.0
    for j0 in range(0, size, MERGE_TILE):
        j1 = min(j0 + MERGE_TILE, size)
        for o in range(bins):
            if first[o] == c:
                out[o, j0:j1] = 0.0
        for b in range(bins):
            if reached[c, b]:
                upper = min(b + 1, steps)
                pair = pairs[c, b, 2 * j0:2 * j1]
                if first[b] == c and first[upper] == c:
                    _take_pairs(pair, out[b, j0:j1], out[upper, j0:j1])
                elif first[b] == c:
                    _add_half(pair, 0, out[b, j0:j1])
                elif first[upper] == c:
                    _add_half(pair, 1, out[upper, j0:j1])
        for o in range(bins):
            if first[o] == c and feeders[o] == 1:
                tile = _moments(out[o, j0:j1])
                count += tile[0]
                total += tile[1]
                square += tile[2]
    return count, total, square


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def voxel_merge(pairs, reached, out):
    """After `voxel_pairs`: adds to out (bins, H * W) the shares of the chunks that were not the
    first to feed an output bin (in chunk order, as `_merge_first` would have), zeroes the bins no
    chunk fed and writes 0 back into the pairs `_merge_first` left, tile by tile. Returns (count of
    non-zero values, sum, sum of squares) over the bins several chunks or none fed: with the
    moments from `voxel_pairs`, those of all of out. One thread: a short pass (one output bin per
    chunk bound), less than waking the threads again on a busy machine."""
    chunks, bins = pairs.shape[0], pairs.shape[1]
    steps = bins - 1
    size = out.shape[1]
    first, feeders = voxel_feeds(reached)
    count, total, square = 0, 0.0, 0.0
    for j0 in range(0, size, MERGE_TILE):
        j1 = min(j0 + MERGE_TILE, size)
        for o in range(bins):
            if first[o] < 0:
                out[o, j0:j1] = 0.0
        for c in range(chunks):
            for b in range(bins):
                if reached[c, b]:
                    upper = min(b + 1, steps)
                    pair = pairs[c, b, 2 * j0:2 * j1]
                    if first[b] != c and first[upper] != c:
                        _take_pairs(pair, out[b, j0:j1], out[upper, j0:j1])
                    elif first[b] != c:
                        _add_half(pair, 0, out[b, j0:j1])
                        pair[:] = 0.0
                    elif first[upper] != c:
                        _add_half(pair, 1, out[upper, j0:j1])
                        pair[:] = 0.0
        for o in range(bins):
            if feeders[o] != 1:
                tile = _moments(out[o, j0:j1])
                count += tile[0]
                total += tile[1]
                square += tile[2]
    return count, total, square


@numba.njit(cache=True, nogil=True, inline="always")
def _take_pairs(pair, lower, upper):
    """lower += pair[0::2], upper += pair[1::2], then pair = 0 (contiguous 1-D arrays indexed from
    0: vectorised)."""
    for j in range(lower.shape[0]):
        lower[j] += pair[2 * j]
        upper[j] += pair[2 * j + 1]
    pair[:] = 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _add_half(pair, half, target):
    """target += pair[half::2] (half 0: the lower-bin halves, 1: the upper-bin ones)."""
    for j in range(target.shape[0]):
        target[j] += pair[2 * j + half]


@numba.njit(cache=True, nogil=True, inline="always")
def _moments(flat):
    count = 0
    total = 0.0
    square = 0.0
    for j in range(flat.shape[0]):
        value = flat[j]
        count += value != 0
        total += value
        square += np.float64(value) * value
    return count, total, square


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def moments(flat):
    """(count of non-zero values, sum, sum of squares) of a float32 array, in float64 (zeros add
    nothing to the sums, so only the count tests; summed in SIMD lanes, hence `reassoc`)."""
    return _moments(flat)


@numba.njit(cache=True, nogil=True, inline="always")
def _standardize(flat, mean, inv_std):
    for j in range(flat.shape[0]):
        value = flat[j]
        flat[j] = (value - mean) * inv_std if value != 0 else value


@numba.njit(cache=True, nogil=True)
def standardize_nonzero(flat, mean, inv_std):
    """In place over the non-zero values: (v - mean) * inv_std (mean, inv_std float32)."""
    _standardize(flat, mean, inv_std)


@numba.njit(cache=True, nogil=True)
def voxel_bilinear(x, y, t, p, t_first, scale, out):
    """As `voxel_planes` for fractional coordinates: bilinear over the 4 neighbouring pixels too."""
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


# ---- histogram -----------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def histogram(x, y, p, out):
    """out (2, H, W) float32 += 1 per event at [p, y, x] (channel 0 negative, 1 positive)."""
    for i in range(x.shape[0]):
        out[p[i], int(y[i]), int(x[i])] += 1.0


@numba.njit(cache=True, nogil=True, parallel=True)
def histogram_chunks(x, y, p, width, counts, out):
    """Split over threads: counts (chunks, 2 H W) int32 scratch (zeroed by each chunk), pixel-major
    (both polarities of a pixel adjacent); then, on the calling thread, out (2, H W) float32 = the
    sum over chunks."""
    chunks = counts.shape[0]
    n = x.shape[0]
    for c in numba.prange(chunks):
        grid = counts[c]
        grid[:] = 0
        start, stop = c * n // chunks, (c + 1) * n // chunks
        xs, ys, ps = x[start:stop], y[start:stop], p[start:stop]
        for j in range(xs.shape[0]):
            grid[(np.uint64(ys[j]) * np.uint64(width) + np.uint64(xs[j])) * np.uint64(2) + np.uint64(ps[j])] += 1
    for j in range(out.shape[1]):
        negative = counts[0, 2 * j]
        positive = counts[0, 2 * j + 1]
        for c in range(1, chunks):
            negative += counts[c, 2 * j]
            positive += counts[c, 2 * j + 1]
        out[0, j] = negative
        out[1, j] = positive


@numba.njit(cache=True, nogil=True)
def normalize_nonzero(grid):
    """In place: (v - mean) / std over the non-zero values (population std), zeros stay zero;
    left unchanged when std is 0 (as E2Depth's loader)."""
    flat = grid.reshape(-1)
    count, total, squares = moments(flat)
    if count == 0:
        return
    mean = total / count
    variance = squares / count - mean * mean
    if variance <= 0:
        return
    standardize_nonzero(flat, np.float32(mean), np.float32(1.0 / np.sqrt(variance)))
