"""ONNX export (`anydepth.export.onnx`) and the onnxruntime runner (the CLI: tests/cli/test_export.py).

Reference: our PyTorch models on the same input, in the same process. Error measure: max |onnx -
torch| / max |torch| per output (depth and every state tensor), bound 1e-4. Models are small
(`vitp` encoders, small inputs) with deterministic random weights; each file is exported once per
module. The image size is checked dynamic by running a second size through the same file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.errors import CheckpointError, InputError
from anydepth.eventdepth import DepthStream, load_model
from anydepth.events.container import EventArray
from anydepth.export.onnx import OnnxModel, _require, bicubic_matrix, evaluate_dim, export_onnx
from anydepth.foundation import DepthAnythingV2, get_config
from tests.support import requires, synthetic_bgr
from tests.support.weights import random_state_dict, random_weights

# every file here is exported once per module: seconds each
pytestmark = [requires("onnxruntime", "onnxscript"), pytest.mark.slow]

TOLERANCE = 1e-4


def relative_error(got, expected) -> float:
    got, expected = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, np.float64) for v in (got, expected))
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))


def random_window(sensor, seed: int, count: int = 3000) -> EventArray:
    rng = np.random.default_rng(seed)
    height, width = sensor
    return EventArray.from_arrays(rng.integers(0, width, count), rng.integers(0, height, count),
                                  np.sort(rng.integers(0, 50_000, count)), rng.integers(0, 2, count), sensor)


def dav2(head: str) -> DepthAnythingV2:
    config = get_config("vitp", head=head, max_depth=20.0)
    model = DepthAnythingV2(config)
    model.load_state_dict(random_state_dict(config, seed=1))
    return model.eval()


def student(name: str, **config):
    model = load_model(name, **config)
    model.load_state_dict(random_weights({k: v.shape for k, v in model.state_dict().items()}, seed=2))
    return model.eval()


@pytest.fixture(scope="module")
def exported_dav2(tmp_path_factory):
    """The relative head (the metric head's export, through the CLI: tests/cli/test_export.py)."""
    model = dav2("relative")
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "dav2_relative.onnx", (70, 98))


@pytest.fixture(scope="module")
def exported_daer(tmp_path_factory):
    model = student("depthanyevent-r", encoder="vitp", input_size=(112, 140))
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "daer.onnx", (48, 64))


@pytest.fixture(scope="module")
def exported_e2depth(tmp_path_factory):
    model = student("e2depth", base_num_channels=8, num_encoders=2)  # every layer kind, fewer of them
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "e2depth.onnx", (48, 64))


def test_dav2_matches_pytorch_at_three_sizes(exported_dav2):
    model, exported = exported_dav2
    assert exported.dynamic and list(exported.inputs) == ["x"] and list(exported.outputs) == ["depth"]
    runner = OnnxModel(exported.path, model)
    for size in [(70, 98), (112, 84), (518, 518)]:  # the traced size, another, the native 37 x 37 grid
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        with torch.no_grad():
            expected = model(x)
        assert relative_error(runner(x), expected) < TOLERANCE, size
    image = synthetic_bgr(50, 70)  # the PyTorch model's pre/post-processing around the ONNX forward
    assert relative_error(runner.infer_image(image, 56), model.infer_image(image, 56)) < TOLERANCE


def test_daer_state_carried_over_three_steps(exported_daer):
    model, exported = exported_daer
    assert exported.dynamic and len(exported.inputs) == 9 and list(exported.outputs)[8] == "state_out_7"
    printed = "\n".join(exported.lines())  # what `anydepth export onnx` prints
    assert "state_in_7" in printed and "state_out_7" in printed
    runner = OnnxModel(exported.path, model)
    for sensor in [(48, 64), (60, 40)]:  # network inputs 112 x 140 (traced) and 210 x 140
        torch_state = onnx_state = None
        for step in range(3):
            x = model.prepare(random_window(sensor, seed=10 * step + sensor[0]))
            with torch.no_grad():
                expected, torch_state = model(x, torch_state)
            got, onnx_state = runner(x, onnx_state)
            assert relative_error(got, expected) < TOLERANCE, (sensor, step)
            leaves = torch.utils._pytree.tree_leaves(torch_state)
            assert len(onnx_state) == len(leaves) == 8
            for got_leaf, expected_leaf in zip(onnx_state, leaves):
                assert relative_error(got_leaf, expected_leaf) < TOLERANCE, (sensor, step)


def test_daer_stream_through_the_runner(exported_daer):
    model, exported = exported_daer
    windows = [random_window((48, 64), seed) for seed in range(3)]
    torch_stream, onnx_stream = DepthStream(model), DepthStream(OnnxModel(exported.path, model))
    depths = [(torch_stream.step(w), onnx_stream.step(w)) for w in windows]
    for expected, got in depths:
        assert got.shape == (48, 64) and relative_error(got, expected) < TOLERANCE
    assert relative_error(depths[1][1], depths[2][1]) > 1e-3  # the state moves on (windows differ too)


def test_e2depth_with_state(exported_e2depth):
    model, exported = exported_e2depth
    assert exported.dynamic and len(exported.inputs) == 1 + 2 * model.config.num_encoders
    runner = OnnxModel(exported.path, model)
    for sensor in [(48, 64), (72, 40)]:
        torch_state = onnx_state = None
        for step in range(3):
            window = random_window(sensor, seed=step)
            expected, torch_state = model.predict(window, torch_state)
            got, onnx_state = runner.predict(window, onnx_state)
            assert relative_error(got, expected) < TOLERANCE, (sensor, step)
            for got_leaf, expected_leaf in zip(onnx_state, torch.utils._pytree.tree_leaves(torch_state)):
                assert relative_error(got_leaf, expected_leaf) < TOLERANCE


def test_zero_state_shapes_follow_the_input(exported_daer):
    model, exported = exported_daer
    runner = OnnxModel(exported.path, model)
    x = torch.zeros(1, 3, 126, 98)
    with torch.no_grad():
        _, state = model(x, None)
    assert [s.shape for s in runner.zero_state(126, 98)] == [tuple(s.shape) for s in torch.utils._pytree.tree_leaves(state)]


def test_bicubic_matrix_is_torch_bicubic():
    grid = torch.randn(1, 1, 37, 37, dtype=torch.float64)
    for size in [(5, 7), (50, 20)]:
        scale = [(n + 0.1) / 37 for n in size]
        expected = torch.nn.functional.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0]
        rows, columns = (bicubic_matrix(torch.arange(n, dtype=torch.float64), 37, torch.tensor([s], dtype=torch.float64))
                         for n, s in zip(size, scale))
        torch.testing.assert_close(rows @ grid[0, 0] @ columns.T, expected)


def test_evaluate_dim():
    assert evaluate_dim("(((s53//14)) - 1)//2 - 1", {"s53": 98}) == 2
    assert evaluate_dim("8*(((s0 - 1)//8)) + 8", {"s0": 60}) == 64
    assert evaluate_dim(5, {}) == 5
    with pytest.raises(InputError, match="cannot evaluate"):
        evaluate_dim("__import__('os')", {})


# ---- bad inputs --------------------------------------------------------------------------------
def test_library_bad_inputs(exported_dav2, exported_daer, tmp_path):
    model, exported = exported_dav2
    with pytest.raises(InputError, match="multiples of 14"):
        export_onnx(model, tmp_path / "x.onnx", (50, 50))
    with pytest.raises(InputError, match="opset must be between 18"):
        export_onnx(model, tmp_path / "x.onnx", opset=11)
    with pytest.raises(InputError, match=r"\.onnx"):
        export_onnx(model, tmp_path / "x.bin")
    with pytest.raises(CheckpointError, match="not exported from these weights"):
        OnnxModel(exported.path, dav2("metric"))
    with pytest.raises(CheckpointError, match="onnxruntime cannot load"):
        (tmp_path / "junk.onnx").write_bytes(b"not a model")
        OnnxModel(tmp_path / "junk.onnx", model)
    daer_model, daer_exported = exported_daer
    with pytest.raises(InputError, match="state has 2 tensors, the file takes 8"):
        OnnxModel(daer_exported.path, daer_model)(torch.zeros(1, 3, 42, 56), (np.zeros(1), np.zeros(1)))
    with pytest.raises(InputError, match="a side of 1"):  # DPT level 4 is 1 x 2 at 84 x 112
        export_onnx(student("depthanyevent-r", encoder="vitp", input_size=(84, 112)), tmp_path / "x.onnx", (48, 64))
    with pytest.raises(InputError, match=r"not installed: install anydepth\[onnx\]"):
        _require("onnxruntime", "no_such_module_xyz")
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".*partial*"))


def test_providers_follow_the_device():
    """--backend onnxruntime runs on --device: the CPU provider for the CPU, CUDA's (onnxruntime-gpu)
    for a CUDA device, and one line when this onnxruntime has no CUDA provider."""
    import onnxruntime

    from anydepth.export.onnx import providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert providers_for("cuda:0")[0] == ("CUDAExecutionProvider", {"device_id": 0})
    else:
        with pytest.raises(InputError, match="no CUDA execution provider; install onnxruntime-gpu"):
            providers_for("cuda")
