"""Event representations: hand-computed known answers, the official semantics, and agreement of
the fused kernels with the plain-numpy references on random streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anydepth.events import EventArray
from tests.support import reference
from anydepth.events.representations import (
    PARALLEL_MIN_EVENTS,
    from_tensors,
    histogram,
    normalize_voxel_grid,
    tencode,
    tencode_from_voxels,
    time_surface,
    voxel_grid,
)


def events_of(rows, sensor_size=(2, 3)):
    """rows of (x, y, t, p)."""
    x, y, t, p = (np.array(column) for column in zip(*rows))
    return EventArray.from_arrays(x, y, t, p, sensor_size)


def random_events(count, sensor_size=(48, 64), seed=0, duration_us=50_000):
    rng = np.random.default_rng(seed)
    height, width = sensor_size
    return EventArray.from_arrays(
        rng.integers(0, width, count), rng.integers(0, height, count),
        np.sort(rng.integers(0, duration_us, count)), rng.integers(0, 2, count), sensor_size)


def test_tencode_last_event_wins_and_time_code():
    events = events_of([(0, 0, 0, 1), (1, 0, 50, 0), (0, 0, 100, 0)])
    grid = tencode(events)
    assert grid.shape == (3, 2, 3) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid[:, 0, 0], [0, 0, 1])  # newest event (negative, t_n = 1) wins
    np.testing.assert_array_equal(grid[:, 0, 1], [0, 0.5, 1])  # t_n = 0.5
    assert grid[:, 1].sum() == 0 and grid[:, 0, 2].sum() == 0  # empty pixels stay 0
    newest_positive = tencode(events_of([(2, 1, 0, 0), (2, 1, 10, 1)]))
    np.testing.assert_array_equal(newest_positive[:, 1, 2], [1, 0, 0])  # official: (255, 0, 0) / 255


def test_tencode_degenerate_windows_are_defined():
    assert not tencode(EventArray.empty((2, 3))).any()
    one_time = tencode(events_of([(0, 0, 7, 1), (1, 1, 7, 0)]))
    assert np.isfinite(one_time).all()
    np.testing.assert_array_equal(one_time[:, 0, 0], [1, 1, 0])  # t_n = 0 -> G = 1
    np.testing.assert_array_equal(one_time[:, 1, 1], [0, 1, 1])


def test_tencode_matches_the_official_scatter_on_one_thread():
    """The official code: put_(index, value, accumulate=False) per channel, which on one CPU
    thread keeps the last write. Rebuilt here with torch to compare."""
    events = random_events(20_000, (30, 40), seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = torch.from_numpy(events.x.astype(np.int64)), torch.from_numpy(events.y.astype(np.int64))
        t = torch.from_numpy(events.t.astype(np.float64))
        pol = torch.from_numpy(events.p.astype(np.float32))
        t_norm = (t - t[0]) / (t[-1] - t[0])
        official = torch.zeros(3, 30, 40)
        base = y * 40 + x
        official.put_(base, 255.0 * pol, accumulate=False)
        official.put_(base + 1200, (255.0 * (1 - t_norm)).float(), accumulate=False)
        official.put_(base + 2400, 255.0 * (1 - pol), accumulate=False)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(tencode(events) * 255.0, official.numpy(), atol=1e-4)
    np.testing.assert_allclose(tencode(events), reference.tencode(events), atol=1e-7)


def test_voxel_grid_b_minus_1_convention_known_answer():
    # span 100 us, 5 bins: t -> 4 t / 100; t = 25 is exactly bin 1, t = 30 is 1.2
    events = events_of([(0, 0, 0, 1), (1, 0, 25, 0), (2, 0, 30, 1), (2, 1, 100, 1)])
    grid = voxel_grid(events, bins=5, normalize=False)
    expected = np.zeros((5, 2, 3), np.float32)
    expected[0, 0, 0] = 1.0
    expected[1, 0, 1] = -1.0  # on the boundary: nothing in bin 2
    expected[1, 0, 2], expected[2, 0, 2] = 0.8, 0.2
    expected[4, 1, 2] = 1.0  # the last event sits in bin B - 1 with its full weight
    np.testing.assert_allclose(grid, expected, atol=1e-6)
    assert (grid[2, 0, 1] == 0.0) and np.count_nonzero(grid) == 5


def test_voxel_grid_keeps_the_mass_of_every_event():
    events = random_events(5_000, seed=2)
    grid = voxel_grid(events, bins=5, normalize=False)
    assert grid.sum() == pytest.approx(float((2 * events.p.astype(int) - 1).sum()), abs=1e-2)
    assert np.abs(grid).sum() <= len(events) + 1e-2


def test_voxel_grid_several_events_on_one_pixel_accumulate():
    events = events_of([(1, 1, 0, 1), (1, 1, 0, 1), (1, 1, 40, 0), (0, 0, 40, 1)])
    grid = voxel_grid(events, bins=3, normalize=False)
    assert grid[0, 1, 1] == 2.0 and grid[2, 1, 1] == -1.0 and grid[2, 0, 0] == 1.0


def test_voxel_normalisation_known_answer():
    events = events_of([(0, 0, 0, 1), (0, 0, 1, 1), (1, 0, 1, 0)])  # bins=2: t -> t / 1
    raw = voxel_grid(events, bins=2, normalize=False)
    # non-zero voxels: [0,0,0] = 1, [1,0,0] = 1, [1,0,1] = -1: mean 1/3, population std sqrt(8/9)
    mean, std = 1 / 3, math.sqrt(8 / 9)
    normalized = voxel_grid(events, bins=2, normalize=True)
    np.testing.assert_allclose(normalized[raw != 0], (raw[raw != 0] - mean) / std, rtol=1e-6)
    assert (normalized[raw == 0] == 0).all()
    np.testing.assert_allclose(normalize_voxel_grid(raw), normalized, rtol=1e-6)
    single = voxel_grid(events_of([(0, 0, 5, 1)]), bins=5)  # std 0: left as is, no NaN
    assert single[0, 0, 0] == 1.0 and np.isfinite(single).all()


def test_voxel_grid_degenerate_windows():
    assert not voxel_grid(EventArray.empty((2, 3))).any()
    same_time = voxel_grid(events_of([(0, 0, 9, 1), (1, 0, 9, 0)]), bins=5, normalize=False)
    assert same_time[0, 0, 0] == 1.0 and same_time[0, 0, 1] == -1.0 and np.abs(same_time[1:]).sum() == 0


def test_voxel_grid_bilinear_in_space_for_fractional_coordinates():
    events = EventArray.from_arrays(np.array([0.5, 2.0]), np.array([0.25, 1.0]), np.array([0, 10]), np.array([1, 1]), (2, 3))
    assert events.x.dtype == np.float32
    grid = voxel_grid(events, bins=2, normalize=False)
    np.testing.assert_allclose(grid[0], [[0.375, 0.375, 0], [0.125, 0.125, 0]], atol=1e-6)
    np.testing.assert_allclose(grid[1], [[0, 0, 0], [0, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(grid, reference.voxel_grid(events, bins=2, normalize=False), atol=1e-6)


@pytest.mark.parametrize("count", [3_000, PARALLEL_MIN_EVENTS + 1_000])
def test_voxel_grid_matches_the_numpy_reference(count):
    events = random_events(count, (40, 50), seed=3)
    for normalize in (False, True):
        np.testing.assert_allclose(voxel_grid(events, 5, normalize), reference.voxel_grid(events, 5, normalize), atol=2e-4)


def test_histogram_and_clip():
    events = events_of([(0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 2, 0), (2, 1, 3, 0)])
    counts = histogram(events)
    assert counts[1, 0, 0] == 2 and counts[0, 0, 0] == 1 and counts[0, 1, 2] == 1 and counts.sum() == 4
    assert histogram(events, clip=1.0)[1, 0, 0] == 1.0
    np.testing.assert_array_equal(histogram(random_events(2_000, seed=4)), reference.histogram(random_events(2_000, seed=4)))


def test_time_surface_decay():
    events = events_of([(0, 0, 0, 1), (1, 0, 1_000, 0), (0, 0, 2_000, 1)])
    surface = time_surface(events, tau_us=1_000.0, t_ref_us=3_000)
    assert surface[1, 0, 0] == pytest.approx(math.exp(-1.0))  # last positive event at 2000
    assert surface[0, 0, 1] == pytest.approx(math.exp(-2.0))
    assert surface[0, 0, 0] == 0 and surface[:, 1].sum() == 0


def test_tencode_from_voxels_official_semantics():
    voxels = np.zeros((5, 1, 3), np.float32)
    voxels[0, 0, 0] = 0.4  # positive in the first bin: (1, 1, 0)
    voxels[1, 0, 1], voxels[3, 0, 1] = 1.0, -2.0  # later negative bin overwrites: (0, 0.25, 1)
    grid = tencode_from_voxels(voxels)
    np.testing.assert_allclose(grid[:, 0, 0], [1, 1, 0])
    np.testing.assert_allclose(grid[:, 0, 1], [0, 0.25, 1])
    assert grid[:, 0, 2].sum() == 0


def test_torch_in_and_out():
    events = random_events(1_000, seed=5)
    tensors = [torch.from_numpy(a.astype(np.int64)) for a in (events.x, events.y, events.t, events.p)]
    grid = from_tensors(*tensors, sensor_size=events.sensor_size, representation="voxel", bins=5)
    assert isinstance(grid, torch.Tensor) and grid.shape == (5, 48, 64)
    np.testing.assert_allclose(grid.numpy(), voxel_grid(events, 5), atol=1e-6)


def time_surface_reference(events, tau_us, t_ref_us):
    """Plain numpy: the last timestamp per polarity and pixel by np.maximum.at over event indices."""
    height, width = events.sensor_size
    flat = events.p.astype(np.int64) * height * width + events.y.astype(np.int64) * width + events.x.astype(np.int64)
    last = np.full(2 * height * width, -1, np.int64)
    np.maximum.at(last, flat, np.arange(len(events)))
    surface = np.zeros(2 * height * width, np.float32)
    hit = last >= 0
    surface[hit] = np.exp(-(t_ref_us - events.t[last[hit]]) / tau_us).astype(np.float32)
    return surface.reshape(2, height, width)


@pytest.fixture(params=["serial", "chunked"])
def kernel_path(request, monkeypatch):
    """Runs a test through the serial kernels (streaming windows) and through the chunked ones
    (large windows: PARALLEL_MIN_EVENTS lowered so a small stream takes that path)."""
    from anydepth.events import representations

    if request.param == "chunked":
        monkeypatch.setattr(representations, "PARALLEL_MIN_EVENTS", 1)
    return request.param


def test_every_kernel_path_matches_the_references(kernel_path):
    events = random_events(40_000, (30, 50), seed=6)  # ~13 events per pixel: many overwrites
    np.testing.assert_array_equal(tencode(events), reference.tencode(events))
    np.testing.assert_array_equal(histogram(events), reference.histogram(events))
    np.testing.assert_allclose(time_surface(events, 20_000.0, int(events.t[-1]) + 5),
                               time_surface_reference(events, 20_000.0, int(events.t[-1]) + 5), rtol=1e-6, atol=0)
    for normalize in (False, True):
        np.testing.assert_allclose(voxel_grid(events, 5, normalize), reference.voxel_grid(events, 5, normalize), atol=2e-4)
    if kernel_path == "serial":  # the reference's float64 weights and float32 summation order: equal
        np.testing.assert_array_equal(voxel_grid(events, 5, False), reference.voxel_grid(events, 5, False))
        np.testing.assert_array_equal(voxel_grid(events, 3, False), reference.voxel_grid(events, 3, False))
    # calls reuse their scratch: a second, different window must not see the first one
    other = random_events(3_000, (30, 50), seed=7)
    np.testing.assert_array_equal(tencode(other), reference.tencode(other))
    for bins in (5, 3):
        np.testing.assert_allclose(voxel_grid(other, bins, False), reference.voxel_grid(other, bins, False), atol=2e-4)
    np.testing.assert_allclose(time_surface(other, 20_000.0, int(other.t[-1])),
                               time_surface_reference(other, 20_000.0, int(other.t[-1])), rtol=1e-6, atol=0)


def test_voxel_bin_boundaries_without_division(kernel_path):
    """Positions exactly on bin boundaries put nothing into the next bin on every path, also for
    spans that are not powers of two and windows longer than float32 can count in microseconds."""
    span = 3 * 7 * 1_000_003  # 21 s: beyond 2^24 µs
    t = np.array([0, span // 3, 2 * span // 3, span - 1, span])  # bins=4: positions 0, 1, 2, ~3, 3
    events = EventArray.from_arrays(np.arange(5), np.zeros(5, int), t, np.ones(5, int), (1, 5))
    grid = voxel_grid(events, bins=4, normalize=False)
    np.testing.assert_allclose(grid, reference.voxel_grid(events, bins=4, normalize=False), atol=1e-6)
    assert grid[1, 0, 1] == 1.0 and grid[2, 0, 1] == 0.0 and grid[2, 0, 2] == 1.0 and grid[3, 0, 2] == 0.0


@pytest.mark.parametrize("span", [0, 1, 40_000, (1 << 30) - 1, 1 << 30, (1 << 31) + 12_345])
def test_tencode_on_both_sides_of_the_stamp_limit(kernel_path, span):
    """The chunked path stores 2 (t - t_first) + p per pixel in int32 while the window is shorter
    than 2^30 µs and falls back to event indices beyond: equal to the reference on both sides (a
    single timestamp too). The newest events sit at t_first + span, positive, so a stamp that
    overflowed would lose them."""
    events = random_events(6_000, (20, 30), seed=8)
    t = np.sort(np.random.default_rng(8).integers(0, span + 1, len(events)))
    t[0], t[-50:] = 0, span
    t += 5_000
    p = events.p.copy()
    p[-50:] = 1
    events = EventArray.from_arrays(events.x, events.y, t, p, events.sensor_size)
    assert int(events.t[-1] - events.t[0]) == span
    np.testing.assert_array_equal(tencode(events), reference.tencode(events))
    single = EventArray.from_arrays(events.x[:1], events.y[:1], events.t[-1:], events.p[-1:], events.sensor_size)
    np.testing.assert_array_equal(tencode(single), reference.tencode(single))


def test_tencode_stamp_and_index_kernels_agree():
    """The two chunked kernels on the same window (within the stamp limit), several chunks, their
    tables back to -1 afterwards."""
    from anydepth.events import kernels

    events = random_events(50_000, (30, 50), seed=9)
    t_first, span, width = int(events.t[0]), float(events.t[-1] - events.t[0]), 50
    grids = []
    for chunks in (1, 3):
        for stamped in (True, False):
            last = np.full((chunks, 30 * 50), -1, np.int32)
            grid = np.full((3, 30 * 50), np.nan, np.float32)
            if stamped:
                kernels.tencode_stamp_chunks(events.x, events.y, events.t, events.p, t_first, width, last)
                kernels.tencode_stamp_pixels(last, span, grid)
            else:
                kernels.last_index_chunks(events.x, events.y, events.p, width, 0, last)
                kernels.tencode_pixels(events.t, events.p, t_first, span, last, grid)
            assert (last == -1).all()
            grids.append(grid)
    for grid in grids[1:]:
        np.testing.assert_array_equal(grid, grids[0])
    np.testing.assert_array_equal(grids[0].reshape(3, 30, 50), reference.tencode(events))


@pytest.mark.parametrize("bins", [1, 2, 5])
def test_voxel_grid_with_many_events_at_the_last_timestamp(kernel_path, bins):
    """A third of the events at t_last (lower bin B - 1, weight 0: the chunked path counts them in
    bin range B - 2 with weight 1) and a chunk bound that falls near a bin start."""
    events = random_events(30_000, (30, 50), seed=10)
    t = events.t.copy()
    t[-10_000:] = t[-1]
    events = EventArray.from_arrays(events.x, events.y, t, events.p, events.sensor_size)
    for normalize in (False, True):
        np.testing.assert_allclose(voxel_grid(events, bins, normalize), reference.voxel_grid(events, bins, normalize), atol=2e-4)
    if kernel_path == "serial":
        np.testing.assert_array_equal(voxel_grid(events, bins, False), reference.voxel_grid(events, bins, False))


def test_voxel_chunk_bounds_snap_to_nearby_bin_starts():
    from anydepth.events import kernels

    starts = np.array([0, 2_490, 5_003, 7_400, 10_000])  # n = 10,000; slack n / (256 * 2) = 19
    np.testing.assert_array_equal(kernels.voxel_chunk_bounds(starts, 2), [0, 5_003, 10_000])
    np.testing.assert_array_equal(kernels.voxel_chunk_bounds(starts, 4), [0, 2_500, 5_003, 7_500, 10_000])
    edge = np.array([0, 3, 9_998, 10_000])  # bin starts near the outer bounds never move them
    np.testing.assert_array_equal(kernels.voxel_chunk_bounds(edge, 2), [0, 5_000, 10_000])


@pytest.mark.parametrize("chunks", [1, 2, 3, 5])
def test_voxel_chunks_merge_on_their_threads_and_leave_zeroed_pairs(chunks):
    """voxel_pairs merges the output bins each chunk is first to feed, voxel_merge the shares of
    the others (several chunks per bin when bounds fall inside bin ranges): together the
    reference grid and its moments, with every pair back to 0."""
    from anydepth.events import kernels

    events = random_events(20_000, (30, 50), seed=11)
    bins, width = 3, 50
    t_first, span = int(events.t[0]), int(events.t[-1] - events.t[0])
    pairs = np.zeros((chunks, bins, 2 * 30 * 50), np.float32)
    out = np.full((bins, 30 * 50), np.nan, np.float32)
    reached, moments = kernels.voxel_pairs(events.x, events.y, events.t, events.p, t_first, span, width, pairs, out)
    count, total, squares = np.add(kernels.voxel_merge(pairs, reached, out), moments.sum(axis=0))
    assert not pairs.any()
    np.testing.assert_allclose(out.reshape(bins, 30, 50), reference.voxel_grid(events, bins, False), atol=2e-4)
    nonzero = out[out != 0].astype(np.float64)
    assert count == nonzero.size
    np.testing.assert_allclose([total, squares], [nonzero.sum(), (nonzero ** 2).sum()], rtol=1e-9)
    first, feeders = kernels.voxel_feeds(reached)  # bin 1: upper halves of range 0, lower ones of range 1
    assert first[1] == 0 and feeders[1] == chunks
