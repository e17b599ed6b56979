"""Test-time optimisation: the pieces' known answers, and on a controlled stack that TTO lowers the
confidence-weighted focus loss and beats DFF where the stack has no texture."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch

from anydepth.errors import InputError
from anydepth.focus.tto import (
    FAST,
    FASTEST,
    PAPER,
    TTOConfig,
    confidence_map,
    dff_statistics,
    _PrefixCache,
    _frozen_weights_in,
    _trainable,
    fit_to_dff,
    focus_loss,
    linear_baseline,
    metric_from_relative,
    run_tto,
    solve_last_layer,
)
from anydepth.foundation import DepthAnythingV2
from anydepth.foundation.transform import image_to_tensor
from anydepth.metrics import abs_rel

POSITIONS = np.linspace(0.28, 0.02, 10)  # DDFF-12 disparities


def test_dff_statistics_known_answer():
    volume = np.zeros((3, 1, 2))
    volume[:, 0, 0] = (0.5, 0.5, 0.0)
    volume[:, 0, 1] = (0.0, 0.0, 1.0)
    mu, variance = dff_statistics(volume, np.array([1.0, 3.0, 5.0]))
    np.testing.assert_allclose(mu, [[2.0, 5.0]])
    np.testing.assert_allclose(variance, [[1.0, 0.0]])  # 0.5 * 1 + 0.5 * 1
    with pytest.raises(InputError, match="NaN"):
        dff_statistics(np.full((3, 1, 1), np.nan), np.ones(3))
    with pytest.raises(InputError, match="do not match"):
        dff_statistics(volume, np.ones(2))


def test_confidences_are_monotone_and_in_range():
    variance = np.array([[0.0, 1.0, 4.0]])
    volume_conf = confidence_map("volume", variance=variance, tau=1.0)
    np.testing.assert_allclose(volume_conf, np.exp(-variance))  # peaked -> trusted
    slices = np.zeros((4, 1, 3))
    slices[:, 0, 2] = [0, 1, 0, 1]  # only the last pixel changes across the stack
    stack_conf = confidence_map("stack", slices=slices, tau=0.25)
    np.testing.assert_allclose(stack_conf, [[0.0, 0.0, 1 - np.exp(-1.0)]])
    assert (confidence_map("none", variance=variance) == 1).all()


def test_loss_equals_the_expected_squared_position_error():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(10, 4, 5))
    volume = np.exp(logits) / np.exp(logits).sum(0)
    prediction = rng.uniform(0.02, 0.28, size=(4, 5))
    weights = rng.uniform(0, 1, size=(4, 5))
    mu, variance = dff_statistics(volume, POSITIONS)
    direct = (weights * (volume * (POSITIONS[:, None, None] - prediction) ** 2).sum(0)).sum() / weights.sum()
    loss = focus_loss(*(torch.from_numpy(a) for a in (prediction, mu, variance, weights)))
    assert float(loss) == pytest.approx(direct, rel=1e-5)  # mu and variance come in float32


def test_linear_fit_known_answer_in_both_units():
    relative = np.linspace(1, 5, 20).reshape(4, 5)
    disparity = 0.05 * relative + 0.01
    scale, shift = fit_to_dff(relative, disparity, np.ones_like(relative), "disparity")
    assert (scale, shift) == pytest.approx((0.05, 0.01))
    depth = 1.0 / disparity
    scale, shift = fit_to_dff(relative, depth, np.ones_like(relative), "metres")
    np.testing.assert_allclose(metric_from_relative(relative, scale, shift, "metres"), depth, rtol=1e-9)


def _controlled_stack():
    """A 56x84 scene: a slanted plane in disparity; the left two thirds textured, the right third
    flat. Volume: peaked at the true disparity where textured, uniform where flat (DFF fails there)."""
    height, width = 56, 84
    x = np.linspace(0, 1, width)
    disparity = np.broadcast_to(0.05 + 0.2 * x, (height, width)).copy()
    rng = np.random.default_rng(1)
    texture = rng.uniform(0, 1, (height, width))
    flat = np.zeros((height, width), bool)
    flat[:, 56:] = True
    grey = np.where(flat, 0.5, texture)
    aif = np.clip(np.stack([grey * 0.9, grey, grey * 0.8], -1) * 255, 0, 255).astype(np.uint8)
    logits = -((POSITIONS[:, None, None] - disparity[None]) ** 2) / (2 * 0.02**2)
    volume = np.exp(logits - logits.max(0))
    volume /= volume.sum(0)
    volume[:, flat] = 1.0 / len(POSITIONS)
    slices = np.repeat(aif[None], len(POSITIONS), 0).astype(np.float64)
    slices[:, ~flat] += rng.normal(0, 20, (len(POSITIONS), (~flat).sum(), 3))  # texture changes with focus
    return aif, disparity, volume, slices, flat


@pytest.fixture(scope="module", autouse=True)
def _one_thread_module():
    """Every test here, and the prior's training, on one torch thread: small convolutions on the
    shared 2-core machine run ~10x faster so (see conftest.one_thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prior():
    """A small DAv2 whose relative output knows the scene only roughly (fit to a distorted target),
    standing in for the pretrained prior."""
    aif, disparity, *_ = _controlled_stack()
    torch.manual_seed(0)
    model = DepthAnythingV2("vitp")
    x = image_to_tensor(aif[..., ::-1].copy(), 56)
    target = torch.from_numpy((disparity / disparity.max()) ** 1.5).float()[None]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        prediction = torch.nn.functional.interpolate(model(x)[:, None], target.shape[-2:], mode="bilinear", align_corners=True)[:, 0]
        loss = ((prediction - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_tto_lowers_the_loss_and_beats_dff_without_texture(prior):
    aif, disparity, volume, slices, flat = _controlled_stack()
    bgr = aif[..., ::-1].copy()
    mu, _ = dff_statistics(volume, POSITIONS)
    config = TTOConfig(iterations=40, lr=1e-3, parameters="encoder", input_size=56, confidence="stack")
    result = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, config)
    assert result.iterations == 40 and len(result.losses) == 41
    assert result.losses[-1] < result.losses[0]
    dff_error = abs_rel(mu[flat], disparity[flat])
    tto_error = abs_rel(result.depth[flat], disparity[flat])
    assert tto_error < 0.5 * dff_error
    # the caller's model is untouched
    linear, *_ = linear_baseline(prior, bgr, volume, POSITIONS, "disparity", slices, "stack", input_size=56)
    assert abs_rel(linear[flat], disparity[flat]) < dff_error


def test_fast_mode_optimises_only_the_last_blocks_and_stops_early(prior):
    aif, disparity, volume, slices, flat = _controlled_stack()
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    config = TTOConfig(iterations=60, lr=1e-3, parameters="last-k", last_k=2, input_size=56, final_input_size=70,
                       patience=5, tolerance=0.05)
    result = run_tto(prior, aif[..., ::-1].copy(), volume, POSITIONS, "disparity", slices, config)
    assert result.iterations < 60  # stopped on the plateau
    assert all(torch.equal(before[k], v) for k, v in prior.state_dict().items())
    assert result.depth.shape == disparity.shape and np.isfinite(result.depth).all()


def test_lora_and_norm_bias_subsets_lower_the_loss(prior):
    aif, disparity, volume, slices, flat = _controlled_stack()
    for parameters in ("lora", "norm-bias"):
        config = TTOConfig(iterations=15, lr=3e-3, parameters=parameters, lora_rank=4, input_size=56)
        result = run_tto(prior, aif[..., ::-1].copy(), volume, POSITIONS, "disparity", slices, config)
        assert min(result.losses[1:-1]) < result.losses[0], parameters
        assert len(result.elapsed) == len(result.losses) and result.elapsed == sorted(result.elapsed)


def test_recipes():
    assert (PAPER.iterations, PAPER.lr, PAPER.parameters) == (500, 1e-5, "encoder")
    assert (PAPER.head_solve, PAPER.input_size, PAPER.final_input_size, PAPER.amp) == (False, 518, None, "cuda")
    assert FAST.parameters == "last-k-head" and FAST.head_solve and FAST.iterations == 30
    assert (FAST.loss_grid, FAST.final_on_grid, FAST.amp) == (True, True, "on")
    assert FASTEST.head_solve and FASTEST.iterations == 0 and FASTEST.parameters == "none"
    with pytest.raises(InputError, match="confidence"):
        TTOConfig(confidence="magic")
    with pytest.raises(InputError, match="amp"):
        TTOConfig(amp="fp8")
    assert TTOConfig(amp=False).amp == "off" and TTOConfig(amp=True).amp == "cuda"
    with pytest.raises(InputError, match="nothing to optimise"):
        TTOConfig(parameters="none")
    with pytest.raises(InputError, match="final_ridge"):
        TTOConfig(final_ridge=-1.0)


def test_last_layer_solve_is_exact_on_a_known_answer():
    rng = np.random.default_rng(3)
    features = torch.from_numpy(rng.normal(2.0, 1.0, (5, 12, 9)))  # an offset: the centring matters
    features[3] = 0.0  # a dead ReLU channel: no weighted variance, weight 0
    w_true = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.25], dtype=torch.float64)
    target = torch.einsum("c,chw->hw", w_true, features) + 0.7
    weights = torch.from_numpy(rng.uniform(0, 1, (12, 9)))
    w, c = solve_last_layer(features, target, weights)
    torch.testing.assert_close(w, w_true, rtol=0, atol=1e-10)
    assert float(c) == pytest.approx(0.7, abs=1e-10)
    # with noise: the weighted least-squares answer (numpy lstsq on sqrt(m)-scaled rows)
    noisy = target + torch.from_numpy(rng.normal(0, 0.3, (12, 9)))
    w, c = solve_last_layer(features, noisy, weights)
    design = np.concatenate([features.numpy().reshape(5, -1), np.ones((1, 108))]).T
    root = np.sqrt(weights.numpy().ravel())[:, None]
    reference = np.linalg.lstsq(design * root, noisy.numpy().ravel() * root[:, 0], rcond=None)[0]
    np.testing.assert_allclose(np.r_[w.numpy(), float(c)], reference, atol=1e-9)
    # a ridge towards an anchor: at a very large ridge, the (a, b) refit of the anchor layer's output
    anchor = torch.tensor([1.0, 0.5, -0.2, 0.3, 0.1], dtype=torch.float64)
    w, c = solve_last_layer(features, noisy, weights, ridge=1e9, anchor=anchor)
    scale, shift = fit_to_dff(torch.einsum("c,chw->hw", anchor, features), noisy, weights, "disparity")
    refit = scale * torch.einsum("c,chw->hw", anchor, features) + shift  # the dead channel's weight is moot
    torch.testing.assert_close(torch.einsum("c,chw->hw", w, features) + c, refit, rtol=1e-6, atol=1e-9)
    with pytest.raises(InputError, match="do not match"):
        solve_last_layer(features, target[:-1], weights)


def test_fast_lowers_the_loss_below_the_refit_and_the_solve(prior):
    aif, disparity, volume, slices, flat = _controlled_stack()
    bgr = aif[..., ::-1].copy()
    untouched = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, TTOConfig(iterations=0, input_size=56))
    solved = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices,
                     TTOConfig(iterations=0, parameters="none", head_solve=True, input_size=56))
    fastest = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, dataclasses.replace(FASTEST, input_size=56))
    config = dataclasses.replace(FAST, input_size=56, iterations=20)
    result = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, config)
    # the head solve is the (a, b) refit with 33 unknowns instead of 2, so never worse than it
    assert solved.losses[-1] < untouched.losses[-1]
    assert fastest.iterations == 0 and fastest.losses[-1] < untouched.losses[-1]
    assert min(result.losses[1:-1]) < result.losses[0]  # the gradient steps after the solve help
    assert result.losses[-1] < solved.losses[-1]
    # the solved layer was put back: the copy's relative output is what is returned, refitted to ~(1, 0)
    # (exactly with the solve at the stack's size; FAST solves on the network's grid)
    assert (solved.scale, solved.shift) == pytest.approx((1.0, 0.0), abs=1e-3)
    assert (result.scale, result.shift) == pytest.approx((1.0, 0.0), abs=0.05)
    assert result.depth.shape == disparity.shape and np.isfinite(result.depth).all()


def test_final_solve_free_and_on_the_grid(prior):
    """The free final solve is the least-squares minimum of the loss at the stack's size over the
    last layer (so below the anchored one); the solve on the network's grid approximates it."""
    aif, disparity, volume, slices, flat = _controlled_stack()
    bgr = aif[..., ::-1].copy()
    base = TTOConfig(iterations=0, parameters="none", head_solve=True, anchored=True, ridge=1.0, input_size=56)
    anchored = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, base)
    free = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, dataclasses.replace(base, final_ridge=0.0))
    grid = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices,
                   dataclasses.replace(base, final_ridge=0.0, final_on_grid=True))
    assert free.losses[-1] < anchored.losses[-1]
    assert free.losses[-1] * (1 - 1e-5) <= grid.losses[-1] < free.losses[-1] * 1.05
    assert grid.losses[-1] < anchored.losses[-1]


def test_head_subset_runs_under_bf16(prior):
    aif, disparity, volume, slices, flat = _controlled_stack()
    bgr = aif[..., ::-1].copy()
    # "head" under bf16 autocast: the cached fusion is kept in float32 for the final float32 pass
    head = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices,
                   TTOConfig(iterations=3, lr=1e-3, parameters="head", input_size=56, amp="on"))
    assert np.isfinite(head.depth).all() and len(head.losses) == 4


def test_last_k_head_trains_the_last_blocks_and_the_output_convolutions():
    model = DepthAnythingV2("vitp")
    chosen = {id(p) for p in _trainable(model, TTOConfig(parameters="last-k-head", last_k=1))}
    scratch, encoder = model.depth_head.scratch, model.pretrained
    expected = [*encoder.blocks[-1].parameters(), *scratch.output_conv1.parameters(),
                *scratch.output_conv2[0].parameters()]
    assert chosen == {id(p) for p in expected}
    assert all(p.requires_grad == (id(p) in chosen) for p in model.parameters())


def test_bf16_autocast_runs_on_the_cpu(prior):
    aif, disparity, volume, slices, flat = _controlled_stack()
    bgr = aif[..., ::-1].copy()
    config = TTOConfig(iterations=5, lr=1e-3, parameters="last-k", last_k=2, input_size=56, amp="off")
    fp32 = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, config)
    bf16 = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, dataclasses.replace(config, amp="on"))
    assert np.isfinite(bf16.losses).all() and min(bf16.losses[1:-1]) < bf16.losses[0]
    # autocast really ran (bf16 rounding changes the losses) and stays close to float32
    assert bf16.losses[:-1] != fp32.losses[:-1]
    np.testing.assert_allclose(bf16.losses[0], fp32.losses[0], rtol=0.05)


def test_frozen_weights_held_in_bf16_change_nothing(prior, monkeypatch):
    """The frozen convolution and linear weights held in bf16 during the steps give the losses of
    autocast casting them at every use, bit for bit, and the float32 weights are back afterwards."""
    import anydepth.focus.tto as tto

    aif, disparity, volume, slices, flat = _controlled_stack()
    bgr = aif[..., ::-1].copy()
    config = dataclasses.replace(FAST, input_size=56, iterations=4)
    held = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, config)
    model = DepthAnythingV2("vitp")
    _trainable(model, config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with _frozen_weights_in(model, torch.bfloat16):
        frozen = model.depth_head.scratch.layer1_rn.weight
        assert frozen.dtype == torch.bfloat16
        assert torch.equal(frozen, before["depth_head.scratch.layer1_rn.weight"].bfloat16())
        assert model.pretrained.blocks[-1].attn.qkv.weight.dtype == torch.float32  # trainable: left to autocast
    assert all(torch.equal(p, before[name]) and p.dtype == torch.float32 for name, p in model.named_parameters())
    monkeypatch.setattr(tto, "_frozen_weights_in", lambda model, dtype: contextlib.nullcontext())
    cast_at_use = run_tto(prior, bgr, volume, POSITIONS, "disparity", slices, config)
    assert held.losses == cast_at_use.losses


def test_prefix_cache_gives_the_models_levels_after_the_trainable_blocks_change():
    """The cached frozen prefix (with the DPT levels of its taps and their fusion skips) plus the
    trainable blocks is the model itself: after the trainable parameters move, the levels equal a full forward's (the
    frozen blocks' levels are constants because nothing they pass through is trained)."""
    torch.manual_seed(0)
    model = DepthAnythingV2("vitp").eval()
    config = TTOConfig(parameters="last-k-head", last_k=2)
    trainable = _trainable(model, config)
    cache = _PrefixCache(model, len(model.pretrained.blocks) - config.last_k)
    x = torch.randn(1, 3, 56, 70)
    with torch.no_grad():
        before = cache.levels(x)
        for parameter in trainable:
            parameter.add_(0.05 * torch.randn_like(parameter))
        after, reference = cache.levels(x), model.feature_maps(x)
        head = model.depth_head
        fused, fused_reference = head.fuse(after, cache.refined(x)), head.fuse(reference)
    assert len(cache.cached[tuple(x.shape)][1]) == 2  # vitp taps blocks 0-3: two frozen levels cached
    assert sorted(cache.refined(x)) == [0, 1]  # and what the fusion adds for them
    for level, (got, expected) in enumerate(zip(after, reference)):
        torch.testing.assert_close(got, expected)
        assert torch.equal(got, before[level]) == (level < 2)  # only the trainable taps moved
    torch.testing.assert_close(fused, fused_reference)
