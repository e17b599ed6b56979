"""An AEDAT4 recording as an aligned sequence: events, APS frames and IMU of one DV file.

Samples sit at the frame timestamps when the file has a frame stream (DAVIS), else at the ends of
consecutive windows of ΔT from the first event (DVXplorer: events only). Sample i holds the events
of [t_i − ΔT, t_i) and the frame at t_i; depth_m is None (DV files carry no ground truth). IMU
samples are read with `imu(t0_us, t1_us)` or `imu_window(i)` (those of sample i's window).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anydepth.events.dataset import AlignedSample, AlignedSequence, _window_us
from anydepth.events.readers.aedat4 import Aedat4Reader


class Aedat4Sequence(AlignedSequence):
    """Aligned samples of an AEDAT4 file (see module docstring). stream_id: the event stream;
    frames=False: no frames (samples at window ends)."""

    def __init__(self, path: str | Path, window_ms: float = 50.0, stream_id: int | None = None, frames: bool = True):
        self.window_us = _window_us(window_ms)
        self.reader = Aedat4Reader(path, stream_id=stream_id)
        self._frame_times = self.reader.frame_timestamps_us() if frames and self.reader.has_frames else None
        if self._frame_times is not None and len(self._frame_times):
            self.timestamps_us = self._frame_times
        else:
            self._frame_times = None
            start, end = self.reader.t_start, self.reader.t_end
            count = 0 if start is None else -(-(end + 1 - start) // self.window_us)
            self.timestamps_us = start + self.window_us * np.arange(1, count + 1, dtype=np.int64) if count \
                else np.zeros(0, np.int64)

    def _sample(self, index: int) -> AlignedSample:
        t = int(self.timestamps_us[index])
        frame = self.reader.read_frame(index) if self._frame_times is not None else None
        return AlignedSample(self.reader.read_time(t - self.window_us, t), None, frame, None, t, index)

    def imu(self, t0_us: int | None = None, t1_us: int | None = None) -> np.ndarray:
        """IMU samples with t0 <= t < t1 (structured array, see `Aedat4Reader.read_imu`; empty when
        the file has no IMU stream)."""
        return self.reader.read_imu(t0_us, t1_us)

    def imu_window(self, index: int) -> np.ndarray:
        """IMU samples of sample `index`'s window [t − ΔT, t)."""
        t = int(self.timestamps_us[index])
        return self.imu(t - self.window_us, t)

    def close(self) -> None:
        self.reader.close()


__all__ = ["Aedat4Sequence"]
