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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import Arrays
from anydepth.events.readers.chunked import ChunkedEventReader
from anydepth.events.readers.files import check_file

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
        self._records = np.memmap(path, dtype=RECORD, mode="r", offset=data_offset,
                                  shape=(size // RECORD.itemsize,)) if size else np.zeros(0, RECORD)
        self._build_index()
        if repair:
            self._load_repaired()

    def _build_index(self) -> None:
        """One pass over the records: DVS events and last DVS timestamp per block, and the number of
        32-bit timestamp wraps before each block."""
        n_blocks = -(-len(self._records) // BLOCK_RECORDS)
        counts = np.zeros(n_blocks, np.int64)
        t_last = np.zeros(n_blocks, np.int64)
        self._wraps = np.zeros(n_blocks, np.int64)
        mask = np.uint32(DVS_MASK[self.layout])
        wraps, previous = 0, None
        for k in range(n_blocks):
            block = self._records[k * BLOCK_RECORDS:(k + 1) * BLOCK_RECORDS]
            t = block["t"].astype(np.int64)
            self._wraps[k] = wraps
            if previous is not None and previous - t[0] > 1 << 31:
                self._wraps[k] = wraps = wraps + 1
            drops = np.flatnonzero(np.diff(t) < -(1 << 31))
            dvs = (block["address"] & mask) == 0
            counts[k] = int(np.count_nonzero(dvs))
            if counts[k]:
                last = int(np.flatnonzero(dvs)[-1])
                t_last[k] = t[last] + ((wraps + int(np.count_nonzero(drops < last))) << 32)
            wraps += len(drops)
            previous = int(t[-1])
        self._set_index(counts, t_last)

    def _decode_chunk(self, k: int) -> Arrays:
        block = self._records[k * BLOCK_RECORDS:(k + 1) * BLOCK_RECORDS]
        t = block["t"].astype(np.int64)
        drops = np.diff(t) < -(1 << 31)
        t += (self._wraps[k] + np.concatenate([[0], np.cumsum(drops)])) << 32
        address = block["address"].astype(np.uint32)
        return DECODERS[self.layout](address, t, *self.sensor_size)

    def _close(self) -> None:
        super()._close()
        self._records = None
