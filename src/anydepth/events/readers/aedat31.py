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
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.aedat2 import read_header_lines
from anydepth.events.readers.base import Arrays
from anydepth.events.readers.chunked import ChunkedEventReader
from anydepth.events.readers.files import check_file

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
        try:
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
        except BaseException:
            self._file.close()
            raise

    def _scan(self, path: Path, offset: int) -> np.ndarray:
        """Offsets, valid counts and last valid timestamps of the polarity packets."""
        file_size = path.stat().st_size
        rows = []
        handle = self._file
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

    def _decode_chunk(self, k: int) -> Arrays:
        packet = self._packets[k]
        self._file.seek(int(packet["offset"]))
        records = np.frombuffer(self._file.read(int(packet["number"]) * POLARITY_RECORD.itemsize), POLARITY_RECORD)
        return decode_polarity(records, int(packet["ts_overflow"]))

    def _close(self) -> None:
        super()._close()
        self._file.close()
