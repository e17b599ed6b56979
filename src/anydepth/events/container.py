"""The event container: a structure of arrays.

Conventions (every reader converts to these):
- x, y: pixel column and row, uint16 (or float32 for rectified, sub-pixel coordinates), inside the
  sensor: 0 <= x < width, 0 <= y < height;
- t: int64 microseconds, non-decreasing;
- p: int8 polarity, 1 = positive (ON, brightness increase), 0 = negative (OFF). Formats that use
  -1/+1 or booleans are converted on reading; the signed value of an event is 2p - 1;
- sensor_size: (height, width).

Nothing is fixed silently: `validate` raises on unsorted timestamps, coordinates outside the sensor
or bad polarities, and `repair` (explicit) sorts and drops, reporting what it changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError


@dataclass(frozen=True, eq=False)
class EventArray:
    """Events (N,) as four arrays plus the sensor size (height, width)."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray
    sensor_size: tuple[int, int]

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        x,
        y,
        t,
        p,
        sensor_size: tuple[int, int],
        validate: bool = True,
        source: str | Path | None = None,
    ) -> "EventArray":
        """Build from any arrays: coordinates cast to uint16 (kept float32 when fractional),
        t to int64 microseconds, p from {0, 1}, {-1, 1} or bool to int8 {0, 1}.

        validate: check sortedness, coordinates and polarities (raises naming `source`).
        """
        x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
        if not (x.ndim == y.ndim == t.ndim == p.ndim == 1 and len(x) == len(y) == len(t) == len(p)):
            raise InputError(f"x, y, t, p must be 1-D arrays of one length, got {x.shape}, {y.shape}, {t.shape}, {p.shape}", source)
        height, width = (int(v) for v in sensor_size)
        if height <= 0 or width <= 0:
            raise InputError(f"sensor size must be positive, got {height}x{width}", source)
        if validate:
            _check_coordinates(x, y, height, width, source)
        x, y = _as_coordinates(x), _as_coordinates(y)
        if np.issubdtype(t.dtype, np.floating) and len(t) and not np.all(np.isfinite(t)):
            raise FormatError("timestamps contain NaN or infinity", source)
        t = t.astype(np.int64, copy=False)
        p = _as_polarity(p, source)
        events = cls(x, y, t, p, (height, width))
        if validate:
            events.validate(source)
        return events

    @classmethod
    def empty(cls, sensor_size: tuple[int, int]) -> "EventArray":
        return cls(np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.int64), np.zeros(0, np.int8),
                   (int(sensor_size[0]), int(sensor_size[1])))

    # ---- basic properties ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.t)

    @property
    def height(self) -> int:
        return self.sensor_size[0]

    @property
    def width(self) -> int:
        return self.sensor_size[1]

    @property
    def t_start(self) -> int | None:
        """First timestamp (µs), None when empty."""
        return int(self.t[0]) if len(self.t) else None

    @property
    def t_end(self) -> int | None:
        """Last timestamp (µs), None when empty."""
        return int(self.t[-1]) if len(self.t) else None

    @property
    def duration_us(self) -> int:
        return int(self.t[-1] - self.t[0]) if len(self.t) else 0

    def __repr__(self) -> str:
        span = f", t {self.t_start}..{self.t_end} µs" if len(self) else ""
        return f"EventArray({len(self)} events, sensor {self.height}x{self.width}{span})"

    # ---- checks and explicit repair -----------------------------------------------------
    def validate(self, source: str | Path | None = None) -> "EventArray":
        """Raise a FormatError naming `source` if timestamps decrease, a coordinate is outside the
        sensor, or a polarity is not 0/1. Returns self."""
        if len(self.t) > 1:
            steps = np.diff(self.t)
            if (steps < 0).any():
                index = int(np.argmax(steps < 0)) + 1
                raise FormatError(
                    f"timestamps are not sorted: event {index} at {int(self.t[index])} µs comes after "
                    f"{int(self.t[index - 1])} µs (repair with sort=True)", source)
        _check_coordinates(self.x, self.y, self.height, self.width, source)
        if len(self.p) and ((self.p != 0) & (self.p != 1)).any():
            raise FormatError("polarities must be 0 or 1", source)
        return self

    def repair(self, sort: bool = True, drop_outside: bool = True) -> tuple["EventArray", dict]:
        """Explicit fixes: stable sort by time, drop events outside the sensor.
        Returns (repaired events, {"sorted": bool, "dropped_outside": int})."""
        x, y, t, p = self.x, self.y, self.t, self.p
        report = {"sorted": False, "dropped_outside": 0}
        if drop_outside:
            inside = (x >= 0) & (y >= 0) & (x <= self.width - 1) & (y <= self.height - 1)
            report["dropped_outside"] = int(len(t) - inside.sum())
            if report["dropped_outside"]:
                x, y, t, p = x[inside], y[inside], t[inside], p[inside]
        if sort and len(t) > 1 and (np.diff(t) < 0).any():
            order = np.argsort(t, kind="stable")
            x, y, t, p = x[order], y[order], t[order], p[order]
            report["sorted"] = True
        return EventArray(x, y, t, p, self.sensor_size), report

    # ---- slicing --------------------------------------------------------------------------
    def slice_index(self, start: int, stop: int) -> "EventArray":
        """Events [start, stop) by index (views, no copy)."""
        return EventArray(self.x[start:stop], self.y[start:stop], self.t[start:stop], self.p[start:stop], self.sensor_size)

    def index_of_time(self, t_us: int) -> int:
        """Index of the first event with t >= t_us."""
        return int(np.searchsorted(self.t, t_us, side="left"))

    def slice_time(self, t0_us: int, t1_us: int) -> "EventArray":
        """Events with t0 <= t < t1 (µs); views, no copy."""
        return self.slice_index(self.index_of_time(t0_us), self.index_of_time(t1_us))

    def windows_by_time(self, window_us: int, t0_us: int | None = None, t1_us: int | None = None) -> Iterator["EventArray"]:
        """Consecutive windows [t0 + k w, t0 + (k + 1) w) covering [t0, t1); every event in
        [t0, t1) lands in exactly one window. Defaults: t0 = first event, t1 = last event + 1."""
        if window_us <= 0:
            raise InputError(f"window must be positive, got {window_us} µs")
        if not len(self):
            return
        start = self.t_start if t0_us is None else int(t0_us)
        stop = self.t_end + 1 if t1_us is None else int(t1_us)
        count = max(0, -(-(stop - start) // window_us))  # ceil
        edges = start + window_us * np.arange(count + 1, dtype=np.int64)
        if count:
            edges[-1] = stop  # the last window ends at t1
        indices = np.searchsorted(self.t, edges, side="left")
        for i in range(count):
            yield self.slice_index(int(indices[i]), int(indices[i + 1]))

    def windows_by_count(self, count: int) -> Iterator["EventArray"]:
        """Consecutive windows of `count` events (the last may be shorter)."""
        if count <= 0:
            raise InputError(f"event count per window must be positive, got {count}")
        for start in range(0, len(self), count):
            yield self.slice_index(start, start + count)


def concatenate(arrays: Sequence[EventArray], validate: bool = True) -> EventArray:
    """Join event arrays of one sensor in order (each must start at or after the previous end)."""
    if not arrays:
        raise InputError("nothing to concatenate")
    sizes = {a.sensor_size for a in arrays}
    if len(sizes) > 1:
        raise InputError(f"cannot concatenate events of different sensors: {sorted(sizes)}")
    x = np.concatenate([a.x for a in arrays])
    y = np.concatenate([a.y for a in arrays])
    if x.dtype.kind == "f" or y.dtype.kind == "f":
        x, y = x.astype(np.float32), y.astype(np.float32)
    events = EventArray(x, y, np.concatenate([a.t for a in arrays]), np.concatenate([a.p for a in arrays]), arrays[0].sensor_size)
    return events.validate() if validate else events


def _as_coordinates(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        if len(values) and np.all(values == np.round(values)):
            return values.astype(np.uint16)
        return values.astype(np.float32, copy=False)
    if values.dtype == np.uint16:
        return values
    return values.astype(np.uint16)


def _check_coordinates(x: np.ndarray, y: np.ndarray, height: int, width: int, source) -> None:
    if not len(x):
        return
    for name, values, limit in (("x", x, width), ("y", y, height)):
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise FormatError(f"{name} coordinates contain NaN or infinity", source)
        low, high = values.min(), values.max()
        if low < 0 or high > limit - 1:
            bad = low if low < 0 else high
            raise FormatError(
                f"{name} = {bad:g} outside the {height}x{width} sensor (0..{limit - 1}; repair with drop_outside=True)", source)


def _as_polarity(p: np.ndarray, source) -> np.ndarray:
    """0/1, -1/+1 or booleans -> int8 0/1, from min/max (no sort: this runs on every window)."""
    if p.dtype == np.bool_ or not len(p):
        return p.astype(np.int8)
    if p.dtype.kind not in "iu" and not np.all(p == np.round(p)):
        raise FormatError("polarities must be 0/1, -1/+1 or booleans, found fractional values", source)
    low, high = p.min(), p.max()
    if low >= 0 and high <= 1:
        return p.astype(np.int8, copy=False)
    if low >= -1 and high <= 1 and not (p == 0).any():
        return (p > 0).astype(np.int8)
    found = sorted({int(low), int(high)})
    raise FormatError(f"polarities must be 0/1, -1/+1 or booleans, found values from {found[0]} to {found[-1]}", source)
