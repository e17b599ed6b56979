"""`anydepth events predict` end to end: the real DVXplorer recording and a DSEC-layout file,
with checkpoints of deterministic random values written in the official containers."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from anydepth.cli.main import main
from anydepth.eventdepth import load_model, save_model
from tests.support.weights import random_weights
from tests.events.readers.test_readers import T_OFFSET, random_events, write_dsec
from tests.support import cli_stderr


@pytest.fixture(scope="module")
def tiny_daer(tmp_path_factory):
    """DepthAnyEvent-R on the small `vitp` encoder, in the authors' container."""
    model = load_model("depthanyevent-r", encoder="vitp")
    model.load_state_dict(random_weights({k: v.shape for k, v in model.state_dict().items()}, seed=0))
    path = tmp_path_factory.mktemp("weights") / "daer_vitp.pth"
    save_model("depthanyevent-r", model, path)
    return path


@pytest.mark.slow
def test_predict_on_the_real_aedat4(realdata, tiny_daer, tmp_path, capsys):
    out = tmp_path / "depth"
    video = tmp_path / "side_by_side.mp4"
    code = main(["events", "predict", str(realdata / "dvxplorer_aedat4" / "sample.aedat4"), "--model", "depthanyevent-r",
                 "--weights", str(tiny_daer), "--out", str(out), "--video", str(video)])
    assert code == 0
    depths = sorted(out.glob("depth_*.npy"))
    assert len(depths) == 12 and len(list(out.glob("depth_*.png"))) == 12
    first = np.load(depths[0])
    assert first.shape == (240, 320) and first.dtype == np.float32 and np.isfinite(first).all()
    # the state is carried: the same events would give another answer from a fresh state
    assert not np.allclose(np.load(depths[1]), np.load(depths[2]))
    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    assert ok and frame.shape == (240, 640, 3) and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12
    assert "mean latency" in capsys.readouterr().out


def test_predict_matches_a_manual_stream(realdata, tiny_daer, tmp_path):
    from PIL import Image

    from anydepth.eventdepth import DepthStream
    from anydepth.events import open_events

    recording = realdata / "dvxplorer_aedat4" / "sample.aedat4"
    assert main(["events", "predict", str(recording), "--weights", str(tiny_daer), "--window-events", "40000",
                 "--out", str(tmp_path), "--video", str(tmp_path / "side_by_side.gif")]) == 0
    with Image.open(tmp_path / "side_by_side.gif") as gif:  # a .gif where OpenCV cannot write mp4
        assert gif.n_frames == 3 and gif.size == (640, 240)
    stream = DepthStream(load_model("depthanyevent-r", tiny_daer))
    with open_events(recording) as reader:
        expected = [stream.step(window) for window in reader.windows(count=40_000)]
    assert len(expected) == 3
    for index, depth in enumerate(expected):
        np.testing.assert_allclose(np.load(tmp_path / f"depth_{index:06d}.npy"), depth, rtol=1e-5, atol=1e-6)


def test_predict_on_a_dsec_layout_file(tiny_daer, tmp_path):
    x, y, t, p = random_events(20_000, seed=1, t0=T_OFFSET + 5_000, span_us=120_000)
    events_file = write_dsec(tmp_path / "events.h5", x, y, t, p)
    assert main(["events", "predict", str(events_file), "--weights", str(tiny_daer), "--window-ms", "50",
                 "--out", str(tmp_path / "out")]) == 0
    depths = sorted((tmp_path / "out").glob("depth_*.npy"))
    assert len(depths) == 3  # 120 ms in 50 ms windows
    assert np.load(depths[0]).shape == (480, 640)


def test_predict_errors_are_one_line(tiny_daer, tmp_path, capsys):
    recording = tmp_path / "e.npz"
    np.savez(recording, x=np.array([0, 1], np.uint16), y=np.array([0, 1], np.uint16), t=np.array([0, 10], np.int64),
             p=np.array([1, 0], np.int8))
    cases = [
        ["--weights", str(tmp_path / "missing.pth")],
        ["--weights", str(tiny_daer), "--model", "depthanyevent"],
        ["--weights", str(tiny_daer), "--encoder", "vits"],
        ["--weights", str(tiny_daer), "--video", str(tmp_path / "v.avi")],
    ]
    for index, extra in enumerate(cases):  # the first as a real process, the others in this one
        code, err = cli_stderr(["events", "predict", recording, *extra], None if index == 0 else capsys)
        assert code == 1, (extra, err)
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("anydepth events predict: error:"), err


def test_unstated_checkpoint_fields_are_one_warning_line(tiny_daer, tmp_path):
    """A plain state dict states neither activation nor input size: the CLI still runs, and says in
    one line what it assumed (no Python warning text, no traceback)."""
    import torch

    plain = tmp_path / "plain_vitp.pth"
    torch.save(torch.load(tiny_daer, weights_only=True)["state_dict"], plain)
    recording = tmp_path / "e.npz"
    rng = np.random.default_rng(0)
    np.savez(recording, x=rng.integers(0, 40, 500).astype(np.uint16), y=rng.integers(0, 30, 500).astype(np.uint16),
             t=np.sort(rng.integers(0, 40_000, 500)).astype(np.int64), p=rng.integers(0, 2, 500).astype(np.int8))
    result = subprocess.run([sys.executable, "-m", "anydepth.cli.main", "events", "predict", str(recording),
                             "--weights", str(plain), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warning_lines = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warning_lines) == 1, result.stderr
    assert warning_lines[0].startswith("anydepth events predict: warning: ") and str(plain) in warning_lines[0]
    assert "assuming activation='softplus'" in warning_lines[0] and "AnydepthWarning" not in result.stderr
    assert len(list((tmp_path / "out").glob("depth_*.npy"))) == 1
