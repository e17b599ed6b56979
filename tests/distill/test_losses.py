"""Known answers for the distillation / E2Depth / SILog training losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.distill.losses import (
    LOSSES,
    DistillationLoss,
    distillation_loss,
    e2depth_loss,
    multiscale_gradient_loss,
    scale_shift_invariant_loss,
    silog_loss,
)
from anydepth.metrics.align import scale_shift_lstsq


def _rand(*shape, seed=0, low=0.1, high=2.0):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("a, b", [(2.5, 0.3), (-1.7, 4.0)])
def test_ssi_zero_for_affine_prediction(a, b):
    target = _rand(2, 16, 16)
    prediction = (target - b) / a  # a * prediction + b == target
    total, parts = DistillationLoss()(prediction, target)
    assert parts["si"].item() == pytest.approx(0.0, abs=1e-20)
    assert parts["grad"].item() == pytest.approx(0.0, abs=1e-10)
    assert total.item() == pytest.approx(0.0, abs=1e-10)


def test_ssi_invariant_to_affine_change_of_prediction():
    prediction, target = _rand(3, 16, 20, seed=1), _rand(3, 16, 20, seed=2)
    reference = distillation_loss(prediction, target)
    for s, t in [(3.0, -0.4), (-0.5, 2.0)]:
        other = distillation_loss(s * prediction + t, target)
        assert other[0].item() == pytest.approx(reference[0].item(), rel=1e-9)
        assert other[1]["grad"].item() == pytest.approx(reference[1]["grad"].item(), rel=1e-9)
    assert reference[1]["si"].item() > 0 and reference[1]["grad"].item() > 0


def test_ssi_matches_numpy_lstsq():
    prediction, target = _rand(2, 12, 10, seed=3), _rand(2, 12, 10, seed=4)
    mask = _rand(2, 12, 10, seed=5, low=0, high=1) > 0.3
    expected = []
    for p, y, m in zip(prediction.numpy(), target.numpy(), mask.numpy()):
        a = np.stack([p[m], np.ones(m.sum())], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, y[m], rcond=None)
        expected.append(((s * p[m] + t - y[m]) ** 2).sum() / (2 * m.sum()))
    value = scale_shift_invariant_loss(prediction, target, mask)
    assert value.item() == pytest.approx(np.mean(expected), rel=1e-10)
    # the fit is the project's closed-form solver's
    s_ref, t_ref = scale_shift_lstsq(prediction, target, mask)
    residual = (s_ref[:, None, None] * prediction + t_ref[:, None, None] - target)[mask]
    per_image = [(r ** 2).sum() / (2 * m.sum()) for r, m in zip(torch.split(residual, mask.sum((1, 2)).tolist()), mask)]
    assert value.item() == pytest.approx(float(sum(per_image) / 2), rel=1e-10)


def test_masked_pixels_do_not_matter():
    prediction, target = _rand(2, 16, 16, seed=6), _rand(2, 16, 16, seed=7)
    mask = torch.ones(2, 16, 16, dtype=torch.bool)
    mask[0, 3:7, 2:9] = False
    mask[1, :, 12:] = False
    reference = distillation_loss(prediction, target, mask)
    garbage_p, garbage_t = prediction.clone(), target.clone()
    garbage_p[~mask] = 1e6
    garbage_t[~mask] = -3e5
    garbage_t[0, 4, 4] = float("nan")
    other = distillation_loss(garbage_p, garbage_t, mask)
    assert other[0].item() == pytest.approx(reference[0].item(), rel=1e-12)
    assert other[1]["grad"].item() == pytest.approx(reference[1]["grad"].item(), rel=1e-12)
    # mask=None means "finite target": NaN targets act as a mask
    nan_t = target.clone()
    nan_t[~mask] = float("nan")
    assert distillation_loss(prediction, nan_t)[0].item() == pytest.approx(reference[0].item(), rel=1e-12)


def test_gradient_loss_horizontal_ramp():
    # R[i, j] = j on 8x8, all valid.  Scale 1: 8 rows x 7 horizontal steps of |1| = 56, no
    # vertical change, 64 valid pixels -> 56 / 64 = 0.875.
    residual = torch.arange(8, dtype=torch.float64).repeat(8, 1)[None]
    assert multiscale_gradient_loss(residual, scales=1).item() == pytest.approx(0.875)
    # Stride 2: 4x4 of columns 0, 2, 4, 6: 4 rows x 3 steps of 2 = 24 over 16 pixels = 1.5.
    # Stride 4: 2x2 of columns 0, 4: 2 rows x 1 step of 4 = 8 over 4 = 2.  Stride 8: one pixel, 0.
    assert multiscale_gradient_loss(residual, scales=4).item() == pytest.approx(0.875 + 1.5 + 2.0)
    # Batch-based reduction: two identical images give the same value (sums and counts double).
    assert multiscale_gradient_loss(residual.repeat(2, 1, 1), scales=1).item() == pytest.approx(0.875)
    # Invalidating column 7 removes its 8 steps and 8 pixels: 48 / 56.
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    mask[..., 7] = False
    assert multiscale_gradient_loss(residual, mask, scales=1).item() == pytest.approx(48 / 56)


def test_gradient_loss_constant_residual_is_zero():
    residual = torch.full((2, 1, 16, 16), 3.25)
    assert multiscale_gradient_loss(residual).item() == 0.0


def test_gradients_flow():
    prediction = _rand(2, 1, 16, 16, seed=8).requires_grad_(True)
    target = _rand(2, 1, 16, 16, seed=9)
    for name, fn in LOSSES.items():
        prediction.grad = None
        total, _ = fn(prediction, target, None)
        total.backward()
        assert torch.isfinite(prediction.grad).all(), name
        assert prediction.grad.abs().sum() > 0, name


def test_degenerate_images_give_zero_not_nan():
    prediction = _rand(3, 16, 16, seed=10).requires_grad_(True)
    target = _rand(3, 16, 16, seed=11)
    mask = torch.ones(3, 16, 16, dtype=torch.bool)
    mask[0] = False  # no valid pixel
    mask[1] = False
    mask[1, 5, 5] = True  # a single valid pixel
    with torch.no_grad():
        prediction[2] = 0.7  # constant prediction
    total, parts = distillation_loss(prediction, target, mask)
    assert total.item() == 0.0 and parts["si"].item() == 0.0 and parts["grad"].item() == 0.0
    total.backward()
    assert torch.isfinite(prediction.grad).all()
    # a good image beside the degenerate ones is averaged alone
    good = _rand(1, 16, 16, seed=12)
    batch_p = torch.cat([prediction.detach(), good])
    batch_t = torch.cat([target, _rand(1, 16, 16, seed=13)])
    batch_m = torch.cat([mask, torch.ones(1, 16, 16, dtype=torch.bool)])
    alone = scale_shift_invariant_loss(batch_p[3:], batch_t[3:], None)
    assert scale_shift_invariant_loss(batch_p, batch_t, batch_m).item() == pytest.approx(alone.item())
    # float32 constant and all-NaN targets
    p32 = torch.full((1, 32, 32), 0.3, requires_grad=True)
    t32 = torch.rand(1, 32, 32)
    value = DistillationLoss()(p32, t32)[0]
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(p32.grad).all()
    for name, fn in LOSSES.items():
        total, _ = fn(torch.rand(2, 8, 8), torch.full((2, 8, 8), float("nan")), None)
        assert total.item() == 0.0, name


def test_e2depth_constant_offset_is_zero():
    target = torch.log(_rand(2, 16, 16, seed=14))
    total, parts = e2depth_loss(target + 0.37, target)
    assert total.item() == pytest.approx(0.0, abs=1e-12)
    assert parts["si"].item() == pytest.approx(0.0, abs=1e-12) and parts["grad"].item() == pytest.approx(0.0, abs=1e-12)


def test_e2depth_known_value_and_nan_mask():
    # d = [0, 1, 2, 3] on a 1x4 image: mean(d^2) - mean(d)^2 = 3.5 - 2.25 = 1.25; one scale of
    # gradients: 3 steps of 1 over 4 pixels = 0.75 -> 1.25 + 0.25 * 0.75.
    target = torch.zeros(1, 1, 4, dtype=torch.float64)
    prediction = torch.arange(4, dtype=torch.float64).reshape(1, 1, 4)
    total, parts = e2depth_loss(prediction, target, scales=1)
    assert parts["si"].item() == pytest.approx(1.25)
    assert total.item() == pytest.approx(1.25 + 0.25 * 0.75)
    # A NaN target pixel at the end drops d = 3: d = [0, 1, 2] -> 5/3 - 1 = 2/3; grad 2 / 3.
    target[0, 0, 3] = float("nan")
    total, parts = e2depth_loss(prediction, target, scales=1)
    assert parts["si"].item() == pytest.approx(2 / 3)
    assert parts["grad"].item() == pytest.approx(2 / 3)


def test_silog():
    target = _rand(2, 1, 16, 16, seed=15)
    assert silog_loss(target.clone(), target).item() == 0.0
    assert silog_loss(3.0 * target, target, lam=1.0).item() == pytest.approx(0.0, abs=1e-6)
    prediction = _rand(2, 1, 16, 16, seed=16)
    delta = (torch.log(prediction) - torch.log(target)).flatten()
    expected = 10.0 * torch.sqrt((delta**2).mean() - 0.85 * delta.mean() ** 2)
    assert silog_loss(prediction, target).item() == pytest.approx(expected.item(), rel=1e-10)
    assert silog_loss(prediction, target, scale=1.0).item() == pytest.approx(expected.item() / 10, rel=1e-10)
    # with lam = 1 a global scale does not change it
    a = silog_loss(prediction, target, lam=1.0).item()
    assert silog_loss(2.5 * prediction, target, lam=1.0).item() == pytest.approx(a, rel=1e-9)
    # zero / negative targets are ignored
    broken = target.clone()
    broken[0, 0, :4] = 0.0
    keep = broken > 0
    assert silog_loss(prediction, broken).item() == pytest.approx(silog_loss(prediction, target, keep).item(), rel=1e-12)


def test_losses_table_returns_tensor_and_parts():
    prediction, target = _rand(2, 1, 8, 8, seed=17), _rand(2, 1, 8, 8, seed=18)
    mask = torch.ones(2, 1, 8, 8, dtype=torch.bool)
    assert set(LOSSES) == {"ssi", "e2depth", "silog"}
    for name, fn in LOSSES.items():
        total, parts = fn(prediction, target, mask)
        assert isinstance(total, torch.Tensor) and total.ndim == 0, name
        assert isinstance(parts, dict) and parts and all(isinstance(v, torch.Tensor) for v in parts.values()), name
    # (B, H, W) and (B, 1, H, W) agree
    assert LOSSES["ssi"](prediction[:, 0], target[:, 0], mask[:, 0])[0].item() == pytest.approx(
        LOSSES["ssi"](prediction, target, mask)[0].item()
    )
