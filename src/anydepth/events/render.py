"""Looking at recordings: a summary of a file, and one picture per window."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from anydepth import fileio, viz
from anydepth.errors import InputError
from anydepth.events.readers import open_events
from anydepth.events.representations import REPRESENTATIONS


@dataclass
class RecordingInfo:
    """Summary of a recording: sensor (height, width), event count, first/last timestamp (µs)."""

    path: Path
    format_name: str
    sensor_size: tuple[int, int]
    count: int
    t_start_us: int | None
    t_end_us: int | None

    @property
    def duration_s(self) -> float:
        return 0.0 if self.t_start_us is None else (self.t_end_us - self.t_start_us) / 1e6

    @property
    def rate_mev_s(self) -> float:
        """Mean event rate in millions of events per second (0 for an instantaneous recording)."""
        return self.count / self.duration_s / 1e6 if self.duration_s > 0 else 0.0

    def lines(self) -> list[str]:
        height, width = self.sensor_size
        span = "no events" if self.t_start_us is None else f"{self.t_start_us} .. {self.t_end_us} µs"
        return [
            f"file      {self.path}",
            f"format    {self.format_name}",
            f"sensor    {width} x {height} (width x height)",
            f"events    {self.count:,}",
            f"time      {span}",
            f"duration  {self.duration_s:.3f} s",
            f"rate      {self.rate_mev_s:.3f} M events/s",
        ]


def describe_recording(path: str | Path, sensor_size: tuple[int, int] | None = None,
                       repair: bool = False) -> RecordingInfo:
    """Format, sensor size, event count and time span of a recording. sensor_size: (height, width)
    for files that do not state it; repair: sort and drop events outside the sensor first."""
    with open_events(path, sensor_size=sensor_size, repair=repair) as reader:
        return RecordingInfo(Path(path), reader.format_name, reader.sensor_size, len(reader), reader.t_start, reader.t_end)


def render_recording(
    path: str | Path,
    out_dir: str | Path,
    representation: str = "tencode",
    window_ms: float = 50.0,
    bins: int = 5,
    sensor_size: tuple[int, int] | None = None,
    repair: bool = False,
) -> Iterator[Path]:
    """Write one PNG per consecutive window of `window_ms` (window_<k>.png, k from 0) and yield
    each path. Empty windows give an empty picture, so frame k covers [t_start + k dT,
    t_start + (k + 1) dT), except after a gap: a block of 1000 windows without events is skipped
    with a warning (`EventReader.windows`), and numbering goes on after it. sensor_size: (height,
    width) for files that do not state it; repair: sort and drop events outside the sensor first."""
    if representation not in REPRESENTATIONS:
        raise InputError(f"unknown representation {representation!r}; choose one of {', '.join(REPRESENTATIONS)}")
    window_us = _window_us(window_ms)
    options = {"bins": bins} if representation == "voxel" else {}
    convert = REPRESENTATIONS[representation]
    out_dir = Path(out_dir)
    with open_events(path, sensor_size=sensor_size, repair=repair) as reader:
        for index, window in enumerate(reader.windows(window_us=window_us)):
            picture = viz.render_events(convert(window, **options), representation)
            target = out_dir / f"window_{index:06d}.png"
            fileio.write_image(target, picture)
            yield target


def count_windows(path: str | Path, window_ms: float, sensor_size: tuple[int, int] | None = None,
                  repair: bool = False) -> int:
    """How many windows `render_recording` will write (for progress bars; gaps skipped as it skips them)."""
    window_us = _window_us(window_ms)
    with open_events(path, sensor_size=sensor_size, repair=repair) as reader:
        return reader.count_windows(window_us)


def _window_us(window_ms: float) -> int:
    window_us = int(round(window_ms * 1000))
    if window_us <= 0:
        raise InputError(f"window must be at least 1 µs, got {window_ms} ms")
    return window_us


def write_video(frames: list[Path], target: str | Path, fps: float = 20.0) -> Path:
    """Assemble PNG frames into an .mp4 (OpenCV, mp4v) or a .gif (Pillow): `viz.VideoWriter`."""
    target = Path(target)
    if not frames:
        raise InputError("no frames to put in a video", target)
    with viz.VideoWriter(target, fps) as writer:
        for frame in frames:
            writer.write(fileio.read_rgb(frame))
    return target
