"""Tests of anydepth.focus.dfv (DFV / FV depth-from-focus network).

Parity reference `tests/data/dfv_reference.npz` — how it was made:
- code: the authors' repository github:fuy34/DFV at commit 5a42ad1baaf1c0b1c1c19bc772b4b3ed8b368a89,
  its `models/` package unchanged (`DFFNet`, `FeatExactor`, `decoderBlock`, ...), imported from a
  copy outside this repository. torchvision is not usable here, so `torchvision.models.resnet18`
  was replaced (outside the repository) by a re-statement of torchvision's ResNet/BasicBlock with
  the same module names (conv1, bn1, layerK.i.{conv1,bn1,conv2,bn2,downsample.{0,1}}, avgpool, fc);
  its `pretrained` flag was ignored because the weights are overwritten.
- script (not committed): for use_diff in (1, 0): `DFFNet(clean=False, level=4, use_diff=use_diff)`,
  `load_state_dict(random_dfv_state_dict(DFVConfig(4, bool(use_diff)), seed=0), strict=True)`,
  `.eval()`, `torch.no_grad()`, `pred, std, prob = model(stack, focus)` on CPU, float32, with
  stack = `torch.randn(1, 5, 3, 64, 96, generator=torch.Generator().manual_seed(1))` and
  focus = `torch.linspace(0.28, 0.02, 10)[[0, 2, 4, 6, 9]][None]` (their DDFF-12 validation
  positions for 5 slices). Stored: `dfv_depth`, `dfv_std`, `dfv_probability`, `fv_depth`, `fv_std`
  (the FV probability volume is left out for size), `focus_positions`, `stack_sum` (float64 check
  that the input is regenerated identically). Both models counted 19,501,484 parameters there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.errors import CheckpointError, InputError
from anydepth.focus import DFV, DFVConfig, load_dfv, predict_stack, save_dfv
from anydepth.focus.dfv import DFV_PARAMETERS, IMAGENET_MEAN, IMAGENET_STD, count_parameters
from tests.support.weights import random_dfv_state_dict
from tests.support import DATA


def _model(use_diff: bool = True, seed: int = 0) -> DFV:
    model = DFV(DFVConfig(level=4, use_diff=use_diff))
    model.load_state_dict(random_dfv_state_dict(model.config, seed=seed), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def dfv_model() -> DFV:
    return _model(True)


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA / "dfv_reference.npz")


def _reference_input() -> torch.Tensor:
    return torch.randn(1, 5, 3, 64, 96, generator=torch.Generator().manual_seed(1))


def test_parameter_count_and_official_key_names():
    model = DFV()
    assert count_parameters(model) == DFV_PARAMETERS == 19_501_484
    keys = model.state_dict()
    assert len(keys) == 412
    for key in (
        "feature_extraction.encoder.fc.weight",
        "feature_extraction.encoder.layer2.0.downsample.1.running_var",
        "feature_extraction.pyramid_pooling.path_module_list.3.cbr_unit.1.weight",
        "feature_extraction.upconv6.1.cbr_unit.0.weight",
        "feature_extraction.proj3.cbr_unit.0.weight",
        "decoder6.pool_convs.3.1.running_mean",
        "decoder5.convs.0.downsample.conv1.weight",
        "decoder4.up.1.0.weight",
        "decoder3.classify.2.0.bias",
    ):
        assert key in keys, key


@pytest.mark.parametrize("variant", ["dfv", "fv"])
def test_parity_with_official_code(reference, variant):
    stack = _reference_input()
    assert float(stack.double().sum()) == pytest.approx(float(reference["stack_sum"]), abs=1e-9)
    model = _model(variant == "dfv")
    with torch.no_grad():
        depth, std, probability = model(stack, torch.from_numpy(reference["focus_positions"]))
    np.testing.assert_allclose(depth.numpy(), reference[f"{variant}_depth"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std.numpy(), reference[f"{variant}_std"], rtol=1e-4, atol=1e-5)
    if f"{variant}_probability" in reference:
        np.testing.assert_allclose(probability.numpy(), reference[f"{variant}_probability"], rtol=1e-4, atol=1e-5)


def test_output_shapes_and_softmax(dfv_model):
    stack = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    positions = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.4, 0.3]])
    with torch.no_grad():
        depth, std, probability = dfv_model(stack, positions)
    assert depth.shape == std.shape == (2, 64, 64)
    assert probability.shape == (2, 3, 64, 64)
    torch.testing.assert_close(probability.sum(1), torch.ones(2, 64, 64), rtol=0, atol=1e-5)
    assert (probability >= 0).all() and (std >= 0).all()
    # the expectation lies within the focus range of each stack
    assert depth[0].min() >= 1.0 - 1e-5 and depth[0].max() <= 3.0 + 1e-5
    assert depth[1].min() >= 0.3 - 1e-5 and depth[1].max() <= 0.5 + 1e-5
    torch.testing.assert_close(depth, (probability * positions[:, :, None, None]).sum(1))


def test_fv_and_dfv_differ_with_same_weights(dfv_model):
    fv = DFV(DFVConfig(use_diff=False))
    fv.load_state_dict(dfv_model.state_dict(), strict=True)
    fv.eval()
    stack, positions = _reference_input(), torch.linspace(0.28, 0.02, 5)[None]
    with torch.no_grad():
        depth_dfv = dfv_model(stack, positions)[0]
        depth_fv = fv(stack, positions)[0]
    assert (depth_dfv - depth_fv).abs().max() > 1e-3


def test_forward_input_errors(dfv_model):
    with pytest.raises(InputError, match="multiples of 32"):
        dfv_model(torch.zeros(1, 2, 3, 64, 70), torch.zeros(1, 2))
    with pytest.raises(InputError, match="at least 2 slices"):
        dfv_model(torch.zeros(1, 1, 3, 64, 64), torch.zeros(1, 1))
    with pytest.raises(InputError, match="focus positions"):
        dfv_model(torch.zeros(1, 2, 3, 64, 64), torch.zeros(1, 3))


def test_checkpoint_round_trip(tmp_path, dfv_model):
    path = tmp_path / "model.tar"
    save_dfv(dfv_model, path, epoch=3, iters=42, best=0.5)
    container = torch.load(path, weights_only=True)
    assert {"epoch", "iters", "best", "state_dict"} <= set(container)
    assert (container["epoch"], container["iters"]) == (3, 42)
    assert all(key.startswith("module.") for key in container["state_dict"])
    loaded = load_dfv(path)
    assert loaded.config == dfv_model.config and not loaded.training
    stack, positions = _reference_input(), torch.linspace(0.28, 0.02, 5)[None]
    with torch.no_grad():
        for a, b in zip(dfv_model(stack, positions), loaded(stack, positions)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_use_diff_from_file_name_like_official_scripts(tmp_path, dfv_model):
    official = {"epoch": 1, "iters": 2, "best": 0.1,
                "state_dict": {f"module.{k}": v for k, v in dfv_model.state_dict().items()}}
    torch.save(official, tmp_path / "DFF-DFV.tar")
    torch.save(official, tmp_path / "DFF-FV.tar")
    assert load_dfv(tmp_path / "DFF-DFV.tar").config.use_diff is True
    assert load_dfv(tmp_path / "DFF-FV.tar").config.use_diff is False
    assert load_dfv(tmp_path / "DFF-FV.tar", use_diff=True).config.use_diff is True
    # keys containing 'disp' are dropped, as their eval script does
    official["state_dict"]["module.disp_reg.dummy"] = torch.zeros(1)
    torch.save(official, tmp_path / "DFF-DFV.tar")
    assert load_dfv(tmp_path / "DFF-DFV.tar").config.level == 4


def _one_line(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_checkpoint_errors(tmp_path, dfv_model):
    missing = tmp_path / "absent.tar"
    with pytest.raises(CheckpointError) as error:
        load_dfv(missing)
    assert "no such checkpoint" in _one_line(error, missing)

    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError) as error:
        load_dfv(corrupt)
    assert "cannot read" in _one_line(error, corrupt)

    state_dict = {f"module.{k}": v for k, v in dfv_model.state_dict().items()}
    truncated = tmp_path / "truncated.tar"
    torch.save({"epoch": 0, "state_dict": {k: v for k, v in state_dict.items() if "decoder3.classify" not in k}}, truncated)
    with pytest.raises(CheckpointError) as error:
        load_dfv(truncated)
    assert "missing keys" in _one_line(error, truncated)

    foreign = tmp_path / "foreign.tar"
    torch.save({"state_dict": {"pretrained.cls_token": torch.zeros(1, 1, 384)}}, foreign)
    with pytest.raises(CheckpointError) as error:
        load_dfv(foreign)
    assert "not a DFV checkpoint" in _one_line(error, foreign)

    not_tensors = tmp_path / "strings.tar"
    torch.save({"state_dict": {"a": "b"}}, not_tensors)
    with pytest.raises(CheckpointError) as error:
        load_dfv(not_tensors)
    assert "not a DFV checkpoint" in _one_line(error, not_tensors)

    reshaped = dict(state_dict)
    reshaped["module.decoder3.classify.2.0.bias"] = torch.zeros(2)
    wrong_shape = tmp_path / "shape.tar"
    torch.save({"state_dict": reshaped}, wrong_shape)
    with pytest.raises(CheckpointError) as error:
        load_dfv(wrong_shape)
    assert "shape of decoder3.classify.2.0.bias" in _one_line(error, wrong_shape)


def test_predict_stack_pads_like_official_loader_and_crops(dfv_model):
    rng = np.random.default_rng(5)
    stack = rng.integers(0, 256, size=(4, 70, 100, 3), dtype=np.uint8)
    positions = np.array([0.28, 0.2, 0.1, 0.02], np.float32)
    depth, std, probability = predict_stack(dfv_model, stack, positions)
    assert depth.shape == std.shape == (70, 100) and probability.shape == (4, 70, 100)
    assert depth.dtype == std.dtype == probability.dtype == np.float32
    np.testing.assert_allclose(probability.sum(0), 1.0, atol=1e-5)

    # the official DDFF-12 test transform: /255, reflect pad bottom/right to a multiple of 32, normalise
    images = np.pad(stack.astype(np.float32) / 255.0, ((0, 0), (0, 26), (0, 28), (0, 0)), mode="reflect")
    images = (images - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    tensor = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())[None]
    with torch.no_grad():
        full = dfv_model(tensor, torch.from_numpy(positions)[None])
    np.testing.assert_allclose(depth, full[0][0, :70, :100].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probability, full[2][0, :, :70, :100].numpy(), rtol=1e-5, atol=1e-6)

    # float input in [0, 1] is the same as uint8 / 255
    depth_float = predict_stack(dfv_model, stack.astype(np.float64) / 255.0, positions)[0]
    np.testing.assert_allclose(depth_float, depth, rtol=1e-5, atol=1e-6)

    # a stack already a multiple of 32 is not padded
    exact = rng.integers(0, 256, size=(2, 64, 96, 3), dtype=np.uint8)
    assert predict_stack(dfv_model, exact, [1.0, 2.0])[2].shape == (2, 64, 96)


def test_predict_stack_input_errors(dfv_model):
    with pytest.raises(InputError, match=r"\(N, H, W, 3\)"):
        predict_stack(dfv_model, np.zeros((4, 64, 64)), np.ones(4))
    with pytest.raises(InputError, match="focus positions"):
        predict_stack(dfv_model, np.zeros((4, 64, 64, 3)), np.ones(3))
    with pytest.raises(InputError, match="too small"):
        predict_stack(dfv_model, np.zeros((2, 20, 64, 3)), np.ones(2))
