"""Synthetic event datasets: a seeded scene, a smooth camera path rendered at a high internal frame
rate, the event simulator on the rendered frames, and the frames and depth kept at dataset rates,
written in a real on-disk layout (DSEC-like, E2Depth-processed MVSEC-like, or raw MVSEC-like)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anydepth.errors import InputError
from anydepth.events.container import EventArray, concatenate
from anydepth.synth.esim import EventSimulator
from anydepth.synth.scenes import PinholeCamera, Trajectory, compile_scene, random_scene, render
from anydepth.synth.writers import write_dsec_sequence, write_e2depth_folder, write_mvsec_pair

LAYOUTS = ("dsec", "e2depth", "mvsec")
DSEC_LIKE_BASELINE_M = 0.6


@dataclass(frozen=True)
class EventSequenceSpec:
    """What to generate. resolution (H, W); internal_fps: rendering rate fed to the simulator;
    frame_hz / depth_hz: rates of the stored frames and depth maps; depth_range_m and number of
    objects of the scene;
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
    simulator: dict = field(default_factory=lambda: {"threshold_sigma": 0.03, "refractory_us": 100.0, "shot_noise_hz": 0.1})

    def __post_init__(self):
        if self.seconds <= 0 or self.internal_fps <= 0:
            raise InputError("seconds and internal_fps must be positive")
        for rate in (self.frame_hz, self.depth_hz):
            if rate <= 0 or rate > self.internal_fps:
                raise InputError(f"frame and depth rates must be in (0, internal_fps], got {rate}")


@dataclass
class EventSequence:
    """A generated sequence: events, RGB frames (N, H, W, 3) uint8 with µs timestamps, depth
    (M, H, W) float32 metres with µs timestamps, and the camera."""

    events: EventArray
    frames: np.ndarray
    frame_timestamps_us: np.ndarray
    depth_m: np.ndarray
    depth_timestamps_us: np.ndarray
    camera: PinholeCamera


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
    """Render and simulate one sequence. `progress(frames_done)` is called as frames go by."""
    height, width = spec.resolution
    camera = PinholeCamera.with_fov(height, width, spec.horizontal_fov_deg)
    scene = compile_scene(random_scene(spec.seed, spec.depth_range_m, spec.objects))
    trajectory = random_trajectory(spec.seed)
    simulator = EventSimulator(seed=spec.seed, **spec.simulator)
    count = int(round(spec.seconds * spec.internal_fps))
    frame_every = max(1, int(round(spec.internal_fps / spec.frame_hz)))
    depth_every = max(1, int(round(spec.internal_fps / spec.depth_hz)))
    chunks, frames, frame_times, depths, depth_times = [], [], [], [], []
    for index in range(count):
        t_us = int(round(index * 1e6 / spec.internal_fps))
        rgb, depth_m = render(scene, camera, *trajectory.pose(t_us / 1e6))
        events = simulator.step(rgb, t_us)
        if len(events):
            chunks.append(events)
        if index % frame_every == 0:
            frames.append((rgb * 255).round().astype(np.uint8))
            frame_times.append(t_us)
        if index % depth_every == 0:
            depths.append(np.where(np.isfinite(depth_m), depth_m, np.nan).astype(np.float32))
            depth_times.append(t_us)
        if progress is not None:
            progress(1)
    events = concatenate(chunks) if chunks else EventArray.empty((height, width))
    return EventSequence(events, np.stack(frames), np.asarray(frame_times, np.int64), np.stack(depths),
                         np.asarray(depth_times, np.int64), camera)


def write_event_sequence(sequence: EventSequence, folder: str | Path, layout: str = "dsec") -> Path:
    """Write a generated sequence in a dataset layout ("dsec", "e2depth" or "mvsec")."""
    if layout == "dsec":
        return write_dsec_sequence(folder, sequence.events, sequence.frames, sequence.frame_timestamps_us,
                                   sequence.depth_m, sequence.depth_timestamps_us, focal_px=sequence.camera.fx,
                                   baseline_m=DSEC_LIKE_BASELINE_M, principal_point=(sequence.camera.cx, sequence.camera.cy),
                                   overwrite=True)
    if layout == "e2depth":
        return write_e2depth_folder(folder, sequence.events, sequence.depth_m, sequence.depth_timestamps_us,
                                    sequence.frames, sequence.frame_timestamps_us, overwrite=True)
    if layout == "mvsec":
        data, _ = write_mvsec_pair(folder, sequence.events, sequence.frames, sequence.frame_timestamps_us,
                                   sequence.depth_m, sequence.depth_timestamps_us, overwrite=True)
        return data.parent
    raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
