"""An ESIM-style event simulator (Rebecq, Gehrig, Scaramuzza, CoRL 2018), vectorised in torch.

Model, per pixel, between two consecutive frames at t0 and t1 (µs):
- log intensity L = log(I + eps), I the grey intensity in [0, 1] (RGB is turned into BT.601 luma,
  uint8 frames are divided by 255), linearly interpolated in time between the two frames;
- a reference level `ref` (the log level of the last crossing; the first frame sets it), carried
  from frame to frame. If L1 >= ref + C+, the pixel crosses the levels ref + k C+ for
  k = 1 .. n = floor((L1 - ref) / C+) and emits n positive events, the k-th at the time the
  interpolated L reaches ref + k C+; likewise n = floor((ref - L1) / C-) negative events. `ref`
  moves to the last level crossed (ref + n C+), as ESIM's `ref_values_`;
- contrast thresholds C+ and C- per pixel: the nominal value plus Gaussian mismatch
  N(0, threshold_sigma^2) drawn once per pixel from the seed, clamped at `min_threshold`;
- refractory period R (µs) per pixel: a crossing less than R after the pixel's last *emitted* event
  is dropped (its level still moves `ref`, as in ESIM); a gap within 1e-6 µs of R counts as R, so
  exact ties do not depend on float rounding. Crossings of one pixel between two frames
  are equally spaced in time (linear interpolation, fixed threshold), so the events kept are found
  in closed form, without a loop over events;
- leak (leak_hz per pixel): the reference level of every pixel drifts down by leak_hz C+ per
  second (v2e's leak), so a static pixel emits positive events at leak_hz; each pixel starts at a
  random phase (ref = L - u C+, u ~ U(0, 1)) so that leak events are not synchronised. Implemented
  as the equivalent upward drift of L, so leak crossings are timed and made refractory like any other;
- shot noise (shot_noise_hz per pixel): Poisson events at uniform random pixels and times, random
  polarity, independent of the signal (not refractory, they do not move `ref`).

Event times are computed in float64 µs relative to the first frame and rounded to whole µs
(floor(t + 0.5)), which keeps refractory gaps of whole µs exact after rounding. The events of one
step lie in [t0, t1] and are sorted by time, stably: ties keep pixel order (row-major), then level
order, then noise events after signal events. Streaming (`step`, or `simulate` called on
consecutive chunks) gives exactly the events of one `simulate` call on the whole sequence.

    simulator = EventSimulator(contrast_pos=0.2, contrast_neg=0.2, threshold_sigma=0.03, seed=1)
    events = simulator.simulate(frames, timestamps_us)       # frames (T, H, W) or (T, H, W, 3)
    for frame, t_us in stream:                                # or frame by frame
        window = simulator.step(frame, t_us)
"""

from __future__ import annotations


import numpy as np
import torch

from anydepth.errors import InputError
from anydepth.events.container import EventArray

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, RGB order
REFRACTORY_TOLERANCE_US = 1e-6  # gaps this close to the refractory period count as equal to it


def to_intensity(frame, device: torch.device | str | None = None) -> torch.Tensor:
    """One frame -> (H, W) float64 grey intensity on `device`.

    frame: (H, W) grey or (H, W, 3) RGB, numpy or torch; uint8 is divided by 255, floats are taken
    as intensities (nominally [0, 1]). RGB -> BT.601 luma 0.299 R + 0.587 G + 0.114 B.
    """
    tensor = torch.as_tensor(frame)
    if device is not None:
        tensor = tensor.to(device)
    if tensor.dtype == torch.uint8:
        tensor = tensor.to(torch.float64) / 255.0
    elif tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    else:
        raise InputError(f"frames must be uint8 or float intensities, got {tensor.dtype}")
    if tensor.ndim == 3 and tensor.shape[2] == 3:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64, device=tensor.device)
        tensor = tensor @ weights
    elif tensor.ndim == 3 and tensor.shape[2] == 1:
        tensor = tensor[..., 0]
    if tensor.ndim != 2:
        raise InputError(f"a frame must be (H, W) grey or (H, W, 3) RGB, got shape {tuple(torch.as_tensor(frame).shape)}")
    return tensor


class EventSimulator:
    """ESIM-style simulator with streaming state (see the module docstring for the model).

    contrast_pos, contrast_neg: nominal thresholds C+ and C- (log-intensity units, > 0);
    threshold_sigma: std of the per-pixel Gaussian mismatch of both thresholds (0: none);
    min_threshold: floor of the per-pixel thresholds (ESIM clamps at 0.01);
    refractory_us: per-pixel refractory period in µs (0: none);
    shot_noise_hz: shot-noise events per pixel per second; leak_hz: leak events per pixel per second;
    log_eps: eps of log(I + eps); seed: the seed of every random draw (thresholds, leak phase,
    noise), so a run is deterministic; device: where the per-pixel state lives ("cpu", "cuda").
    Random draws are made on the CPU, so a seed gives the same events on every device.
    """

    def __init__(self, contrast_pos: float = 0.2, contrast_neg: float = 0.2, threshold_sigma: float = 0.0,
                 min_threshold: float = 0.01, refractory_us: float = 0.0, shot_noise_hz: float = 0.0,
                 leak_hz: float = 0.0, log_eps: float = 1e-3, seed: int = 0,
                 device: torch.device | str | None = None):
        for name, value in (("contrast_pos", contrast_pos), ("contrast_neg", contrast_neg),
                            ("min_threshold", min_threshold), ("log_eps", log_eps)):
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a positive number, got {value}")
        for name, value in (("threshold_sigma", threshold_sigma), ("refractory_us", refractory_us),
                            ("shot_noise_hz", shot_noise_hz), ("leak_hz", leak_hz)):
            if not (np.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a non-negative number, got {value}")
        self.contrast_pos, self.contrast_neg = float(contrast_pos), float(contrast_neg)
        self.threshold_sigma, self.min_threshold = float(threshold_sigma), float(min_threshold)
        self.refractory_us = float(refractory_us)
        self.shot_noise_hz, self.leak_hz = float(shot_noise_hz), float(leak_hz)
        self.log_eps = float(log_eps)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.reset()

    # ---- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every frame: the next frame starts a new sequence (thresholds are redrawn from
        the seed, so they come out the same)."""
        self._generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self._sensor_size: tuple[int, int] | None = None
        self._t_origin: int | None = None  # µs of the first frame; times are float64 relative to it
        self._t_last: int | None = None  # µs of the last frame
        self._log_last: torch.Tensor | None = None  # (P,) L of the last frame (leak drift included)
        self._reference: torch.Tensor | None = None  # (P,) reference log level
        self._last_event: torch.Tensor | None = None  # (P,) relative µs of the last emitted event, -inf
        self._threshold_pos = self._threshold_neg = None  # (P,) float64

    @property
    def sensor_size(self) -> tuple[int, int] | None:
        """(height, width) of the sequence, None before the first frame."""
        return self._sensor_size

    @property
    def threshold_pos(self) -> np.ndarray | None:
        """(H, W) float64 per-pixel C+ (None before the first frame)."""
        return None if self._threshold_pos is None else self._threshold_pos.reshape(self._sensor_size).cpu().numpy()

    @property
    def threshold_neg(self) -> np.ndarray | None:
        """(H, W) float64 per-pixel C- (None before the first frame)."""
        return None if self._threshold_neg is None else self._threshold_neg.reshape(self._sensor_size).cpu().numpy()

    @property
    def reference_log(self) -> np.ndarray | None:
        """(H, W) float64 reference log level per pixel (with leak, on the drifting scale of L + leak_hz C+ t); None before the first frame."""
        return None if self._reference is None else self._reference.reshape(self._sensor_size).cpu().numpy()

    @property
    def last_time_us(self) -> int | None:
        """Timestamp (µs) of the last frame seen, None before the first."""
        return self._t_last

    # ---- simulation --------------------------------------------------------------------------
    def step(self, frame, t_us: int) -> EventArray:
        """Feed the frame at t_us (µs, after the previous frame's) and return the events between the
        previous frame and this one, sorted by time (empty for the first frame).

        frame: (H, W) grey or (H, W, 3) RGB, uint8 or float intensity in [0, 1], numpy or torch.
        """
        x, y, t, p = self._step_tensors(frame, t_us)
        return self._to_events(x, y, t, p)

    def simulate(self, frames, timestamps_us=None) -> EventArray:
        """Events of a sequence of frames, continuing from the current state (call `reset` first to
        start over). Returns one `EventArray` sorted by time.

        frames: (T, H, W) or (T, H, W, 3) array/tensor, or a sequence of frames, with timestamps_us
        (T,) integer µs, strictly increasing; or, with timestamps_us None, any iterable of
        (frame, t_us) pairs (a generator streams a long sequence without holding its frames).
        """
        if timestamps_us is None:
            pairs = frames
        else:
            stamps = np.asarray(timestamps_us)
            if stamps.ndim != 1:
                raise InputError(f"timestamps must be a 1-D array, got shape {stamps.shape}")
            if len(frames) != len(stamps):
                raise InputError(f"{len(frames)} frames but {len(stamps)} timestamps")
            pairs = zip(frames, stamps)
        chunks: list[tuple[torch.Tensor, ...]] = []
        for frame, t_us in pairs:
            arrays = self._step_tensors(frame, t_us)
            if arrays[0].numel():
                chunks.append(arrays)
        if self._sensor_size is None:
            raise InputError("no frames to simulate")
        if not chunks:
            return EventArray.empty(self._sensor_size)
        return self._to_events(*(torch.cat([chunk[i] for chunk in chunks]) for i in range(4)))

    # ---- internals -----------------------------------------------------------------------------
    def _to_events(self, x, y, t, p) -> EventArray:
        return EventArray(x.cpu().numpy().astype(np.uint16), y.cpu().numpy().astype(np.uint16), t.cpu().numpy(),
                          p.cpu().numpy(), self._sensor_size)

    def _log_intensity(self, frame, t_relative: float) -> torch.Tensor:
        """(P,) float64 log(I + eps) of a frame, plus the leak drift at t_relative µs."""
        intensity = to_intensity(frame, self.device)
        height, width = intensity.shape
        if self._sensor_size is not None and (height, width) != self._sensor_size:
            raise InputError(f"frame is {height}x{width}, the sequence is {self._sensor_size[0]}x{self._sensor_size[1]}")
        low, total = float(intensity.min()), float(intensity.sum())
        if not (low >= 0 and np.isfinite(total)):
            raise InputError("frame intensities must be finite and non-negative")
        self._sensor_size = (int(height), int(width))
        log_level = torch.log(intensity.reshape(-1) + self.log_eps)
        if self.leak_hz > 0 and self._threshold_pos is not None:
            log_level += self._threshold_pos * (self.leak_hz * t_relative * 1e-6)
        return log_level

    def _start(self, frame, t_us: int) -> None:
        """The first frame: per-pixel thresholds, reference levels (and leak phase) from the seed."""
        log_level = self._log_intensity(frame, 0.0)
        self._t_origin = self._t_last = t_us
        pixels = log_level.numel()
        thresholds = []
        for nominal in (self.contrast_pos, self.contrast_neg):
            mismatch = torch.randn(pixels, generator=self._generator, dtype=torch.float64)
            thresholds.append((nominal + self.threshold_sigma * mismatch).clamp_(min=self.min_threshold).to(self.device))
        self._threshold_pos, self._threshold_neg = thresholds
        self._reference = log_level.clone()
        if self.leak_hz > 0:
            phase = torch.rand(pixels, generator=self._generator, dtype=torch.float64).to(self.device)
            self._reference -= phase * self._threshold_pos
        self._log_last = log_level
        self._last_event = torch.full((pixels,), -np.inf, dtype=torch.float64, device=self.device)

    def _step_tensors(self, frame, t_us) -> tuple[torch.Tensor, ...]:
        """One frame -> (x, y, t, p) tensors of the events since the previous frame, sorted by t."""
        if isinstance(t_us, torch.Tensor):
            t_us = t_us.item()
        if float(t_us) != int(t_us):
            raise InputError(f"frame timestamps must be whole microseconds, got {t_us}")
        t_us = int(t_us)
        if self._t_origin is None:
            self._start(frame, t_us)
            empty = torch.zeros(0, dtype=torch.int64, device=self.device)
            return self._pack(empty, empty, empty.to(torch.bool))
        if t_us <= self._t_last:
            raise InputError(f"frame timestamps must increase: {t_us} µs after {self._t_last} µs")
        t0 = float(self._t_last - self._t_origin)
        t1 = float(t_us - self._t_origin)
        log_new = self._log_intensity(frame, t1)
        pixel, time, positive = self._crossings(log_new, t0, t1)
        if self.shot_noise_hz > 0:
            noise_pixel, noise_time, noise_positive = self._shot_noise(t0, t1, log_new.numel())
            pixel, time, positive = (torch.cat(pair) for pair in ((pixel, noise_pixel), (time, noise_time), (positive, noise_positive)))
        self._log_last = log_new
        self._t_last = t_us
        # whole µs, floor(t + 0.5): a gap >= R (whole µs) stays >= R after rounding
        stamp = torch.floor(time.clamp(t0, t1) + 0.5).to(torch.int64)
        if stamp.numel() > 1:
            stamp, order = torch.sort(stamp, stable=True)
            pixel, positive = pixel[order], positive[order]
        return self._pack(pixel, stamp + self._t_origin, positive)

    def _pack(self, pixel, stamp, positive) -> tuple[torch.Tensor, ...]:
        """Flat pixel indices -> (x, y int32, t int64 µs, p int8); x, y become uint16 in `_to_events`
        (torch has few uint16 kernels)."""
        row = torch.div(pixel, self._sensor_size[1], rounding_mode="floor")
        column = pixel - row * self._sensor_size[1]
        return column.to(torch.int32), row.to(torch.int32), stamp, positive.to(torch.int8)

    def _crossings(self, log_new: torch.Tensor, t0: float, t1: float):
        """Threshold crossings of every pixel between t0 and t1 (relative µs): (pixel, time, positive),
        in pixel order then level order; updates the reference levels and last event times."""
        reference, log_old = self._reference, self._log_last
        up = torch.floor((log_new - reference) / self._threshold_pos).clamp_(min=0)
        down = torch.floor((reference - log_new) / self._threshold_neg).clamp_(min=0)
        count_all = up + down  # at most one of the two is non-zero
        active = torch.nonzero(count_all > 0).squeeze(1)
        if not active.numel():
            empty = torch.zeros(0, dtype=torch.int64, device=self.device)
            return empty, empty.to(torch.float64), empty.to(torch.bool)
        positive = up[active] > 0
        count = count_all[active]
        level_step = torch.where(positive, self._threshold_pos[active], -self._threshold_neg[active])  # signed C
        start_level = reference[active]
        old = log_old[active]
        change = log_new[active] - old
        # time of level k (k = 0, 1, ...; level = start + (k + 1) C): t0 + (level - L0) / (L1 - L0) (t1 - t0)
        scale = torch.where(change != 0, (t1 - t0) / torch.where(change != 0, change, 1.0), 0.0)
        reference[active] = start_level + count * level_step

        if self.refractory_us > 0:
            spacing = (level_step * scale).clamp_(min=1e-9)  # µs between consecutive crossings
            first = t0 + (start_level + level_step - old) * scale
            gap = first - self._last_event[active]  # +inf when the pixel never fired
            # a gap within REFRACTORY_TOLERANCE_US of R counts as R (float rounding of exact ties)
            refractory = self.refractory_us - REFRACTORY_TOLERANCE_US
            skip = torch.ceil((refractory - gap) / spacing).clamp_(min=0)
            stride = torch.ceil(refractory / spacing).clamp_(min=1)
            kept = torch.where(count > skip, torch.floor((count - skip - 1) / stride) + 1, torch.zeros_like(count))
        else:
            skip = torch.zeros_like(count)
            stride = torch.ones_like(count)
            kept = count
        kept_count = kept.to(torch.int64)
        owner = torch.repeat_interleave(torch.arange(active.numel(), device=self.device), kept_count)
        first_of_owner = torch.cumsum(kept_count, 0) - kept_count
        rank = torch.arange(owner.numel(), device=self.device) - first_of_owner[owner]
        level_index = skip[owner] + rank.to(torch.float64) * stride[owner]
        time = t0 + (start_level[owner] + (level_index + 1) * level_step[owner] - old[owner]) * scale[owner]
        if self.refractory_us > 0:
            fired = kept_count > 0
            last_index = skip + (kept - 1) * stride
            last_time = t0 + (start_level + (last_index + 1) * level_step - old) * scale
            self._last_event[active[fired]] = last_time[fired].clamp(t0, t1)
        return active[owner], time, positive[owner]

    def _shot_noise(self, t0: float, t1: float, pixels: int):
        """Poisson(shot_noise_hz P (t1 - t0)) events at uniform pixels and times in (t0, t1], random polarity."""
        expected = self.shot_noise_hz * pixels * (t1 - t0) * 1e-6
        count = int(torch.poisson(torch.tensor([expected], dtype=torch.float64), generator=self._generator).item())
        pixel = torch.randint(pixels, (count,), generator=self._generator)
        time = t1 - torch.rand(count, generator=self._generator, dtype=torch.float64) * (t1 - t0)
        positive = torch.randint(2, (count,), generator=self._generator) > 0
        return pixel.to(self.device), time.to(self.device), positive.to(self.device)


def simulate_events(frames, timestamps_us=None, **options) -> EventArray:
    """One-call simulation: `EventSimulator(**options).simulate(frames, timestamps_us)`."""
    return EventSimulator(**options).simulate(frames, timestamps_us)


__all__ = ["LUMA_WEIGHTS", "EventSimulator", "simulate_events", "to_intensity"]
