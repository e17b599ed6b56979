"""Lazy access to files cut into chunks (packets, blocks of records) through a small index.

A chunked reader knows, per chunk, how many events it holds and its last timestamp; it decodes
only the chunks a read touches (and keeps the last few decoded), so memory stays bounded by a
window plus a few chunks whatever the file size. The iniVation readers (AEDAT 2.0, 3.1, 4) share it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import OrderedDict

import numpy as np

from anydepth.events.readers.base import Arrays, EventReader

EMPTY_ARRAYS: Arrays = (np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.int64), np.zeros(0, np.int8))


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

    def _chunk(self, k: int) -> Arrays:
        arrays = self._cache.get(k)
        if arrays is None:
            arrays = self._decode_chunk(k)
            self._cache[k] = arrays
            while len(self._cache) > self.cached_chunks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(k)
        return arrays

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

    def _close(self) -> None:
        self._cache.clear()
