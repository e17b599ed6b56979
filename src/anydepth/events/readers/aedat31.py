"""AEDAT 3.1 files (cAER / early DV): `#` header lines up to `#!END-HEADER`, then event packets,
little-endian. Read lazily: one pass at opening reads the packet headers and the polarity packets'
timestamps (bounded memory), then only the packets a read touches are decoded.

Packet header (28 bytes): int16 eventType, int16 eventSource, int32 eventSize, eventTSOffset,
eventTSOverflow, eventCapacity, eventNumber, eventValid. Polarity packets (type 1) hold 8-byte
events: uint32 data (bit 0 valid, bit 1 polarity 1 = ON, bits 2-16 y, bits 17-31 x; origin
top-left) and an int32 timestamp (µs) at eventTSOffset; the 64-bit time is
(eventTSOverflow << 31) | timestamp. Invalid events (valid bit 0) are dropped; other packet types
(special, frame, IMU...) are skipped.

Sensor size: from the `#Source <id>: <device>` header line of the chosen source (DVS128, DAVIS240,
DAVIS346, DAVIS640, DVXplorer...), else `sensor_size=(h, w)`.

The scan and the packet decoder are numba kernels (`scan_packets`, `decode_packet`) over bytes read
in blocks; a packet the kernel does not accept is handed to the plain scan, whose checks give the
errors. `decode_polarity` is the plain numpy reference of `decode_packet`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numba
import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.aedat2 import read_header_lines
from anydepth.events.readers.base import Arrays
from anydepth.events.readers.chunked import ChunkedEventReader
from anydepth.fileio import check_file, closing_on_error

AEDAT31_SIGNATURE = b"#!AER-DAT3.1"
PACKET_HEADER = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("ts_offset", "<i4"),
                          ("ts_overflow", "<i4"), ("capacity", "<i4"), ("number", "<i4"), ("valid", "<i4")])
POLARITY_EVENT = 1
POLARITY_RECORD = np.dtype([("data", "<u4"), ("t", "<i4")])

# device name (upper case, prefix match in this order) -> (height, width)
AEDAT31_DEVICES: dict[str, tuple[int, int]] = {
    "DVS128": (128, 128),
    "DAVIS240": (180, 240),
    "DAVIS346": (260, 346),
    "DAVIS640": (480, 640),
    "DAVIS208": (192, 208),
    "DAVIS128": (128, 128),
    "DVXPLORER LITE": (240, 320),
    "DVXPLORERLITE": (240, 320),
    "DVXPLORER": (480, 640),
    "DVS132S": (104, 132),
}


def sources_from_header(lines: list[str]) -> dict[int, str]:
    """{source id: device description} of the current `#Source <id>: <description>` lines (the
    `#-Source` lines of earlier recordings are ignored)."""
    sources = {}
    for line in lines:
        match = re.match(r"Source (\d+): (.+)", line.strip())
        if match:
            sources[int(match.group(1))] = match.group(2).strip()
    return sources


def device_size(description: str) -> tuple[int, int] | None:
    name = description.upper()
    return next((size for device, size in AEDAT31_DEVICES.items() if name.startswith(device)), None)


def decode_polarity(records: np.ndarray, ts_overflow: int) -> Arrays:
    """Valid events of one polarity packet's records -> x, y, t (int64 µs), p."""
    data = records["data"]
    records = records[(data & 1) == 1]
    data = records["data"]
    t = records["t"].astype(np.int64) | (np.int64(ts_overflow) << 31)
    return ((data >> 17) & 0x7FFF).astype(np.int32), ((data >> 2) & 0x7FFF).astype(np.int32), t, \
        ((data >> 1) & 1).astype(np.int8)


@numba.njit(cache=True, nogil=True)
def _int32(buf, at):
    value = np.int64(buf[at]) | (np.int64(buf[at + 1]) << 8) | (np.int64(buf[at + 2]) << 16) | (np.int64(buf[at + 3]) << 24)
    return value - (np.int64(1) << 32) if value >= np.int64(1) << 31 else value


@numba.njit(cache=True, nogil=True)
def _int16(buf, at):
    value = np.int64(buf[at]) | (np.int64(buf[at + 1]) << 8)
    return value - (1 << 16) if value >= 1 << 15 else value


@numba.njit(cache=True, nogil=True)
def scan_packets(buf, base, file_size, rows):
    """Walk the packets of `buf` (uint8 bytes of the file from byte `base`) while each is whole and
    plainly valid; rows (M, 6) int64 receive (offset, number, count, t_last, ts_overflow, source)
    of the polarity packets. Returns (rows written, bytes consumed, stopped at a packet the plain
    scan must judge)."""
    position, n_rows = 0, 0
    while base + position < file_size:
        if position + 28 > len(buf):
            return n_rows, position, base + position + 28 > file_size
        kind, source = _int16(buf, position), _int16(buf, position + 2)
        size, ts_offset, ts_overflow = _int32(buf, position + 4), _int32(buf, position + 8), _int32(buf, position + 12)
        capacity, number, valid = _int32(buf, position + 16), _int32(buf, position + 20), _int32(buf, position + 24)
        if size <= 0 or capacity < 0 or number > capacity or valid > number:
            return n_rows, position, True
        start = position + 28
        end = start + size * capacity
        if base + end > file_size:
            return n_rows, position, True
        if kind == 1:
            if size != 8 or ts_offset != 4:
                return n_rows, position, True
            if start + 8 * number > len(buf) or n_rows == rows.shape[0]:
                return n_rows, position, False
            count, t_last = 0, np.int64(0)
            for i in range(number):
                if buf[start + 8 * i] & 1:
                    count += 1
                    t_last = _int32(buf, start + 8 * i + 4)
            if count:
                t_last = t_last | (np.int64(ts_overflow) << 31)
            rows[n_rows, 0], rows[n_rows, 1], rows[n_rows, 2] = base + start, number, count
            rows[n_rows, 3], rows[n_rows, 4], rows[n_rows, 5] = t_last, ts_overflow, source
            n_rows += 1
        position = end
    return n_rows, position, False


@numba.njit(cache=True, nogil=True)
def decode_packet(words, count, ts_overflow):
    """The `count` valid events of one polarity packet's records, words (N, 2) uint32 (data, t):
    x, y int32, t int64 µs, p int8 (see the module docstring)."""
    x = np.empty(count, np.int32)
    y = np.empty(count, np.int32)
    t = np.empty(count, np.int64)
    p = np.empty(count, np.int8)
    high = np.int64(ts_overflow) << 31
    j = 0
    for i in range(words.shape[0]):
        data = words[i, 0]
        if (data & 1) == 0 or j >= count:
            continue
        x[j] = (data >> 17) & 0x7FFF
        y[j] = (data >> 2) & 0x7FFF
        p[j] = (data >> 1) & 1
        t[j] = np.int64(np.int32(words[i, 1])) | high
        j += 1
    return x, y, t, p


class Aedat31Reader(ChunkedEventReader):
    """Polarity events of a cAER AEDAT 3.1 file, read lazily (see module docstring).

    source: event source id (default: the first with polarity packets); sensor_size: (height,
    width), default from the header; repair: sort and drop events outside the sensor.
    """

    format_name = "aedat3.1"

    def __init__(self, path: str | Path, source: int | None = None, sensor_size: tuple[int, int] | None = None,
                 repair: bool = False):
        path = check_file(path)
        lines, data_offset = read_header_lines(path, AEDAT31_SIGNATURE, end_line=b"#!END-HEADER")
        self.header = lines
        self.sources = sources_from_header(lines)
        self._file = open(path, "rb")
        with closing_on_error(self._file):
            packets = self._scan(path, data_offset)
            polarity_sources = sorted({int(s) for s in packets["source"]})
            if source is None:
                source = polarity_sources[0] if polarity_sources else min(self.sources, default=0)
            elif source not in polarity_sources and packets.size:
                raise InputError(f"source {source} has no polarity packets (sources with events: {polarity_sources})", path)
            size = sensor_size or device_size(self.sources.get(source, ""))
            if size is None:
                raise FormatError(f"unknown sensor size: the header names source {source} "
                                  f"{self.sources.get(source, '(none)')!r}; pass sensor_size=(height, width)", path)
            super().__init__(path, size)
            self.source = source
            self._packets = packets[packets["source"] == source]
            self._set_index(self._packets["count"], self._packets["t_last"])
            if repair:
                self._load_repaired()

    def _scan(self, path: Path, offset: int) -> np.ndarray:
        """Offsets, valid counts and last valid timestamps of the polarity packets."""
        file_size = path.stat().st_size
        rows = []
        handle = self._file
        if sys.byteorder == "little":
            offset = self._scan_fast(rows, offset, file_size)
        while offset < file_size:
            handle.seek(offset)
            raw = handle.read(PACKET_HEADER.itemsize)
            if len(raw) < PACKET_HEADER.itemsize:
                raise FormatError(f"truncated AEDAT 3.1 file: packet header at byte {offset} is cut", path)
            header = np.frombuffer(raw, PACKET_HEADER)[0]
            size, number = int(header["size"]), int(header["capacity"])
            if size <= 0 or number < 0 or int(header["number"]) > number or header["valid"] > header["number"]:
                raise FormatError(f"corrupt AEDAT 3.1 packet header at byte {offset} (event size {size}, "
                                  f"capacity {number}, number {int(header['number'])})", path)
            start = offset + PACKET_HEADER.itemsize
            end = start + size * number
            if end > file_size:
                raise FormatError(f"truncated AEDAT 3.1 file: packet at byte {offset} needs {end - file_size} "
                                  "more bytes", path)
            if header["type"] == POLARITY_EVENT:
                if size != POLARITY_RECORD.itemsize or header["ts_offset"] != 4:
                    raise FormatError(f"polarity packet at byte {offset} has {size}-byte events (expected 8)", path)
                records = np.frombuffer(handle.read(size * int(header["number"])), POLARITY_RECORD)
                valid = (records["data"] & 1) == 1
                count = int(np.count_nonzero(valid))
                t_last = 0
                if count:
                    t_last = int(records["t"][np.flatnonzero(valid)[-1]]) | (int(header["ts_overflow"]) << 31)
                rows.append((start, int(header["number"]), count, t_last, int(header["ts_overflow"]),
                             int(header["source"])))
            offset = end
        dtype = np.dtype([("offset", np.int64), ("number", np.int64), ("count", np.int64), ("t_last", np.int64),
                          ("ts_overflow", np.int64), ("source", np.int64)])
        return np.array(rows, dtype=dtype)

    def _scan_fast(self, rows: list, offset: int, file_size: int) -> int:
        """scan_packets over blocks of the file; returns where the plain scan takes over."""
        buffer = np.empty(min(8 << 20, max(file_size - offset, 0)), np.uint8)
        table = np.empty((len(buffer) // PACKET_HEADER.itemsize + 1, 6), np.int64)
        while offset < file_size:
            self._file.seek(offset)
            read = self._file.readinto(buffer)
            n_rows, consumed, judge = scan_packets(buffer[:read], offset, file_size, table)
            rows.extend(map(tuple, table[:n_rows].tolist()))
            offset += consumed
            if judge:
                break
            if not consumed:  # one packet larger than the buffer
                if read < len(buffer):
                    break
                buffer = np.empty(2 * len(buffer), np.uint8)
                table = np.empty((len(buffer) // PACKET_HEADER.itemsize + 1, 6), np.int64)
        return offset

    def _decode_chunk(self, k: int) -> Arrays:
        packet = self._packets[k]
        self._file.seek(int(packet["offset"]))
        raw = self._file.read(int(packet["number"]) * POLARITY_RECORD.itemsize)
        if sys.byteorder != "little" or len(raw) % POLARITY_RECORD.itemsize:
            return decode_polarity(np.frombuffer(raw, POLARITY_RECORD), int(packet["ts_overflow"]))
        words = np.frombuffer(raw, np.uint32).reshape(-1, 2)
        return decode_packet(words, int(packet["count"]), int(packet["ts_overflow"]))

    def _close(self) -> None:
        super()._close()
        self._file.close()
