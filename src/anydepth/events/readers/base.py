"""The event reader interface and the lazy binary search the file readers share.

A reader gives the events of one file as `EventArray`s (x, y pixels; t int64 microseconds; p int8
1 = positive, 0 = negative), by index or by time, without loading the file unless its format forces
it. Every block read is validated against the event before it, so unsorted timestamps, coordinates
outside the sensor and bad polarities raise a `FormatError` naming the file; `repair=True` (where a
reader offers it) loads the file, sorts it and drops events outside the sensor instead, and reports
what it changed in `reader.repair_report`.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from anydepth.errors import REPAIR, AnydepthWarning, FormatError, InputError
from anydepth.events.container import EventArray

GAP_WINDOWS = 1000  # a block of this many time windows without any event is skipped (see EventReader.windows)

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x, y, t (int64 µs), p (as stored)


class EventReader(ABC):
    """Events of one file. Attributes: `path`, `sensor_size` (height, width); `len(reader)` is the
    event count; `t_start` / `t_end` are the first and last timestamps (µs, None when empty).

    Subclasses give lazy access through `_count`, `_index_of_time` and `_read_arrays`; a reader that
    holds its events in memory sets `self._memory` (a validated `EventArray`) instead, and then the
    three hooks are never called.
    """

    format_name = "events"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int]):
        self.path = Path(path)
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.repair_report: dict | None = None
        self._memory: EventArray | None = None
        self._closed = False

    # ---- hooks for lazy readers ----------------------------------------------------------
    @abstractmethod
    def _count(self) -> int:
        """Number of events in the file."""

    @abstractmethod
    def _index_of_time(self, t_us: int) -> int:
        """Index of the first event with t >= t_us (µs), read lazily."""

    @abstractmethod
    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        """Raw arrays of events [i0, i1), 0 <= i0 <= i1 <= count: t already int64 µs, the others as
        stored (converted by `EventArray.from_arrays`)."""

    def _postprocess(self, events: EventArray) -> EventArray:
        """Per-window transform applied after validation (DSEC rectification); identity here."""
        return events

    def _close(self) -> None:
        """Release file handles."""

    # ---- memory mode ------------------------------------------------------------------------
    def _hold(self, arrays: Arrays, repair: bool) -> None:
        """Keep `arrays` in memory: validated (FormatError naming the file), or repaired when asked."""
        x, y, t, p = arrays
        if repair:
            events = EventArray.from_arrays(x, y, t, p, self.sensor_size, validate=False, source=self.path)
            self._memory, self.repair_report = events.repair(sort=True, drop_outside=True)
        else:
            self._memory = self._validated(arrays)

    def _load_repaired(self) -> None:
        """For lazy readers asked to repair: read the whole file unvalidated, sort and drop."""
        self._hold(self._read_arrays(0, self._count()), repair=True)

    # ---- public interface --------------------------------------------------------------------
    def __len__(self) -> int:
        self._check_open()
        return len(self._memory) if self._memory is not None else self._count()

    @property
    def t_start(self) -> int | None:
        """First timestamp (µs), None when the file holds no events."""
        if not len(self):
            return None
        return int(self._read_validated(0, 1).t[0]) if self._memory is None else self._memory.t_start

    @property
    def t_end(self) -> int | None:
        """Last timestamp (µs), None when the file holds no events."""
        count = len(self)
        if not count:
            return None
        return int(self._read_validated(count - 1, count).t[0]) if self._memory is None else self._memory.t_end

    def index_of_time(self, t_us: int) -> int:
        """Index of the first event with t >= t_us (µs); len(self) when there is none."""
        self._check_open()
        if self._memory is not None:
            return self._memory.index_of_time(int(t_us))
        return self._index_of_time(int(t_us))

    def read_index(self, i0: int, i1: int) -> EventArray:
        """Events [i0, i1) by index (clipped to [0, len]); i1 < i0 is an InputError."""
        i0, i1 = int(i0), int(i1)
        if i1 < i0 or i0 < 0:
            raise InputError(f"bad index range [{i0}, {i1})", self.path)
        count = len(self)
        i0, i1 = min(i0, count), min(i1, count)
        if self._memory is not None:
            events = self._memory.slice_index(i0, i1)
        else:
            events = self._read_validated(i0, i1)
        return self._postprocess(events)

    def read_time(self, t0_us: int, t1_us: int) -> EventArray:
        """Events with t0 <= t < t1 (µs, in the file's clock); empty when t0 == t1."""
        t0_us, t1_us = int(t0_us), int(t1_us)
        if t1_us < t0_us:
            raise InputError(f"time window ends before it starts: [{t0_us}, {t1_us}) µs", self.path)
        i0 = self.index_of_time(t0_us)
        i1 = i0 if t1_us == t0_us else self.index_of_time(t1_us)
        return self.read_index(i0, i1)

    def read_all(self) -> EventArray:
        """Every event of the file (loads it all)."""
        return self.read_index(0, len(self))

    def windows(self, window_us: int | None = None, count: int | None = None,
                t0_us: int | None = None, t1_us: int | None = None,
                gap_windows: int | None = GAP_WINDOWS) -> Iterator[EventArray]:
        """Consecutive, non-overlapping windows that together hold every event of [t0, t1) once.

        window_us: windows [t0 + k w, t0 + (k + 1) w) (the last ends at t1), empty ones included,
        except across a gap: time is cut into blocks of `gap_windows` windows, and a block without
        any event is skipped (with those after it, up to the window of the next event), with an
        `AnydepthWarning` saying which stretch and how many windows; so one stray event days away
        costs a warning, not millions of empty windows. None: never skip.
        count: windows of `count` events (the last may be shorter). Give exactly one of the two.
        Defaults: t0 = first event, t1 = last event + 1 µs. Read lazily, one window at a time.
        """
        if (window_us is None) == (count is None):
            raise InputError("give exactly one of window_us or count")
        total = len(self)
        if not total:
            return
        start = self.t_start if t0_us is None else int(t0_us)
        stop = self.t_end + 1 if t1_us is None else int(t1_us)
        if window_us is not None:
            window_us = _whole_window(window_us)
            steps = max(0, math.ceil((stop - start) / window_us))
            for k0, k1, skipped_from in self._window_runs(start, stop, window_us, gap_windows):
                if skipped_from is not None:
                    t_from, t_to = start + skipped_from * window_us, start + k0 * window_us
                    warnings.warn(AnydepthWarning(
                        f"{self.path}: no events for {_duration(t_to - t_from)} ({t_from} .. {t_to} µs): skipped "
                        f"{k0 - skipped_from:,} empty windows of {window_us / 1000:g} ms"), stacklevel=2)
                first = self.index_of_time(start + k0 * window_us)
                for k in range(k0, k1):
                    edge = stop if k == steps - 1 else start + (k + 1) * window_us
                    last = self.index_of_time(edge)
                    yield self.read_index(first, last)
                    first = last
        else:
            if count != int(count) or count <= 0:
                raise InputError(f"event count per window must be a positive integer, got {count}")
            count = int(count)
            first = 0 if t0_us is None else self.index_of_time(start)
            last = total if t1_us is None else self.index_of_time(stop)
            for i in range(first, last, count):
                yield self.read_index(i, min(i + count, last))

    def count_windows(self, window_us: int, t0_us: int | None = None, t1_us: int | None = None,
                      gap_windows: int | None = GAP_WINDOWS) -> int:
        """How many windows `windows(window_us=...)` yields (gaps skipped as it skips them), without
        reading the events: one time search per block of `gap_windows` windows."""
        if not len(self):
            return 0
        start = self.t_start if t0_us is None else int(t0_us)
        stop = self.t_end + 1 if t1_us is None else int(t1_us)
        return sum(k1 - k0 for k0, k1, _ in self._window_runs(start, stop, _whole_window(window_us), gap_windows))

    def _window_runs(self, start: int, stop: int, window_us: int,
                     gap_windows: int | None) -> Iterator[tuple[int, int, int | None]]:
        """Runs [k0, k1) of window indices to produce, each with the first index of the empty
        stretch skipped just before it (None when nothing was skipped). A stretch is skipped when
        the `gap_windows` windows after an event's window hold no event."""
        steps = max(0, math.ceil((stop - start) / window_us))
        if gap_windows is None:
            if steps:
                yield 0, steps, None
            return
        block = max(int(gap_windows), 1)
        k, skipped_from = 0, None
        while k < steps:
            k_end = min(k + block, steps)
            i0 = self.index_of_time(start + k * window_us)
            i1 = self.index_of_time(stop if k_end == steps else start + k_end * window_us)
            if i1 == i0 and k_end - k == block:  # `block` empty windows: skip to the next event's window
                t_next = self._time_at(i0) if i0 < len(self) else stop
                if t_next >= stop:
                    return
                skipped_from = k if skipped_from is None else skipped_from
                k = (t_next - start) // window_us
                continue
            # up to the window of the last event of the block (the empty ones after it may start a gap)
            k_next = k_end if k_end == steps else (self._time_at(i1 - 1) - start) // window_us + 1
            yield k, k_next, skipped_from
            k, skipped_from = k_next, None

    def _time_at(self, index: int) -> int:
        """Timestamp (µs) of event `index`."""
        if self._memory is not None:
            return int(self._memory.t[index])
        return int(self._read_validated(index, index + 1).t[0])

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)} events"
        return f"{type(self).__name__}({str(self.path)!r}, {state}, sensor {self.sensor_size[0]}x{self.sensor_size[1]})"

    # ---- internals ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InputError("the reader is closed", self.path)

    def _read_validated(self, i0: int, i1: int) -> EventArray:
        """Read [i0, i1) plus the event before it and validate the block (so that consecutive reads
        also check the order across their boundary)."""
        if i0 == i1:
            return EventArray.empty(self.sensor_size)
        before = max(i0 - 1, 0)
        events = self._validated(self._read_arrays(before, i1))
        return events.slice_index(i0 - before, len(events))

    def _validated(self, arrays: Arrays) -> EventArray:
        """EventArray.from_arrays with validation; its hints name the reader's option instead of
        EventArray.repair's arguments."""
        try:
            return EventArray.from_arrays(*arrays, self.sensor_size, validate=True, source=self.path)
        except FormatError as error:
            message = str(error).removeprefix(f"{self.path}: ")
            hints = (" (repair with sort=True)", "; repair with drop_outside=True")
            if not any(hint in message for hint in hints):
                raise
            for hint in hints:
                message = message.replace(hint, "")
            raise FormatError(message, self.path, remedy=REPAIR) from None


class InMemoryEventReader(EventReader):
    """A reader for formats without random access: the events are decoded once and held."""

    def _count(self) -> int:
        return len(self._memory)

    def _index_of_time(self, t_us: int) -> int:
        return self._memory.index_of_time(t_us)

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        events = self._memory.slice_index(i0, i1)
        return events.x, events.y, events.t, events.p


def _whole_window(window_us) -> int:
    if window_us != int(window_us) or window_us <= 0:
        raise InputError(f"window must be a positive whole number of µs, got {window_us}")
    return int(window_us)


def _duration(span_us: int) -> str:
    """A time span for people: 3.2 days, 5.0 h, 12.0 min, 4.5 s."""
    seconds = span_us / 1e6
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def search_sorted_lazily(read_t: Callable[[int, int], np.ndarray], count: int, t_us: int,
                         lo: int = 0, hi: int | None = None, block: int = 1 << 16) -> int:
    """Index of the first event with t >= t_us in a sorted column read through `read_t(i0, i1)`
    (int64 µs): binary search with single-value probes down to `block` events, then one block read.
    Never loads more than `block` timestamps."""
    hi = count if hi is None else hi
    while hi - lo > block:
        middle = (lo + hi) // 2
        if int(read_t(middle, middle + 1)[0]) < t_us:
            lo = middle + 1
        else:
            hi = middle
    if lo >= hi:
        return lo
    return lo + int(np.searchsorted(read_t(lo, hi), t_us, side="left"))
