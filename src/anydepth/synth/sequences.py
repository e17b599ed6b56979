"""Synthetic event datasets: a seeded scene, a smooth camera path rendered at a high internal frame
rate, the event simulator on the rendered frames, and the frames and depth kept at dataset rates,
written in a real on-disk layout (DSEC-like, E2Depth-processed MVSEC-like, or raw MVSEC-like).

A sequence starts with events: frames and depth are kept from the first internal frame at or after
the first event + `window_ms`, so every sample's event window [t − ΔT, t) lies inside the recorded
events (the authors' loaders fail or assert on a window that starts before the first event; DSEC's
own drop the first disparity map for that reason). The first frame and the first depth map share
that timestamp, as in DSEC (disparity 000000 = image 000000)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anydepth import viz
from anydepth.errors import InputError
from anydepth.events.container import EventArray, concatenate
from anydepth.synth.esim import EventSimulator
from anydepth.synth.scenes import PinholeCamera, Trajectory, compile_scene, random_scene, render
from anydepth.synth.writers import write_dsec_sequence, write_e2depth_folder, write_mvsec_pair

LAYOUTS = ("dsec", "e2depth", "mvsec")
DSEC_LIKE_BASELINE_M = 0.6


@dataclass(frozen=True)
class EventSequenceSpec:
    """What to generate. seconds: span of the stored frames and depth (rendering runs longer, by the
    lead-in before the first sample); resolution (H, W); internal_fps: rendering rate fed to the
    simulator; frame_hz / depth_hz: rates of the stored frames and depth maps; depth_range_m and
    number of objects of the scene; window_ms: the event window ΔT every sample must have whole;
    baseline_m: a right camera that far to the right (+x) is rendered and simulated too (the DSEC
    layout stores both cameras; about twice the time), None for the left camera only;
    simulator: keyword arguments of `EventSimulator` (thresholds, mismatch, refractory, noise)."""

    seconds: float = 2.0
    resolution: tuple[int, int] = (260, 346)
    internal_fps: float = 1000.0
    frame_hz: float = 20.0
    depth_hz: float = 10.0
    depth_range_m: tuple[float, float] = (2.0, 30.0)
    objects: int = 10
    horizontal_fov_deg: float = 70.0
    seed: int = 0
    window_ms: float = 50.0
    baseline_m: float | None = DSEC_LIKE_BASELINE_M
    simulator: dict = field(default_factory=lambda: {"threshold_sigma": 0.03, "refractory_us": 100.0, "shot_noise_hz": 0.1})

    def __post_init__(self):
        if self.seconds <= 0 or self.internal_fps <= 0:
            raise InputError("seconds and internal_fps must be positive")
        for rate in (self.frame_hz, self.depth_hz):
            if rate <= 0 or rate > self.internal_fps:
                raise InputError(f"frame and depth rates must be in (0, internal_fps], got {rate}")
        if self.window_ms < 0:
            raise InputError(f"window_ms must not be negative, got {self.window_ms}")
        if self.baseline_m is not None and not self.baseline_m > 0:
            raise InputError(f"baseline_m must be positive or None, got {self.baseline_m}")


@dataclass
class EventSequence:
    """A generated sequence: events, RGB frames (N, H, W, 3) uint8 with µs timestamps, depth
    (M, H, W) float32 metres (z-depth of the left camera) with µs timestamps, and the camera; with
    a stereo spec also the right camera's events and frames (same timestamps) and the baseline."""

    events: EventArray
    frames: np.ndarray
    frame_timestamps_us: np.ndarray
    depth_m: np.ndarray
    depth_timestamps_us: np.ndarray
    camera: PinholeCamera
    right_events: EventArray | None = None
    right_frames: np.ndarray | None = None
    baseline_m: float = DSEC_LIKE_BASELINE_M


def random_trajectory(seed: int) -> Trajectory:
    """A seeded smooth forward/sideways camera path at about walking speed."""
    rng = np.random.default_rng(seed + 7919)
    return Trajectory(
        start=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(1.0, 2.0)), 0.0),
        velocity=(float(rng.uniform(-0.4, 0.4)), 0.0, float(rng.uniform(0.3, 0.8))),
        sway=tuple(float(v) for v in rng.uniform(0.05, 0.3, 3) * (1, 0.3, 0.3)),
        sway_period_s=float(rng.uniform(1.5, 3.0)),
        heading_deg=(float(rng.uniform(-15, 15)), float(rng.uniform(-8, 0))),
        wobble_deg=tuple(float(v) for v in rng.uniform(0.5, 4.0, 3)),
        wobble_period_s=float(rng.uniform(1.0, 2.5)),
    )


def generate_event_sequence(spec: EventSequenceSpec, progress: Callable[[int], None] | None = None) -> EventSequence:
    """Render and simulate one sequence. `progress(frames_done)` is called as stored-span frames
    go by. InputError when the scene yields no event within its first second (nothing can start)."""
    height, width = spec.resolution
    camera = PinholeCamera.with_fov(height, width, spec.horizontal_fov_deg)
    scene = compile_scene(random_scene(spec.seed, spec.depth_range_m, spec.objects))
    trajectory = random_trajectory(spec.seed)
    stereo = spec.baseline_m is not None
    simulators = [EventSimulator(seed=spec.seed, **spec.simulator)]
    if stereo:
        simulators.append(EventSimulator(seed=spec.seed + 104_729, **spec.simulator))
    count = int(round(spec.seconds * spec.internal_fps))
    frame_every = max(1, int(round(spec.internal_fps / spec.frame_hz)))
    depth_every = max(1, int(round(spec.internal_fps / spec.depth_hz)))
    window_us = int(round(spec.window_ms * 1000))
    chunks = [[] for _ in simulators]
    frames, right_frames, frame_times, depths, depth_times = [], [], [], [], []
    start = None  # index of the first stored sample
    index = 0
    while start is None or index < start + count:
        t_us = int(round(index * 1e6 / spec.internal_fps))
        rotation, position = trajectory.pose(t_us / 1e6)
        views = [render(scene, camera, rotation, position)]
        if stereo:
            views.append(render(scene, camera, rotation, position + rotation[:, 0] * spec.baseline_m))
        for simulator, stream, (rgb, _) in zip(simulators, chunks, views):
            events = simulator.step(rgb, t_us)
            if len(events):
                stream.append(events)
        if start is None and chunks[0]:
            first_us = min(int(stream[0].t[0]) for stream in chunks if stream)
            start = max(index, math.ceil((first_us + window_us) * spec.internal_fps / 1e6 - 1e-9))
        if start is None and t_us >= 1_000_000:
            raise InputError("the scene gave no event in its first second (static camera and no noise?)")
        if start is not None and index >= start:
            offset = index - start
            if offset % frame_every == 0:
                frames.append(viz.to_uint8(views[0][0]))
                if stereo:
                    right_frames.append(viz.to_uint8(views[1][0]))
                frame_times.append(t_us)
            if offset % depth_every == 0:
                depth_m = views[0][1]
                depths.append(np.where(np.isfinite(depth_m), depth_m, np.nan).astype(np.float32))
                depth_times.append(t_us)
            if progress is not None:
                progress(1)
        index += 1
    streams = [concatenate(stream) if stream else EventArray.empty((height, width)) for stream in chunks]
    return EventSequence(streams[0], np.stack(frames), np.asarray(frame_times, np.int64), np.stack(depths),
                         np.asarray(depth_times, np.int64), camera,
                         right_events=streams[1] if stereo else None,
                         right_frames=np.stack(right_frames) if stereo else None,
                         baseline_m=spec.baseline_m if stereo else DSEC_LIKE_BASELINE_M)


def write_event_sequence(sequence: EventSequence, folder: str | Path, layout: str = "dsec") -> Path:
    """Write a generated sequence in a dataset layout ("dsec", "e2depth" or "mvsec").

    dsec: both cameras (the right one from the sequence, or the left one again for a mono
    sequence). e2depth: the frames at the depth timestamps when every depth map has one (E2Depth's
    training loader reads `frame_%010d.png` with the depth map's index), else all frames."""
    if layout == "dsec":
        return write_dsec_sequence(folder, sequence.events, sequence.frames, sequence.frame_timestamps_us,
                                   sequence.depth_m, sequence.depth_timestamps_us, right_events=sequence.right_events,
                                   right_frames=sequence.right_frames, focal_px=sequence.camera.fx,
                                   baseline_m=sequence.baseline_m, principal_point=(sequence.camera.cx, sequence.camera.cy),
                                   overwrite=True)
    if layout == "e2depth":
        frames, frame_stamps = sequence.frames, sequence.frame_timestamps_us
        synced = np.isin(frame_stamps, sequence.depth_timestamps_us)
        if synced.sum() == len(sequence.depth_timestamps_us):  # one frame per depth map, as E2Depth's loaders index them
            frames, frame_stamps = frames[synced], frame_stamps[synced]
        return write_e2depth_folder(folder, sequence.events, sequence.depth_m, sequence.depth_timestamps_us,
                                    frames, frame_stamps, overwrite=True)
    if layout == "mvsec":
        data, _ = write_mvsec_pair(folder, sequence.events, sequence.frames, sequence.frame_timestamps_us,
                                   sequence.depth_m, sequence.depth_timestamps_us, overwrite=True)
        return data.parent
    raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
