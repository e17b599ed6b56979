"""AEDAT 2.0 files (jAER): `#` header lines, then big-endian records of a 32-bit address and a
32-bit timestamp (µs). Read lazily: one pass at opening builds a block index (DVS events per block
of 65,536 records, last timestamp), then only the blocks a read touches are decoded.

The address is chip-specific (jAER's extractors are the reference, checked 2026-12):
- DVS128 (`ch.unizh.ini.jaer.chip.retina.DVS128`, also AEDAT 1.0 data): x bits 1-7, y bits 8-14,
  bit 0 = 1 for an OFF event (jAER: type = (1 - addr) & 1; iniVation's web page states the
  opposite, jAER's code is what reads the files); bit 15 (sync / external input) or bit 31 set
  marks a special event, skipped.
- DAVIS (DAVIS240/346/640/208/128 chip classes): bit 31 = 1 marks APS (frame ADC) and IMU samples,
  bit 10 = 1 an external-input event, both skipped; y bits 22-30, x bits 12-21, bit 11 = polarity
  (1 = ON).
jAER puts the origin in the lower-left corner and mirrors x (x = width − 1 − raw x); here events
are given in image coordinates (origin top-left, y down): x = width − 1 − raw x, y = height − 1 −
raw y. Timestamps are unsigned 32-bit µs, unwrapped to int64 where they wrap (every ~71.6 min).

The chip (and so the layout and sensor size) comes from the header line `# AEChip: <class>` (or
`# HardwareInterface: ...`); `chip=` overrides it, and `sensor_size=(h, w)` overrides the size.

The index and the block decoder are numba kernels over the records read in blocks (`index_blocks`,
`decode_block`); `decode_dvs128` / `decode_davis` are their plain numpy references.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numba
import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import Arrays
from anydepth.events.readers.chunked import ChunkedEventReader
from anydepth.fileio import check_file, closing_on_error

AEDAT2_SIGNATURE = b"#!AER-DAT2.0"
RECORD = np.dtype([("address", ">u4"), ("t", ">u4")])
BLOCK_RECORDS = 1 << 16

# chip name -> (address layout, (height, width)); matched in this order against the header's chip
# class name (lower case), so the specific names come first.
AEDAT2_CHIPS: dict[str, tuple[str, tuple[int, int]]] = {
    "davis346": ("davis", (260, 346)),
    "davis640": ("davis", (480, 640)),
    "davisrgbw640": ("davis", (480, 640)),
    "cdavis": ("davis", (480, 640)),
    "davis240": ("davis", (180, 240)),
    "dvs240": ("davis", (180, 240)),
    "sbret10": ("davis", (180, 240)),
    "davis208": ("davis", (192, 208)),
    "davis128": ("davis", (128, 128)),
    "dvs128": ("dvs128", (128, 128)),
    "tmpdiff128": ("dvs128", (128, 128)),
}


def read_header_lines(path: Path, signature: bytes, end_line: bytes | None = None) -> tuple[list[str], int]:
    """The `#` header lines of an AEDAT file (without '#' and line ends) and the byte offset where
    the binary data starts. The first line must be `signature`; the header ends at `end_line`
    when given, else at the first line that does not start with '#'."""
    lines, offset = [], 0
    with open(path, "rb") as handle:
        if handle.read(len(signature)) != signature:
            raise FormatError(f"not an {signature[3:].decode()} file (no '{signature.decode()}' first line)", path)
        handle.seek(0)
        while True:
            if end_line is None and handle.peek(1)[:1] != b"#":
                break
            line = handle.readline()
            if not line.endswith(b"\n"):
                raise FormatError("truncated header (file ends inside the header lines)", path)
            offset += len(line)
            lines.append(line.rstrip(b"\r\n").decode("latin-1")[1:])
            if end_line is not None and line.rstrip(b"\r\n") == end_line:
                break
    return lines, offset


def chip_from_header(lines: list[str]) -> str | None:
    """Key of AEDAT2_CHIPS named by the `AEChip` (else `HardwareInterface`) header line, or None."""
    for key in ("AEChip:", "HardwareInterface:"):
        for line in lines:
            if line.strip().startswith(key):
                name = line.split(":", 1)[1].strip().lower().rsplit(".", 1)[-1]
                for chip in AEDAT2_CHIPS:
                    if chip in name.replace(" ", ""):
                        return chip
    return None


def decode_dvs128(address: np.ndarray, t: np.ndarray, height: int, width: int) -> Arrays:
    """DVS128 addresses (uint32) -> image-coordinate events (special events dropped)."""
    keep = (address & np.uint32(0x80008000)) == 0
    address, t = address[keep], t[keep]
    x = (width - 1 - ((address >> 1) & 0x7F)).astype(np.int32)
    y = (height - 1 - ((address >> 8) & 0x7F)).astype(np.int32)
    p = (1 - (address & 1)).astype(np.int8)
    return x, y, t, p


def decode_davis(address: np.ndarray, t: np.ndarray, height: int, width: int) -> Arrays:
    """DAVIS addresses (uint32) -> image-coordinate DVS events (APS, IMU and external events dropped)."""
    keep = (address & np.uint32(0x80000400)) == 0
    address, t = address[keep], t[keep]
    x = (width - 1 - ((address >> 12) & 0x3FF)).astype(np.int32)
    y = (height - 1 - ((address >> 22) & 0x1FF)).astype(np.int32)
    p = ((address >> 11) & 1).astype(np.int8)
    return x, y, t, p


DECODERS = {"dvs128": decode_dvs128, "davis": decode_davis}
DVS_MASK = {"dvs128": 0x80008000, "davis": 0x80000400}
SWAP = sys.byteorder == "little"  # the records are big-endian


@numba.njit(cache=True, nogil=True)
def _word(words, i, column, swap):
    value = words[i, column]
    if swap:
        value = ((value & 0xFF) << 24) | ((value & 0xFF00) << 8) | ((value >> 8) & 0xFF00) | (value >> 24)
    return np.int64(value)


@numba.njit(cache=True, nogil=True)
def index_blocks(words, first, block, mask, swap, counts, t_last, wraps_before, wraps, previous):
    """Index records [first, first + N) given as words (N, 2) uint32 (address, t) as stored: per
    block of `block` records, DVS events (counts), last DVS timestamp unwrapped to int64 µs
    (t_last) and the number of 32-bit wraps before the block (a wrap is a step down of more than
    2^31 µs). `wraps` and `previous` (the last raw timestamp) carry the state across calls;
    returns their new values."""
    for r in range(words.shape[0]):
        i = first + r
        k = i // block
        t = _word(words, r, 1, swap)
        if i > 0 and previous - t > np.int64(1) << 31:
            wraps += 1
        if i == k * block:
            wraps_before[k] = wraps
        previous = t
        if (_word(words, r, 0, swap) & mask) == 0:
            counts[k] += 1
            t_last[k] = t + (np.int64(wraps) << 32)
    return wraps, previous


@numba.njit(cache=True, nogil=True)
def decode_block(words, count, wraps, davis, height, width, swap):
    """The `count` DVS events of records words (N, 2) uint32 as stored, as x, y int32 (image
    coordinates), t int64 µs (unwrapped from `wraps` wraps before the block), p int8; see the
    module docstring."""
    x = np.empty(count, np.int32)
    y = np.empty(count, np.int32)
    t = np.empty(count, np.int64)
    p = np.empty(count, np.int8)
    mask = 0x80000400 if davis else 0x80008000
    j, previous = 0, np.int64(0)
    for i in range(words.shape[0]):
        stamp = _word(words, i, 1, swap)
        if i > 0 and previous - stamp > np.int64(1) << 31:
            wraps += 1
        previous = stamp
        address = _word(words, i, 0, swap)
        if (address & mask) != 0 or j >= count:
            continue
        if davis:
            x[j] = width - 1 - ((address >> 12) & 0x3FF)
            y[j] = height - 1 - ((address >> 22) & 0x1FF)
            p[j] = (address >> 11) & 1
        else:
            x[j] = width - 1 - ((address >> 1) & 0x7F)
            y[j] = height - 1 - ((address >> 8) & 0x7F)
            p[j] = 1 - (address & 1)
        t[j] = stamp + (np.int64(wraps) << 32)
        j += 1
    return x, y, t, p


class Aedat2Reader(ChunkedEventReader):
    """DVS events of a jAER AEDAT 2.0 file, read lazily (see module docstring).

    chip: a key of AEDAT2_CHIPS (default: from the header); sensor_size: (height, width), default
    the chip's; repair: sort and drop events outside the sensor instead of raising.
    """

    format_name = "aedat2"

    def __init__(self, path: str | Path, chip: str | None = None, sensor_size: tuple[int, int] | None = None,
                 repair: bool = False):
        path = check_file(path)
        lines, data_offset = read_header_lines(path, AEDAT2_SIGNATURE)
        if chip is not None and chip.lower() not in AEDAT2_CHIPS:
            raise InputError(f"unknown AEDAT 2.0 chip {chip!r}; known: {', '.join(AEDAT2_CHIPS)}", path)
        chip = chip.lower() if chip is not None else chip_from_header(lines)
        if chip is None:
            raise FormatError("the header names no known chip (no '# AEChip:' line): pass chip= "
                              f"({', '.join(AEDAT2_CHIPS)}) to give the address layout", path)
        self.chip = chip
        self.layout, chip_size = AEDAT2_CHIPS[chip]
        super().__init__(path, sensor_size or chip_size)
        self.header = lines
        size = path.stat().st_size - data_offset
        if size % RECORD.itemsize:
            raise FormatError(f"truncated AEDAT 2.0 file: {size % RECORD.itemsize} bytes after the last whole "
                              "8-byte record", path)
        self._n_records = size // RECORD.itemsize
        self._data_offset = data_offset
        self._handle = open(path, "rb")
        with closing_on_error(self._handle):
            self._build_index()
            if repair:
                self._load_repaired()

    def _words(self, start: int, stop: int, buffer: np.ndarray | None = None) -> np.ndarray:
        """Records [start, stop) as (N, 2) uint32 (address, t), bytes as stored (big-endian); read
        (not memory-mapped: page faults cost more than a read here)."""
        words = np.empty((stop - start, 2), np.uint32) if buffer is None else buffer[:stop - start]
        self._handle.seek(self._data_offset + start * RECORD.itemsize)
        if self._handle.readinto(words) != words.nbytes:
            raise FormatError("the file was truncated while it was read", self.path)
        return words

    def _build_index(self) -> None:
        """One pass over the records: DVS events and last DVS timestamp per block, and the number of
        32-bit timestamp wraps before each block."""
        block = self._block = BLOCK_RECORDS
        n_blocks = -(-self._n_records // block)
        counts, t_last = np.zeros(n_blocks, np.int64), np.zeros(n_blocks, np.int64)
        self._wraps = np.zeros(n_blocks, np.int64)
        wraps, previous = 0, 0
        step = max(1, (1 << 20) // block) * block  # whole blocks per read (8 MiB at the default)
        buffer = np.empty((min(step, self._n_records), 2), np.uint32)
        for start in range(0, self._n_records, step):
            words = self._words(start, min(start + step, self._n_records), buffer)
            wraps, previous = index_blocks(words, start, block, DVS_MASK[self.layout], SWAP, counts, t_last,
                                           self._wraps, wraps, previous)
        self._set_index(counts, t_last)

    def _decode_chunk(self, k: int) -> Arrays:
        start = k * self._block
        words = self._words(start, min(self._n_records, start + self._block))
        return decode_block(words, int(self._offsets[k + 1] - self._offsets[k]), int(self._wraps[k]),
                            self.layout == "davis", *self.sensor_size, SWAP)

    def _close(self) -> None:
        super()._close()
        self._handle.close()
