"""Event cameras: the event container, file readers, aligned samples and representations.

    from anydepth.events import open_events, voxel_grid
    with open_events("recording.aedat4") as reader:
        for window in reader.windows(window_us=50_000):
            grid = voxel_grid(window, bins=5)        # (5, H, W) float32
"""

from anydepth.events.container import EventArray, concatenate
from anydepth.events.dataset import AlignedSample, open_sequence
from anydepth.events.readers import READERS, open_events
from anydepth.events.representations import (
    REPRESENTATIONS,
    histogram,
    normalize_voxel_grid,
    tencode,
    tencode_from_voxels,
    time_surface,
    voxel_grid,
)

__all__ = [
    "READERS",
    "REPRESENTATIONS",
    "AlignedSample",
    "EventArray",
    "concatenate",
    "histogram",
    "normalize_voxel_grid",
    "open_events",
    "open_sequence",
    "tencode",
    "tencode_from_voxels",
    "time_surface",
    "voxel_grid",
]
