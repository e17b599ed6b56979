"""Short videos with depth from one real RGB-D image: small camera motions, forward warping with a
z-buffer, and background-preferring hole filling.

Each source pixel is back-projected with its depth, moved into the new camera and splatted to the
nearest target pixel; the nearest surface wins (z-buffer). Disocclusion holes are filled from the
farthest valid neighbour near their border (holes reveal background), the rest from the nearest valid
pixel; `valid` marks the pixels that received a real projection, so the ground truth is never
mistaken for the filled values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from anydepth.errors import InputError
from anydepth.synth.scenes import PinholeCamera, Trajectory

# NYU Depth V2 (Kinect) colour camera intrinsics, 640x480
NYU_CAMERA = PinholeCamera(480, 640, 518.8579, 519.4696, 325.5824, 253.7362)


@numba.njit(cache=True)
def _splat(points, colours, fx, fy, cx, cy, depth_out, colour_out):
    """Z-buffered splat of camera-frame points (N, 3) with colours (N, 3) to the nearest pixel."""
    height, width = depth_out.shape
    for i in range(points.shape[0]):
        z = points[i, 2]
        if not z > 1e-6:
            continue
        u = int(np.floor(fx * points[i, 0] / z + cx + 0.5))
        v = int(np.floor(fy * points[i, 1] / z + cy + 0.5))
        if 0 <= u < width and 0 <= v < height and z < depth_out[v, u]:
            depth_out[v, u] = z
            for c in range(3):
                colour_out[v, u, c] = colours[i, c]


@numba.njit(cache=True)
def _grow_background(depth, rgb, known, steps):
    """In place: `steps` rounds in which every unknown pixel with a known 8-neighbour takes the
    values of its farthest known neighbour (as of the start of the round)."""
    height, width = depth.shape
    for _ in range(steps):
        before = known.copy()
        for row in range(height):
            for col in range(width):
                if before[row, col]:
                    continue
                best, best_row, best_col = -np.inf, -1, -1
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        r, c = row + dy, col + dx
                        if 0 <= r < height and 0 <= c < width and before[r, c] and depth[r, c] > best:
                            best, best_row, best_col = depth[r, c], r, c
                if best_row >= 0:
                    depth[row, col] = best
                    for channel in range(rgb.shape[2]):
                        rgb[row, col, channel] = rgb[best_row, best_col, channel]
                    known[row, col] = True


def fill_holes(rgb: np.ndarray, depth_m: np.ndarray, valid: np.ndarray, background_steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fill pixels where `valid` is False: first grow the farthest valid 8-neighbour inwards for
    `background_steps` pixels (disocclusions reveal background), then give every remaining hole
    its nearest valid pixel (one distance transform). Returns filled copies of rgb and depth."""
    import cv2

    rgb, depth_m, known = rgb.copy(), depth_m.copy(), valid.copy()
    _grow_background(depth_m, rgb, known, background_steps)
    if not known.all() and known.any():
        _, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        rows, cols = np.nonzero(known)
        label_to_pixel = np.zeros((labels.max() + 1, 2), np.int64)
        label_to_pixel[labels[rows, cols]] = np.stack([rows, cols], axis=1)
        holes = np.nonzero(~known)
        source = label_to_pixel[labels[holes]]
        depth_m[holes], rgb[holes] = depth_m[source[:, 0], source[:, 1]], rgb[source[:, 0], source[:, 1]]
    return rgb, depth_m


def warp_view(rgb: np.ndarray, depth_m: np.ndarray, camera: PinholeCamera, rotation: np.ndarray,
              translation: np.ndarray, fill: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The view of a camera moved by (rotation (3, 3), translation (3,)) in the source camera's
    frame (new-camera-to-source pose): x_new = R^T (x_src - t).

    rgb (H, W, 3) float or uint8, depth_m (H, W) metres (0 or NaN = invalid). Returns rgb (same
    dtype), depth_m float32 (z in the new camera) and valid (H, W) bool (real projections)."""
    if rgb.shape[:2] != depth_m.shape or rgb.shape[:2] != (camera.height, camera.width):
        raise InputError(f"rgb {rgb.shape[:2]}, depth {depth_m.shape} and camera {camera.height}x{camera.width} must agree")
    depth = np.nan_to_num(np.asarray(depth_m, np.float64), nan=0.0)
    source_valid = depth > 0
    points = camera.backproject(depth)[source_valid]
    moved = (points - np.asarray(translation, np.float64)) @ np.asarray(rotation, np.float64)
    colours = np.asarray(rgb, np.float64).reshape(-1, 3)[source_valid.reshape(-1)]
    depth_out = np.full(depth.shape, np.inf)
    colour_out = np.zeros((*depth.shape, 3))
    _splat(moved, colours, camera.fx, camera.fy, camera.cx, camera.cy, depth_out, colour_out)
    valid = np.isfinite(depth_out)
    if fill:
        colour_out, depth_out = fill_holes(colour_out, depth_out, valid)
    depth_out = np.where(np.isfinite(depth_out), depth_out, 0.0)
    colour_out = colour_out.round().clip(0, 255).astype(np.uint8) if rgb.dtype == np.uint8 else colour_out.astype(rgb.dtype)
    return colour_out, depth_out.astype(np.float32), valid


@dataclass(frozen=True)
class SmallMotion(Trajectory):
    """A gentle hand-held-like motion around the original view (a few centimetres and degrees)."""

    start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    velocity: tuple[float, float, float] = (0.02, 0.0, 0.03)
    sway: tuple[float, float, float] = (0.03, 0.015, 0.0)
    sway_period_s: float = 1.0
    heading_deg: tuple[float, float] = (0.0, 0.0)
    wobble_deg: tuple[float, float, float] = (1.5, 1.0, 0.5)
    wobble_period_s: float = 0.8

    def relative_pose(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) of the camera at t relative to the source camera (camera frame: x right, y down)."""
        rotation, position = self.pose(t_s)
        base_rotation, base_position = self.pose(0.0)
        return base_rotation.T @ rotation, base_rotation.T @ (position - base_position)


def rgbd_sequence(rgb: np.ndarray, depth_m: np.ndarray, duration_s: float, fps: float,
                  camera: PinholeCamera = NYU_CAMERA, motion: SmallMotion | None = None):
    """Yield (t_us, rgb, depth_m, valid) every 1/fps s over [0, duration_s): the RGB-D image seen
    from a camera moving by `motion` (default `SmallMotion()`)."""
    motion = motion or SmallMotion()
    for index in range(int(round(duration_s * fps))):
        t_s = index / fps
        rotation, translation = motion.relative_pose(t_s)
        frame, depth, valid = warp_view(rgb, depth_m, camera, rotation, translation)
        yield int(round(t_s * 1e6)), frame, depth, valid
