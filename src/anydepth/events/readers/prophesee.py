"""Prophesee recordings: EVT 2.0 / 2.1 / 3.0 `.raw`, `.dat` CD files and Metavision HDF5.

`.raw`: ASCII header lines starting with `%` (`% format EVT3;height=720;width=1280`, or the older
`% evt 3.0` + `% geometry 1280x720`; `% serial_number ...`; newer files end it with `% end`), then the
little-endian words of the stream (`prophesee_kernels` documents them). One scanning pass at open
counts the events and stores a checkpoint (the decoder state, events so far, last timestamp) every
`block_words` words, and collects the EXT_TRIGGER events into `reader.triggers`; a window then
decodes only the blocks it overlaps, so a 20 GB file streams in bounded memory.

`.dat`: `%` header lines (`% Height`, `% Width`, `% Version 2`), one byte event type (12 = CD, or 0)
and one byte event size (8), then records of uint32 t (µs) and uint32 packed x (bits 13..0),
y (27..14), p (bit 28). Fixed-size records: read by index, searched by time without an index pass.

Metavision HDF5: `CD/events` compound (x uint16, y uint16, p int16, t int64 µs) with `CD/indexes`;
compressed by default with Prophesee's ECF codec (HDF5 filter 36559), which needs Prophesee's
`hdf5_ecf` plugin; uncompressed and gzip files open directly.

Timestamps are the sensor's own clock in µs (no shift to start at 0), made 64-bit across counter
wraps.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from anydepth.errors import FormatError
from anydepth.events.readers.base import Arrays, EventReader, search_sorted_lazily
from anydepth.events.readers.files import check_file, first_line, open_hdf5, read_dataset, require_dataset
from anydepth.events.readers.prophesee_kernels import (KERNELS, S_BASE_SET, S_COUNT, S_LAST_T, STATE_SIZE,
                                                       decode_dat_cd, new_state)

ECF_FILTER_ID = 36559  # 0x8ECF, Prophesee's ECF codec (prophesee-ai/hdf5_ecf)
RAW_FORMAT_NAMES = {"evt2": "evt2", "evt20": "evt2", "evt21": "evt21", "evt3": "evt3", "evt30": "evt3"}
FORMAT_TITLES = {"evt2": "EVT 2.0", "evt21": "EVT 2.1", "evt3": "EVT 3.0"}
DAT_CD_TYPES = (0, 12)
MAX_HEADER_LINE = 4096


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


class PropheseeRawReader(EventReader):
    """A Prophesee `.raw` recording (EVT 2.0, EVT 2.1 or EVT 3.0), read lazily through a block index.

    sensor_size: (height, width) when the header does not state the geometry.
    block_words: words per index block (a window decodes whole blocks; memory per block: the events
    of block_words words). repair: load the whole file, sort it and drop events outside the sensor.
    Attributes: `encoding` ("evt2", "evt21", "evt3"), `header` ({key: value}), `serial`,
    `triggers` (TriggerEvents), `checkpoints` (the index, one row of decoder state per block).
    """

    format_name = "prophesee-raw"
    _chunk_blocks = 64

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
        self._block = int(block_words)
        data_bytes = path.stat().st_size - self._data_offset
        if data_bytes % self._dtype.itemsize:
            raise FormatError(f"truncated {FORMAT_TITLES[encoding]} stream: {data_bytes} bytes of data is not a whole "
                              f"number of {self._dtype.itemsize}-byte words", path)
        self._words = data_bytes // self._dtype.itemsize
        self._handle = open(path, "rb")
        try:
            self._scan()
            if repair:
                self._load_repaired()
        except BaseException:
            self._handle.close()
            raise

    # ---- the index pass -----------------------------------------------------------------------
    def _read_words(self, first: int, count: int) -> np.ndarray:
        self._handle.seek(self._data_offset + first * self._dtype.itemsize)
        words = np.fromfile(self._handle, self._dtype, count)
        if len(words) != count:
            raise FormatError(f"file shrank while reading: {len(words)} of {count} words at word {first}", self.path)
        return words

    def _scan(self) -> None:
        blocks = -(-self._words // self._block)
        checkpoints = np.zeros((blocks + 1, STATE_SIZE), np.int64)
        state = new_state()
        empty_u16, empty_i64, empty_i8 = np.empty(0, np.uint16), np.empty(0, np.int64), np.empty(0, np.int8)
        capacity = 1 << 14
        trig_t, trig_id, trig_p = np.empty(capacity, np.int64), np.empty(capacity, np.uint8), np.empty(capacity, np.int8)
        trig_count = np.zeros(1, np.int64)
        triggers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        chunk = self._block * self._chunk_blocks
        for first in range(0, self._words, chunk):
            words = self._read_words(first, min(chunk, self._words - first))
            position = 0
            while position < len(words):
                position = self._kernel(words, position, state, self.sensor_size[1], self.sensor_size[0], self._block,
                                        empty_u16, empty_u16, empty_i64, empty_i8, 0, checkpoints, first // self._block,
                                        trig_t, trig_id, trig_p, trig_count, self._option)
                if trig_count[0] == capacity or position == len(words):
                    held = int(trig_count[0])
                    triggers.append((trig_t[:held].copy(), trig_id[:held].copy(), trig_p[:held].copy()))
                    trig_count[0] = 0
        checkpoints[blocks] = state
        if self._words and not state[S_BASE_SET]:
            raise FormatError(f"no time-high word in {self._words} words: not {FORMAT_TITLES[self.encoding]} data, "
                              f"or corrupt", self.path)
        last_t = checkpoints[:, S_LAST_T]
        if len(last_t) > 1 and (np.diff(last_t) < 0).any():
            block = int(np.argmax(np.diff(last_t) < 0))
            raise FormatError(f"timestamps go backwards near event {int(checkpoints[block + 1, S_COUNT])} "
                              f"(repair=True loads and sorts the file)", self.path)
        self.checkpoints = checkpoints
        self._counts = checkpoints[:, S_COUNT].copy()
        self._last_t = last_t.copy()
        parts = list(zip(*triggers)) if triggers else ([], [], [])
        self.triggers = TriggerEvents(*(np.concatenate(part) if len(part) else np.empty(0, dtype)
                                        for part, dtype in zip(parts, (np.int64, np.uint8, np.int8))))

    # ---- lazy access --------------------------------------------------------------------------
    def _decode_blocks(self, first_block: int, stop_block: int) -> Arrays:
        """Every event of blocks [first_block, stop_block), from the checkpoint of the first."""
        size = int(self._counts[stop_block] - self._counts[first_block])
        x, y = np.empty(size, np.uint16), np.empty(size, np.uint16)
        t, p = np.empty(size, np.int64), np.empty(size, np.int8)
        if size:
            first_word = first_block * self._block
            words = self._read_words(first_word, min(stop_block * self._block, self._words) - first_word)
            state = self.checkpoints[first_block].copy()
            no_checkpoints = np.empty((0, STATE_SIZE), np.int64)
            no_triggers = np.empty(0, np.int64), np.empty(0, np.uint8), np.empty(0, np.int8)
            self._kernel(words, 0, state, self.sensor_size[1], self.sensor_size[0], self._block, x, y, t, p,
                         int(self._counts[first_block]), no_checkpoints, 0, *no_triggers, np.zeros(1, np.int64),
                         self._option)
            if state[S_COUNT] != self._counts[stop_block]:
                raise FormatError(f"file changed since it was opened (block {first_block} decodes differently)", self.path)
        return x, y, t, p

    def _count(self) -> int:
        return int(self._counts[-1])

    def _index_of_time(self, t_us: int) -> int:
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
        first_block = int(np.searchsorted(self._counts, i0, side="right")) - 1
        stop_block = int(np.searchsorted(self._counts, i1, side="left"))
        x, y, t, p = self._decode_blocks(first_block, stop_block)
        start = i0 - int(self._counts[first_block])
        selection = slice(start, start + i1 - i0)
        return x[selection], y[selection], t[selection], p[selection]

    def _close(self) -> None:
        self._handle.close()


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

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        records = np.ascontiguousarray(self._records[i0:i1])
        size = len(records)
        x, y = np.empty(size, np.uint16), np.empty(size, np.uint16)
        t, p = np.empty(size, np.int64), np.empty(size, np.int8)
        decode_dat_cd(records, x, y, t, p)
        return x, y, t, p

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
        try:
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
        except BaseException:
            self._file.close()
            raise

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
