"""Prophesee recordings: EVT 2.0 / 2.1 / 3.0 `.raw`, `.dat` CD files and Metavision HDF5.

`.raw`: ASCII header lines starting with `%` (`% format EVT3;height=720;width=1280`, or the older
`% evt 3.0` + `% geometry 1280x720`; `% serial_number ...`; newer files end it with `% end`), then the
little-endian words of the stream (`prophesee_kernels` documents them). Reading the whole file
(`read_all`) or streaming it from its start (`windows`) decodes the words once, in chunks. Reads by
index or time use an index built by one pass when first needed: a checkpoint (the decoder state,
events so far, last timestamp) every `block_words` words, and the EXT_TRIGGER events
(`reader.triggers`); such a read decodes only the blocks it overlaps, so a 20 GB file is read in
bounded memory either way. The kernels check the order of the timestamps as they decode and skip
events outside the sensor, so a decoded window needs no validating pass of its own.

`.dat`: `%` header lines (`% Height`, `% Width`, `% Version 2`), one byte event type (12 = CD, or 0)
and one byte event size (8), then records of uint32 t (µs) and uint32 packed x (bits 13..0),
y (27..14), p (bit 28). Fixed-size records: read by index, searched by time without an index pass;
one kernel decodes and validates a window.

Metavision HDF5: `CD/events` compound (x uint16, y uint16, p int16, t int64 µs) with `CD/indexes`;
compressed by default with Prophesee's ECF codec (HDF5 filter 36559), which needs Prophesee's
`hdf5_ecf` plugin; uncompressed and gzip files open directly.

Timestamps are the sensor's own clock in µs (no shift to start at 0), made 64-bit across counter
wraps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from anydepth.errors import REPAIR, FormatError
from anydepth.events.container import EventArray
from anydepth.events.readers.base import GAP_WINDOWS, Arrays, EventReader, search_sorted_lazily
from anydepth.fileio import check_file, closing_on_error, first_line, open_hdf5, read_dataset, require_dataset
from anydepth.events.readers.prophesee_kernels import (KERNELS, MAX_PER_WORD, NO_STOP, S_BASE_SET, S_COUNT, S_LAST_T,
                                                       S_UNSORTED, STATE_SIZE, decode_dat_cd, new_state)

ECF_FILTER_ID = 36559  # 0x8ECF, Prophesee's ECF codec (prophesee-ai/hdf5_ecf)
RAW_FORMAT_NAMES = {"evt2": "evt2", "evt20": "evt2", "evt21": "evt21", "evt3": "evt3", "evt30": "evt3"}
FORMAT_TITLES = {"evt2": "EVT 2.0", "evt21": "EVT 2.1", "evt3": "EVT 3.0"}
DAT_CD_TYPES = (0, 12)
MAX_HEADER_LINE = 4096
EVENTS_PER_WORD_GUESS = {"evt2": 1, "evt21": 2, "evt3": 1}  # first capacity of a whole-file decode (evt2: exact bound)
TRIGGER_CAPACITY = 1 << 14  # triggers held per kernel call
NO_CHECKPOINTS = np.empty((0, STATE_SIZE), np.int64)
NO_EVENTS = (np.empty(0, np.uint16), np.empty(0, np.uint16), np.empty(0, np.int64), np.empty(0, np.int8))
NO_TRIGGERS = (np.empty(0, np.int64), np.empty(0, np.uint8), np.empty(0, np.int8))


class TriggerEvents(NamedTuple):
    """EXT_TRIGGER events: t int64 µs (the clock of the CD events), id uint8 (trigger channel),
    p int8 (1 = rising edge, 0 = falling)."""

    t: np.ndarray
    id: np.ndarray
    p: np.ndarray


def read_header(path: Path) -> tuple[dict[str, str], int]:
    """The `%` header of a Prophesee file: {key: value} (first word after `%` -> the rest of the line)
    and the byte offset of the data after it."""
    header: dict[str, str] = {}
    offset = 0
    with open(path, "rb") as handle:
        while True:
            line = handle.readline(MAX_HEADER_LINE)
            if not line.startswith(b"%") or not line.endswith(b"\n"):
                break
            try:
                text = line[1:].decode("ascii").strip()
            except UnicodeDecodeError:
                break
            offset += len(line)
            key, _, value = text.partition(" ")
            if key == "end":
                break
            if key:
                header[key] = value.strip()
    return header, offset


def _size_from_header(header: dict[str, str], options: dict[str, str]) -> tuple[int, int] | None:
    """(height, width) from `format` options, `% geometry WxH` or `% Height` / `% Width`."""
    try:
        if "width" in options and "height" in options:
            return int(options["height"]), int(options["width"])
        if "geometry" in header:
            width, height = header["geometry"].lower().split("x")
            return int(height), int(width)
        if "Height" in header and "Width" in header:
            return int(header["Height"].split()[0]), int(header["Width"].split()[0])
    except ValueError:
        return None
    return None


def raw_format_of(header: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """The stream format of a `.raw` header ("evt2", "evt21", "evt3" or None) and the options of its
    `format` field (height, width, endianness...)."""
    options: dict[str, str] = {}
    name = None
    if "format" in header:
        name, *fields = header["format"].split(";")
        for field in fields:
            key, _, value = field.partition("=")
            options[key.strip().lower()] = value.strip()
    elif "evt" in header:
        name = "evt" + header["evt"]
    if name is None:
        return None, options
    return RAW_FORMAT_NAMES.get(name.strip().lower().replace(".", "").replace(" ", "")), options


def prophesee_signature(path: Path) -> str:
    """"prophesee-raw" for a `%` header naming an EVT format, "prophesee-dat" for a `.dat` CD
    header, "" otherwise."""
    header, _ = read_header(path)
    if "format" in header or "evt" in header:
        return "prophesee-raw"
    if path.suffix.lower() == ".dat" or "Version" in header or "Height" in header:
        return "prophesee-dat"
    return ""


class _Cursor:
    """Where a sequential decode of a `.raw` stream stands: the decoder state and the next word."""

    def __init__(self):
        self.state = new_state()
        self.word = 0


class _Outputs:
    """Growable x, y, t, p columns that a kernel fills; `slack` = MAX_PER_WORD - 1 slots past the
    capacity take the branch-free writes of the last word."""

    def __init__(self, capacity: int, slack: int):
        self.slack = slack
        size = max(int(capacity), 1) + slack
        self.x, self.y = np.empty(size, np.uint16), np.empty(size, np.uint16)
        self.t, self.p = np.empty(size, np.int64), np.empty(size, np.int8)

    def full(self, filled: int) -> bool:
        """True when the kernel stopped because the columns could not take another word."""
        return filled > len(self.x) - self.slack - 1

    def resize(self, size: int) -> None:
        """Grow or trim in place (realloc: large columns are remapped, not copied); no view of the
        columns may exist."""
        for column in (self.x, self.y, self.t, self.p):
            column.resize(max(int(size), 0), refcheck=False)

    def take(self, filled: int) -> Arrays:
        self.resize(filled)
        return self.x, self.y, self.t, self.p


class PropheseeRawReader(EventReader):
    """A Prophesee `.raw` recording (EVT 2.0, EVT 2.1 or EVT 3.0), read lazily through a block index.

    The index (one row of decoder state per block of words, the event counts, the triggers) is built
    by one scanning pass the first time it is needed (`len`, reads by index or time, `t_end`,
    `triggers`); `read_all` and `windows` from the start of the file decode the stream in one pass
    without it (read_all builds the index in the same pass). Damaged streams raise FormatError then.

    sensor_size: (height, width) when the header does not state the geometry.
    block_words: words per index block (a window read by index decodes whole blocks; memory per block:
    the events of block_words words). repair: load the whole file, sort it and drop events outside the
    sensor. Attributes: `encoding` ("evt2", "evt21", "evt3"), `header` ({key: value}), `serial`,
    `triggers` (TriggerEvents), `checkpoints` (the index, one row of decoder state per block).
    """

    format_name = "prophesee-raw"
    _chunk_words = 1 << 24  # words per kernel call of a sequential decode (Python can interrupt between calls)

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, repair: bool = False,
                 block_words: int = 1 << 16):
        path = check_file(path)
        self.header, self._data_offset = read_header(path)
        encoding, options = raw_format_of(self.header)
        if encoding is None:
            found = self.header.get("format", self.header.get("evt", "none"))
            raise FormatError(f"not a Prophesee EVT 2.0 / 2.1 / 3.0 raw file (header format: {found})", path)
        size = _size_from_header(self.header, options) or sensor_size
        if size is None:
            raise FormatError("the header states no sensor geometry: pass sensor_size=(height, width)", path)
        super().__init__(path, size)
        self.encoding = encoding
        self.serial = self.header.get("serial_number", self.header.get("serial"))
        legacy = options.get("endianness", self.header.get("endianness", "")).lower() == "legacy"
        self._option = 1 if legacy else 0
        self._kernel, self._dtype = KERNELS[encoding]
        self._slack = MAX_PER_WORD[encoding] - 1
        self._block = int(block_words)
        data_bytes = path.stat().st_size - self._data_offset
        if data_bytes % self._dtype.itemsize:
            raise FormatError(f"truncated {FORMAT_TITLES[encoding]} stream: {data_bytes} bytes of data is not a whole "
                              f"number of {self._dtype.itemsize}-byte words", path)
        self._words = data_bytes // self._dtype.itemsize
        self._checkpoints: np.ndarray | None = None
        if self._words:
            self._mapped = np.memmap(path, self._dtype, "r", self._data_offset, (self._words,))
        else:
            self._mapped = np.empty(0, self._dtype)
            self._mapped.flags.writeable = False  # one array type for the kernels
        if repair:
            self._load_repaired()

    # ---- sequential decoding -------------------------------------------------------------------
    def _words_until(self, stop: int) -> np.ndarray:
        """The mapped words [0, stop), after checking that the file still holds them (a mapped file that
        shrank would crash the process instead of raising)."""
        size = self.path.stat().st_size
        if size < self._data_offset + stop * self._dtype.itemsize:
            raise FormatError(f"file shrank since it was opened: {size} bytes, word {stop} ends at byte "
                              f"{self._data_offset + stop * self._dtype.itemsize}", self.path)
        return self._mapped[:stop]

    def _decode(self, cursor: _Cursor, outputs: _Outputs | None, base_count: int = 0, t_stop: int = NO_STOP,
                checkpoints: np.ndarray = NO_CHECKPOINTS, triggers: list | None = None) -> bool:
        """Decode from the cursor into `outputs` (None: count only) until the words end (True), the
        outputs are full or the next event is at t >= t_stop (False). checkpoints: the index rows to
        fill; triggers: a list that receives (t, id, p) arrays of the EXT_TRIGGER events."""
        columns = (outputs.x, outputs.y, outputs.t, outputs.p) if outputs is not None else NO_EVENTS
        recording = TRIGGER_CAPACITY if triggers is not None else 0
        trig = np.empty(recording, np.int64), np.empty(recording, np.uint8), np.empty(recording, np.int8)
        trig_count = np.zeros(1, np.int64)
        try:
            while cursor.word < self._words:
                end = min(self._words, cursor.word + self._chunk_words)
                stop = self._kernel(self._words_until(end), cursor.word, cursor.state, self.sensor_size[1],
                                    self.sensor_size[0], self._block, *columns, base_count, t_stop, checkpoints, 0,
                                    *trig, trig_count, self._option)
                cursor.word = stop
                if stop < end:
                    if recording and trig_count[0] == recording:
                        triggers.append(tuple(column[:recording].copy() for column in trig))
                        trig_count[0] = 0
                        continue
                    return False
            if self._words and not cursor.state[S_BASE_SET]:
                raise FormatError(f"no time-high word in {self._words} words: not {FORMAT_TITLES[self.encoding]} "
                                  f"data, or corrupt", self.path)
            return True
        finally:
            if recording and trig_count[0]:
                held = int(trig_count[0])
                triggers.append(tuple(column[:held].copy() for column in trig))

    def _decode_until(self, cursor: _Cursor, capacity: int, t_stop: int = NO_STOP, checkpoints=NO_CHECKPOINTS,
                      triggers: list | None = None, grow: bool = True, prefix: Arrays | None = None,
                      check_order: bool = True) -> tuple[Arrays, bool]:
        """Events from the cursor until the words end or t >= t_stop (grow=True), or until about
        `capacity` of them (grow=False: at least capacity, at most capacity + MAX_PER_WORD - 1),
        after the events of `prefix`. Returns the arrays and whether the words ended; raises
        FormatError on unsorted times (check_order)."""
        held = len(prefix[0]) if prefix is not None else 0
        outputs = _Outputs(max(capacity, held + 1), self._slack)
        if held:
            for column, part in zip((outputs.x, outputs.y, outputs.t, outputs.p), prefix):
                column[:held] = part
        base_count = int(cursor.state[S_COUNT]) - held
        while True:
            ended = self._decode(cursor, outputs, base_count, t_stop, checkpoints, triggers)
            filled = int(cursor.state[S_COUNT]) - base_count
            if ended or not grow or not outputs.full(filled):
                break
            outputs.resize(2 * len(outputs.x))
        if check_order and cursor.state[S_UNSORTED] >= 0:
            raise self._unsorted(int(cursor.state[S_UNSORTED]))
        return outputs.take(filled), ended

    def _unsorted(self, event: int) -> FormatError:
        return FormatError(f"timestamps are not sorted: event {event} is earlier than the event before it",
                           self.path, remedy=REPAIR)

    def _decode_everything(self, check_order: bool = True) -> Arrays:
        """Every event of the file in one pass, which also builds the index."""
        blocks = -(-self._words // self._block)
        checkpoints = np.zeros((blocks + 1, STATE_SIZE), np.int64)
        triggers: list = []
        cursor = _Cursor()
        arrays, _ = self._decode_until(cursor, self._words * EVENTS_PER_WORD_GUESS[self.encoding], NO_STOP,
                                       checkpoints, triggers, check_order=check_order)
        checkpoints[blocks] = cursor.state
        self._store_index(checkpoints, triggers)
        return arrays

    # ---- the index -----------------------------------------------------------------------------
    def _index(self) -> None:
        """Build the index (one counting pass) unless it exists (kept after close)."""
        if self._checkpoints is not None:
            return
        self._check_open()
        blocks = -(-self._words // self._block)
        checkpoints = np.zeros((blocks + 1, STATE_SIZE), np.int64)
        triggers: list = []
        cursor = _Cursor()
        self._decode(cursor, None, checkpoints=checkpoints, triggers=triggers)
        if cursor.state[S_UNSORTED] >= 0 and self._memory is None:  # (a repaired file holds its events sorted)
            raise self._unsorted(int(cursor.state[S_UNSORTED]))
        checkpoints[blocks] = cursor.state
        self._store_index(checkpoints, triggers)

    def _store_index(self, checkpoints: np.ndarray, triggers: list) -> None:
        self._counts = checkpoints[:, S_COUNT].copy()
        self._last_t = checkpoints[:, S_LAST_T].copy()
        parts = list(zip(*triggers)) if triggers else ([], [], [])
        self._triggers = TriggerEvents(*(np.concatenate(part) if len(part) else np.empty(0, dtype)
                                         for part, dtype in zip(parts, (np.int64, np.uint8, np.int8))))
        self._checkpoints = checkpoints

    @property
    def checkpoints(self) -> np.ndarray:
        """The index: (blocks + 1, STATE_SIZE) int64, the decoder state before each block and at the end."""
        self._index()
        return self._checkpoints

    @property
    def triggers(self) -> TriggerEvents:
        """The EXT_TRIGGER events of the file."""
        self._index()
        return self._triggers

    # ---- whole-file and streaming paths --------------------------------------------------------
    def read_all(self) -> EventArray:
        """Every event of the file: one decoding pass (that also builds the index when it is missing)."""
        self._check_open()
        if self._memory is not None or self._checkpoints is not None:
            return super().read_all()
        return EventArray(*self._decode_everything(), self.sensor_size)

    def windows(self, window_us: int | None = None, count: int | None = None,
                t0_us: int | None = None, t1_us: int | None = None,
                gap_windows: int | None = GAP_WINDOWS) -> Iterator[EventArray]:
        """As `EventReader.windows`; over the whole file (no t0, t1) the stream is decoded once,
        window after window, without the index; at a stretch of `gap_windows` empty windows after an
        event's window, `EventReader.windows` (which skips it) takes over from that window."""
        sequential = (self._memory is None and t0_us is None and t1_us is None and (window_us is None) != (count is None)
                      and all(value is None or (value == int(value) and value > 0) for value in (window_us, count)))
        if not sequential:
            yield from super().windows(window_us, count, t0_us, t1_us, gap_windows)
            return
        self._check_open()
        if window_us is not None:
            yield from self._stream_by_time(int(window_us), gap_windows)
        else:
            yield from self._stream_by_count(int(count))

    def _next_time(self, cursor: _Cursor) -> int | None:
        """Time of the next event after the cursor (None: none), without moving the cursor."""
        ahead = _Cursor()
        ahead.state[:], ahead.word = cursor.state, cursor.word
        t = self._decode_until(ahead, 1, grow=False, check_order=False)[0][2]
        return int(t[0]) if len(t) else None

    def _stream_by_time(self, window_us: int, gap_windows: int | None) -> Iterator[EventArray]:
        start = self._next_time(_Cursor())
        if start is None:
            return
        cursor = _Cursor()
        expected = 1 << 16
        for k in itertools.count():
            arrays, ended = self._decode_until(cursor, expected, start + (k + 1) * window_us)
            if not len(arrays[0]) and gap_windows is not None:  # (an event follows: the kernel stopped before it)
                empty = (self._next_time(cursor) - start) // window_us - k  # empty windows from this one on
                if empty >= gap_windows:  # a gap after an event's window: EventReader.windows skips it, from here on
                    yield from super().windows(window_us, t0_us=start + k * window_us, gap_windows=gap_windows)
                    return
            yield EventArray(*arrays, self.sensor_size)
            if ended:
                return
            expected = len(arrays[0]) + len(arrays[0]) // 4 + 1024

    def _stream_by_count(self, count: int) -> Iterator[EventArray]:
        cursor = _Cursor()
        held: Arrays | None = None  # events decoded past the last window (a word's events are not split)
        ended = False
        while True:
            if not ended and (held is None or len(held[0]) < count):
                arrays, ended = self._decode_until(cursor, count, grow=False, prefix=held)
            else:
                arrays = held
            if not len(arrays[0]):
                return
            yield EventArray(*(column[:count] for column in arrays), self.sensor_size)
            held = tuple(column[count:] for column in arrays)
            if ended and not len(held[0]):
                return

    def _load_repaired(self) -> None:
        self._hold(self._decode_everything(check_order=False), repair=True)

    # ---- lazy access through the index ---------------------------------------------------------
    def _decode_blocks(self, first_block: int, stop_block: int) -> Arrays:
        """Every event of blocks [first_block, stop_block), from the checkpoint of the first."""
        self._index()
        size = int(self._counts[stop_block] - self._counts[first_block])
        if not size:
            return np.empty(0, np.uint16), np.empty(0, np.uint16), np.empty(0, np.int64), np.empty(0, np.int8)
        outputs = _Outputs(size, self._slack)
        first_word = first_block * self._block
        words = self._words_until(min(stop_block * self._block, self._words))[first_word:]
        state = self._checkpoints[first_block].copy()
        self._kernel(words, 0, state, self.sensor_size[1], self.sensor_size[0], self._block, outputs.x, outputs.y,
                     outputs.t, outputs.p, int(self._counts[first_block]), NO_STOP, NO_CHECKPOINTS, 0, *NO_TRIGGERS,
                     np.zeros(1, np.int64), self._option)
        if state[S_COUNT] != self._counts[stop_block] or state[S_UNSORTED] != self._checkpoints[first_block, S_UNSORTED]:
            raise FormatError(f"file changed since it was opened (block {first_block} decodes differently)", self.path)
        return outputs.x[:size], outputs.y[:size], outputs.t[:size], outputs.p[:size]

    def _count(self) -> int:
        self._index()
        return int(self._counts[-1])

    def _index_of_time(self, t_us: int) -> int:
        self._index()
        blocks = len(self._counts) - 1
        if blocks == 0 or self._counts[-1] == 0:
            return 0
        # last_t[c]: the last event before block c, so block c holds the first event >= t_us or none does
        block = int(np.searchsorted(self._last_t[:blocks], t_us, side="left")) - 1
        if block < 0:
            return 0
        t = self._decode_blocks(block, block + 1)[2]
        return int(self._counts[block]) + int(np.searchsorted(t, t_us, side="left"))

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        if i0 == i1:
            return np.empty(0, np.uint16), np.empty(0, np.uint16), np.empty(0, np.int64), np.empty(0, np.int8)
        self._index()
        first_block = int(np.searchsorted(self._counts, i0, side="right")) - 1
        stop_block = int(np.searchsorted(self._counts, i1, side="left"))
        x, y, t, p = self._decode_blocks(first_block, stop_block)
        start = i0 - int(self._counts[first_block])
        selection = slice(start, start + i1 - i0)
        return x[selection], y[selection], t[selection], p[selection]

    def _read_validated(self, i0: int, i1: int) -> EventArray:
        """Events [i0, i1): the kernels skip events outside the sensor, give 0/1 polarities and check the
        order against the event before each block, so the index's decode needs no further pass."""
        if i0 == i1:
            return EventArray.empty(self.sensor_size)
        return EventArray(*self._read_arrays(i0, i1), self.sensor_size)

    def _close(self) -> None:
        self._mapped = None


class PropheseeDatReader(EventReader):
    """A Prophesee `.dat` file of CD events, read lazily (fixed-size records, binary search on t).

    sensor_size: (height, width) when the header has no `% Height` / `% Width`.
    repair: load the whole file, sort it and drop events outside the sensor.
    """

    format_name = "prophesee-dat"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, repair: bool = False):
        path = check_file(path)
        self.header, offset = read_header(path)
        size = _size_from_header(self.header, {}) or sensor_size
        if size is None:
            raise FormatError("the header states no sensor size (% Height, % Width): pass sensor_size=(height, width)", path)
        super().__init__(path, size)
        file_size = path.stat().st_size
        if file_size < offset + 2:
            raise FormatError("truncated: the event type and size bytes after the header are missing", path)
        with open(path, "rb") as handle:
            handle.seek(offset)
            event_type, event_size = handle.read(2)
        if event_type not in DAT_CD_TYPES or event_size != 8:
            raise FormatError(f"not a DAT file of CD events (event type {event_type}, size {event_size}; expected "
                              f"type 12 or 0, size 8)", path)
        data_bytes = file_size - offset - 2
        if data_bytes % 8:
            raise FormatError(f"truncated: {data_bytes} bytes of events is not a whole number of 8-byte events", path)
        self._n = data_bytes // 8
        self._records = (np.memmap(path, np.dtype("<u4"), "r", offset + 2, (self._n, 2)) if self._n
                         else np.zeros((0, 2), np.uint32))
        if repair:
            self._load_repaired()

    def _count(self) -> int:
        return self._n

    def _read_t(self, i0: int, i1: int) -> np.ndarray:
        return self._records[i0:i1, 0].astype(np.int64)

    def _index_of_time(self, t_us: int) -> int:
        return search_sorted_lazily(self._read_t, self._n, t_us)

    def _decode(self, i0: int, i1: int) -> tuple[Arrays, bool]:
        """Events [i0, i1) and whether they are valid (sorted after event i0 - 1, inside the sensor)."""
        records = np.ascontiguousarray(self._records[i0:i1])
        size = len(records)
        x, y = np.empty(size, np.uint16), np.empty(size, np.uint16)
        t, p = np.empty(size, np.int64), np.empty(size, np.int8)
        last_t = int(self._records[i0 - 1, 0]) if i0 else -1
        unsorted, outside = decode_dat_cd(records, self.sensor_size[1], self.sensor_size[0], last_t, x, y, t, p)
        return (x, y, t, p), not (unsorted or outside)

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        return self._decode(i0, i1)[0]

    def _read_validated(self, i0: int, i1: int) -> EventArray:
        """Events [i0, i1), validated by the decoding kernel; a problem is reported by the usual check."""
        if i0 == i1:
            return EventArray.empty(self.sensor_size)
        arrays, valid = self._decode(i0, i1)
        if not valid:
            super()._read_validated(i0, i1)  # raises FormatError with the usual message
            raise FormatError(f"events {i0}..{i1} are unsorted or outside the sensor", self.path)
        return EventArray(*arrays, self.sensor_size)

    def _close(self) -> None:
        self._records = None


def is_metavision_h5(names: set[str]) -> bool:
    """The HDF5 layout Metavision writes: CD/events with its CD/indexes."""
    return "CD/events" in names


class MetavisionH5Reader(EventReader):
    """A Metavision HDF5 recording (`CD/events` compound x, y, p, t), read lazily by binary search on t.

    ECF-compressed files need Prophesee's `hdf5_ecf` plugin (FormatError naming it when absent).
    sensor_size: (height, width) when the file's attributes do not state it.
    repair: load the whole file, sort it and drop events outside the sensor.
    Attribute `triggers`: EXT_TRIGGER/events when present (TriggerEvents), else empty.
    """

    format_name = "metavision-h5"

    def __init__(self, path: str | Path, sensor_size: tuple[int, int] | None = None, repair: bool = False):
        path = check_file(path)
        self._file = open_hdf5(path)
        with closing_on_error(self._file):
            attributes = {key: _text(value) for key, value in self._file.attrs.items()}
            format_name, options = raw_format_of({"format": attributes["format"]} if "format" in attributes else {})
            size = _size_from_header(attributes, options) or sensor_size
            if size is None:
                raise FormatError("the file states no sensor geometry: pass sensor_size=(height, width)", path)
            super().__init__(path, size)
            self._events = require_dataset(self._file, "CD/events", path, ndim=1)
            names = self._events.dtype.names or ()
            if not all(field in names for field in "xypt"):
                raise FormatError(f"'CD/events' has fields {names}, expected x, y, p, t", path)
            _check_filters(self._events, path)
            self._n = len(self._events)
            self.triggers = TriggerEvents(np.empty(0, np.int64), np.empty(0, np.uint8), np.empty(0, np.int8))
            if "EXT_TRIGGER/events" in self._file:
                triggers = read_dataset(self._file["EXT_TRIGGER/events"], (), path)
                self.triggers = TriggerEvents(triggers["t"].astype(np.int64), triggers["id"].astype(np.uint8),
                                              triggers["p"].astype(np.int8))
            if repair:
                self._load_repaired()

    def _count(self) -> int:
        return self._n

    def _read_t(self, i0: int, i1: int) -> np.ndarray:
        try:
            return np.asarray(self._events.fields("t")[i0:i1]).astype(np.int64)
        except (OSError, ValueError, RuntimeError) as error:
            raise FormatError(f"cannot read 'CD/events' ({first_line(error)})", self.path) from None

    def _index_of_time(self, t_us: int) -> int:
        return search_sorted_lazily(self._read_t, self._n, t_us)

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        events = read_dataset(self._events, slice(i0, i1), self.path)
        return events["x"], events["y"], events["t"].astype(np.int64), events["p"]

    def _close(self) -> None:
        self._file.close()


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _check_filters(dataset: h5py.Dataset, path: Path) -> None:
    """FormatError in one line when the dataset is ECF-compressed and no ECF plugin is installed."""
    plist = dataset.id.get_create_plist()
    for index in range(plist.get_nfilters()):
        if plist.get_filter(index)[0] == ECF_FILTER_ID and not h5py.h5z.filter_avail(ECF_FILTER_ID):
            raise FormatError(f"'{dataset.name}' is compressed with Prophesee's ECF codec (HDF5 filter {ECF_FILTER_ID}), "
                              f"which is not installed: build prophesee-ai/hdf5_ecf and set HDF5_PLUGIN_PATH to it, "
                              f"or export the recording as .raw / uncompressed HDF5", path)
