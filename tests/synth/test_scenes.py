"""Procedural scenes and RGB-D warping: depth equals the rendered geometry, warps move pixels by
the known parallax."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anydepth.errors import InputError
from anydepth.synth.rgbd import NYU_CAMERA, SmallMotion, rgbd_sequence, warp_view
from anydepth.synth.scenes import (
    Box,
    Material,
    PinholeCamera,
    Plane,
    Scene,
    Sphere,
    Trajectory,
    look_at,
    random_scene,
    render,
    render_sequence,
)

CAMERA = PinholeCamera.with_fov(60, 80, 60.0)
FORWARD = np.diag([1.0, -1.0, 1.0])  # camera at the origin looking along world +z, image y down


def test_fronto_parallel_plane_has_its_distance_everywhere():
    scene = Scene((Plane((0.0, 0.0, 1.0), 5.0, Material("checker")),))
    rgb, depth = render(scene, CAMERA, FORWARD, (0.0, 0.0, 0.0))
    np.testing.assert_allclose(depth, 5.0, rtol=1e-6)
    assert rgb.shape == (60, 80, 3) and rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 1
    assert rgb.std() > 0.05  # the texture is visible


def test_tilted_camera_sees_the_z_depth_of_a_plane():
    # camera at height 1.5 looking 20 degrees down onto the ground y = 0: z-depth = h / (ray . down)
    rotation = look_at((0, 1.5, 0), (0, 1.5 - math.tan(math.radians(20)), 1))
    scene = Scene((Plane((0.0, 1.0, 0.0), 0.0),))
    _, depth = render(scene, CAMERA, rotation, (0.0, 1.5, 0.0))
    v = np.arange(60, dtype=np.float64)[:, None]
    camera_dirs = np.stack(np.broadcast_arrays((np.arange(80) - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, 1.0), -1)
    world_y = camera_dirs @ rotation.T[:, 1]
    expected = np.where(world_y < 0, 1.5 / -np.minimum(world_y, -1e-12), np.inf)
    finite = np.isfinite(expected) & (expected < 1e4)
    np.testing.assert_allclose(depth[finite], expected[finite], rtol=1e-4)
    assert np.isinf(depth[~np.isfinite(expected)]).all()


def test_sphere_and_box_depths():
    scene = Scene((Sphere((0.0, 0.0, 6.0), 1.0), Box((-3.0, -3.0, 9.0), (3.0, 3.0, 10.0)), Plane((0.0, 0.0, 1.0), 20.0)))
    camera = PinholeCamera(61, 81, 60.0, 60.0, 40.0, 30.0)
    _, depth = render(scene, camera, FORWARD, (0.0, 0.0, 0.0))
    assert depth[30, 40] == pytest.approx(5.0, rel=1e-6)  # sphere front at z = 6 - 1
    assert depth[30, 25] == pytest.approx(9.0, rel=1e-6)  # box front face beside the sphere (x = -2.25 at z = 9)
    assert depth[0, 0] == pytest.approx(20.0, rel=1e-6)  # plane behind


def test_nearest_surface_wins_and_nothing_is_inf_with_a_back_wall():
    scene = random_scene(seed=1, depth_range_m=(2.0, 20.0))
    rgb, depth = render(scene, PinholeCamera.with_fov(48, 64), *Trajectory().pose(0.3))
    assert np.isfinite(depth).all() and depth.min() > 0.1 and depth.max() < 60
    again, _ = render(random_scene(seed=1, depth_range_m=(2.0, 20.0)), PinholeCamera.with_fov(48, 64), *Trajectory().pose(0.3))
    np.testing.assert_array_equal(rgb, again)  # deterministic for a seed
    other, _ = render(random_scene(seed=2), PinholeCamera.with_fov(48, 64), *Trajectory().pose(0.3))
    assert np.abs(other - rgb).mean() > 0.01


def test_sequence_timing_and_smooth_motion():
    frames = list(render_sequence(random_scene(0), PinholeCamera.with_fov(24, 32), Trajectory(), 0.01, 1000))
    assert [t for t, _, _ in frames] == list(range(0, 10_000, 1000))
    steps = [np.abs(frames[i + 1][2] - frames[i][2]).mean() for i in range(9)]
    assert max(steps) < 0.05  # at 1 kHz consecutive depth maps barely change


def test_bad_inputs():
    with pytest.raises(InputError, match="unknown texture"):
        Material("marble")
    with pytest.raises(InputError, match="depth range"):
        random_scene(depth_range_m=(5.0, 1.0))


def test_rgbd_identity_and_known_parallax():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (NYU_CAMERA.height, NYU_CAMERA.width, 3), dtype=np.uint8)
    depth = np.full((NYU_CAMERA.height, NYU_CAMERA.width), 2.0, np.float32)
    depth[:10] = 0.0  # invalid rows
    same, same_depth, valid = warp_view(rgb, depth, NYU_CAMERA, np.eye(3), np.zeros(3), fill=False)
    assert np.array_equal(valid, depth > 0)
    np.testing.assert_array_equal(same[valid], rgb[valid])
    # moving the camera 0.1 m right shifts a plane at 2 m left by fx * 0.1 / 2 pixels
    moved, moved_depth, valid = warp_view(rgb, depth, NYU_CAMERA, np.eye(3), np.array([0.1, 0.0, 0.0]))
    shift = NYU_CAMERA.fx * 0.1 / 2.0
    whole = int(round(shift))
    assert abs(shift - whole) < 0.1
    np.testing.assert_array_equal(moved[100:400, 100:500], rgb[100:400, 100 + whole:500 + whole])
    np.testing.assert_allclose(moved_depth[valid], 2.0, rtol=1e-6)
    assert (moved_depth > 0).all()  # holes filled
    assert not valid[:, -whole + 1:].any()  # the newly seen border is not claimed as real


def test_rgbd_sequence_on_real_nyu(realdata):
    import cv2

    rgb = cv2.imread(str(realdata / "nyu_rgbd" / "bathroom" / "rgb.png"))[..., ::-1]
    depth = np.load(realdata / "nyu_rgbd" / "bathroom" / "depth_m.npy")
    frames = list(rgbd_sequence(rgb, depth, 0.2, 10, motion=SmallMotion()))
    assert len(frames) == 2 and frames[1][0] == 100_000
    t0, first, first_depth, first_valid = frames[0]
    np.testing.assert_array_equal(first_valid, depth > 0)  # t = 0 is the original view
    np.testing.assert_allclose(first_depth[first_valid], depth[first_valid], rtol=1e-6)
    assert (frames[1][2] > 0).all() and 0.5 < frames[1][3].mean() <= 1.0
