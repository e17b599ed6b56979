"""EReFormer: parity with the authors' code, the official parameter layout, the recurrent state,
the metres conversion, pre-processing, checkpoints and streaming.

How `tests/data/ereformer_reference.npz` was made (the authors' code is not in this repository):
- code: github liuxu0303/EReFormer at commit 22a6e1b748c596914ca4d99371f9d6284654fd36, unmodified
  (`model/model.py` `E2DepthTransformerRecurrent`, `model/EReFormer.py`, `model/swin.py`,
  `model/submodules.py`), run with the real mmcv 1.7.2 (pure-Python build, MMCV_WITH_OPS=0) on
  torch 2.13 CPU; the only stand-in was an empty `torchvision` module, which mmcv.runner imports
  at load time and which the model never uses.
- model: their `configs/EReFormer_dense_epoch200_000032.json` "model" block with `img_size`
  changed to [112, 160] (their decoder only runs at its `img_size`); eval mode, no_grad.
- weights: every parameter from `reference_parameters(shapes, REFERENCE_SEED)` below (the script
  imported this file); buffers (`relative_position_index`) as their model builds them.
- inputs: `reference_inputs()` below, three (1, 3, 112, 160) frames fed in order after
  `reset_states()`, the state carried by their model.
- stored: `raw` (3, 1, 1, 112, 160) their `pred_depth` per frame; `state_mean_abs` (3, 4) the mean
  |state| of each GRViT after each frame; `official_keys` / `official_shapes` their state dict
  layout (690 entries with Swin-S); `relative_position_index` of one block; `input_sums` and
  `weight_sums` to detect a change of the random generators.
The script (a few dozen lines outside the repository) did exactly this and `np.savez_compressed`.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from anydepth.errors import CheckpointError, InputError
from anydepth.eventdepth.base import DepthStream
from anydepth.eventdepth.ereformer import ARCH, EReFormer, EReFormerConfig, load_ereformer, padding_for, save_ereformer
from anydepth.eventdepth.log_depth import depth_to_log_depth, log_depth_to_depth
from anydepth.events.container import EventArray
from tests.support import DATA

REFERENCE = DATA / "ereformer_reference.npz"
REFERENCE_SEED = 20240517
REFERENCE_SIZE = (112, 160)
SWIN_S_PARAMETERS = 89_529_119


# ---- deterministic weights and inputs (shared with the script that made the reference) --------
def reference_parameters(shapes: dict[str, tuple[int, ...]], seed: int = REFERENCE_SEED) -> dict[str, torch.Tensor]:
    """Deterministic float32 values for parameters of the official EReFormer layout, each drawn
    from its own generator (seed, crc32(name)), so the result depends on neither key order nor
    machine. Magnitudes keep every branch visible in the output: LayerNorm gains 1 ± 0.1, biases
    0.05, relative position biases 0.5, position embeddings 0.2, linear / conv weights
    N(0, 1 / fan_in); GRViT's `proj` is scaled by 1e-3 because its linear attention sums over all
    tokens without normalisation."""
    parameters = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        noise = np.random.default_rng([seed, zlib.crc32(name.encode())]).standard_normal(shape, dtype=np.float32)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "weight" and len(shape) == 1:
            value = 1.0 + 0.1 * noise
        elif leaf == "bias":
            value = 0.05 * noise
        elif leaf == "relative_position_bias_table":
            value = 0.5 * noise
        elif leaf.startswith("pos_embed"):
            value = 0.2 * noise
        else:
            value = noise / np.sqrt(np.prod(shape[1:]))
            if ".GRViT_" in name and name.endswith(".proj.weight"):
                value = value * 1e-3
        parameters[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return parameters


def reference_inputs(seed: int = REFERENCE_SEED, frames: int = 3, bins: int = 3, size=REFERENCE_SIZE) -> np.ndarray:
    """(frames, 1, bins, H, W) float32 voxel-like inputs: N(0, 1) at 20 % of the pixels, 0 elsewhere."""
    rng = np.random.default_rng([seed, 1])
    values = rng.standard_normal((frames, 1, bins, *size), dtype=np.float32)
    events = rng.random((frames, 1, 1, *size)) < 0.2
    return np.where(events, values, np.float32(0)).astype(np.float32)


def load_reference_weights(model: torch.nn.Module) -> torch.nn.Module:
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    missing, unexpected = model.load_state_dict(reference_parameters(shapes), strict=False)
    assert not unexpected and all(key.endswith("relative_position_index") for key in missing)
    return model.eval()


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> EReFormer:
    torch.manual_seed(0)
    return load_reference_weights(EReFormer())


@pytest.fixture(scope="module")
def reference() -> dict:
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


TINY = EReFormerConfig(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), img_size=(64, 64))


@pytest.fixture
def tiny() -> EReFormer:
    torch.manual_seed(1)
    return EReFormer(TINY).eval()


def _events(seed: int, sensor=(60, 80), count=3000) -> EventArray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 50_000, count)) + 50_000 * seed
    return EventArray.from_arrays(rng.integers(0, sensor[1], count), rng.integers(0, sensor[0], count), t,
                                  rng.integers(0, 2, count), sensor_size=sensor)


# ---- layout and parity --------------------------------------------------------------------------
def test_parameter_count_is_swin_s_ereformer(model):
    count = sum(p.numel() for p in model.parameters())
    assert count == SWIN_S_PARAMETERS
    assert abs(count / 1e6 - 89.5) < 0.05


def test_state_dict_layout_is_the_official_one(model, reference):
    state = model.state_dict()
    assert list(state) == [str(key) for key in reference["official_keys"]]
    shapes = [tuple(int(v) for v in row[row >= 0]) for row in reference["official_shapes"]]
    assert [tuple(v.shape) for v in state.values()] == shapes
    index = state["transformerrecurrent.SwinTransformer.stages.0.blocks.1.attn.w_msa.relative_position_index"]
    assert torch.equal(index, torch.from_numpy(reference["relative_position_index"].astype(np.int64)))


def test_reference_generators_are_unchanged(model, reference):
    np.testing.assert_allclose(reference_inputs().reshape(3, -1).sum(axis=1), reference["input_sums"], rtol=1e-6)
    probes = ("transformerrecurrent.GRViT_0.proj.weight", "transformerrecurrent.head.2.bias",
              "transformerrecurrent.SwinTransformer.stages.2.blocks.17.ffn.layers.1.weight")
    state = model.state_dict()
    sums = [float(state[key].double().sum()) for key in probes]
    np.testing.assert_allclose(sums, reference["weight_sums"], rtol=1e-6, atol=1e-9)


def test_matches_the_authors_code_over_a_recurrent_sequence(model, reference):
    frames = torch.from_numpy(reference_inputs())
    state = None
    with torch.no_grad():
        for index, x in enumerate(frames):
            raw, state = model(x, state)
            np.testing.assert_allclose(raw.numpy(), reference["raw"][index], rtol=1e-4, atol=1e-4)
            means = [float(s.abs().mean()) for s in state]
            np.testing.assert_allclose(means, reference["state_mean_abs"][index], rtol=1e-4)
    # the reference is informative: outputs vary over pixels and frames
    assert reference["raw"].std() > 0.02
    assert np.abs(reference["raw"][2] - reference["raw"][0]).max() > 0.01


# ---- recurrent state ------------------------------------------------------------------------------
def test_none_state_is_the_zero_state_and_carrying_it_matters(tiny):
    x0, x1 = torch.from_numpy(reference_inputs(seed=7, frames=2, size=(64, 64)))
    with torch.no_grad():
        fresh, state = tiny(x0, None)
        zero, _ = tiny(x0, tiny.zero_state(1, 64, 64))
        assert torch.equal(fresh, zero)
        carried, _ = tiny(x1, state)
        reset, _ = tiny(x1, None)
    assert len(state) == 4 and [tuple(s.shape) for s in state] == tiny.state_shapes(1, 64, 64)
    assert (carried - reset).abs().max() > 1e-3


def test_training_reaches_every_parameter_through_the_recurrence(tiny):
    tiny.train()
    x = torch.from_numpy(reference_inputs(seed=5, frames=2, size=(48, 64))).squeeze(1)
    raw, state = tiny(x[:1], None)
    raw, state = tiny(x[1:], state)
    (raw.mean() + sum(s.mean() for s in state)).backward()
    without = [name for name, p in tiny.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


def test_state_of_another_size_is_rejected(model):
    with torch.no_grad():
        _, state = model(torch.zeros(1, 3, 32, 32), None)
        with pytest.raises(InputError, match="reset the state"):
            model(torch.zeros(1, 3, 64, 32), state)


# ---- pre- and post-processing ---------------------------------------------------------------------
def test_to_depth_converts_normalised_log_depth_to_metres(tiny):
    assert log_depth_to_depth(1.0) == pytest.approx(80.0)
    # by hand: 80 e^-3.70378 = 80 · 0.0246302 = 1.97042 m; 80 e^-1.85189 = 80 · 0.156940 = 12.5552 m
    assert log_depth_to_depth(0.0) == pytest.approx(1.97042, abs=1e-4)
    assert log_depth_to_depth(0.5) == pytest.approx(12.5552, abs=1e-3)
    assert depth_to_log_depth(np.array([12.5552]), eps=1e-6)[0] == pytest.approx(0.5, abs=1e-5)  # EReFormer's targets
    # a (60, 80) sensor is padded to (64, 80): 2 rows on top, 2 at the bottom
    assert padding_for((60, 80)) == (2, 2, 0, 0)
    raw = torch.full((1, 1, 64, 80), 0.0)
    raw[:, :, 2:62] = 0.5
    depth = tiny.to_depth(raw, (60, 80))
    assert depth.shape == (1, 60, 80)
    torch.testing.assert_close(depth, torch.full((1, 60, 80), 12.5552), atol=1e-3, rtol=0)
    # an output of another size is resized, not cropped
    assert tiny.to_depth(torch.ones(1, 1, 30, 40), (60, 80)).shape == (1, 60, 80)


def test_prepare_normalises_and_pads_centred(tiny):
    events = _events(0, sensor=(50, 70))
    x = tiny.prepare(events)
    assert x.shape == (1, 3, 64, 80) and x.dtype == torch.float32
    top, bottom, left, right = padding_for((50, 70))
    assert (top, bottom, left, right) == (7, 7, 5, 5)
    inner = x[0, :, top:top + 50, left:left + 70]
    assert x.abs().sum() == pytest.approx(float(inner.abs().sum()))  # padding is zero
    nonzero = inner[inner != 0]
    assert float(nonzero.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(nonzero.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    voxels = np.zeros((3, 50, 70), np.float32)
    voxels[1, 10, 10], voxels[2, 20, 30] = 2.0, -4.0
    padded = tiny.prepare(voxels, "voxel")[0, :, top:top + 50, left:left + 70]
    assert float(padded[1, 10, 10]) == pytest.approx(1.0) and float(padded[2, 20, 30]) == pytest.approx(-1.0)
    with pytest.raises(InputError, match=r"\(3, H, W\)"):
        tiny.prepare(np.zeros((5, 50, 70), np.float32), "voxel")
    with pytest.raises(InputError, match="NaN"):
        tiny.prepare(np.full((3, 50, 70), np.nan, np.float32), "voxel")


def test_depth_stream_gives_finite_metric_depth(tiny):
    stream = DepthStream(tiny)
    depths = [stream.step(_events(seed, sensor=(60, 80))) for seed in range(3)]
    for depth in depths:
        assert depth.shape == (60, 80) and depth.dtype == np.float32
        assert np.isfinite(depth).all()
        assert depth.min() >= 80 * np.exp(-3.70378) - 1e-3 and depth.max() <= 80.0 + 1e-3
    assert not np.allclose(depths[0], depths[2])
    assert len(stream.step_seconds) == 3 and stream.mean_latency_ms > 0


# ---- checkpoints ----------------------------------------------------------------------------------
def test_checkpoint_round_trip_in_the_official_container(tiny, tmp_path):
    path = tmp_path / "model_best.pth.tar"
    save_ereformer(tiny, path, epoch=7)
    assert [p.name for p in tmp_path.iterdir()] == ["model_best.pth.tar"]  # no temporary left
    container = torch.load(path, weights_only=True)
    assert container["arch"] == ARCH and container["epoch"] == 7
    assert container["config"]["model"]["in_chans"] == 3 and container["config"]["model"]["depth"] == [2, 2, 2, 2]
    assert container["config"]["data_loader"]["validation"]["clip_distance"] == 80.0
    loaded = load_ereformer(path)
    assert loaded.config == tiny.config and not loaded.training
    for key, value in tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    x = torch.from_numpy(reference_inputs(seed=3, frames=1, size=(48, 64))[0])
    with torch.no_grad():
        assert torch.equal(tiny(x)[0], loaded(x)[0])
    assert load_ereformer(path, max_depth=100.0).config.max_depth == 100.0


def test_official_trainer_container_loads(tiny, tmp_path):
    """What their BaseTrainer writes: the full JSON config (with their keys only), optimizer, logger."""
    path = tmp_path / "checkpoint-epoch200-loss-0.1234.pth.tar"
    model_block = {"window_size": 7, "pretrained": "../full-tfer/model/swin_small_patch4_window7_224.pth",
                   "embed_dim": 24, "img_size": [64, 64], "num_decoders": 4, "patch_size": 4, "in_chans": 3,
                   "depth": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4], "upsampling_method": "bilinear",
                   "align_corners": True, "gpu": 0}
    config = {"name": "EReFormer_dense_epoch200_000032", "arch": ARCH, "model": model_block,
              "data_loader": {"normalize": True, "validation": {"clip_distance": 80.0}}}
    torch.save({"arch": ARCH, "epoch": 200, "logger": None, "state_dict": tiny.state_dict(),
                "optimizer": {"state": {}, "param_groups": []}, "monitor_best": 0.1234, "config": config}, path)
    loaded = load_ereformer(path)
    assert loaded.config.embed_dim == 24 and loaded.config.img_size == (64, 64) and loaded.config.max_depth == 80.0


def test_checkpoint_errors_name_the_file_and_the_problem(tiny, tmp_path):
    state = tiny.state_dict()
    config = TINY.to_official()

    missing = tmp_path / "missing.pth"
    torch.save({"arch": ARCH, "config": config,
                "state_dict": {k: v for k, v in state.items() if not k.endswith("GRViT_2.update_gate.bias")}}, missing)
    with pytest.raises(CheckpointError, match=r"missing\.pth: .*1 missing keys .*GRViT_2\.update_gate\.bias") as error:
        load_ereformer(missing)
    assert "\n" not in str(error.value)

    unexpected = tmp_path / "unexpected.pth"
    torch.save({"arch": ARCH, "config": config, "state_dict": {**state, "module.extra": torch.zeros(1)}}, unexpected)
    with pytest.raises(CheckpointError, match=r"unexpected\.pth: .*1 unexpected keys \(e\.g\. module\.extra\)"):
        load_ereformer(unexpected)

    other_bins = tmp_path / "bins.pth"
    torch.save({"arch": ARCH, "config": EReFormerConfig(**{**TINY.to_dict(), "num_bins": 5}).to_official(),
                "state_dict": state}, other_bins)
    with pytest.raises(CheckpointError, match=r"shape of .*patch_embed\.projection\.weight is \(24, 3, 4, 4\)"):
        load_ereformer(other_bins)

    corrupt = tmp_path / "corrupt.pth.tar"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"corrupt\.pth\.tar: cannot read checkpoint"):
        load_ereformer(corrupt)

    plain = tmp_path / "plain.pth"
    torch.save(state, plain)
    with pytest.raises(CheckpointError, match=r"plain\.pth: not an EReFormer checkpoint"):
        load_ereformer(plain)

    foreign = tmp_path / "e2depth.pth.tar"
    torch.save({"arch": "E2VIDRecurrent", "state_dict": {}, "config": {}}, foreign)
    with pytest.raises(CheckpointError, match=r"e2depth\.pth\.tar: holds architecture 'E2VIDRecurrent'"):
        load_ereformer(foreign)

    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": state}, bare)
    with pytest.raises(CheckpointError, match="carries no config"):
        load_ereformer(bare)
    assert load_ereformer(bare, config=TINY).config == TINY

    with pytest.raises(CheckpointError, match=r"nothing\.pth: no such checkpoint file"):
        load_ereformer(tmp_path / "nothing.pth")

