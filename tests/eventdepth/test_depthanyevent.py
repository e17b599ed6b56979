"""DepthAnyEvent and DepthAnyEvent-R: parity with the authors' code, their checkpoint container,
initialisation from Depth Anything V2, recurrent-state semantics, the registry."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from anydepth.errors import AnydepthWarning, CheckpointError, InputError
from anydepth.events import EventArray, tencode
from anydepth.eventdepth import DepthStream, load_model, save_model, winograd
from anydepth.eventdepth.depthanyevent import DepthAnyEvent, DepthAnyEventConfig, init_from_dav2, load_depthanyevent
from tests.support.weights import random_state_dict
from tests.support.weights import random_weights
from tests.support import DATA


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
            raw, state = model(model.prepare_images(frames[step]), state)
            outputs.append(model.to_depth(raw, (60, 80)).numpy())
    for step, output in enumerate(outputs):
        expected = reference[f"{name}_{step}"][:, 0]
        assert expected.std() > 0.05
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=2e-5)
    if recurrent:  # the state matters: later steps differ from a fresh start
        with torch.no_grad():
            fresh = model.to_depth(model(model.prepare_images(frames[2]))[0], (60, 80)).numpy()
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


def test_recurrent_levels_on_the_winograd_path(monkeypatch):
    """At the released input size (266 x 350) the ConvLSTMs of levels 1-3 take the Winograd path
    (`anydepth.eventdepth.winograd`) in inference, the 8 x 11 level 4 the plain convolution."""
    calls = []
    original = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda inputs, *args, **kwargs: calls.append(tuple(inputs[0].shape[-2:]))
                        or original(inputs, *args, **kwargs))
    head = DepthAnyEvent(recurrent=True).eval().depth_head
    levels = [torch.randn(1, 64, h, w) for h, w in ((76, 100), (38, 50), (19, 25), (10, 13))]
    with torch.no_grad():
        head.recur(levels)
    assert sorted(calls) == [(17, 23), (36, 48), (74, 98)]
    head.recur(levels)  # training: the plain convolution
    assert len(calls) == 3


def test_state_semantics():
    model = seeded(DepthAnyEvent(recurrent=True), 3)
    rng = np.random.default_rng(1)
    a, b = (torch.from_numpy(rng.random((1, 3, 28, 42)).astype(np.float32)) for _ in range(2))
    with torch.no_grad():
        raw_a, state = model(model.prepare_images(a))
        carried, _ = model(model.prepare_images(b), state)
        reset, _ = model(model.prepare_images(b), None)
        zeros = tuple((torch.zeros_like(h), torch.zeros_like(c)) for h, c in state)
        explicit_zero, _ = model(model.prepare_images(b), zeros)
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
    torch.testing.assert_close(x, model.prepare_images(torch.from_numpy(tencode(events))[None]))
    voxels = np.zeros((5, 260, 346), np.float32)
    voxels[4, 10, 10] = 1.0
    image = model.event_image(voxels, "voxel")  # official MVSEC path: Tencode from voxels
    np.testing.assert_array_equal(image[:, 10, 10], [1, 0, 0])
    with pytest.raises(InputError, match="needs its representation"):
        model.event_image(voxels)  # an array is never guessed from its shape


def test_voxel_input_goes_through_input_mapping():
    model = DepthAnyEvent(DepthAnyEventConfig(input_channels=5, representation="voxel"))
    assert "input_mapping.0.weight" in model.state_dict()
    x = model.prepare(np.random.default_rng(0).normal(size=(5, 40, 50)).astype(np.float32), "voxel")
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
    run = container["config"]  # the whole run config, as the released files
    assert {"model", "data_loader", "trainer"} <= set(run)
    assert run["model"]["model_type"] == "RecDAv2" and run["model"]["input_size_width"] == 350
    assert run["data_loader"]["event_representation"] == {"representation_type": "tencode", "normalize": True}
    assert run["trainer"]["use_scaleshift"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file we wrote states every field
        loaded = load_model("depthanyevent-r", path)
    assert loaded.config == model.config and loaded.run_config == run
    x = torch.rand(1, 3, 98, 98)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)
    # saving a loaded model keeps its run config (e.g. a trainer section of the authors)
    loaded.run_config = {**run, "trainer": {"use_logdepth": True}, "name": "theirs"}
    save_model("depthanyevent-r", loaded, tmp_path / "again.pth")
    again = torch.load(tmp_path / "again.pth", weights_only=True)["config"]
    assert again["name"] == "theirs" and again["trainer"] == {"use_logdepth": True} and again["model"] == run["model"]


# The `model` blocks of the authors' configs/test/{dav2,recdav2}/*_test.json (commit e1a80bf), as
# the released checkpoints carry them; they differ per file (encoder, inv_prediction, input size).
RELEASED_BLOCKS = {
    ("dsec", False): {"encoder": "vits", "inv_prediction": True, "input_size_width": 350, "input_size_height": 266},
    ("mvsec", False): {"encoder": "vitl", "inv_prediction": False, "input_size_width": 350, "input_size_height": 266},
    ("dsec", True): {"encoder": "vits", "inv_prediction": True, "input_size_width": 644, "input_size_height": 322},
    ("mvsec", True): {"encoder": "vits", "inv_prediction": True, "input_size_width": 350, "input_size_height": 266},
}


def released_config(dataset: str, recurrent: bool, encoder: str | None = None) -> dict:
    """The whole run config of a released checkpoint (`encoder` replaces the file's, to keep tests
    small)."""
    model = {"model_type": "RecDAv2" if recurrent else "DAv2", "activation": "softplus", "scale_factor": 1.0,
             **RELEASED_BLOCKS[dataset, recurrent], "freeze_encoder": False, "input_channels": 3,
             **({"recurrent_block_type": "convlstm"} if recurrent else {})}
    if encoder is not None:
        model["encoder"] = encoder
    crop = {"preprocessing_type": "CenterCrop", "height": 320, "width": 640} if dataset == "dsec" else \
        {"preprocessing_type": "Crop", "height": 260, "width": 346}
    return {"name": "DAv2 Zero-Shot Test", "cuda": True, "gpu": 0,
            "data_loader": {"dataset": dataset, "datapath": "/data", "split": "test", "concatenate_sequences": False,
                            "slicing": {"slicing_type": "sbt", "time_window_ms": 50},
                            "event_representation": {"representation_type": "tencode", "normalize": True},
                            "preprocessing": [crop], "load_images": False, "use_voxels": True, "batch_size": 1,
                            "num_workers": 1, "pin_memory": False, "shuffle": False, "sequence_window": 1,
                            "sequence_step": 1},
            "model": model}


@pytest.mark.parametrize("dataset, recurrent", sorted(RELEASED_BLOCKS))
def test_released_whole_config_container_builds_the_released_model(tmp_path, dataset, recurrent):
    """The released dav2_*.pth / rec_dav2_*.pth form: {"state_dict", "config": whole run config}.
    Before, the vanilla DSEC file loaded as a ReLU head at 518x518 without a word. (The MVSEC
    DAv2 release is ViT-L; built here as ViT-S with its other fields.)"""
    weights = seeded(DepthAnyEvent(recurrent=recurrent), 2).state_dict()
    path = tmp_path / f"{'rec_' if recurrent else ''}dav2_{dataset}.pth"
    torch.save({"state_dict": weights, "config": released_config(dataset, recurrent, encoder="vits")}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_model("depthanyevent-r" if recurrent else "depthanyevent", path)
    block = RELEASED_BLOCKS[dataset, recurrent]
    assert model.config == DepthAnyEventConfig(
        recurrent=recurrent, activation="softplus", inv_prediction=block["inv_prediction"],
        input_size=(block["input_size_height"], block["input_size_width"]), representation="tencode")
    assert model.run_config["data_loader"]["dataset"] == dataset
    assert model.prepare(torch.zeros(3, 320, 640).numpy(), "tencode").shape[-2:] == \
        ((322, 644) if (dataset, recurrent) == ("dsec", True) else (266, 532))


def test_config_json_beside_the_checkpoint(tmp_path):
    """As test.py: a file without `config` takes the config.json of its folder."""
    weights = DepthAnyEvent().state_dict()
    config = released_config("dsec", False)
    config["model"]["activation"] = "sigmoid"
    (tmp_path / "config.json").write_text(json.dumps(config))
    torch.save({"state_dict": weights}, tmp_path / "model.pth")
    model = load_depthanyevent(tmp_path / "model.pth")
    assert model.config.activation == "sigmoid" and model.run_config == config
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: cannot read the config"):
        load_depthanyevent(tmp_path / "model.pth")


def test_unstated_fields_are_named(tmp_path):
    weights = DepthAnyEvent(recurrent=True).state_dict()
    # a bare model block (the old anydepth container): complete, but the representation is unstated
    block = DepthAnyEventConfig(recurrent=True).to_authors()
    torch.save({"state_dict": weights, "config": block}, tmp_path / "bare.pth")
    with pytest.warns(AnydepthWarning, match=r"bare.pth: not in the checkpoint's config \(a bare model block\), assuming representation='tencode'"):
        bare = load_model("depthanyevent-r", tmp_path / "bare.pth")
    assert bare.config == DepthAnyEventConfig(recurrent=True) and bare.run_config is None
    # a block without activation and input size: the authors' code builds relu at 518x518; say so
    partial = released_config("mvsec", True)
    for key in ("activation", "input_size_width", "input_size_height"):
        partial["model"].pop(key)
    torch.save({"state_dict": weights, "config": partial}, tmp_path / "partial.pth")
    with pytest.warns(AnydepthWarning, match=r"assuming activation='relu', input_size_height=518, input_size_width=518 \(as the authors' code does\)"):
        model = load_model("depthanyevent-r", tmp_path / "partial.pth")
    assert model.config.activation == "relu" and model.config.input_size == (518, 518)
    with warnings.catch_warnings():  # an override states the field
        warnings.simplefilter("error")
        load_model("depthanyevent-r", tmp_path / "partial.pth", activation="softplus", input_size=(266, 350))
    # a plain state dict: recurrence from the keys, encoder from the shapes, the rest as released
    torch.save(weights, tmp_path / "plain.pth")
    with pytest.warns(AnydepthWarning, match=r"plain.pth: no config, assuming activation='softplus'.*representation='tencode' \(as the released test configs\)"):
        plain = load_depthanyevent(tmp_path / "plain.pth")
    assert plain.recurrent and plain.config == DepthAnyEventConfig(recurrent=True)
    partial["model"]["dropout"] = 0.1
    torch.save({"state_dict": weights, "config": partial}, tmp_path / "unknown.pth")
    with pytest.warns(AnydepthWarning) as record:
        load_model("depthanyevent-r", tmp_path / "unknown.pth")
    messages = [str(w.message) for w in record]
    assert any("does not know: dropout" in m for m in messages) and any("assuming activation='relu'" in m for m in messages)


def test_representation_from_the_run_config(tmp_path):
    voxel = DepthAnyEvent(input_channels=5, representation="voxel")
    config = released_config("mvsec", False, encoder="vits")
    config["model"]["input_channels"] = 5
    config["data_loader"]["event_representation"] = {"representation_type": "voxel_grid", "channels": 5, "normalize": True}
    torch.save({"state_dict": voxel.state_dict(), "config": config}, tmp_path / "voxel.pth")
    assert load_model("depthanyevent", tmp_path / "voxel.pth").config.representation == "voxel"
    config["data_loader"]["event_representation"]["channels"] = 4
    torch.save({"state_dict": voxel.state_dict(), "config": config}, tmp_path / "bins.pth")
    with pytest.raises(CheckpointError, match="says a 4-bin voxel grid but the weights take 5 channels"):
        load_model("depthanyevent", tmp_path / "bins.pth")
    tencode_255 = released_config("mvsec", False, encoder="vits")
    tencode_255["data_loader"]["event_representation"]["normalize"] = False
    torch.save({"state_dict": DepthAnyEvent().state_dict(), "config": tencode_255}, tmp_path / "t255.pth")
    model = load_model("depthanyevent", tmp_path / "t255.pth")
    assert model.config.tencode_scale == 255.0
    events = EventArray.from_arrays([1, 2], [0, 1], [0, 10], [1, 0], (4, 5))
    np.testing.assert_allclose(model.event_image(events), 255 * tencode(events))
    histogram = released_config("mvsec", False, encoder="vits")
    histogram["data_loader"]["event_representation"] = {"representation_type": "histogram"}
    torch.save({"state_dict": DepthAnyEvent().state_dict(), "config": histogram}, tmp_path / "hist.pth")
    with pytest.raises(CheckpointError, match="names event representation 'histogram'"):
        load_model("depthanyevent", tmp_path / "hist.pth")


def test_checkpoint_errors(tmp_path):
    model = DepthAnyEvent(recurrent=True)
    state_dict = model.state_dict()
    state_dict.pop("depth_head.gru_layer_2.recurrent_block.Gates.weight")
    torch.save({"state_dict": state_dict, "config": model.config.to_authors()}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"1 missing keys \(e.g. depth_head.gru_layer_2.recurrent_block.Gates.weight\)"):
        load_model("depthanyevent-r", tmp_path / "broken.pth", representation="tencode")
    torch.save({"state_dict": {}, "config": {"model_type": "Other"}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a Depth AnyEvent model"):
        load_model("depthanyevent", tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model("depthanyevent", tmp_path / "junk.pth")
    save_model("depthanyevent", DepthAnyEvent(), tmp_path / "vanilla.pth")
    with pytest.raises(InputError, match="holds a non-recurrent model, not depthanyevent-r"):
        load_model("depthanyevent-r", tmp_path / "vanilla.pth")
    lying = released_config("mvsec", True)  # says RecDAv2, holds vanilla weights
    torch.save({"state_dict": DepthAnyEvent().state_dict(), "config": lying}, tmp_path / "lying.pth")
    with pytest.raises(CheckpointError, match="says model_type RecDAv2 but the weights lack the recurrent layers"):
        load_model("depthanyevent-r", tmp_path / "lying.pth")
    torch.save({"state_dict": DepthAnyEvent().state_dict(), "config": {"data_loader": {}}}, tmp_path / "noblock.pth")
    with pytest.raises(CheckpointError, match="neither a model section nor model fields"):
        load_model("depthanyevent", tmp_path / "noblock.pth")


def test_precomputed_inputs_and_input_size_per_call():
    """What users have: raw events, a Tencode image or a voxel grid, said by the caller; the resize
    target can change per call, as the authors' infer_image(input_size_width, input_size_height)."""
    model = seeded(DepthAnyEvent(), 5)
    rng = np.random.default_rng(3)
    events = EventArray.from_arrays(rng.integers(0, 60, 400), rng.integers(0, 40, 400), np.sort(rng.integers(0, 50_000, 400)),
                                    rng.integers(0, 2, 400), (40, 60))
    from_events, _ = model.predict(events)
    from_image, _ = model.predict(tencode(events), representation="tencode")
    np.testing.assert_array_equal(from_events, from_image)
    stream = DepthStream(model)
    np.testing.assert_array_equal(stream.step(tencode(events), representation="tencode"), from_events)
    assert model.prepare(events).shape[-2:] == (266, 392)  # lower bound of 266x350 for 40x60
    assert model.prepare(events, input_size=(42, 42)).shape[-2:] == (42, 56)
    small, _ = model.predict(events, input_size=(42, 42))
    assert small.shape == (40, 60) and np.abs(small - from_events).max() > 1e-4
    with pytest.raises(InputError, match=r"values in \[0, 1\].*divide a 0..255 image by 255"):
        model.predict(255 * tencode(events), representation="tencode")
    with pytest.raises(InputError, match="unknown representation 'histogram'"):
        model.predict(tencode(events), representation="histogram")
    with pytest.raises(InputError, match="raw events need none"):
        model.predict(events, representation="voxel")
    with pytest.raises(InputError, match="no normalised log depth output"):
        model.predict(events, output="log_depth")


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


def test_recurrent_input_too_small_is_one_line():
    """The 1/28 level must keep 3 px for the unpadded ConvLSTM: below 70 px an InputError, not a
    convolution error from deep inside the network."""
    with pytest.raises(InputError, match="at least 70 px per side"):
        DepthAnyEventConfig(recurrent=True, input_size=(56, 56))
    model = DepthAnyEvent(encoder="vitp", recurrent=True).eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 70, 70))
        with pytest.raises(InputError, match="network input of at least 70 px"):
            model(torch.zeros(1, 3, 56, 84))
