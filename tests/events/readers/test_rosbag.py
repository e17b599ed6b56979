"""ROS1 / ROS2 bags: written with rosbags' own writers (rosbag1.Writer, rosbag2.Writer and its
serializers), read with ours; events compared with what was written and with rosbags' own
deserializer; an MVSEC-like bag as an aligned sequence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

rosbags = pytest.importorskip("rosbags")
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag1 import Writer as Writer1  # noqa: E402
from rosbags.rosbag2 import Writer as Writer2  # noqa: E402

from anydepth.cli.main import main  # noqa: E402
from anydepth.errors import FormatError, InputError  # noqa: E402
from anydepth.events.dataset import open_sequence  # noqa: E402
from anydepth.events.readers import detect_format, open_events  # noqa: E402
from anydepth.events.readers.rosbag import event_typestore  # noqa: E402

T0_US = 1_506_117_000_000_000  # an MVSEC-like absolute clock
HEIGHT, WIDTH = 260, 346


def _events(rng, count: int, t0_us: int = T0_US):
    t_ns = t0_us * 1000 + np.cumsum(rng.choice([0, 1, 499, 500, 999, 250_000], count))  # equal times included
    return {"x": rng.integers(0, WIDTH, count), "y": rng.integers(0, HEIGHT, count), "t": t_ns // 1000,
            "p": rng.integers(0, 2, count), "ns": t_ns % 1000}


class _Bag:
    """Builds messages with rosbags' types and serializers and writes them with its writers."""

    def __init__(self, path, ros2: bool):
        self.ros2, self.store = ros2, event_typestore(ros2)
        self.writer = Writer2(path, version=9) if ros2 else Writer1(path)
        self.writer.open()
        self.connections = {}

    def _time(self, t_us: int, ns: int = 0):
        return self.store.types["builtin_interfaces/msg/Time"](sec=int(t_us) // 10**6, nanosec=int(t_us) % 10**6 * 1000 + int(ns))

    def _header(self, t_us: int, seq: int):
        fields = {"stamp": self._time(t_us), "frame_id": "cam" * (seq % 3)}  # varied lengths shift the CDR alignment
        return self.store.types["std_msgs/msg/Header"](**fields, **({} if self.ros2 else {"seq": seq}))

    def write(self, topic: str, msgtype: str, message, bag_ns: int) -> None:
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store)
        raw = self.store.serialize_cdr(message, msgtype) if self.ros2 else self.store.serialize_ros1(message, msgtype)
        self.writer.write(self.connections[topic], bag_ns, raw)

    def events(self, topic: str, events: dict, splits, package: str = "dvs_msgs", size=(HEIGHT, WIDTH)) -> None:
        Event, EventArray = (self.store.types[f"{package}/msg/{name}"] for name in ("Event", "EventArray"))
        for seq, (i0, i1) in enumerate(zip(splits[:-1], splits[1:])):
            items = [Event(x=int(events["x"][i]), y=int(events["y"][i]), polarity=bool(events["p"][i]),
                           ts=self._time(events["t"][i], events["ns"][i])) for i in range(i0, i1)]
            stamp = int(events["t"][max(i1 - 1, 0)]) if len(events["t"]) else T0_US
            message = EventArray(header=self._header(stamp, seq), height=size[0], width=size[1], events=items)
            self.write(topic, f"{package}/msg/EventArray", message, stamp * 1000)

    def image(self, topic: str, t_us: int, array: np.ndarray, encoding: str, seq: int = 0) -> None:
        height, width = array.shape[:2]
        data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        message = self.store.types["sensor_msgs/msg/Image"](
            header=self._header(t_us, seq), height=height, width=width, encoding=encoding, is_bigendian=0,
            step=len(data) // height, data=data)
        self.write(topic, "sensor_msgs/msg/Image", message, t_us * 1000)

    def close(self) -> None:
        self.writer.close()


def _expected_us(events: dict) -> np.ndarray:
    return events["t"] + (events["ns"] >= 500)  # ts (µs * 1000 + ns) rounded to the nearest µs


def _write_event_bag(path, ros2: bool, package: str = "dvs_msgs", count: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    events = _events(rng, count)
    splits = np.unique(np.concatenate([[0, count], rng.integers(0, count, 40)]))  # uneven messages, some empty
    splits = np.sort(np.concatenate([splits, splits[5:7]]))  # two empty messages
    bag = _Bag(path, ros2)
    bag.events("/dvs/events", events, splits, package=package)
    bag.close()
    return events


@pytest.mark.parametrize("ros2, package", [(False, "dvs_msgs"), (True, "dvs_msgs"),
                                           (False, "prophesee_event_msgs"), (True, "prophesee_event_msgs")])
def test_windows_lose_and_duplicate_no_event(tmp_path, ros2, package):
    path = tmp_path / ("bag2" if ros2 else "events.bag")
    events = _write_event_bag(path, ros2, package)
    assert detect_format(path) == "rosbag" if not ros2 else True
    with open_events(path) as reader:
        assert reader.format_name == "rosbag" and reader.sensor_size == (HEIGHT, WIDTH)
        assert len(reader) == len(events["t"])
        for window_us in (997, 20_000):
            windows = list(reader.windows(window_us=window_us))
            joined = np.concatenate([w.t for w in windows])
            np.testing.assert_array_equal(joined, _expected_us(events))
            for k, window in enumerate(windows):  # each window holds exactly its time span
                lo = reader.t_start + k * window_us
                assert len(window) == 0 or (window.t.min() >= lo and window.t.max() < lo + window_us)
        counted = list(reader.windows(count=333))
        np.testing.assert_array_equal(np.concatenate([w.x for w in counted]), events["x"])
        np.testing.assert_array_equal(np.concatenate([w.y for w in counted]), events["y"])
        np.testing.assert_array_equal(np.concatenate([w.p for w in counted]), events["p"])


@pytest.mark.parametrize("ros2", [False, True])
def test_equals_rosbags_own_deserializer(tmp_path, ros2):
    path = tmp_path / ("bag2" if ros2 else "events.bag")
    _write_event_bag(path, ros2, seed=3)
    rows = []
    with AnyReader([path], default_typestore=event_typestore(ros2)) as bag:
        for connection, _, raw in bag.messages():
            for event in bag.deserialize(raw, connection.msgtype).events:
                rows.append((event.x, event.y, event.ts.sec * 10**6 + (event.ts.nanosec + 500) // 1000, event.polarity))
    reference = np.array(rows, dtype=np.int64)
    with open_events(path) as reader:
        events = reader.read_all()
    np.testing.assert_array_equal(np.stack([events.x, events.y, events.t, events.p], 1), reference)


def _write_mvsec_like(path, ros2: bool, depth_encoding: str = "32FC1"):
    """/davis/{left,right}/events, /davis/left/image_raw (mono8, 10 Hz), /davis/left/depth_image_raw (20 Hz)."""
    rng = np.random.default_rng(1)
    left, right = _events(rng, 4000), _events(rng, 500)
    duration = int(left["t"][-1] - T0_US)
    bag = _Bag(path, ros2)
    bag.events("/davis/left/events", left, np.linspace(0, 4000, 41).astype(int))
    bag.events("/davis/right/events", right, [0, 250, 500])
    frames, depths = {}, {}
    for k, t in enumerate(range(T0_US, T0_US + duration, 100_000)):
        frames[t] = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
        bag.image("/davis/left/image_raw", t, frames[t], "mono8", k)
    for k, t in enumerate(range(T0_US + 30_000, T0_US + duration, 50_000)):
        depth_m = rng.uniform(1, 30, (HEIGHT, WIDTH)).astype(np.float32)
        depth_m[:10] = np.nan if depth_encoding == "32FC1" else 0
        if depth_encoding == "16UC1":
            millimetres = np.round(depth_m * 1000).astype(np.uint16)
            depths[t] = millimetres / np.float32(1000)
            bag.image("/davis/left/depth_image_raw", t, millimetres, "16UC1", k)
        else:
            depths[t] = depth_m
            bag.image("/davis/left/depth_image_raw", t, depth_m, "32FC1", k)
    bag.close()
    return left, frames, depths


@pytest.mark.parametrize("ros2, depth_encoding", [(False, "32FC1"), (True, "16UC1")])
def test_mvsec_like_bag_opens_as_an_aligned_sequence(tmp_path, ros2, depth_encoding):
    path = tmp_path / ("mvsec2" if ros2 else "outdoor_day1.bag")
    left, frames, depths = _write_mvsec_like(path, ros2, depth_encoding)
    t_events = _expected_us(left)
    with open_sequence(path, window_ms=50) as sequence:
        assert sequence.reader.topic == "/davis/left/events"
        assert list(sequence.timestamps_us) == sorted(depths)
        frame_times = np.array(sorted(frames))
        for sample in sequence:
            t = sample.timestamp_us
            inside = (t_events >= t - 50_000) & (t_events < t)
            np.testing.assert_array_equal(sample.events.t, t_events[inside])
            np.testing.assert_array_equal(sample.events.x, left["x"][inside])
            expected_depth = depths[t].astype(np.float32)
            np.testing.assert_allclose(sample.depth_m[10:], expected_depth[10:], rtol=1e-6)
            assert np.isnan(sample.depth_m[:10]).all()
            nearest = frame_times[np.argmin(np.abs(frame_times - t))]
            np.testing.assert_array_equal(sample.frame, frames[int(nearest)])


def test_right_camera_and_topic_choice(tmp_path):
    path = tmp_path / "two.bag"
    _write_mvsec_like(path, ros2=False)
    with open_events(path, topic="/davis/right/events") as reader:
        assert len(reader) == 500
    with pytest.raises(InputError, match="not an EventArray topic"):
        open_events(path, topic="/davis/left/image_raw")


def test_frames_in_colour_are_bgr(tmp_path):
    path = tmp_path / "colour.bag"
    rng = np.random.default_rng(2)
    bag = _Bag(path, ros2=False)
    bag.events("/cam/events", _events(rng, 100), [0, 100])
    rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    bag.image("/cam/image", T0_US + 20_000, rgb, "rgb8")
    bag.close()
    with open_sequence(path) as sequence:
        sample = sequence[0]
        assert sample.depth_m is None
        np.testing.assert_array_equal(sample.frame, rgb[..., ::-1])


def test_truncated_and_foreign_bags_fail_in_one_line(tmp_path):
    path = tmp_path / "events.bag"
    _write_event_bag(path, ros2=False)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.bag"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as error:
        open_events(truncated)
    assert str(truncated) in str(error.value) and "\n" not in str(error.value)
    corrupt = tmp_path / "corrupt.bag"
    corrupt.write_bytes(data[:13] + b"\xff" * (len(data) - 13))
    with pytest.raises(FormatError) as error:
        open_events(corrupt)
    assert str(corrupt) in str(error.value) and "\n" not in str(error.value)
    folder = tmp_path / "bag2"
    _write_event_bag(folder, ros2=True)
    storage = next(folder.glob("*.db3"))
    storage.write_bytes(storage.read_bytes()[:2000])
    with pytest.raises(FormatError) as error:
        open_events(folder)
    assert str(folder) in str(error.value) and "\n" not in str(error.value)


def test_bag_without_events_names_its_topics(tmp_path):
    path = tmp_path / "frames.bag"
    bag = _Bag(path, ros2=False)
    bag.image("/cam/image", T0_US, np.zeros((4, 5), np.uint8), "mono8")
    bag.close()
    with pytest.raises(FormatError, match="no dvs_msgs/EventArray.*/cam/image"):
        open_events(path)


def test_missing_rosbags_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "events.bag"
    _write_event_bag(path, ros2=False)
    monkeypatch.setitem(sys.modules, "rosbags.highlevel", None)
    with pytest.raises(InputError, match=r"install anydepth\[ros\]"):
        open_events(path)


@pytest.mark.parametrize("ros2", [False, True])
def test_cli_info(tmp_path, capsys, ros2):
    path = tmp_path / ("bag2" if ros2 else "events.bag")
    events = _write_event_bag(path, ros2)
    assert main(["events", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rosbag" in out and f"events    {len(events['t']):,}" in out and "sensor    346 x 260" in out
    assert main(["events", "info", str(path), "--sensor-size", "300x400"]) == 0  # the caller's size wins
    assert "sensor    400 x 300" in capsys.readouterr().out


def test_cli_error_is_one_line(tmp_path):
    path = tmp_path / "broken.bag"
    path.write_bytes(b"#ROSBAG V2.0\n" + b"\x00" * 100)
    result = subprocess.run([sys.executable, "-m", "anydepth.cli.main", "events", "info", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr


def test_bags_are_sequences_of_a_dataset(tmp_path):
    """pseudolabel / train find their sequences with find_sequences and open them for training."""
    from anydepth.distill.data import open_for_training
    from anydepth.distill.sequences import find_sequences, sequence_name

    root = tmp_path / "dataset"
    root.mkdir()
    _write_mvsec_like(root / "outdoor_day1.bag", ros2=False)
    _write_mvsec_like(root / "outdoor_day2", ros2=True)
    found = find_sequences(root)
    assert found == [root / "outdoor_day1.bag", root / "outdoor_day2"]
    assert [sequence_name(path, root) for path in found] == ["outdoor_day1", "outdoor_day2"]
    for path in found:
        with open_for_training(path, window_ms=50) as sequence:
            assert sequence.frames is None and sequence[0].depth_m is not None and len(sequence[0].events)
