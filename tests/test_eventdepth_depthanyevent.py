"""DepthAnyEvent and DepthAnyEvent-R: parity with the authors' code, their checkpoint container,
initialisation from Depth Anything V2, recurrent-state semantics, the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.errors import CheckpointError, InputError
from anydepth.events import EventArray, tencode
from anydepth.eventdepth import DepthStream, load_model, save_model
from anydepth.eventdepth.depthanyevent import DepthAnyEvent, DepthAnyEventConfig, init_from_dav2, load_depthanyevent
from anydepth.foundation import random_state_dict
from anydepth.foundation.checkpoint import random_weights
from conftest import DATA


def seeded(model: DepthAnyEvent, seed: int) -> DepthAnyEvent:
    model.load_state_dict(random_weights({k: v.shape for k, v in model.state_dict().items()}, seed))
    return model.eval()


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA / "depthanyevent_reference.npz")


@pytest.mark.parametrize("name, recurrent, keys, params_m", [("dae", False, 239, 24.79), ("daer", True, 255, 26.11)])
def test_parity_with_the_authors_code(reference, name, recurrent, keys, params_m):
    """Reference made outside this repository with the authors' code (the upload commit 7dfcc47 of
    the Depth AnyEvent release, models/dav2/dpt.py and models/rec_dav2/dpt.py, torchvision's Compose
    replaced by a stand-in): the released test config (vits, softplus, inv_prediction, input
    266x350) with `random_weights(shapes, seed=7)` loaded strictly, `infer_image` on three
    Tencode-like (1, 3, 60, 80) inputs from numpy seed 0 (values below 0.6 zeroed), the recurrent
    state carried; one CPU thread. Stored in tests/data/depthanyevent_reference.npz."""
    model = DepthAnyEvent(recurrent=recurrent)
    assert sorted(model.state_dict()) == list(reference[f"{name}_keys"]) and len(model.state_dict()) == keys
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, abs=0.005)
    seeded(model, 7)
    frames = torch.from_numpy(reference["inputs"])
    state = None
    outputs = []
    with torch.no_grad():
        for step in range(3):
            raw, state = model(model.prepare_image(frames[step]), state)
            outputs.append(model.to_depth(raw, (60, 80)).numpy())
    for step, output in enumerate(outputs):
        expected = reference[f"{name}_{step}"][:, 0]
        assert expected.std() > 0.05
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=2e-5)
    if recurrent:  # the state matters: later steps differ from a fresh start
        with torch.no_grad():
            fresh = model.to_depth(model(model.prepare_image(frames[2]))[0], (60, 80)).numpy()
        assert np.abs(fresh - outputs[2]).max() > 1e-4


def test_recurrent_layers_shrink_each_level_by_two_pixels():
    model = DepthAnyEvent(encoder="vits", recurrent=True).eval()
    x = torch.zeros(1, 3, 266, 350)
    with torch.no_grad():
        levels = model.depth_head.reassemble(model.pretrained.forward_tapped(x, model.tapped_blocks), 19, 25)
        shrunk, state = model.depth_head.recur(levels)
    assert [tuple(l.shape[-2:]) for l in levels] == [(76, 100), (38, 50), (19, 25), (10, 13)]
    assert [tuple(l.shape[-2:]) for l in shrunk] == [(74, 98), (36, 48), (17, 23), (8, 11)]
    assert len(state) == 4 and state[0][0].shape[-2:] == (8, 11)  # ordered level 4, 3, 2, 1


def test_state_semantics():
    model = seeded(DepthAnyEvent(recurrent=True), 3)
    rng = np.random.default_rng(1)
    a, b = (torch.from_numpy(rng.random((1, 3, 28, 42)).astype(np.float32)) for _ in range(2))
    with torch.no_grad():
        raw_a, state = model(model.prepare_image(a))
        carried, _ = model(model.prepare_image(b), state)
        reset, _ = model(model.prepare_image(b), None)
        zeros = tuple((torch.zeros_like(h), torch.zeros_like(c)) for h, c in state)
        explicit_zero, _ = model(model.prepare_image(b), zeros)
    assert (carried - reset).abs().max() > 1e-5
    torch.testing.assert_close(reset, explicit_zero)
    stream = DepthStream(model)
    events = EventArray.from_arrays(rng.integers(0, 42, 300), rng.integers(0, 28, 300), np.sort(rng.integers(0, 50_000, 300)),
                                    rng.integers(0, 2, 300), (28, 42))
    first = stream.step(events)
    second = stream.step(events)
    stream.reset()
    again = stream.step(events)
    assert first.shape == (28, 42) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_allclose(again, first, rtol=1e-6)
    assert np.abs(second - first).max() > 1e-6
    assert stream.mean_latency_ms > 0


def test_prepare_uses_tencode_and_the_lower_bound_size():
    model = DepthAnyEvent()
    rng = np.random.default_rng(2)
    events = EventArray.from_arrays(rng.integers(0, 346, 500), rng.integers(0, 260, 500), np.sort(rng.integers(0, 50_000, 500)),
                                    rng.integers(0, 2, 500), (260, 346))
    x = model.prepare(events)
    assert x.shape == (1, 3, 266, 350)  # MVSEC 260x346 -> 266x350
    torch.testing.assert_close(x, model.prepare_image(torch.from_numpy(tencode(events))[None]))
    voxels = np.zeros((5, 260, 346), np.float32)
    voxels[4, 10, 10] = 1.0
    image = model.event_image(voxels)  # official MVSEC path: Tencode from voxels
    np.testing.assert_array_equal(image[:, 10, 10], [1, 0, 0])


def test_voxel_input_goes_through_input_mapping():
    model = DepthAnyEvent(DepthAnyEventConfig(input_channels=5, representation="voxel"))
    assert "input_mapping.0.weight" in model.state_dict()
    x = model.prepare(np.random.default_rng(0).normal(size=(5, 40, 50)).astype(np.float32))
    assert x.shape[1] == 5
    with torch.no_grad():
        raw, state = model.eval()(x)
    assert raw.shape[-2:] == x.shape[-2:] and state is None
    with pytest.raises(InputError, match="3 channels"):
        DepthAnyEventConfig(input_channels=5)


def test_authors_container_round_trip(tmp_path):
    model = seeded(DepthAnyEvent(recurrent=True), 4)
    path = tmp_path / "depthanyevent_r_vits.pth"
    save_model("depthanyevent-r", model, path)
    container = torch.load(path, weights_only=True)
    assert set(container) == {"state_dict", "config"}
    assert container["config"]["model_type"] == "RecDAv2" and container["config"]["input_size_width"] == 350
    loaded = load_model("depthanyevent-r", path)
    x = torch.rand(1, 3, 98, 98)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)
    # a plain state dict: recurrence from the keys, encoder from the shapes
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    plain = load_depthanyevent(tmp_path / "plain.pth")
    assert plain.recurrent and plain.config.encoder == "vits"


def test_checkpoint_errors(tmp_path):
    model = DepthAnyEvent(recurrent=True)
    state_dict = model.state_dict()
    state_dict.pop("depth_head.gru_layer_2.recurrent_block.Gates.weight")
    torch.save({"state_dict": state_dict, "config": model.config.to_authors()}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"1 missing keys \(e.g. depth_head.gru_layer_2.recurrent_block.Gates.weight\)"):
        load_model("depthanyevent-r", tmp_path / "broken.pth")
    torch.save({"state_dict": {}, "config": {"model_type": "Other"}}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="not a Depth AnyEvent model"):
        load_model("depthanyevent", tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model("depthanyevent", tmp_path / "junk.pth")
    save_model("depthanyevent", DepthAnyEvent(), tmp_path / "vanilla.pth")
    with pytest.raises(InputError, match="holds a non-recurrent model, not depthanyevent-r"):
        load_model("depthanyevent-r", tmp_path / "vanilla.pth")


def test_initialisation_from_depth_anything_v2():
    dav2 = random_state_dict("vits", seed=5)
    model = init_from_dav2(DepthAnyEvent(recurrent=True), dav2)
    state = model.state_dict()
    for key in ("pretrained.blocks.0.attn.qkv.weight", "depth_head.scratch.output_conv2.2.bias", "depth_head.projects.3.weight"):
        assert torch.equal(state[key], dav2[key])
    fresh = DepthAnyEvent(recurrent=True).state_dict()["depth_head.gru_layer_1.recurrent_block.Gates.weight"]
    assert state["depth_head.gru_layer_1.recurrent_block.Gates.weight"].shape == fresh.shape
    with pytest.raises(CheckpointError, match=r"shape of pretrained.cls_token is \(1, 1, 384\), Depth AnyEvent vitb expects"):
        init_from_dav2(DepthAnyEvent(encoder="vitb"), dav2)
    with pytest.raises(CheckpointError, match="lack"):
        init_from_dav2(DepthAnyEvent(), {k: v for k, v in dav2.items() if "blocks.3." not in k})


def test_registry_names():
    assert load_model("depthanyevent").recurrent is False
    assert load_model("depthanyevent-r", encoder="vitb").config.encoder == "vitb"
    with pytest.raises(InputError, match="unknown event depth model"):
        load_model("nope")


@pytest.mark.parametrize("encoder, params_m", [("vitb", 97.47), ("vitl", 335.32)])
def test_larger_encoders_keep_the_dav2_keys(encoder, params_m):
    """vitb / vitl: the DAv2 part has exactly the official DAv2 keys (so released DAv2 and Depth
    AnyEvent files of those sizes load), and -R adds only the recurrent layers."""
    with torch.device("meta"):
        vanilla = DepthAnyEvent(encoder=encoder)
        recurrent = DepthAnyEvent(encoder=encoder, recurrent=True)
        from anydepth.foundation import DepthAnythingV2

        dav2 = DepthAnythingV2(encoder)
    assert set(vanilla.state_dict()) == set(dav2.state_dict())
    assert sum(p.numel() for p in vanilla.parameters()) / 1e6 == pytest.approx(params_m, abs=0.005)
    extra = set(recurrent.state_dict()) - set(vanilla.state_dict())
    assert extra and all(k.startswith("depth_head.gru_layer_") for k in extra) and len(extra) == 16
