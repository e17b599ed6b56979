"""`anydepth image` end to end: real NYU images, an official-layout checkpoint of random values,
and the one-line errors for bad inputs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.foundation import DepthAnythingV2, save_checkpoint
from tests.support.weights import loaded_model, random_state_dict
from tests.support import cli_stderr, synthetic_bgr


@pytest.fixture(scope="module")
def official_vits(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "depth_anything_v2_vits.pth"
    torch.save(random_state_dict("vits", seed=0), path)
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_checkpoint(DepthAnythingV2("vitp"), path)
    return path


@pytest.mark.slow
def test_nyu_images_write_every_output(realdata, official_vits, tmp_path):
    out = tmp_path / "out"
    code = main(["image", str(realdata / "nyu_rgbd"), "--weights", str(official_vits), "--out", str(out)])
    assert code == 0
    for scene in ("bathroom", "home_office_00394", "kitchen_00851"):
        colour = cv2.imread(str(out / scene / "rgb_depth.png"), cv2.IMREAD_UNCHANGED)
        sixteen = cv2.imread(str(out / scene / "rgb_depth16.png"), cv2.IMREAD_UNCHANGED)
        raw = np.load(out / scene / "rgb_depth.npy")
        assert colour.shape == (480, 640, 3) and colour.dtype == np.uint8
        assert sixteen.shape == (480, 640) and sixteen.dtype == np.uint16
        assert sixteen.min() == 0 and sixteen.max() == 65535
        assert raw.shape == (480, 640) and raw.dtype == np.float32
        # the 16-bit PNG is the min-max scaled raw disparity
        scaled = (raw - raw.min()) / (raw.max() - raw.min()) * 65535
        assert np.abs(sixteen.astype(np.float64) - scaled).max() <= 1.0


def test_raw_out_is_the_official_infer_image_array(realdata, official_vits, tmp_path):
    image_path = realdata / "nyu_rgbd" / "kitchen_00851" / "rgb.png"
    raw_out = tmp_path / "kitchen.npy"
    code = main(["image", str(image_path), "--weights", str(official_vits), "--raw-out", str(raw_out),
                 "--formats", "color", "--grayscale", "--input-size", "266", "--out", str(tmp_path / "o")])
    assert code == 0
    model = loaded_model("vits", random_state_dict("vits", seed=0))
    expected = model.infer_image(cv2.imread(str(image_path)), 266)
    np.testing.assert_array_equal(np.load(raw_out), expected)
    grey = cv2.imread(str(tmp_path / "o" / "rgb_depth.png"))
    assert np.array_equal(grey[..., 0], grey[..., 1])  # --grayscale
    assert not (tmp_path / "o" / "rgb_depth16.png").exists()  # --formats color only


def test_bad_files_are_reported_and_the_rest_goes_on(tiny_weights, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), synthetic_bgr())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "empty").mkdir()
    code = main(["image", str(folder), str(tmp_path / "empty"), str(tmp_path / "missing.png"),
                 "--weights", str(tiny_weights), "--out", str(tmp_path / "out"), "--input-size", "56"])
    assert code == 1
    errors = capsys.readouterr().err
    assert f"{folder / 'broken.jpg'}: not a readable image" in errors
    assert f"{tmp_path / 'empty'}: folder holds no images" in errors
    assert f"{tmp_path / 'missing.png'}: no such file or folder" in errors
    assert (tmp_path / "out" / "good_depth.npy").is_file()


def test_user_errors_are_one_line_without_traceback(tmp_path, tiny_weights, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), synthetic_bgr())
    runs = {
        "checkpoint": ["image", str(image), "--weights", str(bad)],
        "encoder": ["image", str(image), "--weights", str(tiny_weights), "--encoder", "vits"],
        "raw-out": ["image", str(image), str(image), "--weights", str(tiny_weights), "--encoder", "vitp", "--raw-out", str(tmp_path / "x.npy")],
        "empty": ["image", str(tmp_path / "nothing_here")],
    }
    (tmp_path / "nothing_here").mkdir()
    for index, (name, args) in enumerate(runs.items()):  # the first as a real process, the others in this one
        code, err = cli_stderr(args, None if index == 0 else capsys)
        assert code == 1, name
        assert "Traceback" not in err, name
        assert err.strip().splitlines()[-1].startswith("anydepth image: error:"), (name, err)
        if name == "checkpoint":
            assert "cannot read checkpoint" in err


def test_console_script_is_installed():
    beside_python = Path(sys.executable).parent / "anydepth"
    executable = str(beside_python) if beside_python.is_file() else shutil.which("anydepth")
    if executable is None:
        pytest.skip("the anydepth console script is not on PATH (package not installed)")
    result = subprocess.run([executable, "image", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--raw-out" in result.stdout
