"""E2Depth: parity with the authors' code, the official checkpoint container and its errors, the
recurrent state, pre-processing and the metres conversion.

How `tests/data/e2depth_reference.npz` was made
-----------------------------------------------
Authors' code: github.com/uzh-rpg/rpg_e2depth at commit 17d453c175d94a6e4e666b4dafb64b072eb2df5d
(files e2depth/model/{model,unet,submodules}.py, utils/{loading_utils,event_readers,
event_tensor_utils,inference_utils}.py, depth_prediction.py, options/inference_options.py,
evaluation.py), unmodified, run from a copy outside this repository with torch 2.13 (CPU), numpy 2.4.
Two stand-ins, set by the driver script before importing their modules, because this machine has no
GPU and numpy 2: `utils.timers.CudaTimer` replaced by their own CPU `Timer`, and `np.alltrue = np.all`.

For each case of `CASES` (name -> official `config["model"]` dict, weight seed, input seed, input
shape), a driver script (not in this repository):
1. built their `E2VIDRecurrent(model_config)`, filled its state dict with
   `official_random_state_dict(their_shapes, weight_seed)` (defined below, imported from this file),
   loaded it strictly and saved the official container {arch, epoch, monitor_best, config: {arch,
   model}, state_dict} as a .pth.tar;
2. wrote the 3 voxel grids of `reference_voxels(input_seed, shape)` (below) as
   `event_tensor_%010d.npy` with a `timestamps.txt`, and ran the loop of their `run_depth.py` in
   process: `load_model(path)`, `VoxelGridDataset` (normalises each grid), `DepthEstimator` with
   their default depth inference options plus `--save_numpy` and `use_gpu = False`
   (`EventPreprocessor` normalisation, `CropParameters` reflection padding, the model with the
   recurrent state carried, crop back), `update_reconstruction(event_tensor, idx)` per grid;
3. stored, per case, the padded network output (captured by a forward hook on their model:
   `<case>_raw_padded` (3, h, w)), the sorted state-dict keys (`<case>_keys`) and the model config
   (`<case>_config`, JSON); for "official" also the metres of their `evaluation.prepare_depth_data`
   applied to the cropped outputs that `--save_numpy` wrote (`official_depth_m` (3, H, W); 80 m,
   reg_factor 3.70378). The script also checked that their saved numpy equals the crop of the
   captured padded output, and that their `load_model` reads a file written by our `save_e2depth`
   and then gives our outputs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from anydepth.errors import CheckpointError, InputError
from anydepth.eventdepth.base import DepthStream
from anydepth.eventdepth.e2depth import CropParameters, E2Depth, E2DepthConfig, load_e2depth, save_e2depth
from anydepth.eventdepth.log_depth import depth_to_log_depth, log_depth_to_depth
from anydepth.events.container import EventArray
from anydepth.events.representations import voxel_grid
from tests.support import DATA

REFERENCE = DATA / "e2depth_reference.npz"

# name -> (official model config, weight seed, input seed, input shape (steps, bins, H, W))
CASES = {
    # the model block of the released E2Depth's training config (train_e2depth_si_grad_loss_mixed.json)
    "official": ({"num_bins": 5, "skip_type": "sum", "recurrent_block_type": "convlstm", "num_encoders": 3,
                  "base_num_channels": 32, "num_residual_blocks": 2, "use_upsample_conv": True, "norm": "none"},
                 0, 1, (3, 5, 60, 77)),
    # the other branches: concatenated skips, ConvGRU, transposed convs, batch norm
    "variant_bn": ({"num_bins": 3, "skip_type": "concat", "recurrent_block_type": "convgru", "num_encoders": 2,
                    "base_num_channels": 8, "num_residual_blocks": 1, "use_upsample_conv": False, "norm": "BN"},
                   2, 3, (3, 3, 30, 37)),
    # instance norm, and the official defaults for every missing key (4 encoders, 2 residual blocks)
    "variant_in": ({"num_bins": 2, "base_num_channels": 4, "norm": "IN"}, 4, 5, (3, 2, 30, 37)),
}


def official_random_state_dict(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic weights for a state dict of these shapes (key -> shape): one CPU generator,
    keys in sorted order, He-scaled conv weights (transposed convs by their per-output fan-in),
    biases 0.05·N(0,1), norm scales 1 + 0.1·N(0,1), running means 0.1·N(0,1), running variances
    1 + 0.2·|N(0,1)|, num_batches_tracked 0 (no draw)."""
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        parent, name = key.split(".")[-2:]
        if name == "num_batches_tracked":
            state_dict[key] = torch.tensor(0, dtype=torch.long)
            continue
        noise = torch.randn(shape, generator=generator)
        if name == "running_var":
            value = 1.0 + 0.2 * noise.abs()
        elif name == "running_mean":
            value = 0.1 * noise
        elif parent in ("norm_layer", "bn1", "bn2"):
            value = 1.0 + 0.1 * noise
        elif name == "bias":
            value = 0.05 * noise
        else:
            taps = shape[2] * shape[3]
            fan_in = shape[0] * taps / 4 if parent == "transposed_conv2d" else shape[1] * taps
            value = noise * math.sqrt(2.0 / fan_in)
        state_dict[key] = value.contiguous()
    return state_dict


def reference_voxels(seed: int, shape: tuple[int, int, int, int]) -> np.ndarray:
    """(steps, bins, H, W) float32 sparse voxel grids: about 30 % non-zero, N(0, 1.5) values."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.5, size=shape) * (rng.random(size=shape) < 0.3)
    return values.astype(np.float32)


def build_case(name: str) -> tuple[E2Depth, np.ndarray]:
    model_config, weight_seed, input_seed, shape = CASES[name]
    model = E2Depth(E2DepthConfig.from_official(model_config))
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(official_random_state_dict(shapes, weight_seed), strict=True)
    return model.eval(), reference_voxels(input_seed, shape)


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def official_model():
    return build_case("official")


def run_sequence(model: E2Depth, windows) -> list[torch.Tensor]:
    state, outputs = None, []
    with torch.no_grad():
        for window in windows:
            raw, state = model(model.prepare(window, None if isinstance(window, EventArray) else "voxel"), state)
            outputs.append(raw)
    return outputs


def synthetic_events(sensor_size=(60, 77), count=20_000, duration_us=200_000, seed=7) -> EventArray:
    rng = np.random.default_rng(seed)
    height, width = sensor_size
    t = np.sort(rng.integers(0, duration_us, count))
    # a moving vertical edge plus noise, so that windows differ
    x = np.where(rng.random(count) < 0.7, (t * width // duration_us + rng.integers(-2, 3, count)).clip(0, width - 1),
                 rng.integers(0, width, count))
    return EventArray.from_arrays(x, rng.integers(0, height, count), t, rng.integers(0, 2, count), sensor_size)


# ---- architecture and parity with the authors' code ---------------------------------------------
def test_parameter_names_and_count_are_the_official_ones(reference):
    model = E2Depth()
    assert model.config == E2DepthConfig.from_official(CASES["official"][0])
    assert sorted(model.state_dict()) == list(reference["official_keys"])
    assert sum(p.numel() for p in model.parameters()) == 10_710_401  # 10.71 M
    assert model.recurrent and model.output_kind == "metric"


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_the_official_code(case, reference):
    model_config, _, _, shape = CASES[case]
    assert json.loads(str(reference[f"{case}_config"])) == model_config
    model, voxels = build_case(case)
    assert sorted(model.state_dict()) == list(reference[f"{case}_keys"])
    raw = torch.cat(run_sequence(model, voxels))[:, 0].numpy()
    expected = reference[f"{case}_raw_padded"]
    assert raw.shape == expected.shape
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected[1] - expected[0]).max() > 1e-2  # the reference is not degenerate


def test_metres_match_the_official_evaluation(official_model, reference):
    model, voxels = official_model
    raw = torch.cat(run_sequence(model, voxels))
    depth_m = model.to_depth(raw, voxels.shape[-2:]).numpy()
    assert depth_m.shape == reference["official_depth_m"].shape == (3, 60, 77)
    np.testing.assert_allclose(depth_m, reference["official_depth_m"], rtol=1e-4, atol=1e-4)


# ---- the official container ------------------------------------------------------------------
def test_checkpoint_round_trip(official_model, tmp_path):
    model, voxels = official_model
    path = tmp_path / "e2depth.pth.tar"
    save_e2depth(model, path, epoch=7, monitor_best=0.125)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    container = torch.load(path, weights_only=True)
    assert set(container) == {"arch", "epoch", "monitor_best", "config", "state_dict"}
    assert container["arch"] == "E2VIDRecurrent" and container["epoch"] == 7 and container["monitor_best"] == 0.125
    assert container["config"]["arch"] == "E2VIDRecurrent"
    assert container["config"]["model"] == CASES["official"][0]
    loaded = load_e2depth(path)
    assert loaded.config == model.config and not loaded.training
    for first, second in zip(run_sequence(model, voxels), run_sequence(loaded, voxels)):
        assert torch.equal(first, second)


def test_compressed_container_and_conversion_constants(tmp_path):
    model = E2Depth(E2DepthConfig(num_bins=2, num_encoders=2, base_num_channels=4, num_residual_blocks=1))
    # the official compress_model.py layout: {arch, state_dict, model}
    path = tmp_path / "model_compressed.pth.tar"
    torch.save({"arch": "E2VIDRecurrent", "state_dict": model.state_dict(), "model": model.config.to_official()}, path)
    assert load_e2depth(path).config == model.config
    # D_max and alpha other than the defaults survive save/load
    custom = E2Depth(E2DepthConfig(num_bins=2, num_encoders=2, base_num_channels=4, max_depth=100.0, alpha=4.0))
    save_e2depth(custom, tmp_path / "custom.pth.tar")
    assert load_e2depth(tmp_path / "custom.pth.tar").config == custom.config
    # explicit overrides of the file's config
    assert load_e2depth(tmp_path / "custom.pth.tar", max_depth=50.0).config.max_depth == 50.0
    with pytest.raises(InputError, match="unknown E2Depth config keys: depth_scale"):
        load_e2depth(tmp_path / "custom.pth.tar", depth_scale=2.0)


def _small_container() -> dict:
    model = E2Depth(E2DepthConfig(num_bins=2, num_encoders=2, base_num_channels=4, num_residual_blocks=1))
    return {"arch": "E2VIDRecurrent", "epoch": 1, "monitor_best": 0.0,
            "config": {"arch": "E2VIDRecurrent", "model": model.config.to_official()},
            "state_dict": model.state_dict()}


def _without_model_config(container):
    del container["config"]["model"]


def _with_bad_norm(container):
    container["config"]["model"]["norm"] = "GN"


def _missing_and_unexpected(container):
    del container["state_dict"]["unetrecurrent.pred.conv2d.bias"]
    container["state_dict"]["unetrecurrent.extra.weight"] = torch.zeros(1)


def _other_bins(container):
    container["config"]["model"]["num_bins"] = 3


def _not_tensors(container):
    container["state_dict"]["unetrecurrent.pred.conv2d.bias"] = [0.0]


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(arch="E2VID"), r"holds architecture 'E2VID', not 'E2VIDRecurrent' \(E2Depth\)"),
    (_without_model_config, r"has no model config \(neither 'model' nor 'config\[\"model\"\]'\)"),
    (_with_bad_norm, r"bad model config \(norm must be None, 'BN' or 'IN', got 'GN'\)"),
    (_missing_and_unexpected, r"does not match E2Depth \(2 bins, 2 encoders, base 4, convlstm, skip sum\): "
                              r"1 missing keys \(e.g. unetrecurrent.pred.conv2d.bias\); "
                              r"1 unexpected keys \(e.g. unetrecurrent.extra.weight\)"),
    (_other_bins, r"shape of unetrecurrent.head.conv2d.weight is \(4, 2, 5, 5\), E2Depth \(3 bins, .*\) "
                  r"expects \(4, 3, 5, 5\)"),
    (_not_tensors, "state_dict is not a dict of tensors"),
], ids=["arch", "no-model-config", "bad-norm", "keys", "shape", "not-tensors"])
def test_checkpoint_errors_name_the_file_and_the_problem(change, message, tmp_path):
    container = _small_container()
    change(container)
    path = tmp_path / "broken.pth.tar"
    torch.save(container, path)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_e2depth(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_unreadable_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good.pth.tar"
    torch.save(_small_container(), good)
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pth.tar"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    a_list = tmp_path / "list.pth.tar"
    torch.save([1, 2, 3], a_list)
    cases = [
        (tmp_path / "absent.pth.tar", "no such checkpoint file"),
        (truncated, r"cannot read checkpoint \("),
        (garbage, r"cannot read checkpoint \("),
        (a_list, r"expected a checkpoint dict, found a list"),
    ]
    for path, message in cases:
        with pytest.raises(CheckpointError, match=message) as caught:
            load_e2depth(path)
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


# ---- recurrent state ---------------------------------------------------------------------------
def test_carried_state_changes_the_output(official_model):
    model, voxels = official_model
    with torch.no_grad():
        first, state = model(model.prepare(voxels[0], "voxel"), None)
        carried, _ = model(model.prepare(voxels[1], "voxel"), state)
        reset, _ = model(model.prepare(voxels[1], "voxel"), None)
    assert (carried - reset).abs().max() > 1e-3


def test_stream_equals_manual_carry_and_none_equals_zero_state(official_model):
    model, voxels = official_model
    stream = DepthStream(model)
    streamed = [stream.step(grid, representation="voxel") for grid in voxels[:2]]
    with torch.no_grad():
        x0, x1 = model.prepare(voxels[0], "voxel"), model.prepare(voxels[1], "voxel")
        raw0, state = model(x0, None)
        raw1, _ = model(x1, state)
        zero_raw0, zero_state = model(x0, model.zero_state(1, *x0.shape[-2:]))
        reset_raw1, _ = model(x1, None)
    size = voxels.shape[-2:]
    np.testing.assert_array_equal(streamed[0], model.to_depth(raw0, size)[0].numpy())
    np.testing.assert_array_equal(streamed[1], model.to_depth(raw1, size)[0].numpy())
    assert torch.equal(zero_raw0, raw0)
    for (zero_hidden, zero_cell), (hidden, cell) in zip(zero_state, state):
        assert torch.equal(zero_hidden, hidden) and torch.equal(zero_cell, cell)
    stream.reset()
    assert stream.state is None
    np.testing.assert_array_equal(stream.step(voxels[1], representation="voxel"), model.to_depth(reset_raw1, size)[0].numpy())


# ---- pre- and post-processing ------------------------------------------------------------------
def test_crop_parameters_follow_the_official_padding():
    crop = CropParameters(60, 77, 3)
    assert (crop.padded_height, crop.padded_width) == (64, 80)
    assert (crop.padding_top, crop.padding_bottom, crop.padding_left, crop.padding_right) == (2, 2, 2, 1)
    assert (crop.iy0, crop.iy1, crop.ix0, crop.ix1) == (2, 62, 2, 79)
    x = torch.arange(60 * 77, dtype=torch.float32).reshape(1, 1, 60, 77)
    padded = crop.pad(x)
    assert padded.shape == (1, 1, 64, 80)
    assert torch.equal(crop.crop(padded), x)
    assert torch.equal(padded[0, 0, 0, 2:79], x[0, 0, 2]) and torch.equal(padded[0, 0, 1, 2:79], x[0, 0, 1])  # reflection
    assert torch.equal(padded[0, 0, 2:62, 79], x[0, 0, :, 75])
    assert CropParameters(64, 80, 3).pad(x.new_zeros(1, 1, 64, 80)).shape == (1, 1, 64, 80)
    with pytest.raises(InputError, match="too small to reflect-pad"):
        CropParameters(3, 77, 3).pad(torch.zeros(1, 1, 3, 77))


def test_prepare_events_equals_prepare_of_their_voxel_grid(official_model):
    model, _ = official_model
    events = synthetic_events()
    from_events = model.prepare(events)
    assert from_events.shape == (1, 5, 64, 80) and from_events.dtype == torch.float32
    from_grid = model.prepare(voxel_grid(events, 5, normalize=True), "voxel")
    torch.testing.assert_close(from_events, from_grid, rtol=1e-5, atol=1e-5)
    raw_grid = voxel_grid(events, 5, normalize=False)  # the official loader normalises raw grids
    torch.testing.assert_close(model.prepare(raw_grid, "voxel"), from_events, rtol=1e-5, atol=1e-5)
    nonzero = from_events[0, :, 2:62, 2:79][from_events[0, :, 2:62, 2:79] != 0]
    assert abs(float(nonzero.mean())) < 1e-4 and abs(float(nonzero.std(unbiased=False)) - 1) < 1e-4


def test_bad_inputs_are_refused(official_model):
    model, voxels = official_model
    with pytest.raises(InputError, match=r"expects a voxel grid \(5, H, W\), got shape \(4, 60, 77\)"):
        model.prepare(voxels[0][:4], "voxel")
    bad = voxels[0].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        model.prepare(bad, "voxel")
    with pytest.raises(InputError, match="not a multiple of 8"):
        model(torch.zeros(1, 5, 60, 80))
    with pytest.raises(InputError, match=r"expects \(N, 5, h, w\)"):
        model(torch.zeros(1, 4, 64, 80))
    with pytest.raises(InputError, match="is not the padded size"):
        model.to_depth(torch.zeros(1, 1, 60, 77), (60, 77))


def test_metres_conversion_by_hand():
    assert log_depth_to_depth(1.0) == pytest.approx(80.0)
    assert log_depth_to_depth(0.0) == pytest.approx(1.9704198358)  # 80 e^-3.70378
    assert log_depth_to_depth(0.5) == pytest.approx(12.5552214981)  # 80 e^-1.85189
    values = torch.tensor([0.25, 0.5, 1.0])
    torch.testing.assert_close(log_depth_to_depth(values), torch.tensor([4.9738373, 12.5552215, 80.0]))
    np.testing.assert_allclose(depth_to_log_depth(np.array([4.9738373, 12.5552215, 80.0, 200.0, 0.0])),
                               [0.25, 0.5, 1.0, 1.0, 0.0], atol=1e-6)
    # to_depth crops the padding and converts: the padding holds 0 (would be 1.97 m), the inside 0.5
    model = E2Depth(E2DepthConfig(num_bins=2, num_encoders=2, base_num_channels=4))
    raw = torch.zeros(2, 1, 8, 12)
    crop = CropParameters(6, 9, 2)
    raw[..., crop.iy0:crop.iy1, crop.ix0:crop.ix1] = 0.5
    depth_m = model.to_depth(raw, (6, 9))
    assert depth_m.shape == (2, 6, 9)
    torch.testing.assert_close(depth_m, torch.full((2, 6, 9), 12.5552215))


def test_config_follows_the_official_loader():
    config = E2DepthConfig.from_official({"num_bins": 5})
    assert config.num_encoders == 4 and config.skip_type == "sum" and config.norm is None  # BaseE2VID defaults
    assert E2DepthConfig.from_official(CASES["official"][0]) == E2DepthConfig()
    assert E2DepthConfig(norm="none").norm is None
    assert E2DepthConfig.from_official(E2DepthConfig().to_official()) == E2DepthConfig()
    assert E2DepthConfig.from_dict(E2DepthConfig(max_depth=50.0).to_dict()) == E2DepthConfig(max_depth=50.0)
    with pytest.raises(InputError, match="skip_type must be"):
        E2DepthConfig(skip_type="mul")
    with pytest.raises(InputError, match="no 'num_bins'"):
        E2DepthConfig.from_official({})


def test_depth_stream_over_event_windows(official_model):
    model, _ = official_model
    events = synthetic_events()
    stream = DepthStream(model)
    depths = [stream.step(window) for window in events.windows_by_time(50_000)]
    assert len(depths) == 4 and len(stream.step_seconds) == 4
    for depth_m in depths:
        assert depth_m.shape == (60, 77) and depth_m.dtype == np.float32
        assert np.isfinite(depth_m).all() and depth_m.min() > 0 and depth_m.max() <= 80.0
    assert np.abs(depths[-1] - depths[0]).max() > 1e-3
    assert stream.mean_latency_ms > 0


def test_raw_log_depth_output_and_precomputed_voxels(official_model):
    """E2Depth returns its normalised log depth D̂ as well as metres; a precomputed voxel grid named
    by the caller gives what the events give; an unnamed array is refused, not guessed."""
    model, _ = official_model
    events = synthetic_events()
    log_depth, state = model.predict(events, output="log_depth")
    depth_m, _ = model.predict(events)
    assert log_depth.shape == depth_m.shape == (60, 77) and log_depth.dtype == np.float32
    assert log_depth.std() > 1e-3
    np.testing.assert_allclose(log_depth_to_depth(log_depth), depth_m, rtol=1e-5)
    np.testing.assert_allclose(depth_to_log_depth(depth_m), np.clip(log_depth, 0, 1), atol=1e-5)
    grid = voxel_grid(events, 5, normalize=False)
    from_grid, _ = model.predict(grid, representation="voxel", output="log_depth")
    np.testing.assert_allclose(from_grid, log_depth, atol=1e-5)
    stream = DepthStream(model)
    np.testing.assert_allclose(stream.step(grid, representation="voxel", output="log_depth"), log_depth, atol=1e-5)
    with pytest.raises(InputError, match="needs its representation"):
        model.predict(grid)
    with pytest.raises(InputError, match="not a tencode image"):
        model.predict(np.zeros((3, 60, 77), np.float32), representation="tencode")
    with pytest.raises(InputError, match="input_size does not apply"):
        model.predict(events, input_size=(64, 80))
    with pytest.raises(InputError, match="unknown output 'disparity'"):
        model.predict(events, output="disparity")
