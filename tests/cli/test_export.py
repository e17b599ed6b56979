"""`anydepth export onnx` and `--backend onnxruntime` end to end: the CLI writes the file, `image`
and `events predict` run it, and their outputs equal the torch backend's within 1e-4 relative
(the library side and the error measure: tests/export/test_onnx.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.eventdepth import save_model
from anydepth.export.onnx import OnnxModel
from anydepth.foundation import load_depth_anything_file, save_checkpoint
from tests.export.test_onnx import TOLERANCE, dav2, relative_error, student
from tests.support import requires, synthetic_bgr

pytestmark = requires("onnxruntime", "onnxscript")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    save_checkpoint(dav2("relative"), folder / "dav2_vitp.pth")
    save_checkpoint(dav2("metric"), folder / "dav2_vitp_metric.pth")
    save_model("depthanyevent-r", student("depthanyevent-r", encoder="vitp", input_size=(112, 140)), folder / "daer.pth")
    save_model("e2depth", student("e2depth", base_num_channels=8, num_encoders=2), folder / "e2depth.pth")
    return folder


def fails(capsys, argv, *named) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for text in named:
        assert text in err, err
    return err


def test_cli_bad_inputs(weights, tmp_path, capsys):
    dav2_weights, daer = str(weights / "dav2_vitp.pth"), str(weights / "daer.pth")
    fails(capsys, ["export", "onnx", "--model", "dav2", "--weights", dav2_weights, "--out", str(tmp_path / "a.onnx"),
                   "--input-size", "50", "60"], "multiples of 14")
    fails(capsys, ["export", "onnx", "--model", "dav2", "--weights", dav2_weights, "--out", str(tmp_path / "a.txt")],
          "--out", ".onnx")
    fails(capsys, ["export", "onnx", "--model", "depthanyevent-r", "--out", str(tmp_path / "a.onnx")], "--weights is needed")
    fails(capsys, ["export", "onnx", "--model", "dav2", "--weights", dav2_weights, "--out", str(tmp_path / "a.onnx"),
                   "--opset", "9"], "opset must be between")
    fails(capsys, ["export", "onnx", "--model", "e2depth", "--weights", daer, "--out", str(tmp_path / "a.onnx")], "daer.pth")
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage and one error line
        main(["export", "onnx", "--model", "nope", "--out", str(tmp_path / "a.onnx")])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), synthetic_bgr(40, 50))
    fails(capsys, ["image", str(image), "--weights", dav2_weights, "--onnx", str(tmp_path / "a.onnx"),
                   "--out", str(tmp_path / "out")], "--onnx needs --backend onnxruntime")
    fails(capsys, ["image", str(image), "--weights", dav2_weights, "--backend", "onnxruntime", "--onnx",
                   str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "out")], "missing.onnx", "not found")
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.slow
def test_cli_round_trip_image(weights, tmp_path, capsys):
    """export onnx (the metric head) -> image --backend onnxruntime --onnx FILE, against --backend
    torch, and the file at another size; a file from other weights is refused (the relative
    head's export at three sizes: tests/export/test_onnx.py)."""
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), synthetic_bgr(40, 50))
    onnx_file = tmp_path / "dav2_vitp_metric.onnx"
    metric = weights / "dav2_vitp_metric.pth"
    assert main(["export", "onnx", "--model", "dav2", "--weights", str(metric), "--out", str(onnx_file),
                 "--input-size", "42", "56"]) == 0
    assert "image size: dynamic" in capsys.readouterr().out
    common = ["image", str(image), "--weights", str(metric), "--input-size", "56", "--formats", "npy"]
    assert main([*common, "--out", str(tmp_path / "torch"), "--raw-out", str(tmp_path / "torch.npy")]) == 0
    assert main([*common, "--out", str(tmp_path / "ort"), "--raw-out", str(tmp_path / "ort.npy"),
                 "--backend", "onnxruntime", "--onnx", str(onnx_file)]) == 0
    assert relative_error(np.load(tmp_path / "ort.npy"), np.load(tmp_path / "torch.npy")) < TOLERANCE
    model = load_depth_anything_file(metric)
    x = torch.randn(1, 3, 112, 84, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert relative_error(OnnxModel(onnx_file, model)(x), model(x)) < TOLERANCE
    fails(capsys, ["image", str(image), "--weights", str(weights / "dav2_vitp.pth"), "--backend", "onnxruntime",
                   "--onnx", str(onnx_file), "--out", str(tmp_path / "x")], "not exported from these weights")


@pytest.mark.slow
def test_cli_round_trip_events_predict(weights, tmp_path, capsys, monkeypatch):
    """events predict --backend onnxruntime without --onnx exports into the cache once, and the
    cached file runs again through --onnx FILE; both equal --backend torch (the student's export
    by `anydepth export onnx`, its state inputs and outputs: tests/export/test_onnx.py)."""
    from tests.events.readers.test_readers import random_events, write_npz

    recording = write_npz(tmp_path / "rec.npz", *random_events(6000, seed=3, t0=0, span_us=150_000, sensor=(48, 64)), (48, 64))
    # a small recurrent student: the CLI path is the same for every student (DepthAnyEvent-R's export
    # and its eight state tensors: tests/export/test_onnx.py)
    common = ["events", "predict", str(recording), "--model", "e2depth", "--weights", str(weights / "e2depth.pth")]
    assert main([*common, "--out", str(tmp_path / "torch")]) == 0
    monkeypatch.setenv("ANYDEPTH_CACHE", str(tmp_path / "cache"))  # without --onnx: exported into the cache
    assert main([*common, "--out", str(tmp_path / "cached"), "--backend", "onnxruntime"]) == 0
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    assert main([*common, "--out", str(tmp_path / "ort"), "--backend", "onnxruntime", "--onnx", str(cached[0])]) == 0
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1  # not exported again
    expected = sorted((tmp_path / "torch").glob("depth_*.npy"))
    assert len(expected) == 3
    for path in expected:
        for backend in ("ort", "cached"):
            assert relative_error(np.load(tmp_path / backend / path.name), np.load(path)) < TOLERANCE
