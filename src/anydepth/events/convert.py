"""Any readable event recording -> a DSEC-style HDF5 file, for fast random access by time.

The output has DSEC's layout (see `anydepth.events.readers.dsec`), so `open_events` reads it lazily
through `ms_to_idx` and DSEC's own tools open it too:
- `events/x`, `events/y` uint16, `events/p` uint8 (1 = positive, 0 = negative), `events/t` µs
  relative to `t_offset`: uint32 as in DSEC when the recording spans at most 2**32 - 1 µs
  (71.6 minutes), else int64 (DSEC's layout cannot hold more in uint32); all Blosc/ZSTD-compressed
  with bit shuffle (`hdf5plugin`), chunks of `CHUNK_EVENTS` events;
- `ms_to_idx` uint64 (last ms + 1,): index of the first event with t >= ms * 1000 µs (relative);
- `t_offset` int64 scalar µs = the first event's time, so absolute time = t + t_offset;
- root attribute `sensor_size` = (height, width), which DSEC's files do not state (the DSEC reader
  takes it from here before falling back to its 480x640).
Memory stays bounded: the input is read window by window (`window_events` events) and appended
to resizable datasets; the file appears at OUTPUT only when complete (temporary file + rename).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from anydepth.atomic import atomic_write
from anydepth.errors import InputError, Remedy
from anydepth.events.readers import open_events
from anydepth.synth.writers import UINT32_MAX, blosc_zstd

CHUNK_EVENTS = 1 << 16  # HDF5 chunk of the event datasets (DSEC's own files use chunks of this order)
CHUNK_MS = 1 << 12  # HDF5 chunk of ms_to_idx
WINDOW_EVENTS = 1 << 20  # events read and written per step (about 13 MB in memory)
OVERWRITE = Remedy(python="pass overwrite=True to replace it", flag="overwrite", cli="--overwrite replaces it",
                   elsewhere="remove it or choose another output")


@dataclass
class ConversionReport:
    """What `convert_to_dsec` wrote: the file, its event count, the span [t_start, t_end] in µs of
    the recording's clock (None without events), sensor (height, width), and the wall time."""

    path: Path
    events: int
    t_start_us: int | None
    t_end_us: int | None
    sensor_size: tuple[int, int]
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


class _MsToIdx:
    """DSEC's `ms_to_idx`, built chunk by chunk from sorted relative times: entry ms is the index
    of the first event with t >= ms * 1000 (`anydepth.synth.writers.ms_to_idx` over the whole array)."""

    def __init__(self):
        self.next_ms = 0  # first millisecond whose entry is not yet known

    def extend(self, t_relative_us: np.ndarray, first_index: int) -> np.ndarray:
        """Entries fixed by this chunk (events first_index, first_index + 1, ...): every ms up to
        the chunk's last event's ms (later events cannot lie before it, the times being sorted)."""
        if not len(t_relative_us):
            return np.zeros(0, np.uint64)
        last_ms = int(t_relative_us[-1]) // 1000
        edges = np.arange(self.next_ms, last_ms + 1, dtype=np.int64) * 1000
        self.next_ms = last_ms + 1
        return (np.searchsorted(t_relative_us, edges, side="left") + first_index).astype(np.uint64)


def _append(dataset: h5py.Dataset, values: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize((start + len(values),))
    dataset[start:] = values


def convert_to_dsec(source: str | Path, target: str | Path, *, overwrite: bool = False,
                    window_events: int = WINDOW_EVENTS, progress: Callable[[int, int], object] | None = None,
                    **options) -> ConversionReport:
    """Write the events of `source` (anything `open_events` opens; `options` go to its reader) to
    `target` (.h5 / .hdf5) in DSEC's layout (module docstring) and return a `ConversionReport`.

    progress: called after each step with (events written so far, events in the recording).
    overwrite: replace an existing target (else InputError). Read errors of the source (FormatError
    naming it) leave no target behind. Rectified (fractional) coordinates cannot be stored.
    """
    source, target = Path(source), Path(target)
    if target.suffix.lower() not in (".h5", ".hdf5"):
        raise InputError("the output must be an .h5 or .hdf5 file", target)
    if target.exists() and not overwrite:
        raise InputError("exists", target, remedy=OVERWRITE)
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise InputError("the output is the input file", target)
    if int(window_events) != window_events or window_events <= 0:
        raise InputError(f"window_events must be a positive integer, got {window_events}")
    started = time.perf_counter()
    with open_events(source, **options) as reader:
        height, width = reader.sensor_size
        if max(height, width) > 1 << 16:
            raise InputError(f"sensor {height}x{width} does not fit DSEC's uint16 coordinates", source)
        count, t_start, t_end = len(reader), reader.t_start, reader.t_end
        t_offset = 0 if t_start is None else t_start
        t_dtype = np.uint32 if t_start is None or t_end - t_start <= UINT32_MAX else np.int64

        def write(temporary: str) -> None:
            with h5py.File(temporary, "w") as handle:
                handle.attrs["sensor_size"] = np.array([height, width], np.int64)
                columns = {}
                for key, dtype in (("x", np.uint16), ("y", np.uint16), ("t", t_dtype), ("p", np.uint8)):
                    columns[key] = handle.create_dataset(f"events/{key}", shape=(0,), maxshape=(None,), dtype=dtype,
                                                         chunks=(CHUNK_EVENTS,), **blosc_zstd())
                table = handle.create_dataset("ms_to_idx", shape=(0,), maxshape=(None,), dtype=np.uint64,
                                              chunks=(CHUNK_MS,), **blosc_zstd())
                handle.create_dataset("t_offset", data=np.int64(t_offset))
                ms_to_idx, written = _MsToIdx(), 0
                for events in reader.windows(count=int(window_events)):
                    if events.x.dtype.kind == "f" or events.y.dtype.kind == "f":
                        raise InputError("events have fractional (rectified) coordinates; DSEC stores whole pixels", source)
                    t_relative = events.t - t_offset
                    _append(columns["x"], events.x.astype(np.uint16))
                    _append(columns["y"], events.y.astype(np.uint16))
                    _append(columns["t"], t_relative.astype(t_dtype))
                    _append(columns["p"], (events.p > 0).astype(np.uint8))
                    _append(table, ms_to_idx.extend(t_relative, written))
                    written += len(events)
                    if progress is not None:
                        progress(written, count)
                if written != count:
                    raise InputError(f"read {written} events, the reader announced {count}", source)

        atomic_write(target, write)
    return ConversionReport(target, count, t_start, t_end, (height, width), time.perf_counter() - started)


__all__ = ["CHUNK_EVENTS", "ConversionReport", "convert_to_dsec"]
