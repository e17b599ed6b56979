"""Training a small DAv2 on RGB-D pairs: the affine-invariant loss's known answers, and that a few
steps on rendered scenes lower it."""

import numpy as np
import pytest
import torch

from anydepth.foundation import DepthAnythingV2
from anydepth.foundation.finetune import affine_invariant_disparity_loss, train_on_rgbd
from anydepth.synth.scenes import PinholeCamera, Trajectory, random_scene, render


def test_loss_is_zero_for_any_affine_disparity_and_ignores_invalid():
    depth = torch.rand(2, 6, 7) * 5 + 0.5
    prediction = 3.0 / depth - 0.2
    depth_with_hole = depth.clone()
    depth_with_hole[:, 0, 0] = 0.0
    prediction[:, 0, 0] = 1e3  # under an invalid pixel: ignored
    assert float(affine_invariant_disparity_loss(prediction, depth_with_hole)) == pytest.approx(0.0, abs=1e-5)
    assert float(affine_invariant_disparity_loss(torch.rand(2, 6, 7), depth)) > 1e-3


def test_a_few_steps_on_rendered_scenes_lower_the_loss():
    torch.manual_seed(0)
    camera = PinholeCamera.with_fov(56, 84, 70.0)
    pairs = []
    for seed in range(4):
        rgb, depth = render(random_scene(seed), camera, *Trajectory().pose(0.1 * seed))
        pairs.append(((rgb[..., ::-1] * 255).astype(np.uint8).copy(), depth))
    model = DepthAnythingV2("vitp")
    losses = train_on_rgbd(model, pairs, steps=40, lr=2e-3, input_size=56, batch=2)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert not model.training
