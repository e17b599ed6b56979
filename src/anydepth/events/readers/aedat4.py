"""AEDAT4 files (iniVation DV): `#!AER-DAT4.0\\r\\n`, a size-prefixed IOHeader flatbuffer
(compression, file data table position, XML description of the streams), then packets: int32
stream id, int32 size, a flatbuffer compressed as the header says (none, LZ4, ZSTD).

Read lazily: the file data table at the end of the file (offset, stream, element count, first and
last timestamp of every packet) is the index; a file without one (a recording cut short) is
scanned once instead, decompressing one packet at a time. Reads decompress only the packets they
touch. Timestamps are the file's µs (Unix time); polarity `on` -> 1; the sensor size is the
stream's `sizeY` x `sizeX`. Frame (FRME) and IMU (IMUS) streams are read by `frame_timestamps_us`
/ `read_frame` and `read_imu`; trigger streams are ignored.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import Arrays
from anydepth.events.readers.chunked import ChunkedEventReader
from anydepth.events.readers.files import check_file, first_line

AEDAT4_SIGNATURE = b"#!AER-DAT4.0"
EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
IMU_FIELDS = ("timestamp", "temperature", "accelerometer_x", "accelerometer_y", "accelerometer_z",
              "gyroscope_x", "gyroscope_y", "gyroscope_z", "magnetometer_x", "magnetometer_y", "magnetometer_z")
IMU = np.dtype([("timestamp", np.int64)] + [(name, np.float32) for name in IMU_FIELDS[1:]])
FRAME_CHANNELS = {0: 1, 16: 3, 24: 4}  # FrameFormat GRAY, BGR, BGRA


# ---- minimal flatbuffer access (tables, scalars, vectors) -------------------------------------
def _field(buf: bytes, table: int, index: int) -> int | None:
    """Byte position of field `index` of the table at `table`, None when absent (default)."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vtable_size = struct.unpack_from("<H", buf, vtable)[0]
    if 4 + 2 * index >= vtable_size:
        return None
    offset = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _scalar(buf: bytes, table: int, index: int, fmt: str, default=0):
    position = _field(buf, table, index)
    return default if position is None else struct.unpack_from(fmt, buf, position)[0]


def _vector(buf: bytes, table: int, index: int) -> tuple[int, int]:
    """(start, length) of a vector field; (0, 0) when absent."""
    position = _field(buf, table, index)
    if position is None:
        return 0, 0
    start = position + struct.unpack_from("<I", buf, position)[0]
    return start + 4, struct.unpack_from("<I", buf, start)[0]


def _root(buf: bytes, identifier: bytes) -> int:
    """Position of the root table (plain or size-prefixed flatbuffer with that file identifier)."""
    if buf[4:8] == identifier:
        return struct.unpack_from("<I", buf, 0)[0]
    if buf[8:12] == identifier:
        return 4 + struct.unpack_from("<I", buf, 4)[0]
    raise ValueError(f"flatbuffer is not {identifier.decode()}")


@dataclass(frozen=True)
class Aedat4Stream:
    stream_id: int
    kind: str  # typeIdentifier: EVTS, FRME, IMUS, TRIG, ...
    name: str
    sensor_size: tuple[int, int] | None


class Aedat4Reader(ChunkedEventReader):
    """The events of one AEDAT4 event stream, read lazily (see module docstring).

    stream_id: which event stream (default: the lowest-numbered one). repair: sort and drop events
    outside the sensor instead of raising. `streams` lists every stream of the file.
    """

    format_name = "aedat4"

    def __init__(self, path: str | Path, stream_id: int | None = None, repair: bool = False):
        path = check_file(path)
        self._handle = open(path, "rb")
        try:
            self._open(path, stream_id)
            if repair:
                self._load_repaired()
        except BaseException:
            self._handle.close()
            raise

    def _open(self, path: Path, stream_id: int | None) -> None:
        handle = self._handle
        if handle.read(len(AEDAT4_SIGNATURE) + 2) != AEDAT4_SIGNATURE + b"\r\n":
            raise FormatError("not an AEDAT4 file (no '#!AER-DAT4.0' header)", path)
        self._file_size = path.stat().st_size
        try:
            (header_size,) = struct.unpack("<I", handle.read(4))
            header = handle.read(header_size)
            if len(header) < header_size:
                raise ValueError("file ends inside the IO header")
            root = _root(header, b"IOHE")
            self._compression = _scalar(header, root, 0, "<i")
            table_position = _scalar(header, root, 1, "<q", -1)
            start, length = _vector(header, root, 2)
            info = ElementTree.fromstring(bytes(header[start:start + length]).decode("utf-8"))
        except (struct.error, ValueError, ElementTree.ParseError, UnicodeDecodeError) as error:
            raise FormatError(f"truncated or corrupt AEDAT4 IO header ({first_line(error)})", path) from None
        if self._compression not in (0, 1, 2, 3, 4):
            raise FormatError(f"unknown AEDAT4 compression {self._compression}", path)
        self._data_start = len(AEDAT4_SIGNATURE) + 6 + header_size
        self.streams = self._streams(info)
        event_streams = sorted(s.stream_id for s in self.streams.values() if s.kind == "EVTS")
        if not event_streams:
            kinds = ", ".join(sorted(s.kind for s in self.streams.values())) or "none"
            raise FormatError(f"no event stream in the AEDAT4 file (streams: {kinds})", path)
        if stream_id is None:
            stream_id = event_streams[0]
        elif stream_id not in event_streams:
            raise InputError(f"stream {stream_id} is not an event stream (event streams: {event_streams})", path)
        size = self.streams[stream_id].sensor_size
        if size is None:
            raise FormatError(f"event stream {stream_id} states no sizeX / sizeY", path)
        super().__init__(path, size)
        self.stream_id = stream_id
        has_table = self._data_start <= table_position < self._file_size
        self._data_end = table_position if has_table else self._file_size
        table = self._read_table(table_position) if has_table else self._scan()
        self._table = table
        events = table[table["stream"] == stream_id]
        self._packets = events
        self._set_index(events["count"], events["t_end"])

    @staticmethod
    def _streams(info: ElementTree.Element) -> dict[int, Aedat4Stream]:
        streams = {}
        for node in info.iter("node"):
            if not node.get("name", "").isdigit():
                continue
            attrs = {attr.get("key"): attr.text for attr in node.findall("attr")}
            if "typeIdentifier" not in attrs:
                continue
            size_info = node.find("node[@name='info']")
            size = None
            if size_info is not None:
                values = {attr.get("key"): attr.text for attr in size_info.findall("attr")}
                if "sizeX" in values and "sizeY" in values:
                    size = (int(values["sizeY"]), int(values["sizeX"]))
            stream_id = int(node.get("name"))
            streams[stream_id] = Aedat4Stream(stream_id, attrs["typeIdentifier"], attrs.get("originalOutputName", ""), size)
        return streams

    # ---- packets ------------------------------------------------------------------------------
    def _decompress(self, payload: bytes) -> bytes:
        if self._compression == 0:
            return payload
        if self._compression in (1, 2):
            import lz4.frame
            return lz4.frame.decompress(payload)
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(payload)

    def _payload(self, offset: int, size: int) -> bytes:
        """Decompressed flatbuffer of the packet whose payload is at `offset`, `size` bytes."""
        if offset + size > self._file_size:
            raise FormatError(f"truncated or corrupt AEDAT4 file: the packet at byte {offset} needs "
                              f"{offset + size - self._file_size} more bytes", self.path)
        self._handle.seek(offset)
        try:
            return self._decompress(self._handle.read(size))
        except Exception as error:  # lz4 / zstandard raise their own error types
            raise FormatError(f"truncated or corrupt AEDAT4 file: packet at byte {offset} ({first_line(error)})", self.path) from None

    def _read_table(self, position: int) -> np.ndarray:
        """The file data table: one row per packet (payload offset and size, stream, count, times)."""
        self._handle.seek(position)
        data = self._handle.read()
        try:
            buf = self._decompress(data)
            root = _root(buf, b"FTAB")
            start, length = _vector(buf, root, 0)
            rows = []
            for i in range(length):
                position_i = start + 4 * i
                entry = position_i + struct.unpack_from("<I", buf, position_i)[0]
                header_at = _field(buf, entry, 1)
                stream, size = struct.unpack_from("<ii", buf, header_at) if header_at is not None else (0, 0)
                rows.append((_scalar(buf, entry, 0, "<q"), size, stream, _scalar(buf, entry, 2, "<q"),
                             _scalar(buf, entry, 3, "<q"), _scalar(buf, entry, 4, "<q")))
        except FormatError:
            raise
        except Exception as error:
            raise FormatError(f"corrupt AEDAT4 file data table ({first_line(error)})", self.path) from None
        return self._rows(rows)

    def _scan(self) -> np.ndarray:
        """No data table: walk the packets once (bounded memory) and count the events."""
        rows, offset = [], self._data_start
        while offset < self._data_end:
            self._handle.seek(offset)
            raw = self._handle.read(8)
            if len(raw) < 8:
                raise FormatError(f"truncated or corrupt AEDAT4 file: packet header at byte {offset} is cut", self.path)
            stream, size = struct.unpack("<ii", raw)
            if size < 0 or stream not in self.streams:
                raise FormatError(f"truncated or corrupt AEDAT4 file: packet header at byte {offset} (stream {stream}, size {size})",
                                  self.path)
            count = t_start = t_end = 0
            if stream == self.stream_id:
                t = self._decode_events(offset + 8, size)["t"]
                count = len(t)
                if count:
                    t_start, t_end = int(t[0]), int(t[-1])
            rows.append((offset + 8, size, stream, count, t_start, t_end))
            offset += 8 + size
        return self._rows(rows)

    @staticmethod
    def _rows(rows: list) -> np.ndarray:
        dtype = np.dtype([("offset", np.int64), ("size", np.int64), ("stream", np.int64), ("count", np.int64),
                          ("t_start", np.int64), ("t_end", np.int64)])
        return np.array(rows, dtype=dtype)

    def _decode_events(self, offset: int, size: int) -> np.ndarray:
        buf = self._payload(offset, size)
        try:
            root = _root(buf, b"EVTS")
            start, length = _vector(buf, root, 0)
            if start + length * EVENT.itemsize > len(buf):
                raise ValueError("event vector runs past the packet")
        except (struct.error, ValueError) as error:
            raise FormatError(f"corrupt AEDAT4 event packet at byte {offset} ({first_line(error)})", self.path) from None
        return np.frombuffer(buf, EVENT, count=length, offset=start)

    def _decode_chunk(self, k: int) -> Arrays:
        packet = self._packets[k]
        events = self._decode_events(int(packet["offset"]), int(packet["size"]))
        if len(events) != packet["count"]:
            raise FormatError(f"AEDAT4 packet at byte {int(packet['offset'])} holds {len(events)} events, its "
                              f"index says {int(packet['count'])}", self.path)
        return events["x"], events["y"], events["t"].astype(np.int64), events["on"].astype(np.int8)

    # ---- frames and IMU -----------------------------------------------------------------------
    def _stream_of(self, kind: str, stream_id: int | None) -> np.ndarray | None:
        ids = sorted(s.stream_id for s in self.streams.values() if s.kind == kind)
        if stream_id is None:
            stream_id = ids[0] if ids else None
        elif stream_id not in ids:
            raise InputError(f"stream {stream_id} is not a {kind} stream (those: {ids})", self.path)
        if stream_id is None:
            return None
        return self._table[self._table["stream"] == stream_id]

    @property
    def has_frames(self) -> bool:
        return any(s.kind == "FRME" for s in self.streams.values())

    @property
    def has_imu(self) -> bool:
        return any(s.kind == "IMUS" for s in self.streams.values())

    def frame_timestamps_us(self, stream_id: int | None = None) -> np.ndarray:
        """(F,) int64 µs: the (exposure-centre) timestamp of every frame of the frame stream."""
        packets = self._stream_of("FRME", stream_id)
        if packets is None:
            return np.zeros(0, np.int64)
        return np.array([self._frame_header(int(p["offset"]), int(p["size"]))[0] for p in packets], np.int64) \
            if (packets["t_start"] == 0).any() else packets["t_start"].astype(np.int64)

    def _frame_header(self, offset: int, size: int) -> tuple[int, bytes, int]:
        buf = self._payload(offset, size)
        try:
            return _scalar(buf, _root(buf, b"FRME"), 0, "<q"), buf, _root(buf, b"FRME")
        except (struct.error, ValueError) as error:
            raise FormatError(f"corrupt AEDAT4 frame packet at byte {offset} ({first_line(error)})", self.path) from None

    def read_frame(self, index: int, stream_id: int | None = None) -> np.ndarray:
        """Frame `index` of the frame stream: (H, W) uint8 grey, (H, W, 3) BGR or (H, W, 4) BGRA."""
        packets = self._stream_of("FRME", stream_id)
        if packets is None or not 0 <= index < len(packets):
            raise InputError(f"no frame {index} (the file has {0 if packets is None else len(packets)})", self.path)
        packet = packets[index]
        _, buf, root = self._frame_header(int(packet["offset"]), int(packet["size"]))
        try:
            channels = FRAME_CHANNELS[_scalar(buf, root, 5, "<b")]
            width, height = _scalar(buf, root, 6, "<h"), _scalar(buf, root, 7, "<h")
            start, length = _vector(buf, root, 10)
            if length != width * height * channels or start + length > len(buf):
                raise ValueError(f"{length} pixel bytes for a {width}x{height}x{channels} frame")
        except (KeyError, struct.error, ValueError) as error:
            raise FormatError(f"corrupt AEDAT4 frame at byte {int(packet['offset'])} ({first_line(error)})",
                              self.path) from None
        pixels = np.frombuffer(buf, np.uint8, count=length, offset=start).reshape(height, width, channels)
        return pixels[:, :, 0].copy() if channels == 1 else pixels.copy()

    def read_imu(self, t0_us: int | None = None, t1_us: int | None = None, stream_id: int | None = None) -> np.ndarray:
        """IMU samples with t0 <= timestamp < t1 (all by default) as a structured array: timestamp
        int64 µs, temperature °C, accelerometer_{x,y,z} g, gyroscope_{x,y,z} °/s,
        magnetometer_{x,y,z} µT (float32)."""
        packets = self._stream_of("IMUS", stream_id)
        samples = []
        for packet in packets if packets is not None else ():
            if t1_us is not None and packet["count"] and packet["t_start"] >= t1_us:
                continue
            if t0_us is not None and packet["count"] and packet["t_end"] < t0_us:
                continue
            buf = self._payload(int(packet["offset"]), int(packet["size"]))
            try:
                start, length = _vector(buf, _root(buf, b"IMUS"), 0)
                for i in range(length):
                    table = start + 4 * i + struct.unpack_from("<I", buf, start + 4 * i)[0]
                    samples.append((_scalar(buf, table, 0, "<q"),)
                                   + tuple(_scalar(buf, table, j, "<f", 0.0) for j in range(1, len(IMU_FIELDS))))
            except (struct.error, ValueError) as error:
                raise FormatError(f"corrupt AEDAT4 IMU packet at byte {int(packet['offset'])} ({first_line(error)})",
                                  self.path) from None
        imu = np.array(samples, dtype=IMU)
        keep = np.ones(len(imu), bool)
        if t0_us is not None:
            keep &= imu["timestamp"] >= t0_us
        if t1_us is not None:
            keep &= imu["timestamp"] < t1_us
        return imu[keep]

    def _close(self) -> None:
        super()._close()
        self._handle.close()
