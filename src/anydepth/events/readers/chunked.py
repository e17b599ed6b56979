"""Lazy access to files cut into chunks (packets, blocks of records) through a small index.

A chunked reader knows, per chunk, how many events it holds and its last timestamp; it decodes
only the chunks a read touches (and keeps the last few decoded), so memory stays bounded by a
window plus a few chunks whatever the file size. The iniVation readers (AEDAT 2.0, 3.1, 4) share it.

`chunks()` streams a whole file in the file's own batches (AEDAT4 / 3.1 packets, AEDAT 2.0
blocks): one fresh, checked EventArray per chunk, with no search, the cheapest way through a file.

A validated read copies the chunks' events straight into the window's arrays with one numba pass
(`gather_checked`) that also checks order (against the event before the window too), coordinates
and polarities; when that pass finds anything wrong, the read goes through the generic path of
`EventReader` instead, which gives the usual error (or converts, e.g. -1/+1 polarities), so results
and messages are those of the plain validation.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Iterator

import numba
import numpy as np

from anydepth.events.container import EventArray
from anydepth.events.readers.base import Arrays, EventReader

EMPTY_ARRAYS: Arrays = (np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.int64), np.zeros(0, np.int8))


@numba.njit(cache=True, nogil=True)
def gather_checked(x, y, t, p, start, stop, x_out, y_out, t_out, p_out, at, t_before, height, width):
    """Copy events [start, stop) of one chunk (integer x, y; int64 t µs; integer or bool p) to the
    outputs from index `at` as uint16, uint16, int64, int8. Returns False (outputs then undefined)
    when an event lies outside the height x width sensor, has a polarity other than 0 / 1, or a
    timestamp below the one before it (the first is compared with `t_before`)."""
    bad = False
    previous = t_before
    for i in range(start, stop):
        xi, yi, ti = np.int64(x[i]), np.int64(y[i]), np.int64(t[i])
        pi = np.int64(p[i])
        bad |= (xi < 0) | (xi >= width) | (yi < 0) | (yi >= height) | (ti < previous) | (pi < 0) | (pi > 1)
        j = at + i - start
        x_out[j] = np.uint16(xi)
        y_out[j] = np.uint16(yi)
        t_out[j] = ti
        p_out[j] = np.int8(pi)
        previous = ti
    return not bad


class ChunkedEventReader(EventReader):
    """EventReader over chunks: subclasses call `_set_index(counts, t_last)` once and implement
    `_decode_chunk(k)` -> (x, y, t int64 µs, p) of the events of chunk k, in file order."""

    cached_chunks = 4

    def _set_index(self, counts: np.ndarray, t_last: np.ndarray) -> None:
        """counts (K,) events per chunk; t_last (K,) int64 µs last timestamp of each chunk (any value
        for empty chunks: they are given the last timestamp before them)."""
        counts = np.asarray(counts, dtype=np.int64)
        t_last = np.asarray(t_last, dtype=np.int64).copy()
        empty = counts == 0
        t_last[empty] = np.iinfo(np.int64).min
        # Non-decreasing search keys (unsorted files are caught when the events are validated).
        self._t_keys = np.maximum.accumulate(t_last) if len(t_last) else t_last
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._cache: OrderedDict[int, Arrays] = OrderedDict()

    @abstractmethod
    def _decode_chunk(self, k: int) -> Arrays:
        """Events of chunk k (exactly counts[k] of them)."""

    def _decode_transient(self, k: int) -> Arrays:
        """Events of chunk k that may live in a reused buffer, valid until the next decode."""
        return self._decode_chunk(k)

    def _gather(self, columns: Arrays, start: int, stop: int, outputs: Arrays, at: int, t_before: int) -> bool:
        """gather_checked for one chunk's events (a reader may give a kernel for its own layout)."""
        height, width = self.sensor_size
        return gather_checked(*columns, start, stop, *outputs, at, t_before, height, width)

    def _chunk(self, k: int, keep: bool = True) -> Arrays:
        """Events of chunk k, from the cache or decoded (and cached when `keep`; otherwise possibly
        transient: a validated read keeps only its first and last chunks, which the next searches
        and reads touch again, and copies each inner chunk out before it decodes the next)."""
        arrays = self._cache.get(k)
        if arrays is None:
            if not keep:
                return self._decode_transient(k)
            arrays = self._decode_chunk(k)
            self._cache[k] = arrays
            while len(self._cache) > self.cached_chunks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(k)
        return arrays

    def chunks(self) -> Iterator[EventArray]:
        """Every event of the file once, in file order: one EventArray per non-empty chunk (an
        AEDAT4 or AEDAT 3.1 packet, a block of AEDAT 2.0 records), each in fresh arrays and checked
        as a validated read checks it (the order across chunks too), with the same results and
        errors as `read_index` over the chunk. Memory stays one chunk whatever the file size. A
        reader that holds its events (repair=True) yields them as one array."""
        self._check_open()
        if self._memory is not None:
            if len(self._memory):
                yield self._postprocess(self._memory)
            return
        t_before = np.iinfo(np.int64).min
        for k in np.flatnonzero(np.diff(self._offsets)).tolist():
            self._check_open()  # closed while streaming: InputError, not a stale file
            events = self._chunk_checked(k, t_before)
            if events is None:  # the check failed: the generic path gives its error (or conversion)
                events = EventReader._read_validated(self, int(self._offsets[k]), int(self._offsets[k + 1]))
            t_before = int(events.t[-1])
            yield self._postprocess(events)

    def _chunk_checked(self, k: int, t_before: int) -> EventArray | None:
        """The events of non-empty chunk k copied into fresh arrays and checked (order against
        `t_before` µs too); None when the check fails."""
        columns = self._chunk(k, keep=False)
        if any(column.dtype.kind not in "iub" for column in columns):
            return None
        outputs = fresh_arrays(len(columns[2]))
        if not self._gather(columns, 0, len(columns[2]), outputs, 0, t_before):
            return None
        return EventArray(*outputs, self.sensor_size)

    def _count(self) -> int:
        return int(self._offsets[-1])

    def _index_of_time(self, t_us: int) -> int:
        k = int(np.searchsorted(self._t_keys, t_us, side="left"))  # first chunk ending at or after t
        if k >= len(self._t_keys):
            return self._count()
        return int(self._offsets[k]) + int(np.searchsorted(self._chunk(k)[2], t_us, side="left"))

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        if i1 <= i0:
            return EMPTY_ARRAYS
        k0 = int(np.searchsorted(self._offsets, i0, side="right")) - 1
        k1 = int(np.searchsorted(self._offsets, i1 - 1, side="right")) - 1
        parts = [self._chunk(k) for k in range(k0, k1 + 1) if self._offsets[k + 1] > self._offsets[k]]
        start, stop = i0 - int(self._offsets[k0]), i1 - int(self._offsets[k0])
        if len(parts) == 1:
            return tuple(column[start:stop] for column in parts[0])
        return tuple(np.concatenate(columns)[start:stop] for columns in zip(*parts))

    def _read_validated(self, i0: int, i1: int) -> EventArray:
        """Events [i0, i1) and the one before them, checked in the copy (see module docstring);
        the generic path of EventReader when the check fails."""
        if i1 <= i0:
            return super()._read_validated(i0, i1)
        before = max(i0 - 1, 0)
        k0 = int(np.searchsorted(self._offsets, before, side="right")) - 1
        k1 = int(np.searchsorted(self._offsets, i1 - 1, side="right")) - 1
        x, y, t, p = fresh_arrays(i1 - before)
        t_before, at = np.iinfo(np.int64).min, 0
        for k in range(k0, k1 + 1):
            first, last = int(self._offsets[k]), int(self._offsets[k + 1])
            if last == first:
                continue
            columns = self._chunk(k, keep=k in (k0, k1))
            if any(column.dtype.kind not in "iub" for column in columns):
                return super()._read_validated(i0, i1)  # fractional coordinates or timestamps
            start, stop = max(before, first) - first, min(i1, last) - first
            if not self._gather(columns, start, stop, (x, y, t, p), at, t_before):
                return super()._read_validated(i0, i1)
            at += stop - start
            t_before = int(t[at - 1])
        skip = i0 - before
        return EventArray(x[skip:], y[skip:], t[skip:], p[skip:], self.sensor_size)

    def _close(self) -> None:
        self._cache.clear()


def fresh_arrays(count: int) -> Arrays:
    """Uninitialised x, y (uint16), t (int64 µs), p (int8) for `count` events: the copy writes
    every element once (no zeroing pass)."""
    return np.empty(count, np.uint16), np.empty(count, np.uint16), np.empty(count, np.int64), np.empty(count, np.int8)
