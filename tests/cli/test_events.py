"""`anydepth events info` and `anydepth events render` on the real DVXplorer recording and on
bad files."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from PIL import Image

from anydepth.cli.main import main
from tests.support import cli_stderr


def test_info_on_the_real_aedat4(realdata, capsys):
    assert main(["events", "info", str(realdata / "dvxplorer_aedat4" / "sample.aedat4")]) == 0
    out = capsys.readouterr().out
    assert "sensor    320 x 240" in out
    assert "events    111,954" in out
    assert "duration  0.590 s" in out
    assert "aedat4" in out


def test_render_every_representation(realdata, tmp_path):
    recording = str(realdata / "dvxplorer_aedat4" / "sample.aedat4")
    for representation in ("tencode", "voxel", "histogram", "time_surface"):
        out = tmp_path / representation
        video = tmp_path / f"{representation}.gif"
        assert main(["events", "render", recording, "--repr", representation, "--out", str(out), "--video", str(video)]) == 0
        frames = sorted(out.glob("window_*.png"))
        assert len(frames) == 12  # 0.590 s in 50 ms windows
        picture = cv2.imread(str(frames[5]))
        assert picture.shape == (240, 320, 3)
        assert picture.std() > 5  # there is something to see
        with Image.open(video) as gif:
            assert gif.n_frames == 12


def test_render_mp4(realdata, tmp_path):
    recording = str(realdata / "dvxplorer_aedat4" / "sample.aedat4")
    video = tmp_path / "events.mp4"
    assert main(["events", "render", recording, "--out", str(tmp_path / "f"), "--video", str(video)]) == 0
    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12 and capture.read()[0]


def test_tencode_render_shows_polarity_colours(realdata, tmp_path):
    recording = str(realdata / "dvxplorer_aedat4" / "sample.aedat4")
    assert main(["events", "render", recording, "--out", str(tmp_path), "--window-ms", "100"]) == 0
    rgb = cv2.imread(str(tmp_path / "window_000002.png"))[..., ::-1].astype(int)
    positive = (rgb[..., 0] > 0) & (rgb[..., 2] == 0)  # R = p, B = 1 - p
    negative = (rgb[..., 0] == 0) & (rgb[..., 2] == 255)
    assert positive.sum() > 500 and negative.sum() > 500
    assert ((rgb[..., 0] > 0) & (rgb[..., 2] > 0)).sum() == 0  # never both


def test_bad_recordings_are_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.aedat4"
    broken.write_bytes(b"#!AER-DAT4.0\r\nnot really")
    unknown = tmp_path / "notes.xyz"
    unknown.write_text("hello")
    for index, path in enumerate((broken, unknown, tmp_path / "missing.h5")):  # a real process first
        code, err = cli_stderr(["events", "info", path], None if index == 0 else capsys)
        assert code == 1, err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"anydepth events info: error: {path}"), err


def test_render_rejects_bad_options(tmp_path):
    events = tmp_path / "events.npz"
    np.savez(events, x=np.array([0, 1], np.uint16), y=np.array([0, 1], np.uint16), t=np.array([0, 10], np.int64),
             p=np.array([1, 0], np.int8), sensor_size=np.array([2, 2]))
    with pytest.raises(SystemExit) as exit_info:  # a bad value of an option is a usage error (argparse, exit 2)
        main(["events", "render", str(events), "--window-ms", "0", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2 and not (tmp_path / "o").exists()
