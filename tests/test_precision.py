"""Reduced precision (`anydepth.precision`, `--precision`): fp16 is refused off CUDA in one line, bf16
runs every network path on the CPU close to fp32 with float32 outputs, labels record their
precision, and the trainer takes a bf16 step. CUDA fp16 is covered by the cuda-marked tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.distill.pseudolabels import _is_done, read_pseudolabel, write_pseudolabel
from anydepth.errors import InputError
from anydepth.eventdepth import DepthStream, load_model
from anydepth.events.container import EventArray
from anydepth.focus.tto import FAST, with_precision
from anydepth.foundation import DepthAnythingV2, save_checkpoint
from anydepth.precision import PRECISIONS, autocast, check_precision
from tests.support import synthetic_bgr


def _relative(value: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(value - reference).mean() / np.abs(reference).mean())


def test_fp16_is_cuda_only_and_unknown_names_are_refused():
    check_precision("bf16", "cpu")
    with pytest.raises(InputError, match="fp16 runs on CUDA only"):
        check_precision("fp16", "cpu")
    with pytest.raises(InputError, match="choose one of fp32, bf16, fp16"):
        check_precision("half", "cpu")
    assert PRECISIONS == ("fp32", "bf16", "fp16")


def test_fp32_is_a_no_op_and_bf16_autocasts_matrix_products(device, dtype):
    a = torch.randn(8, 8, dtype=dtype, device=device)
    with autocast(device, "fp32"):
        assert (a @ a).dtype == dtype
    with autocast(device, "bf16"):
        assert (a @ a).dtype == torch.bfloat16


def test_dav2_bf16_is_float32_out_and_close_to_fp32(device):
    torch.manual_seed(0)
    model = DepthAnythingV2("vitp").to(device).eval()
    image = synthetic_bgr(64, 80)
    fp32 = model.infer_image(image, 70)
    bf16 = model.infer_image(image, 70, "bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape == (64, 80)
    assert 0 < _relative(bf16, fp32) < 0.05


@pytest.mark.parametrize("name", ["e2depth", "depthanyevent-r"])
def test_student_stream_bf16_carries_state_and_stays_close(name, device):
    tiny = {"e2depth": {"base_num_channels": 8, "num_encoders": 2},
            "depthanyevent-r": {"encoder": "vitp", "input_size": (84, 112)}}[name]
    torch.manual_seed(0)
    model = load_model(name, **tiny).to(device).eval()
    rng = np.random.default_rng(0)
    windows = [EventArray.from_arrays(rng.integers(0, 42, 2000), rng.integers(0, 30, 2000),
                                      np.sort(rng.integers(k * 50_000, (k + 1) * 50_000, 2000)), rng.integers(0, 2, 2000),
                                      sensor_size=(30, 42)) for k in range(3)]
    streams = {p: DepthStream(model, precision=p) for p in ("fp32", "bf16")}
    for window in windows:
        depths = {p: stream.step(window) for p, stream in streams.items()}
    assert depths["bf16"].dtype == np.float32
    assert _relative(depths["bf16"], depths["fp32"]) < 0.05


def test_tto_precision_sets_the_recipes_autocast():
    assert with_precision(FAST, None) is FAST
    assert with_precision(FAST, "fp32").amp == "off"
    bf16 = with_precision(FAST, "bf16")
    assert (bf16.amp, bf16.amp_dtype) == ("on", "bf16")


def test_labels_record_their_precision_and_another_precision_is_recomputed(tmp_path):
    depth = np.ones((4, 5), np.float32)
    path = write_pseudolabel(tmp_path / "a.npz", depth, 7, "vits", 518, "f" * 40, "w", precision="bf16")
    assert read_pseudolabel(path).precision == "bf16"
    assert _is_done(path, "vits", "w", 518, "f" * 40, "bf16")
    assert not _is_done(path, "vits", "w", 518, "f" * 40, "fp32")
    older = tmp_path / "older.npz"  # written before the key existed: fp32
    with np.load(path) as data:
        np.savez(older, **{key: data[key] for key in data.files if key != "precision"})
    assert read_pseudolabel(older).precision == "fp32"


def test_cli_refuses_fp16_on_the_cpu_in_one_line(tmp_path, capsys):
    weights = tmp_path / "tiny.pth"
    save_checkpoint(DepthAnythingV2("vitp"), weights)
    code = main(["image", str(tmp_path), "--weights", str(weights), "--device", "cpu", "--precision", "fp16",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip() == "anydepth image: error: --precision fp16 runs on CUDA only (CPUs have no fast fp16); use bf16 or fp32 on cpu"
    assert not (tmp_path / "out").exists()


def test_cli_image_bf16_writes_float32_close_to_fp32(tmp_path):
    weights = tmp_path / "tiny.pth"
    torch.manual_seed(0)
    save_checkpoint(DepthAnythingV2("vitp"), weights)
    import cv2

    cv2.imwrite(str(tmp_path / "in.png"), synthetic_bgr(56, 70))
    arrays = {}
    for precision in ("fp32", "bf16"):
        raw = tmp_path / f"{precision}.npy"
        assert main(["image", str(tmp_path / "in.png"), "--weights", str(weights), "--precision", precision,
                     "--input-size", "56", "--raw-out", str(raw), "--formats", "npy", "--out", str(tmp_path / precision)]) == 0
        arrays[precision] = np.load(raw)
    assert arrays["bf16"].dtype == np.float32
    assert 0 < _relative(arrays["bf16"], arrays["fp32"]) < 0.05
