"""AEDAT4 files (iniVation DV): `#!AER-DAT4.0\\r\\n`, a size-prefixed IOHeader flatbuffer
(compression, file data table position, XML description of the streams), then packets: int32
stream id, int32 size, a flatbuffer compressed as the header says (none, LZ4, ZSTD).

Read lazily: the file data table at the end of the file (offset, stream, element count, first and
last timestamp of every packet) is the index; a file without one (a recording cut short) is
scanned once instead, decompressing one packet at a time. Reads decompress only the packets they
touch. Uncompressed and LZ4 files (liblz4 loaded: the library the `lz4` package ships, else the
system's) are mapped into memory, and one nopython call (`decode_packets`) decompresses every
packet of a read between its first and last into one reused buffer, finds the event vector and
copies x / y / t / p straight into the result, checked as chunked.py's validated read checks
them; the first and last packet of a read go through the chunk cache (the next time searches
touch them). `chunks()` (streaming a whole file) makes one such call per packet, straight into
the packet's fresh arrays. Anything that call does not accept (a packet that does not decode,
does not hold the events its table entry counts, or events that fail the check) sends the read
through the plain path: packets one at a time through `_decode_events` (`lz4.frame.decompress` for
a frame the reused buffer cannot take), so results and errors are that path's. ZSTD files always
take it.
Timestamps are the file's µs (Unix time); polarity `on` -> 1; the sensor size is the stream's
`sizeY` x `sizeX`. Frame (FRME) and IMU (IMUS) streams are read by `frame_timestamps_us` /
`read_frame` and `read_imu`; trigger streams are ignored.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import struct
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding
import numba
import numpy as np
from numba import types

from anydepth.errors import FormatError, InputError
from anydepth.events.container import EventArray
from anydepth.events.readers.base import Arrays
from anydepth.events.readers.chunked import ChunkedEventReader, fresh_arrays
from anydepth.fileio import check_file, closing_on_error, first_line

AEDAT4_SIGNATURE = b"#!AER-DAT4.0"
EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
IMU_FIELDS = ("timestamp", "temperature", "accelerometer_x", "accelerometer_y", "accelerometer_z",
              "gyroscope_x", "gyroscope_y", "gyroscope_z", "magnetometer_x", "magnetometer_y", "magnetometer_z")
IMU = np.dtype([("timestamp", np.int64)] + [(name, np.float32) for name in IMU_FIELDS[1:]])
FRAME_CHANNELS = {0: 1, 16: 3, 24: 4}  # FrameFormat GRAY, BGR, BGRA


@numba.njit(cache=True, nogil=True, boundscheck=False)
def gather_events(words, start, stop, x_out, y_out, t_out, p_out, at, t_before, height, width):
    """gather_checked (chunked.py) for AEDAT4 events seen as (N, 2) int64 words on a little-endian
    host: word 0 = t µs, word 1 = x int16 | y int16 << 16 | on << 32. Simple loops that the
    compiler vectorises; the bounds are checked on the uint16 copies (a negative int16 becomes
    >= 32768, so this is exact)."""
    n = stop - start
    if n <= 0:
        return True
    t, x, y, p = t_out[at:at + n], x_out[at:at + n], y_out[at:at + n], p_out[at:at + n]
    for i in range(n):
        t[i] = words[start + i, 0]
    for i in range(n):
        word = words[start + i, 1]
        x[i] = np.uint16(word & 0xFFFF)
        y[i] = np.uint16((word >> 16) & 0xFFFF)
        p[i] = np.int8((word >> 32) & 0xFF)
    x_max, y_max, p_max = np.uint16(0), np.uint16(0), np.uint8(0)
    for i in range(n):
        x_max, y_max, p_max = max(x_max, x[i]), max(y_max, y[i]), max(p_max, np.uint8(p[i]))
    unsorted = np.int64(0)
    for i in range(1, n):
        unsorted += t[i] < t[i - 1]
    return unsorted == 0 and t[0] >= t_before and x_max < width and y_max < height and p_max <= 1


# ---- whole runs of event packets in one nopython call ---------------------------------------
LZ4F_DECOMPRESS_SYMBOL = "anydepth_LZ4F_decompress"  # registered by Lz4FrameDecoder._load
# size_t LZ4F_decompress(ctx, dst, size_t *dst_size, src, size_t *src_size, options), pointers as integers
lz4f_decompress = types.ExternalFunction(LZ4F_DECOMPRESS_SYMBOL, types.uintp(*[types.uintp] * 6))
PACKETS_OK, PACKET_UNREADABLE, EVENTS_UNCHECKED = 0, 1, 2


@numba.njit(cache=True, nogil=True, inline="always")
def _le(buf, position, width):
    """Little-endian unsigned integer of `width` bytes at `position` of uint8 `buf`; -1 outside it."""
    if position < 0 or position + width > len(buf):
        return np.int64(-1)
    value = np.int64(0)
    for i in range(width):
        value |= np.int64(buf[position + i]) << (8 * i)
    return value


@numba.njit(cache=True, nogil=True)
def _flatbuffer_root(buf, a, b, c, d):
    """Offset of the root table of a flatbuffer with file identifier bytes (a, b, c, d), plain or
    size-prefixed, in uint8 `buf`; -1 when the identifier is not there."""
    n = len(buf)
    if n >= 8 and buf[4] == a and buf[5] == b and buf[6] == c and buf[7] == d:
        return _le(buf, 0, 4)
    if n >= 12 and buf[8] == a and buf[9] == b and buf[10] == c and buf[11] == d:
        return 4 + _le(buf, 4, 4)
    return np.int64(-1)


@numba.njit(cache=True, nogil=True)
def event_vector(buf):
    """(start, length) of the event vector of an EVTS flatbuffer (plain or size-prefixed) in uint8
    `buf`; (0, 0) when the field is absent, (-1, -1) when the buffer does not hold it (the plain
    path, _decode_events, then says why)."""
    root = _flatbuffer_root(buf, 69, 86, 84, 83)  # b"EVTS"
    if root < 0:
        return -1, -1
    soffset = _le(buf, root, 4)
    if soffset < 0:
        return -1, -1
    vtable = root - (soffset - (1 << 32) if soffset >= 1 << 31 else soffset)
    vtable_size = _le(buf, vtable, 2)
    if vtable_size < 0:
        return -1, -1
    if 4 >= vtable_size:
        return 0, 0
    field = _le(buf, vtable + 4, 2)
    if field <= 0:
        return (0, 0) if field == 0 else (-1, -1)
    relative = _le(buf, root + field, 4)
    if relative < 0:
        return -1, -1
    vector = root + field + relative
    length = _le(buf, vector, 4)
    if length < 0 or vector + 4 + 16 * length > len(buf):
        return -1, -1
    return vector + 4, length


@numba.njit(cache=True, nogil=True)
def decode_packets(data, offsets, sizes, counts, start, stop, x_out, y_out, t_out, p_out, at, t_before,
                   height, width, lz4, scratch, sizes_io):
    """Decode event packets and copy events [start of the first, stop of the last) into the
    outputs from `at`, checked as gather_events checks them (order against `t_before` too).

    data: uint8 the whole file; offsets, sizes, counts (K,) int64: payload position, size and event
    count (from the data table) of each packet, none empty; lz4 (context, options) addresses of
    an Lz4FrameDecoder, or (0, 0) for uncompressed packets; scratch: uint8 buffer for one packet;
    sizes_io: (2,) uint64. Returns (PACKETS_OK, at after the copy), (PACKET_UNREADABLE, k) when
    packet k does not decompress or parse as the table says (the caller resets the context), or
    (EVENTS_UNCHECKED, k) when its events fail the check.
    """
    context, options = lz4
    for k in range(len(offsets)):
        offset, size = offsets[k], sizes[k]
        if offset < 0 or size < 0 or offset + size > len(data):
            return PACKET_UNREADABLE, k
        if context:
            sizes_io[0], sizes_io[1] = len(scratch), size
            code = lz4f_decompress(context, scratch.ctypes.data, sizes_io.ctypes.data, data.ctypes.data + offset,
                                   sizes_io.ctypes.data + 8, options)
            if code != 0 or sizes_io[1] != size:
                return PACKET_UNREADABLE, k
            buf = scratch[:sizes_io[0]]
        else:
            buf = data[offset:offset + size]
        vector, length = event_vector(buf)
        if vector < 0 or length != counts[k]:
            return PACKET_UNREADABLE, k
        words = buf[vector:vector + 16 * length].view(np.int64).reshape(length, 2)
        first = start if k == 0 else 0
        last = stop if k == len(offsets) - 1 else length
        if not gather_events(words, first, last, x_out, y_out, t_out, p_out, at, t_before, height, width):
            return EVENTS_UNCHECKED, k
        at += last - first
        if last > first:
            t_before = t_out[at - 1]
    return PACKETS_OK, at


@numba.njit(cache=True, nogil=True, inline="always")
def _table_field(buf, table, index):
    """Position of field `index` of the flatbuffer table at `table`: 0 when absent, -1 when a read
    falls outside `buf` (as _field, with the bounds checked)."""
    soffset = _le(buf, table, 4)
    if soffset < 0:
        return np.int64(-1)
    vtable = table - (soffset - (1 << 32) if soffset >= 1 << 31 else soffset)
    vtable_size = _le(buf, vtable, 2)
    if vtable_size < 0:
        return np.int64(-1)
    if 4 + 2 * index >= vtable_size:
        return np.int64(0)
    offset = _le(buf, vtable + 4 + 2 * index, 2)
    return table + offset if offset > 0 else offset


@numba.njit(cache=True, nogil=True)
def data_table_rows(buf):
    """(K, 6) int64 rows (offset, size, stream, count, t_start, t_end) of an FTAB flatbuffer in
    uint8 `buf`, and whether it parsed; False where _read_table must say what is wrong."""
    rows = np.zeros((0, 6), np.int64)
    root = _flatbuffer_root(buf, 70, 84, 65, 66)  # b"FTAB"
    if root < 0:
        return rows, False
    position = _table_field(buf, root, 0)
    if position <= 0:
        return rows, position == 0
    relative = _le(buf, position, 4)
    length = _le(buf, position + relative, 4)
    if relative < 0 or length < 0 or position + relative + 4 + 4 * length > len(buf):
        return rows, False
    start = position + relative + 4
    rows = np.zeros((length, 6), np.int64)
    for i in range(length):
        entry = start + 4 * i + _le(buf, start + 4 * i, 4)
        for field, column, width in ((0, 0, 8), (1, 2, 4), (1, 1, 4), (2, 3, 8), (3, 4, 8), (4, 5, 8)):
            at = _table_field(buf, entry, field)
            if at < 0 or at + 8 > len(buf):  # every field read stays 8 bytes inside (an int64, or the PacketInfo)
                return rows, False
            if at > 0:
                value = np.int64(0)
                for b in range(width):
                    value |= np.int64(buf[at + 4 * (column == 1) + b]) << (8 * b)
                if width == 4 and value >= 1 << 31:
                    value -= 1 << 32
                rows[i, column] = value
    return rows, True


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


class Lz4FrameDecoder:
    """LZ4 frames decompressed into a reused buffer through liblz4's LZ4F API (ctypes); `decode`
    returns None where the fast path does not apply (the caller then uses lz4.frame)."""

    _library = None  # the loaded liblz4, False when none loads

    def __init__(self, capacity: int = 1 << 20):
        self.buffer = np.empty(capacity, np.uint8)
        self._context = ctypes.c_void_p()
        library = self._load()
        if library and library.LZ4F_createDecompressionContext(ctypes.byref(self._context), 100) != 0:
            self._context = ctypes.c_void_p()
        self._options = (ctypes.c_uint * 4)(1, 0, 0, 0)  # stableDst: history stays in our buffer

    @classmethod
    def _load(cls):
        if cls._library is None:
            cls._library = False
            import lz4.frame._frame
            for name in (lz4.frame._frame.__file__, ctypes.util.find_library("lz4")):
                try:
                    library = ctypes.CDLL(name)
                    decompress = library.LZ4F_decompress
                    library.LZ4F_resetDecompressionContext
                    library.LZ4F_freeDecompressionContext
                except (OSError, AttributeError, TypeError):
                    continue
                decompress.restype = ctypes.c_size_t
                decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                       ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p]
                library.LZ4F_resetDecompressionContext.argtypes = [ctypes.c_void_p]
                library.LZ4F_freeDecompressionContext.argtypes = [ctypes.c_void_p]
                # the same function for decode_packets (nopython): LLVM links the name to it
                llvmlite.binding.add_symbol(LZ4F_DECOMPRESS_SYMBOL, ctypes.cast(decompress, ctypes.c_void_p).value)
                cls._library = library
                break
        return cls._library

    @property
    def addresses(self) -> tuple[int, int] | None:
        """(context, options) addresses for decode_packets, None when liblz4 did not load."""
        return (self._context.value, ctypes.addressof(self._options)) if self._context else None

    def reset(self) -> None:
        """Forget a frame left half-decoded (after an error)."""
        if self._context:
            self._library.LZ4F_resetDecompressionContext(self._context)

    def decode(self, frame: bytes) -> memoryview | None:
        """The whole frame decompressed into `buffer` (valid until the next call), or None."""
        if not self._context:
            return None
        written = ctypes.c_size_t(len(self.buffer))
        read = ctypes.c_size_t(len(frame))
        code = self._library.LZ4F_decompress(self._context, self.buffer.ctypes.data, ctypes.byref(written),
                                              frame, ctypes.byref(read), self._options)
        if code != 0 or read.value != len(frame):  # error, frame not finished, or bytes after it
            self._library.LZ4F_resetDecompressionContext(self._context)
            if code != 0 and written.value == len(self.buffer) and len(self.buffer) < 1 << 28:
                self.buffer = np.empty(2 * len(self.buffer), np.uint8)  # did not fit: larger next time
            return None
        return memoryview(self.buffer)[:written.value]

    def close(self) -> None:
        if self._context:
            self._library.LZ4F_freeDecompressionContext(self._context)
            self._context = ctypes.c_void_p()

    def __del__(self):
        self.close()


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
        self._lz4 = None
        self._mapping, self._file_bytes = None, None  # the file mapped for decode_packets
        with closing_on_error(self._handle):
            self._open(path, stream_id)
            if repair:
                self._load_repaired()

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
        if self._compression in (1, 2):
            self._lz4 = Lz4FrameDecoder()
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
        self._map_for_kernel()

    def _map_for_kernel(self) -> None:
        """Map the file for decode_packets where it applies: no or LZ4 compression, liblz4
        loaded, a little-endian host."""
        lz4 = (0, 0) if self._compression == 0 else self._lz4.addresses if self._lz4 is not None else None
        # the kernel links LZ4F_decompress, which only a loaded liblz4 gives (even where no packet needs it)
        if lz4 is None or sys.byteorder != "little" or not len(self._packets) or not Lz4FrameDecoder._load():
            return
        try:
            self._mapping = mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # a file system without mmap: the plain path reads it
            return
        self._file_bytes = np.frombuffer(self._mapping, np.uint8)
        self._kernel_lz4 = lz4
        self._kernel_packets = tuple(np.ascontiguousarray(self._packets[name]) for name in ("offset", "size", "count"))
        self._scratch = np.empty(16 * int(self._packets["count"].max()) + (1 << 16), np.uint8)  # + flatbuffer header
        self._sizes_io = np.zeros(2, np.uint64)

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

    def _payload(self, offset: int, size: int, transient: bool = False) -> bytes | memoryview:
        """Decompressed flatbuffer of the packet whose payload is at `offset`, `size` bytes;
        `transient`: may be a view of a reused buffer, valid until the next transient call."""
        if offset + size > self._file_size:
            raise FormatError(f"truncated or corrupt AEDAT4 file: the packet at byte {offset} needs "
                              f"{offset + size - self._file_size} more bytes", self.path)
        self._handle.seek(offset)
        payload = self._handle.read(size)
        if transient and self._lz4 is not None:
            buf = self._lz4.decode(payload)
            if buf is not None:
                return buf
        try:
            return self._decompress(payload)
        except Exception as error:  # lz4 / zstandard raise their own error types
            raise FormatError(f"truncated or corrupt AEDAT4 file: packet at byte {offset} ({first_line(error)})", self.path) from None

    def _read_table(self, position: int) -> np.ndarray:
        """The file data table: one row per packet (payload offset and size, stream, count, times)."""
        self._handle.seek(position)
        data = self._handle.read()
        try:
            buf = self._decompress(data)
            rows, parsed = data_table_rows(np.frombuffer(buf, np.uint8))
            if parsed:
                return self._rows(rows)
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
                t = self._decode_events(offset + 8, size, transient=True)["t"]
                count = len(t)
                if count:
                    t_start, t_end = int(t[0]), int(t[-1])
            rows.append((offset + 8, size, stream, count, t_start, t_end))
            offset += 8 + size
        return self._rows(rows)

    @staticmethod
    def _rows(rows: list | np.ndarray) -> np.ndarray:
        """Rows (offset, size, stream, count, t_start, t_end) as a structured array."""
        dtype = np.dtype([("offset", np.int64), ("size", np.int64), ("stream", np.int64), ("count", np.int64),
                          ("t_start", np.int64), ("t_end", np.int64)])
        if isinstance(rows, np.ndarray):
            return np.ascontiguousarray(rows).view(dtype)[:, 0]
        return np.array(rows, dtype=dtype)

    def _decode_events(self, offset: int, size: int, transient: bool = False) -> np.ndarray:
        buf = self._payload(offset, size, transient)
        try:
            root = _root(buf, b"EVTS")
            start, length = _vector(buf, root, 0)
            if start + length * EVENT.itemsize > len(buf):
                raise ValueError("event vector runs past the packet")
        except (struct.error, ValueError) as error:
            raise FormatError(f"corrupt AEDAT4 event packet at byte {offset} ({first_line(error)})", self.path) from None
        return np.frombuffer(buf, EVENT, count=length, offset=start)

    def _decode_chunk(self, k: int) -> Arrays:
        if self._file_bytes is not None:
            count = int(self._offsets[k + 1] - self._offsets[k])
            x, y, t, p = fresh_arrays(count)
            if count == 0 or self._decode_packets(k, k + 1, 0, count, (x, y, t, p), 0, np.iinfo(np.int64).min)[0] \
                    != PACKET_UNREADABLE:
                return x.view(np.int16), y.view(np.int16), t, p  # the file's int16, as the plain path gives
        return self._chunk_events(k, transient=False)

    def _decode_packets(self, k0: int, k1: int, start: int, stop: int | None, outputs: Arrays, at: int,
                        t_before: int) -> tuple[int, int]:
        """decode_packets over the non-empty packets of [k0, k1) (stop None: to the end of the
        last); the LZ4 context is reset after a packet that does not decode."""
        offsets, sizes, counts = self._kernel_packets
        if k1 - k0 > 1:
            chosen = k0 + np.flatnonzero(counts[k0:k1])
            offsets, sizes, counts = offsets[chosen], sizes[chosen], counts[chosen]
        else:
            offsets, sizes, counts = offsets[k0:k1], sizes[k0:k1], counts[k0:k1]
        if not len(offsets):
            return PACKETS_OK, at
        stop = int(counts[-1]) if stop is None else stop
        height, width = self.sensor_size
        status, value = decode_packets(self._file_bytes, offsets, sizes, counts, start, stop, *outputs, at, t_before,
                                       height, width, self._kernel_lz4, self._scratch, self._sizes_io)
        if status == PACKET_UNREADABLE and self._lz4 is not None:
            self._lz4.reset()
        return status, value

    def _read_validated(self, i0: int, i1: int) -> EventArray:
        """ChunkedEventReader's validated read with the packets between the first and the last
        decoded and copied by one decode_packets call (the first and the last go through the cache,
        which the next searches touch again); the plain read of ChunkedEventReader after anything
        goes wrong, so errors and results are its own."""
        if self._file_bytes is None or i1 <= i0:
            return super()._read_validated(i0, i1)
        before = max(i0 - 1, 0)
        k0 = int(np.searchsorted(self._offsets, before, side="right")) - 1
        k1 = int(np.searchsorted(self._offsets, i1 - 1, side="right")) - 1
        outputs = fresh_arrays(i1 - before)
        t_before, at = np.iinfo(np.int64).min, 0
        for k in (k0, k1) if k1 > k0 else (k0,):
            if k == k1 and k1 > k0 + 1:
                status, at = self._decode_packets(k0 + 1, k1, 0, None, outputs, at, t_before)
                if status != PACKETS_OK:
                    return super()._read_validated(i0, i1)
                t_before = int(outputs[2][at - 1]) if at else t_before
            first, last = int(self._offsets[k]), int(self._offsets[k + 1])
            if last == first:
                continue
            start, stop = max(before, first) - first, min(i1, last) - first
            if not self._gather(self._chunk(k), start, stop, outputs, at, t_before):
                return super()._read_validated(i0, i1)
            at += stop - start
            t_before = int(outputs[2][at - 1])
        skip = i0 - before
        x, y, t, p = outputs
        return EventArray(x[skip:], y[skip:], t[skip:], p[skip:], self.sensor_size)

    def _chunk_checked(self, k: int, t_before: int) -> EventArray | None:
        """One decode_packets call: the packet straight into fresh arrays, checked (chunks())."""
        if self._file_bytes is None:
            return super()._chunk_checked(k, t_before)
        outputs = fresh_arrays(int(self._offsets[k + 1] - self._offsets[k]))
        if self._decode_packets(k, k + 1, 0, None, outputs, 0, t_before)[0] != PACKETS_OK:
            return None
        return EventArray(*outputs, self.sensor_size)

    def _decode_transient(self, k: int) -> Arrays:
        return self._chunk_events(k, transient=True)

    def _chunk_events(self, k: int, transient: bool) -> Arrays:
        packet = self._packets[k]
        events = self._decode_events(int(packet["offset"]), int(packet["size"]), transient=True)
        if not transient and not isinstance(events.base, bytes):
            events = events.copy()  # own the events: the reused buffer is overwritten by the next packet
        if len(events) != packet["count"]:
            raise FormatError(f"AEDAT4 packet at byte {int(packet['offset'])} holds {len(events)} events, its "
                              f"index says {int(packet['count'])}", self.path)
        # Views into the decompressed packet (no copy): the validated read converts while it copies.
        return events["x"], events["y"], events["t"], events["on"].view(np.int8)

    def _gather(self, columns: Arrays, start: int, stop: int, outputs: Arrays, at: int, t_before: int) -> bool:
        t = columns[2]
        if sys.byteorder != "little" or t.strides != (EVENT.itemsize,):
            return super()._gather(columns, start, stop, outputs, at, t_before)
        words = np.lib.stride_tricks.as_strided(t, (len(t), 2), (EVENT.itemsize, 8))  # the 16-byte events
        height, width = self.sensor_size
        return gather_events(words, start, stop, *outputs, at, t_before, height, width)

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
        if self._mapping is not None:
            self._file_bytes = None  # the mapping closes only without views of it
            self._mapping.close()
        self._handle.close()
        if self._lz4 is not None:
            self._lz4.close()
