"""Aligned sequences held in one recording file: ROS bags (events, frames, depth images; an original
MVSEC bag) and event_utils HDF5 (events and `images/`).

Sample i sits at the depth image's header stamp when the bag has a depth topic, else at the frame's
timestamp; its events are those of [t − ΔT, t), its frame the one nearest to t (as in
`anydepth.events.dataset`).
"""

from __future__ import annotations

from pathlib import Path


from anydepth.errors import FormatError
from anydepth.events.dataset import AlignedSample, AlignedSequence, _window_us
from anydepth.events.readers.research import EventUtilsH5Reader
from anydepth.events.readers.rosbag import IMAGE_MSGTYPE, RosbagEventReader, RosbagImages, _pick_topic
from anydepth.events.readers.timestamps import nearest_index
from anydepth.fileio import closing_on_error


class RosbagSequence(AlignedSequence):
    """A ROS bag with an EventArray topic and `sensor_msgs/Image` frames and/or depth images.

    events_topic / frames_topic / depth_topic: the topics (default: the EventArray topic, then the
    image topics in its namespace, e.g. /davis/left/ -> image_raw and depth_image_raw; depth topics
    are those with "depth" in their name). frames=False: no frames. Depth: float32 metres, NaN =
    invalid (32FC1 metres or 16UC1 millimetres in the bag).
    """

    def __init__(self, path: str | Path, window_ms: float = 50.0, events_topic: str | None = None,
                 frames_topic: str | None = None, depth_topic: str | None = None, frames: bool = True,
                 sensor_size: tuple[int, int] | None = None):
        self.window_us = _window_us(window_ms)
        self.reader = RosbagEventReader(path, topic=events_topic, sensor_size=sensor_size)
        with closing_on_error(self.reader):
            bag = self.reader.bag
            namespace = self.reader.topic.rsplit("/", 1)[0] + "/"
            images = bag.topics((IMAGE_MSGTYPE,))
            depth_topics = [topic for topic in images if "depth" in topic.lower()]
            if depth_topic is None:
                depth_topic = _pick_topic(depth_topics, "depth", bag.path, prefer=namespace)
            if frames and frames_topic is None:
                frames_topic = _pick_topic([t for t in images if t not in depth_topics], "frames", bag.path, prefer=namespace)
            self.depth = RosbagImages(bag, depth_topic, depth=True) if depth_topic else None
            self.frames = RosbagImages(bag, frames_topic) if frames and frames_topic else None
            anchor = self.depth if self.depth is not None else self.frames
            if anchor is None:
                raise FormatError(f"no sensor_msgs/Image frames or depth to place samples at (topics: "
                                  f"{', '.join(images) or 'none'})", bag.path)
            self.timestamps_us = anchor.timestamps_us

    def _sample(self, index: int) -> AlignedSample:
        t = int(self.timestamps_us[index])
        depth_m = self.depth[index] if self.depth is not None else None
        frame = None
        if self.frames is not None and len(self.frames):
            frame = self.frames[nearest_index(self.frames.timestamps_us, t)]
        return AlignedSample(self.reader.read_time(t - self.window_us, t), None, frame, depth_m, t, index)

    def close(self) -> None:
        self.reader.close()


class EventUtilsSequence(AlignedSequence):
    """An event_utils HDF5 with `images/`: samples at the image timestamps, frame = that image,
    no depth. Options of `EventUtilsH5Reader` (sensor_size=, time_unit=) pass through."""

    def __init__(self, path: str | Path, window_ms: float = 50.0, **options):
        self.window_us = _window_us(window_ms)
        self.reader = EventUtilsH5Reader(path, **options)
        self.frames = self.reader.images()
        if self.frames is None or not len(self.frames):
            self.reader.close()
            raise FormatError("event_utils file without images/ to place samples at (open it with open_events)", path)
        self.timestamps_us = self.frames.timestamps_us

    def _sample(self, index: int) -> AlignedSample:
        t = int(self.timestamps_us[index])
        return AlignedSample(self.reader.read_time(t - self.window_us, t), None, self.frames[index], None, t, index)

    def close(self) -> None:
        self.reader.close()


def open_file_sequence(path: Path, format: str, window_ms: float, **options) -> AlignedSequence:
    """The sequence of a single-file recording of `format` ("rosbag" or "event_utils")."""
    if format == "rosbag":
        return RosbagSequence(path, window_ms=window_ms, **options)
    return EventUtilsSequence(path, window_ms=window_ms, **options)


__all__ = ["EventUtilsSequence", "RosbagSequence", "open_file_sequence"]
