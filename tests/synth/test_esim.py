"""The ESIM-style event simulator against known answers.

(a) a vertical edge of log contrast Δ moving at constant speed, frames at 1 kHz: each pixel it
    passes emits floor(Δ / C) events of the edge's polarity, at the times the edge's box-filtered
    profile reaches each level (exact when the profile's kinks fall on frames, within one frame
    interval otherwise), and nothing else;
(b) a uniform ramp log I = L0 + a t: an event every C / a seconds at every pixel;
(c) the refractory period drops the crossings closer than it to the last emitted event;
(d) threshold mismatch: per-pixel counts floor(ΔL / C_pixel), and their mean and spread match the
    closed form over C ~ N(C, σ²);
(e) shot-noise counts are Poisson(rate x pixels x duration), leak events come at the leak rate;
(f) streaming in chunks equals one call; a seed fixes the output.
A plain per-pixel loop (ESIM's C++ loop transcribed) is the reference for random sequences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anydepth.errors import InputError
from anydepth.events.container import EventArray, concatenate
from anydepth.synth import EventSimulator, simulate_events
from anydepth.synth.esim import to_intensity

EPS = 1e-3  # log_eps of the simulator


def frames_from_log(log_levels: np.ndarray) -> np.ndarray:
    """Intensities whose log(I + EPS) is exactly `log_levels` (up to float64 rounding)."""
    return np.exp(log_levels) - EPS


# ---- (a) a moving edge ----------------------------------------------------------------------------
def moving_edge(speed_px_s: float, delta: float, rising: bool, height=3, width=64, e0=9.5, e1=49.5, rate_hz=1000):
    """Frames of a vertical edge moving right from x = e0 to e1 at `speed_px_s`, box-filtered over
    each pixel in log intensity: coverage c = clip(e - x + 0.5, 0, 1) of pixel x (centre at x).
    rising: dark (L_d) on the right becomes bright (L_d + Δ) as the edge passes, else the reverse."""
    steps = int(math.ceil((e1 - e0) / speed_px_s * rate_hz)) + 1
    times = np.arange(steps, dtype=np.int64) * (1_000_000 // rate_hz)
    x = np.arange(width, dtype=np.float64)
    base = math.log(0.1)
    frames = []
    for t in times:
        edge = min(e0 + speed_px_s * t * 1e-6, e1)
        coverage = np.clip(edge - x + 0.5, 0.0, 1.0)
        log_level = base + delta * (coverage if rising else 1.0 - coverage)
        frames.append(np.broadcast_to(frames_from_log(log_level), (height, width)))
    return np.stack(frames), times


@pytest.mark.parametrize("speed, delta, rising, tolerance_us", [
    (100.0, 0.9, True, 1),     # kinks of the pixel profiles on frames: interpolation exact, 1 µs rounding
    (100.0, 1.3, False, 1),
    (137.0, 0.9, True, 1000),  # kinks between frames: within one frame interval
])
def test_moving_edge_counts_polarity_and_times(speed, delta, rising, tolerance_us):
    threshold = 0.2
    frames, times = moving_edge(speed, delta, rising)
    events = EventSimulator(contrast_pos=threshold, contrast_neg=threshold, log_eps=EPS).simulate(frames, times)
    events.validate()
    per_level = int(math.floor(delta / threshold))  # 4 for 0.9, 6 for 1.3
    counts = np.zeros((3, 64), np.int64)
    np.add.at(counts, (events.y.astype(np.int64), events.x.astype(np.int64)), 1)
    passed = np.arange(10, 50)  # the pixels the edge crosses entirely
    assert (counts[:, passed] == per_level).all()
    assert counts.sum() == 3 * len(passed) * per_level  # no other events
    assert (events.p == (1 if rising else 0)).all()
    # level k is reached when the coverage of pixel x is kC/Δ: e(t) = x - 0.5 + kC/Δ
    for row in range(3):
        for column in passed:
            mine = events.t[(events.x == column) & (events.y == row)]
            levels = np.arange(1, per_level + 1) * threshold / delta
            expected = (column - 0.5 + levels - 9.5) / speed * 1e6
            assert np.abs(mine - expected).max() <= tolerance_us, (column, mine, expected)


# ---- (b) a uniform ramp ---------------------------------------------------------------------------------
@pytest.mark.parametrize("slope, period_us, polarity", [(10.0, 20_000, 1), (-8.0, 31_250, 0)])
def test_uniform_ramp_fires_every_c_over_a(slope, period_us, polarity):
    """log I = L0 + a t with a = 10 /s, C+ = 0.2: every pixel fires every 20 ms; a = -8 /s, C- = 0.25:
    every 31.25 ms (31250 µs)."""
    times = np.arange(0, 310_001, 1000, dtype=np.int64)  # the last level (3.0 at 300 ms) inside, not at the end
    start = math.log(0.05) if slope > 0 else math.log(0.9)
    log_levels = start + slope * times * 1e-6
    frames = frames_from_log(np.broadcast_to(log_levels[:, None, None], (len(times), 5, 7)))
    simulator = EventSimulator(contrast_pos=0.2, contrast_neg=0.25, log_eps=EPS)
    events = simulator.simulate(frames, times)
    threshold = 0.2 if slope > 0 else 0.25
    crossings = int(math.floor(abs(slope) * 0.31 / threshold))  # 15 and 9
    expected = period_us * np.arange(1, crossings + 1)
    assert len(events) == 35 * crossings and (events.p == polarity).all()
    for pixel in range(35):
        mine = events.t[(events.y.astype(int) * 7 + events.x) == pixel]
        assert np.array_equal(mine, expected)


# ---- (c) refractory period ----------------------------------------------------------------------------------
def test_refractory_drops_events_closer_than_it():
    """Ramp crossings every 20 ms with a 30 ms refractory period: 20 kept, 40 dropped (20 ms after),
    60 kept (40 ms after 20), ... And a crossing exactly R after the last kept one is kept."""
    times = np.arange(0, 310_001, 1000, dtype=np.int64)
    log_levels = math.log(0.05) + 10.0 * times * 1e-6
    frames = frames_from_log(np.broadcast_to(log_levels[:, None, None], (len(times), 2, 3)))
    events = EventSimulator(log_eps=EPS, refractory_us=30_000).simulate(frames, times)
    pixel = events.t[(events.x == 1) & (events.y == 1)]
    assert np.array_equal(pixel, [20_000, 60_000, 100_000, 140_000, 180_000, 220_000, 260_000, 300_000])
    events = EventSimulator(log_eps=EPS, refractory_us=40_000).simulate(frames, times)
    assert np.array_equal(events.t[(events.x == 0) & (events.y == 0)], [20_000, 60_000, 100_000, 140_000, 180_000, 220_000, 260_000, 300_000])
    events = EventSimulator(log_eps=EPS, refractory_us=40_001).simulate(frames, times)
    assert np.array_equal(events.t[(events.x == 0) & (events.y == 0)], [20_000, 80_000, 140_000, 200_000, 260_000])


def textured_sequence(count=80, height=12, width=16, seed=0, speed=0.35):
    """A smooth random texture drifting right by `speed` px per frame, plus flicker: (T, H, W) float64."""
    rng = np.random.default_rng(seed)
    coefficients = rng.normal(size=(6, 4))
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for k in range(count):
        shifted = x - speed * k
        value = 0.5 + sum(0.12 * a * np.sin(shifted / (2 + i) + b * y / 5 + c) * np.cos(d * k / 20)
                          for i, (a, b, c, d) in enumerate(coefficients))
        frames.append(np.clip(value, 0.01, 1.0))
    times = np.cumsum(rng.integers(400, 1600, count)).astype(np.int64) + 1_000_000  # irregular frame times
    return np.stack(frames), times


def test_refractory_gaps_hold_on_a_textured_sequence():
    frames, times = textured_sequence(count=120, seed=5, speed=1.5)
    free = EventSimulator(contrast_pos=0.05, contrast_neg=0.05).simulate(frames, times)
    refractory = 3000
    events = EventSimulator(contrast_pos=0.05, contrast_neg=0.05, refractory_us=refractory).simulate(frames, times)
    assert 0 < len(events) < len(free)
    pixel = events.y.astype(np.int64) * 16 + events.x
    order = np.lexsort((events.t, pixel))
    same = np.diff(pixel[order]) == 0
    assert (np.diff(events.t[order])[same] >= refractory).all()


# ---- the per-pixel loop reference ----------------------------------------------------------------------------
def reference_esim(log_levels, times, threshold_pos, threshold_neg, reference, refractory_us):
    """ESIM's per-pixel loop (rpg_esim EventSimulator::imageCallback) with per-pixel thresholds:
    log_levels (T, P) float64 (leak drift included), reference (P,) the levels after frame 0.
    Returns sorted (pixel, t, p) lists, t rounded as the simulator rounds."""
    reference = reference.copy()
    last = np.full(len(reference), -np.inf)
    pixels, stamps, polarities = [], [], []
    for f in range(1, len(times)):
        t0, t1 = float(times[f - 1] - times[0]), float(times[f] - times[0])
        frame_events = []
        for i in range(log_levels.shape[1]):
            old, new = log_levels[f - 1, i], log_levels[f, i]
            if new == old:
                continue
            polarity = 1 if new >= old else -1
            threshold = threshold_pos[i] if polarity > 0 else threshold_neg[i]
            k = 0
            while True:
                k += 1
                cross = reference[i] + polarity * threshold
                if (polarity > 0 and old < cross <= new) or (polarity < 0 and new <= cross < old):
                    t = t0 + (cross - old) * (t1 - t0) / (new - old)
                    if t - last[i] >= refractory_us:
                        frame_events.append((math.floor(min(max(t, t0), t1) + 0.5), i, polarity > 0))
                        last[i] = t
                    reference[i] = cross
                else:
                    break
        frame_events.sort(key=lambda event: event[0])  # stable: pixel order, then level order
        for t, i, positive in frame_events:
            stamps.append(t + int(times[0]))
            pixels.append(i)
            polarities.append(int(positive))
    return np.array(pixels, np.int64), np.array(stamps, np.int64), np.array(polarities, np.int8)


@pytest.mark.parametrize("options", [
    dict(contrast_pos=0.07, contrast_neg=0.09),
    dict(contrast_pos=0.07, contrast_neg=0.09, threshold_sigma=0.02, refractory_us=1500),
    dict(contrast_pos=0.06, contrast_neg=0.06, threshold_sigma=0.01, refractory_us=700, leak_hz=30.0),
])
def test_matches_the_per_pixel_loop(options):
    frames, times = textured_sequence(count=60, seed=3)
    simulator = EventSimulator(seed=11, **options)
    events = simulator.simulate(frames, times)
    probe = EventSimulator(seed=11, **options)
    probe.step(frames[0], times[0])
    leak = options.get("leak_hz", 0.0) * probe.threshold_pos.reshape(-1)[None, :] * ((times - times[0]) * 1e-6)[:, None]
    log_levels = np.log(frames.reshape(len(frames), -1) + 1e-3) + leak
    pixel, t, p = reference_esim(log_levels, times, probe.threshold_pos.reshape(-1), probe.threshold_neg.reshape(-1),
                                 probe.reference_log.reshape(-1), options.get("refractory_us", 0))
    assert len(t) > 200
    assert np.array_equal(events.t, t)
    assert np.array_equal(events.y.astype(np.int64) * 16 + events.x, pixel)
    assert np.array_equal(events.p, p)


# ---- (d) threshold mismatch ----------------------------------------------------------------------------
def expected_floor_moments(ratio_numerator: float, mean: float, sigma: float) -> tuple[float, float]:
    """Mean and std of floor(ΔL / C) for C ~ N(mean, sigma²): P(floor >= k) = P(C <= ΔL / k) = Φ(.)."""
    def phi(z):
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))
    tail = [phi((ratio_numerator / k - mean) / sigma) for k in range(1, 400)]
    first = sum(tail)
    second = sum((2 * k - 1) * p for k, p in zip(range(1, 400), tail))
    return first, math.sqrt(second - first * first)


def test_threshold_mismatch_changes_counts_as_expected():
    """A jump of ΔL = 2.1 in one frame interval: each pixel emits floor(ΔL / C+_pixel) events. With
    σ = 0 every pixel emits floor(2.1 / 0.2) = 10; with σ = 0.03 the per-pixel thresholds are
    N(0.2, 0.03²) and the count statistics follow the closed form."""
    height, width, delta, sigma = 160, 200, 2.1, 0.03
    frames = frames_from_log(np.stack([np.full((height, width), math.log(0.05)), np.full((height, width), math.log(0.05) + delta)]))
    times = np.array([0, 1000])
    uniform = EventSimulator(log_eps=EPS).simulate(frames, times)
    assert len(uniform) == height * width * 10

    simulator = EventSimulator(threshold_sigma=sigma, seed=7, log_eps=EPS)
    events = simulator.simulate(frames, times)
    counts = np.bincount(events.y.astype(np.int64) * width + events.x, minlength=height * width)
    thresholds = simulator.threshold_pos.reshape(-1)
    assert np.array_equal(counts, np.floor(delta / thresholds))  # the per-pixel rule, exactly
    pixels = height * width
    assert abs(thresholds.mean() - 0.2) < 4 * sigma / math.sqrt(pixels)
    assert abs(thresholds.std() - sigma) < 4 * sigma / math.sqrt(2 * pixels)
    assert abs(simulator.threshold_neg.std() - sigma) < 4 * sigma / math.sqrt(2 * pixels)
    assert not np.array_equal(simulator.threshold_neg, simulator.threshold_pos)
    mean, std = expected_floor_moments(delta, 0.2, sigma)
    assert abs(counts.mean() - mean) < 4 * std / math.sqrt(pixels)
    assert abs(counts.std() - std) < 0.05 * std
    assert counts.min() < 10 < counts.max()
    # the seed fixes the thresholds
    again = EventSimulator(threshold_sigma=sigma, seed=7, log_eps=EPS)
    again.simulate(frames, times)
    other = EventSimulator(threshold_sigma=sigma, seed=8, log_eps=EPS)
    other.simulate(frames, times)
    assert np.array_equal(again.threshold_pos, simulator.threshold_pos)
    assert not np.array_equal(other.threshold_pos, simulator.threshold_pos)


# ---- (e) noise ----------------------------------------------------------------------------------------------
def static_frames(height, width, seconds, rate_hz=100):
    times = np.arange(0, int(seconds * 1e6) + 1, 1_000_000 // rate_hz, dtype=np.int64)
    return np.full((len(times), height, width), 0.4), times


def test_shot_noise_count_is_poisson():
    height, width, rate = 64, 64, 5.0
    frames, times = static_frames(height, width, 1.0)
    events = EventSimulator(shot_noise_hz=rate, seed=2).simulate(frames, times)
    expected = rate * height * width * 1.0  # 20480, Poisson std 143
    assert abs(len(events) - expected) < 4 * math.sqrt(expected)
    assert abs(events.p.mean() - 0.5) < 4 * 0.5 / math.sqrt(expected)
    assert events.t.min() >= times[0] and events.t.max() <= times[-1]
    per_pixel = np.bincount(events.y.astype(np.int64) * width + events.x, minlength=height * width)
    assert abs(per_pixel.var() - rate) < 0.15 * rate  # Poisson: variance = mean
    # per second: counts of 10 disjoint 100 ms windows agree with Poisson(2048) each
    windows = np.histogram(events.t, bins=np.arange(0, 1_000_001, 100_000))[0]
    assert (np.abs(windows - expected / 10) < 5 * math.sqrt(expected / 10)).all()


def test_leak_events_come_at_the_leak_rate():
    """A static scene with leak 2 Hz for 1 s: every pixel emits exactly 2 positive events, 500 ms apart."""
    height, width, leak = 32, 40, 2.0
    frames, times = static_frames(height, width, 1.0)
    events = EventSimulator(leak_hz=leak, seed=4, threshold_sigma=0.02).simulate(frames, times)
    assert len(events) == height * width * 2 and (events.p == 1).all()
    pixel = events.y.astype(np.int64) * width + events.x
    order = np.lexsort((events.t, pixel))
    gaps = np.diff(events.t[order])[np.diff(pixel[order]) == 0]
    assert len(gaps) == height * width and np.abs(gaps - 500_000).max() <= 1
    # the phases are spread: first events fill the first 500 ms
    first = events.t[order][::2]
    assert first.min() < 50_000 and first.max() > 450_000


def test_no_noise_no_events_on_a_static_scene():
    frames, times = static_frames(8, 8, 0.2)
    assert len(EventSimulator(threshold_sigma=0.05, refractory_us=100).simulate(frames, times)) == 0


# ---- (f) streaming and determinism -----------------------------------------------------------------------
def noisy_options():
    return dict(contrast_pos=0.08, contrast_neg=0.1, threshold_sigma=0.02, refractory_us=800, shot_noise_hz=20.0,
                leak_hz=3.0, seed=21)


def test_streaming_in_chunks_equals_one_call():
    frames, times = textured_sequence(count=150, seed=9)
    whole = EventSimulator(**noisy_options()).simulate(frames, times)
    assert len(whole) > 500
    whole.validate()

    chunked = EventSimulator(**noisy_options())
    pieces = [chunked.simulate(frames[a:b], times[a:b]) for a, b in ((0, 1), (1, 7), (7, 90), (90, 150))]
    stepped = EventSimulator(**noisy_options())
    steps = [stepped.step(frame, t) for frame, t in zip(frames, times)]
    generator = EventSimulator(**noisy_options()).simulate(((frame, t) for frame, t in zip(frames, times)))
    for events in (concatenate(pieces), concatenate(steps), generator):
        for name in ("x", "y", "t", "p"):
            assert np.array_equal(getattr(events, name), getattr(whole, name)), name
        assert events.x.dtype == np.uint16 and events.t.dtype == np.int64 and events.p.dtype == np.int8
    again = EventSimulator(**noisy_options()).simulate(frames, times)
    assert np.array_equal(again.t, whole.t) and np.array_equal(again.x, whole.x)
    other = EventSimulator(**{**noisy_options(), "seed": 22}).simulate(frames, times)
    assert len(other) != len(whole) or not np.array_equal(other.t, whole.t)
    simulator = EventSimulator(**noisy_options())
    simulator.simulate(frames[:50], times[:50])
    simulator.reset()
    restarted = simulator.simulate(frames, times)
    assert np.array_equal(restarted.t, whole.t)


def test_ties_are_stable_and_steps_bounded():
    frames, times = textured_sequence(count=40, seed=1, speed=2.0)
    simulator = EventSimulator(contrast_pos=0.03, contrast_neg=0.03)
    simulator.step(frames[0], times[0])
    for k in range(1, 40):
        window = simulator.step(frames[k], times[k])
        assert isinstance(window, EventArray)
        if len(window):
            window.validate()
            assert window.t.min() >= times[k - 1] and window.t.max() <= times[k]
            ties = np.diff(window.t) == 0
            pixel = window.y.astype(np.int64) * 16 + window.x
            assert (np.diff(pixel)[ties] >= 0).all()  # equal times: pixel order


# ---- inputs ------------------------------------------------------------------------------------------------
def test_rgb_and_uint8_inputs():
    frames, times = textured_sequence(count=30, seed=2)
    rgb = np.stack([frames * 0.9, frames, frames * 1.1], axis=-1).clip(0, 1)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    a = simulate_events(rgb, times, contrast_pos=0.05, contrast_neg=0.05)
    b = simulate_events(luma, times, contrast_pos=0.05, contrast_neg=0.05)
    assert len(a) > 0 and np.array_equal(a.t, b.t) and np.array_equal(a.x, b.x) and np.array_equal(a.p, b.p)
    as_bytes = np.round(frames * 255).astype(np.uint8)
    c = simulate_events(as_bytes, times, contrast_pos=0.05, contrast_neg=0.05)
    d = simulate_events(torch.from_numpy(as_bytes / 255.0), times, contrast_pos=0.05, contrast_neg=0.05)
    assert len(c) > 0 and np.array_equal(c.t, d.t) and np.array_equal(c.x, d.x)
    assert torch.allclose(to_intensity(as_bytes[0]), torch.from_numpy(as_bytes[0] / 255.0))


def test_bad_inputs_raise_input_errors():
    frames, times = textured_sequence(count=5)
    simulator = EventSimulator()
    simulator.step(frames[0], times[0])
    with pytest.raises(InputError, match="must increase"):
        simulator.step(frames[1], times[0])
    with pytest.raises(InputError, match="the sequence is 12x16"):
        simulator.step(np.zeros((5, 5)), times[1])
    with pytest.raises(InputError, match="non-negative"):
        simulator.step(-frames[1], times[1])
    with pytest.raises(InputError, match="frames but"):
        EventSimulator().simulate(frames, times[:3])
    with pytest.raises(InputError, match="contrast_pos"):
        EventSimulator(contrast_pos=0)
    with pytest.raises(InputError, match="no frames"):
        EventSimulator().simulate([])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    frames, times = textured_sequence(count=100, seed=4)
    cpu = EventSimulator(**noisy_options()).simulate(frames, times)
    cuda = EventSimulator(**noisy_options(), device="cuda").simulate(torch.from_numpy(frames).cuda(), times)
    for name in ("x", "y", "t", "p"):
        assert np.array_equal(getattr(cuda, name), getattr(cpu, name)), name
