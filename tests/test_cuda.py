"""CUDA paths (skipped without a GPU; `benchmarks/gpu_check.py` runs them with `-m cuda`): every
network gives on the GPU what it gives on the CPU, the bf16 autocast paths of training and
test-time optimisation run and learn, and the event simulator is bit-identical on both."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from anydepth.eventdepth import load_model
from anydepth.events import EventArray
from anydepth.foundation import DepthAnythingV2
from tests.support.weights import random_weights

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def seeded(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    model.load_state_dict(random_weights({k: v.shape for k, v in model.state_dict().items()}, seed))
    return model.eval()


def events(seed: int, sensor=(60, 80), count=4000) -> EventArray:
    rng = np.random.default_rng(seed)
    return EventArray.from_arrays(rng.integers(0, sensor[1], count), rng.integers(0, sensor[0], count),
                                  np.sort(rng.integers(0, 50_000, count)), rng.integers(0, 2, count), sensor)


@pytest.fixture(autouse=True)
def exact_fp32():
    """Compare fp32 with fp32: no TF32 matmuls or convolutions on the GPU."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.mark.parametrize("encoder", ["vits", "vitb"])
def test_depth_anything_v2_on_cuda_matches_cpu(encoder):
    model = seeded(DepthAnythingV2(encoder), 1)
    x = torch.rand(2, 3, 196, 252, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = model(x)
        cuda = model.cuda()(x.cuda()).cpu()
    assert cpu.std() > 0.01
    torch.testing.assert_close(cuda, cpu, rtol=1e-4, atol=1e-4 * float(cpu.abs().max()))


@pytest.mark.parametrize("name, config", [
    ("depthanyevent-r", {"encoder": "vits"}),
    ("depthanyevent", {"encoder": "vits", "input_channels": 5, "representation": "voxel"}),
    ("e2depth", {}),
    ("ereformer", {}),
])
def test_students_stream_on_cuda_as_on_cpu(name, config):
    model = seeded(load_model(name, **config), 2)
    windows = [events(seed) for seed in range(3)]
    expected, state = [], None
    for window in windows:
        depth, state = model.predict(window, state)
        expected.append(depth)
    model.cuda()
    state = None
    for window, reference in zip(windows, expected):
        depth, state = model.predict(window, state)
        assert np.isfinite(depth).all()
        np.testing.assert_allclose(depth, reference, rtol=2e-4, atol=2e-4 * float(np.abs(reference).max()))


def test_training_step_with_bf16_autocast_on_cuda(tmp_path):
    from anydepth.distill.config import config_from_dict
    from anydepth.distill.trainer import Trainer
    from anydepth.synth.sequences import EventSequenceSpec, generate_event_sequence, write_event_sequence

    spec = EventSequenceSpec(seconds=0.3, resolution=(48, 64), internal_fps=300, frame_hz=20, depth_hz=20, seed=0)
    write_event_sequence(generate_event_sequence(spec), tmp_path / "ds" / "train" / "a", "dsec")
    config = {
        "model": {"name": "depthanyevent-r", "config": {"encoder": "vitp", "input_size": [84, 112]}},
        "data": {"sources": [{"path": str(tmp_path / "ds"), "labels": "gt"}], "sequence_length": 2, "crop": [40, 56]},
        "regime": "supervised", "loss": {"name": "ssi"}, "optim": {"lr": 1e-4},
        "steps": 8, "batch_size": 2, "checkpoint_every": 4, "device": "cuda", "out": str(tmp_path / "run"),
    }
    result = Trainer(config_from_dict(config), progress=False).run()
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 8 and all(math.isfinite(loss) for loss in losses)
    assert next(result.student.parameters()).device.type == "cuda"


def test_tto_with_bf16_autocast_on_cuda():
    from anydepth.focus.tto import FAST, run_tto

    rng = np.random.default_rng(0)
    height, width, slices = 56, 70, 5
    positions = np.linspace(0.5, 2.0, slices)
    truth = np.linspace(0.6, 1.9, width)[None].repeat(height, 0)
    volume = np.exp(-((positions[:, None, None] - truth[None]) ** 2) / 0.05).astype(np.float32)
    volume /= volume.sum(0, keepdims=True)
    aif = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    model = seeded(DepthAnythingV2("vitp"), 3).cuda()
    config = dataclasses.replace(FAST, iterations=30, input_size=56, patience=0, amp=True, confidence="volume")
    result = run_tto(model, aif, volume, positions, "metres", config=config)
    assert np.isfinite(result.depth).all() and result.depth.shape == (height, width)
    assert result.losses[-2] < result.losses[0]
