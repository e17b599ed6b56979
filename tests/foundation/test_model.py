"""Depth Anything V2: architecture facts, parity with the authors' code and with transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.foundation import DepthAnythingV2, export_hf_folder, get_config
from tests.support.weights import loaded_model, random_state_dict
from anydepth.foundation import hf_keys
from tests.support import DATA, synthetic_bgr


@pytest.mark.parametrize(
    "encoder, keys, params_m",
    [("vits", 239, 24.79), ("vitb", 239, 97.47), ("vitl", 407, 335.32), ("vitg", 631, None)],
)
def test_official_key_counts_and_sizes(encoder, keys, params_m):
    with torch.device("meta"):
        model = DepthAnythingV2(encoder)
    state_dict = model.state_dict()
    assert len(state_dict) == keys
    assert "pretrained.blocks.3.attn.qkv.weight" in state_dict
    assert "pretrained.blocks.3.ls1.gamma" in state_dict
    assert "depth_head.scratch.output_conv2.2.weight" in state_dict
    assert "depth_head.resize_layers.2.weight" not in state_dict  # identity level
    if params_m is not None:
        assert model.num_parameters() / 1e6 == pytest.approx(params_m, abs=0.005)


def test_parity_with_the_authors_code():
    """Reference made outside this repository: the authors' Depth-Anything-V2 code
    (depth_anything_v2/dpt.py and metric_depth/depth_anything_v2/dpt.py, torchvision's Compose
    replaced by a 5-line stand-in) loaded `random_state_dict(encoder, seed)` with strict=True and ran
    `infer_image(synthetic_bgr(), input_size)` on one CPU thread; the outputs are stored in
    tests/data/official_dav2_reference.npz. This covers the official pre-processing (cv2 bicubic,
    lower-bound resize to 14), the position-embedding interpolation at non-square sizes, and the
    relative and metric heads."""
    reference = np.load(DATA / "official_dav2_reference.npz")
    image = synthetic_bgr()
    cases = [("vits_518", "vits", 518, 0, {}), ("vitb_196", "vitb", 196, 0, {}),
             ("metric_vits_266", "vits", 266, 1, {"head": "metric", "max_depth": 20.0})]
    for key, encoder, size, seed, overrides in cases:
        model = loaded_model(get_config(encoder, **overrides), random_state_dict(encoder, seed))
        prediction = model.infer_image(image, size)
        expected = reference[key]
        assert prediction.shape == expected.shape == image.shape[:2]
        assert prediction.dtype == np.float32
        assert expected.std() > 0.1  # the reference is informative, not a constant map
        np.testing.assert_allclose(prediction, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.fixture(scope="module")
def transformers_peer():
    return pytest.importorskip("transformers").DepthAnythingForDepthEstimation


@pytest.mark.parametrize("encoder", ["vits", "vitb"])
def test_parity_with_transformers_official_to_hf(encoder, transformers_peer, tmp_path):
    """Our weights, written in the hub layout, load into transformers and give the same output."""
    model = loaded_model(encoder, random_state_dict(encoder, seed=3))
    export_hf_folder(model, tmp_path)
    peer = transformers_peer.from_pretrained(str(tmp_path)).eval()
    x = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x), peer(pixel_values=x).predicted_depth
    assert ours.abs().max() > 0.5
    # same arithmetic up to summation order: float32 rounding, which varies with the thread count
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=3e-5)

    if encoder != "vits":
        return  # the off-grid interpolation below does not depend on the encoder's size
    # off the 518 grid transformers interpolates the position embedding to the exact grid size
    x = torch.randn(1, 3, 196, 252, generator=torch.Generator().manual_seed(1))
    hf_style = loaded_model(model.config.replace(pos_embed_interpolation="size"), model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(hf_style.eval()(x), peer(pixel_values=x).predicted_depth, rtol=1e-5, atol=1e-5)
        # ... which differs (slightly) from the official DINOv2 interpolation
        assert (model(x) - hf_style(x)).abs().max() > 1e-4


@pytest.mark.parametrize("encoder", ["vits", "vitb"])
def test_parity_with_transformers_hf_to_official(encoder, transformers_peer, tmp_path):
    """A transformers model's own state dict (its in-memory key names) maps onto ours exactly."""
    transformers = pytest.importorskip("transformers")
    config = transformers.DepthAnythingConfig.from_dict(hf_keys.hf_config_dict(get_config(encoder)))
    torch.manual_seed(0)
    peer = transformers_peer(config).eval()
    model = loaded_model(get_config(encoder, pos_embed_interpolation="size"), hf_keys.hf_to_official(peer.state_dict()))
    x = torch.randn(1, 3, 140, 182, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), peer(pixel_values=x).predicted_depth, rtol=1e-5, atol=1e-5)


def test_key_mapping_round_trip_including_swiglu():
    for encoder in ("vits", "vitp"):
        state_dict = random_state_dict(encoder, seed=5)
        assert all(torch.equal(v, hf_keys.hf_to_official(hf_keys.official_to_hf(state_dict))[k]) for k, v in state_dict.items())
    config = get_config("vitp", ffn="swiglu")
    state_dict = random_state_dict(config, seed=5)
    converted = hf_keys.official_to_hf(state_dict)
    assert "backbone.encoder.layer.0.mlp.weights_in.weight" in converted
    assert "backbone.encoder.layer.0.attention.attention.query.weight" in converted
    assert "neck.fusion_stage.layers.0.projection.weight" in converted  # refinenet4 comes first
    back = hf_keys.hf_to_official(converted)
    assert set(back) == set(state_dict)
    assert all(torch.equal(back[k], v) for k, v in state_dict.items())


def test_four_tapped_levels_for_students():
    model = DepthAnythingV2("vitp").eval()
    x = torch.randn(2, 3, 98, 126)
    tapped = model.tapped_features(x)
    assert len(tapped) == 4
    assert all(tokens.shape == (2, 7 * 9, 48) and cls.shape == (2, 48) for tokens, cls in tapped)
    levels = model.feature_maps(x)
    assert [tuple(level.shape[-2:]) for level in levels] == [(28, 36), (14, 18), (7, 9), (4, 5)]
    assert all(level.shape[1] == model.config.features for level in levels)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(levels, 7, 9), model(x))


def test_metric_head_range_and_relative_head_nonnegative():
    x = torch.randn(1, 3, 70, 84)
    metric = DepthAnythingV2(get_config("vitp", head="metric", max_depth=80.0)).eval()
    relative = DepthAnythingV2("vitp").eval()
    with torch.no_grad():
        depth_m = metric(x)
        disparity = relative(x)
    assert depth_m.shape == disparity.shape == (1, 70, 84)
    assert 0 <= depth_m.min() and depth_m.max() <= 80.0
    assert disparity.min() >= 0


def test_input_not_multiple_of_patch_is_rejected():
    with pytest.raises(ValueError, match="multiples of 14"):
        DepthAnythingV2("vitp")(torch.zeros(1, 3, 100, 100))


def test_attention_written_out_under_cpu_bf16_autograd_matches_sdpa(monkeypatch):
    """Under CPU bf16 autocast with autograd the attention is written out (a faster backward on
    the CPU); its output and gradient stay within bf16 rounding of SDPA's, which runs elsewhere."""
    from anydepth.foundation import dinov2

    sdpa = torch.nn.functional.scaled_dot_product_attention
    calls = []
    monkeypatch.setattr(dinov2.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    torch.manual_seed(0)
    attention = dinov2.Attention(96, 3)
    x = torch.randn(2, 50, 96)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            through_sdpa = attention(x).float()
        assert len(calls) == 1
        leaf = x.clone().requires_grad_(True)
        written = attention(leaf)
        assert len(calls) == 1  # written out
    written.float().square().sum().backward()
    torch.testing.assert_close(written.float(), through_sdpa, rtol=0.03, atol=0.02)
    reference = x.clone().requires_grad_(True)
    attention(reference).square().sum().backward()  # float32 autograd: SDPA
    assert len(calls) == 2
    torch.testing.assert_close(leaf.grad, reference.grad, rtol=0.05, atol=0.05 * float(reference.grad.abs().max()))
