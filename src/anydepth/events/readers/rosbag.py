"""ROS1 `.bag` files and ROS2 bag folders (sqlite3 `.db3` or `.mcap` + `metadata.yaml`), read through
the `rosbags` library (pure Python, no ROS install; `pip install anydepth[ros]`).

Events: `dvs_msgs/EventArray` (rpg_dvs_ros: MVSEC, ESIM) and `prophesee_event_msgs/EventArray`
(Prophesee's ROS wrapper). Both are `Header header, uint32 height, uint32 width, Event[] events` with
`Event = uint16 x, uint16 y, time ts, bool polarity`; the sensor size is the message's height and width.
Event times are the events' own `ts`, int64 µs rounded to the nearest µs (bag receive times are not
used). Frames and depth maps: `sensor_msgs/Image` at their header stamps; frames mono8 / mono16 /
bgr8 / rgb8 / bgra8 / rgba8 -> grey or BGR uint8, depth 32FC1 metres or 16UC1 millimetres -> float32
metres, NaN = invalid.

Access is lazy: opening reads the event topic once to build a small index (per message: bag time,
event count, first and last event time); a window then decodes only the messages it spans, as numpy
views of the serialized arrays (ROS1 packed records, CDR with its alignment), never per event in Python.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.events.readers.base import Arrays, EventReader
from anydepth.fileio import check_file, closing_on_error, first_line, uint16_to_uint8

ROSBAG1_SIGNATURE = b"#ROSBAG V2.0"
EVENT_MSGTYPES = ("dvs_msgs/msg/EventArray", "prophesee_event_msgs/msg/EventArray")
IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
INSTALL_HINT = "reading ROS bags needs the rosbags package: install anydepth[ros]"

# The message definitions (.msg) of both packages' events, registered in rosbags' type system so that
# ROS2 bags without embedded definitions open too.
EVENT_MSG = "uint16 x\nuint16 y\ntime ts\nbool polarity\n"
EVENT_ARRAY_MSG = "Header header\nuint32 height\nuint32 width\nEvent[] events\n"

# ROS1 serialization: packed little-endian records of 13 bytes.
_ROS1_EVENT = np.dtype({"names": ["x", "y", "sec", "nsec", "p"], "formats": ["<u2", "<u2", "<u4", "<u4", "u1"],
                        "offsets": [0, 2, 4, 8, 12], "itemsize": 13})
# CDR (XCDR1, each field aligned to its size from the payload start): an element starting at an
# offset = 2 mod 4 is laid out x@0, y@2, sec@6, nsec@10, polarity@14 with a stride of 16; the first
# element of the array starts at 0 mod 4 (after the uint32 length): x@0, y@2, sec@4, nsec@8, polarity@12.
_CDR_EVENT = np.dtype({"names": ["x", "y", "sec", "nsec", "p"], "formats": ["<u2", "<u2", "<u4", "<u4", "u1"],
                       "offsets": [0, 2, 6, 10, 14], "itemsize": 16})


def _import_rosbags():
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return AnyReader, Stores, get_types_from_msg, get_typestore


def event_typestore(ros2: bool):
    """A rosbags typestore (ROS1 Noetic or ROS2 Humble) with both EventArray types registered."""
    _, Stores, get_types_from_msg, get_typestore = _import_rosbags()
    store = get_typestore(Stores.ROS2_HUMBLE if ros2 else Stores.ROS1_NOETIC)
    types = {}
    for package in ("dvs_msgs", "prophesee_event_msgs"):
        types.update(get_types_from_msg(EVENT_MSG, f"{package}/msg/Event"))
        types.update(get_types_from_msg(EVENT_ARRAY_MSG.replace("Event[]", f"{package}/Event[]"),
                                        f"{package}/msg/EventArray"))
    store.register(types)
    return store


def bag_location(path: str | Path) -> Path:
    """The path rosbags opens: a ROS1 `.bag` file, or the ROS2 bag folder (also from its `.db3` /
    `.mcap` file or its `metadata.yaml`)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "metadata.yaml").is_file():
            raise FormatError("not a ROS2 bag folder (no metadata.yaml)", path)
        return path
    check_file(path)
    if path.suffix.lower() in (".db3", ".mcap", ".yaml") and (path.parent / "metadata.yaml").is_file():
        return path.parent
    with open(path, "rb") as handle:
        if handle.read(len(ROSBAG1_SIGNATURE)) != ROSBAG1_SIGNATURE:
            raise FormatError("not a ROS1 bag (no '#ROSBAG V2.0' signature) nor a file of a ROS2 bag folder", path)
    return path


def _stamp_us(sec: np.ndarray, nsec: np.ndarray) -> np.ndarray:
    """ROS time (seconds, nanoseconds) -> int64 µs, rounded to the nearest µs."""
    return sec.astype(np.int64) * 1_000_000 + (nsec.astype(np.int64) + 500) // 1000


class RosBag:
    """An open bag: its topics by message type, and messages of one topic by position.

    A topic's messages are addressed by (bag time ns, rank among messages of that topic with the same
    bag time), so that one time-bounded pass of rosbags reads exactly the messages asked for.
    """

    def __init__(self, path: str | Path):
        AnyReader, *_ = _import_rosbags()
        self.path = bag_location(path)
        self.ros2 = self.path.is_dir()
        try:
            self._reader = AnyReader([self.path], default_typestore=event_typestore(self.ros2))
            self._reader.open()
        except (OSError, ValueError, KeyError, AssertionError, Exception) as error:  # rosbags has many error types
            if isinstance(error, (InputError, FormatError)):
                raise
            raise FormatError(f"cannot open the ROS bag, truncated or corrupt ({first_line(error)})", self.path) from None

    def topics(self, msgtypes: tuple[str, ...]) -> list[str]:
        """Topics whose message type is one of `msgtypes`, sorted."""
        return sorted({c.topic for c in self._reader.connections if c.msgtype in msgtypes})

    def msgtype(self, topic: str) -> str:
        return next(c.msgtype for c in self._reader.connections if c.topic == topic)

    def _connections(self, topic: str) -> list:
        connections = [c for c in self._reader.connections if c.topic == topic]
        if not connections:
            raise InputError(f"no topic {topic!r} in the bag", self.path)
        return connections

    def scan(self, topic: str):
        """Yield (bag time ns, rank, raw bytes) for every message of `topic`, in time order."""
        previous, rank = None, 0
        for _, bag_ns, raw in self._messages(topic, None, None):
            rank = rank + 1 if bag_ns == previous else 0
            previous = bag_ns
            yield bag_ns, rank, raw

    def read(self, topic: str, first: tuple[int, int], last: tuple[int, int]) -> dict[tuple[int, int], bytes]:
        """{(bag time ns, rank): raw bytes} of the messages of `topic` from `first` to `last` (keys as
        `scan` gives them, both included), in one pass."""
        found, previous, rank = {}, None, 0
        for _, bag_ns, raw in self._messages(topic, first[0], None):
            rank = rank + 1 if bag_ns == previous else 0
            previous = bag_ns
            if (bag_ns, rank) >= first:
                found[(bag_ns, rank)] = raw
            if (bag_ns, rank) >= last:
                break
        if last not in found:
            raise FormatError(f"{topic}: indexed message at {last[0]} ns missing on re-read", self.path)
        return found

    def deserialize(self, raw: bytes, msgtype: str):
        try:
            return self._reader.deserialize(raw, msgtype)
        except Exception as error:  # rosbags raises its own error types for bad payloads
            raise FormatError(f"cannot decode a {msgtype} message ({first_line(error)})", self.path) from None

    def _messages(self, topic: str, start: int | None, stop: int | None):
        try:
            yield from self._reader.messages(connections=self._connections(topic), start=start, stop=stop)
        except (InputError, FormatError):
            raise
        except Exception as error:  # truncated chunks, bad compression, sqlite errors
            raise FormatError(f"cannot read {topic} from the ROS bag, truncated or corrupt ({first_line(error)})",
                              self.path) from None

    def close(self) -> None:
        if self._reader.stack is not None:
            self._reader.close()


def decode_event_array(raw: bytes | memoryview, ros2: bool, path: Path) -> tuple[int, int, dict]:
    """A serialized EventArray -> (height, width, {"x", "y", "t" int64 µs, "p"}) without per-event
    Python (ROS1 little-endian, CDR little-endian). FormatError for truncated or foreign payloads."""
    buffer = memoryview(raw).cast("B")
    try:
        if ros2:
            if bytes(buffer[:2]) != b"\x00\x01":
                raise FormatError("EventArray not in little-endian CDR (unsupported encapsulation)", path)
            payload = bytes(buffer[4:]) + bytes(4)  # CDR may end without padding after the last element
            name_length = int.from_bytes(payload[8:12], "little")
            offset = -(-(12 + name_length) // 4) * 4
        else:
            payload = buffer
            name_length = int.from_bytes(payload[12:16], "little")
            offset = 16 + name_length
        height, width, count = (int(v) for v in np.frombuffer(payload, "<u4", 3, offset))
        offset += 12
        if not ros2:
            records = np.frombuffer(payload, _ROS1_EVENT, count, offset)
            if offset + 13 * count != len(payload):
                raise ValueError("length mismatch")
            columns = {key: records[key] for key in ("x", "y", "sec", "nsec", "p")}
        elif count == 0:
            columns = {key: np.zeros(0, np.uint32) for key in ("x", "y", "sec", "nsec", "p")}
        else:
            first = np.frombuffer(payload, _ROS1_EVENT, 1, offset)
            rest = np.frombuffer(payload, _CDR_EVENT, count - 1, offset + 14) if count > 1 else first[:0]
            if offset + 14 + 16 * (count - 1) - 1 > len(payload) - 4:
                raise ValueError("length mismatch")
            columns = {key: np.concatenate([first[key], rest[key]]) for key in ("x", "y", "sec", "nsec", "p")}
    except (ValueError, IndexError):
        raise FormatError("truncated or malformed EventArray message", path) from None
    return height, width, {"x": columns["x"], "y": columns["y"], "t": _stamp_us(columns["sec"], columns["nsec"]),
                           "p": columns["p"]}


def _pick_topic(candidates: list[str], what: str, path: Path, prefer: str | None = None) -> str | None:
    """The one candidate, or the one under `prefer` (a namespace such as '/davis/left/'), else None
    when there are none; InputError listing them when it stays ambiguous."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    preferred = [topic for topic in candidates if prefer and topic.startswith(prefer)]
    if len(preferred) == 1:
        return preferred[0]
    left = [topic for topic in (preferred or candidates) if "/left/" in topic]
    if len(left) == 1:
        return left[0]
    raise InputError(f"several {what} topics ({', '.join(candidates)}): choose one with {what}_topic=", path)


class RosbagEventReader(EventReader):
    """The events of one EventArray topic of a ROS bag, read lazily (see module docstring).

    topic: the events topic (default: the only `dvs_msgs` / `prophesee_event_msgs` EventArray topic,
    or the `/left/` one); sensor_size: (height, width) when the messages leave height and width 0;
    repair: load everything, sort, drop events outside the sensor. cache_messages: decoded messages
    kept for consecutive windows.
    """

    format_name = "rosbag"

    def __init__(self, path: str | Path, topic: str | None = None, sensor_size: tuple[int, int] | None = None,
                 repair: bool = False, cache_messages: int = 16):
        self.bag = RosBag(path)
        with closing_on_error(self.bag):
            self._setup(topic, sensor_size, repair, cache_messages)

    def _setup(self, topic, sensor_size, repair, cache_messages) -> None:
        path = self.bag.path
        events_topics = self.bag.topics(EVENT_MSGTYPES)
        if topic is None:
            topic = _pick_topic(events_topics, "events", path)
            if topic is None:
                found = ", ".join(self.bag.topics(tuple({c.msgtype for c in self.bag._reader.connections}))) or "none"
                raise FormatError(f"no dvs_msgs/EventArray or prophesee_event_msgs/EventArray topic (topics: {found})", path)
        elif topic not in events_topics:
            raise InputError(f"{topic!r} is not an EventArray topic of the bag (event topics: "
                             f"{', '.join(events_topics) or 'none'})", path)
        self.topic = topic
        keys, counts, firsts, lasts, message_size = [], [], [], [], None
        for bag_ns, rank, raw in self.bag.scan(topic):
            height, width, columns = decode_event_array(raw, self.bag.ros2, path)
            if height and width and message_size is None:
                message_size = (height, width)
            if len(columns["t"]):
                keys.append((bag_ns, rank))
                counts.append(len(columns["t"]))
                firsts.append(columns["t"][0])
                lasts.append(columns["t"][-1])
        size = sensor_size or message_size
        if size is None:
            raise FormatError(f"{topic}: the messages give no height and width: pass sensor_size=(height, width) "
                              "(--sensor-size HxW)", path)
        super().__init__(path, size)
        self._keys = keys
        self._offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self._first_us = np.asarray(firsts, dtype=np.int64)
        self._last_us = np.asarray(lasts, dtype=np.int64)
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self._cache_size = max(1, int(cache_messages))
        if repair:
            self._load_repaired()

    @property
    def message_count(self) -> int:
        """Event messages holding at least one event."""
        return len(self._keys)

    def _messages(self, k0: int, k1: int) -> list[dict]:
        """Decoded messages k0..k1-1 (cached; the missing ones read in one pass)."""
        missing = [k for k in range(k0, k1) if k not in self._cache]
        if missing:
            raws = self.bag.read(self.topic, self._keys[missing[0]], self._keys[missing[-1]])
            for k in range(missing[0], missing[-1] + 1):
                if k not in self._cache:
                    if self._keys[k] not in raws:
                        raise FormatError(f"{self.topic}: indexed message {k} missing on re-read", self.path)
                    self._cache[k] = decode_event_array(raws[self._keys[k]], self.bag.ros2, self.path)[2]
        decoded = []
        for k in range(k0, k1):
            self._cache.move_to_end(k)
            decoded.append(self._cache[k])
        while len(self._cache) > max(self._cache_size, k1 - k0):
            self._cache.popitem(last=False)
        return decoded

    def _count(self) -> int:
        return int(self._offsets[-1])

    def _index_of_time(self, t_us: int) -> int:
        k = int(np.searchsorted(self._last_us, t_us, side="left"))
        if k == len(self._keys):
            return self._count()
        if self._first_us[k] >= t_us:
            return int(self._offsets[k])
        t = self._messages(k, k + 1)[0]["t"]
        return int(self._offsets[k]) + int(np.searchsorted(t, t_us, side="left"))

    def _read_arrays(self, i0: int, i1: int) -> Arrays:
        if i0 == i1:
            return np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0, np.int64), np.zeros(0, np.uint8)
        k0 = int(np.searchsorted(self._offsets, i0, side="right")) - 1
        k1 = int(np.searchsorted(self._offsets, i1, side="left"))
        messages = self._messages(k0, k1)
        start = i0 - int(self._offsets[k0])
        stop = start + (i1 - i0)
        return tuple(np.concatenate([m[key] for m in messages])[start:stop] for key in ("x", "y", "t", "p"))

    def _close(self) -> None:
        self._cache.clear()
        self.bag.close()


class RosbagImages:
    """The `sensor_msgs/Image` messages of one topic, by index, at their header stamps.

    depth: decode as depth maps (float32 metres, NaN = invalid) instead of frames (grey or BGR uint8).
    `timestamps_us` (K,) int64, sorted (FormatError if the stamps go back in time).
    """

    def __init__(self, bag: RosBag, topic: str, depth: bool = False):
        self.bag, self.topic, self.depth = bag, topic, depth
        self._keys, stamps = [], []
        for bag_ns, rank, raw in bag.scan(topic):
            header = bag.deserialize(raw, IMAGE_MSGTYPE).header.stamp
            self._keys.append((bag_ns, rank))
            stamps.append(int(header.sec) * 1_000_000 + (int(header.nanosec) + 500) // 1000)
        self.timestamps_us = np.asarray(stamps, dtype=np.int64)
        if len(stamps) > 1 and (np.diff(self.timestamps_us) < 0).any():
            raise FormatError(f"{topic}: image header stamps are not sorted", bag.path)

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index: int) -> np.ndarray:
        key = self._keys[int(index)]
        raw = self.bag.read(self.topic, key, key)[key]
        message = self.bag.deserialize(raw, IMAGE_MSGTYPE)
        return image_array(message, self.depth, f"{self.topic}[{index}]", self.bag.path)


_FRAME_ENCODINGS = {  # encoding -> (sample dtype, channels, channel order to BGR)
    "mono8": ("u1", 1, None), "8UC1": ("u1", 1, None), "mono16": ("u2", 1, None), "16UC1": ("u2", 1, None),
    "bgr8": ("u1", 3, None), "rgb8": ("u1", 3, [2, 1, 0]), "bgra8": ("u1", 4, [0, 1, 2]), "rgba8": ("u1", 4, [2, 1, 0]),
}


def image_array(message, depth: bool, where: str, path: Path) -> np.ndarray:
    """A deserialized `sensor_msgs/Image` -> frame (H, W) grey / (H, W, 3) BGR uint8 (16-bit scaled
    /257), or with depth=True a depth map (H, W) float32 metres, NaN = invalid (32FC1 metres,
    16UC1 millimetres, 0 = invalid)."""
    encoding, height, width, step = message.encoding, int(message.height), int(message.width), int(message.step)
    order = ">" if message.is_bigendian else "<"
    if depth:
        kinds = {"32FC1": ("f4", 1.0), "16UC1": ("u2", 1e-3), "mono16": ("u2", 1e-3)}
        if encoding not in kinds:
            raise FormatError(f"{where}: depth image encoding {encoding!r} (expected 32FC1 metres or 16UC1 mm)", path)
        sample, scale, channels = kinds[encoding][0], kinds[encoding][1], 1
    else:
        if encoding not in _FRAME_ENCODINGS:
            raise FormatError(f"{where}: image encoding {encoding!r} not supported "
                              f"({', '.join(_FRAME_ENCODINGS)})", path)
        sample, channels, to_bgr = _FRAME_ENCODINGS[encoding]
    dtype = np.dtype(order + sample)
    data = np.asarray(message.data, dtype=np.uint8)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes or len(data) < step * height:
        raise FormatError(f"{where}: image data holds {len(data)} bytes, expected {height} rows of {step} "
                          f"(at least {row_bytes} each)", path)
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    image = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    if depth:
        depth_m = image[..., 0].astype(np.float32) * np.float32(scale)
        depth_m[~(np.isfinite(depth_m) & (depth_m > 0))] = np.nan
        return depth_m
    if dtype.itemsize == 2:
        image = uint16_to_uint8(image)
    if channels == 1:
        return np.ascontiguousarray(image[..., 0])
    return np.ascontiguousarray(image[..., to_bgr] if to_bgr is not None else image)
