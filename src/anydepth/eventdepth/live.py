"""Depth from a live DV source: `LiveEvents` windows through a student, as they arrive.

    with LiveEvents("tcp://127.0.0.1:7777", window_us=50_000) as source:
        for result in predict_live(source, model, out_dir="live-depth"):
            print(result.index, result.latency_ms, result.dropped)

When the model is slower than real time, the source drops the windows it cannot serve (see
`anydepth.events.live`); their count is in each result and in `source.dropped`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from anydepth.eventdepth.base import DepthStream, EventDepthModel
from anydepth.eventdepth.stream import WindowDepth, predict_windows
from anydepth.events.live import LiveEvents


@dataclass
class LiveWindowDepth(WindowDepth):
    """A `WindowDepth` of a live source, with `latency_ms`: wall time from the moment the window
    completed (its last event received) to its depth and files being ready; and `dropped`: windows
    the source has skipped so far."""

    latency_ms: float = float("nan")
    dropped: int = 0


def predict_live(source: LiveEvents, model: EventDepthModel, out_dir: str | Path | None = None,
                 video: str | Path | None = None, stream: DepthStream | None = None,
                 stop: threading.Event | None = None, max_windows: int | None = None) -> Iterator[LiveWindowDepth]:
    """Depth per window of `source` (files as `predict_recording` writes them; the video at the
    source's real-time rate) until the source stops, `stop` is set or `max_windows` windows ran.
    The recurrent state is carried across dropped windows (the model sees a gap)."""
    windows = source.windows(stop)
    if max_windows is not None:
        windows = (window for index, window in zip(range(int(max_windows)), windows))
    results = predict_windows(windows, model, out_dir, video, fps=1e6 / source.window_us, stream=stream)
    try:
        for result in results:
            latency_ms = 1000.0 * (time.monotonic() - source.last_completed_s)
            yield LiveWindowDepth(**vars(result), latency_ms=latency_ms, dropped=source.dropped)
    finally:
        results.close()  # closes the video even when the caller stops early


__all__ = ["LiveWindowDepth", "predict_live"]
