"""Streaming inference on any recording or live source: windows -> depth per window, state carried."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anydepth import fileio, viz
from anydepth.errors import InputError
from anydepth.events.container import EventArray
from anydepth.events.readers import open_events
from anydepth.events.representations import tencode
from anydepth.eventdepth.base import DepthStream, EventDepthModel


@dataclass
class WindowDepth:
    """One window: its index, time span [t0, t1) µs, event count, depth (H, W) float32 (metres or
    relative depth-like, as the model's `output_kind`), and the files written."""

    index: int
    t0_us: int | None
    t1_us: int | None
    count: int
    depth: np.ndarray
    written: list[Path]


def predict_recording(
    path: str | Path,
    model: EventDepthModel,
    window_us: int | None = 50_000,
    window_events: int | None = None,
    out_dir: str | Path | None = None,
    video: str | Path | None = None,
    fps: float = 20.0,
    stream: DepthStream | None = None,
    sensor_size: tuple[int, int] | None = None,
    repair: bool = False,
) -> Iterator[WindowDepth]:
    """Stream a recording window by window (by time, or by event count) through `model`, carrying
    its recurrent state. Writes, per window k, `depth_<k>.png` (colour) and `depth_<k>.npy` (raw
    float32) under `out_dir`, and a side-by-side (events | depth) video (.mp4 or .gif) to `video`. Pass a
    `DepthStream` to read its latencies afterwards. sensor_size: (height, width) for files that do
    not state it; repair: sort and drop events outside the sensor first. Time windows skip gaps
    (blocks of 1000 windows without events, with a warning: `EventReader.windows`); k counts the
    windows written."""
    if (window_us is None) == (window_events is None):
        raise InputError("give exactly one of a time window or an event count per window")
    _check_video(video)
    with open_events(path, sensor_size=sensor_size, repair=repair) as reader:
        windows = reader.windows(window_us=window_us) if window_us is not None else reader.windows(count=window_events)
        yield from predict_windows(windows, model, out_dir, video, fps, stream)


def _check_video(video: str | Path | None) -> None:
    if video is not None and Path(video).suffix.lower() not in (".mp4", ".gif"):
        raise InputError("the video must be an .mp4 or a .gif", video)


def predict_windows(
    windows: Iterable[EventArray],
    model: EventDepthModel,
    out_dir: str | Path | None = None,
    video: str | Path | None = None,
    fps: float = 20.0,
    stream: DepthStream | None = None,
) -> Iterator[WindowDepth]:
    """`predict_recording` on any sequence of windows (a reader's, or a live source's): depth per
    window with the state carried, the same files written; the video is closed when the windows
    end or the generator is closed."""
    _check_video(video)
    stream = stream or DepthStream(model)
    writer = viz.VideoWriter(video, fps) if video is not None else None
    try:
        for index, window in enumerate(windows):
            depth = stream.step(window)
            written = []
            picture = viz.colorize_depth(depth, "metric" if model.output_kind == "metric" else "relative")
            if out_dir is not None:
                stem = Path(out_dir) / f"depth_{index:06d}"
                fileio.write_image(stem.with_suffix(".png"), picture)
                fileio.write_npy(stem.with_suffix(".npy"), depth)
                written += [stem.with_suffix(".png"), stem.with_suffix(".npy")]
            if writer is not None:
                events_picture = viz.render_events(tencode(window), "tencode")
                writer.write(np.concatenate([events_picture, picture], axis=1))
            yield WindowDepth(index, window.t_start, window.t_end, len(window), depth, written)
    finally:
        if writer is not None:
            writer.close()
