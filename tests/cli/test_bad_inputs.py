"""A catalogue of user mistakes at the command line (`anydepth image`, `events info|render|predict|
convert`, `synth`, `demo` and the path / device checks every subcommand shares): each ends with a
non-zero exit, no traceback and a message naming the offending file or option, and writes nothing.
In-process through `anydepth.cli.main.main`; argparse's usage errors exit 2, everything else 1."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.eventdepth import load_model, save_model
from anydepth.foundation import DepthAnythingV2, save_checkpoint
from tests.support.weights import random_weights
from tests.support import REALDATA, synthetic_bgr
from tests.events.readers.test_inivation import _aedat2_file, _dvs128_address
from tests.events.readers.test_prophesee import EVT3_HEADER, encode_evt3, write_raw
from tests.events.readers.test_readers import random_events, write_dsec, write_mvsec, write_npz

SENSOR = (48, 64)  # height, width of the small recordings below


def fails(capsys, argv: list[str], *named, code: int = 1) -> str:
    """Run the CLI, expect exit `code`, no traceback and every item of `named` in stderr."""
    if code == 2:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        assert exit_info.value.code == 2
    else:
        assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name in named:
        assert str(name) in err, f"{name!r} not in {err!r}"
    return err


def unwritable(folder: Path) -> Path:
    """`folder`, made read-only (skips when this user can write anyway, e.g. root)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        folder.chmod(0o755)
        pytest.skip("this user can write into read-only folders (root)")
    return folder


@pytest.fixture
def recording(tmp_path) -> Path:
    x, y, t, p = random_events(2000, seed=1, t0=0, span_us=200_000, sensor=SENSOR)
    return write_npz(tmp_path / "ok.npz", x, y, t, p, SENSOR)


@pytest.fixture(scope="module")
def tiny_daer(tmp_path_factory) -> Path:
    model = load_model("depthanyevent-r", encoder="vitp")
    model.load_state_dict(random_weights({k: v.shape for k, v in model.state_dict().items()}, seed=0))
    path = tmp_path_factory.mktemp("weights") / "daer_vitp.pth"
    save_model("depthanyevent-r", model, path)
    return path


@pytest.fixture(scope="module")
def tiny_dav2(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "dav2_vitp.pth"
    save_checkpoint(DepthAnythingV2("vitp"), path)
    return path


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), synthetic_bgr(64, 80))
    return path


# ---- broken recordings of every format: `events info` names the file ------------------------------
def _dsec_truncated(folder: Path) -> Path:
    x, y, t, p = random_events(5000, seed=2, t0=10_000_000, span_us=500_000)
    path = write_dsec(folder / "events.h5", x, y, t, p, t_offset=10_000_000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _dsec_without_table(folder: Path) -> Path:
    x, y, t, p = random_events(100, seed=2, t0=10_000_000, span_us=50_000)
    return write_dsec(folder / "events.h5", x, y, t, p, t_offset=10_000_000, skip=("ms_to_idx",))


def _mvsec_truncated(folder: Path) -> Path:
    x, y, t, p = random_events(5000, seed=3, t0=0, span_us=500_000, sensor=(260, 346))
    path = write_mvsec(folder / "outdoor_day1_data.hdf5", x, y, t, p)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _aedat4_garbage(folder: Path) -> Path:
    path = folder / "rec.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\n" + b"\x07" * 300)
    return path


def _aedat4_truncated(folder: Path) -> Path:
    real = REALDATA / "dvxplorer_aedat4" / "sample.aedat4"
    if not real.is_file():
        pytest.skip("../shared/realdata is not present")
    path = folder / "cut.aedat4"
    path.write_bytes(real.read_bytes()[: real.stat().st_size // 3])
    return path


def _npz_corrupt(folder: Path) -> Path:
    path = folder / "rec.npz"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    return path


def _npz_without_p(folder: Path) -> Path:
    path = folder / "rec.npz"
    np.savez(path, x=np.zeros(3, np.uint16), y=np.zeros(3, np.uint16), t=np.arange(3))
    return path


def _txt_malformed(folder: Path) -> Path:
    path = folder / "rec.txt"
    path.write_text("64 48\n0.000001 1 2 1\n0.000002 one two 0\n")
    return path


def _raw_truncated(folder: Path) -> Path:
    x, y, t, p = random_events(500, seed=4, t0=0, span_us=100_000, sensor=(720, 1280))
    path = write_raw(folder / "rec.raw", EVT3_HEADER, encode_evt3(x, y, t, p))
    path.write_bytes(path.read_bytes()[:-1])  # half a 16-bit word
    return path


def _aedat2_truncated(folder: Path) -> Path:
    addresses = [_dvs128_address(x, 5, 1) for x in range(10)]
    path = _aedat2_file(folder / "rec.aedat", "ch.unizh.ini.jaer.chip.retina.DVS128", addresses, list(range(10, 20)))
    path.write_bytes(path.read_bytes()[:-3])
    return path


def _empty_file(folder: Path) -> Path:
    path = folder / "rec.npz"
    path.write_bytes(b"")
    return path


def _unknown_extension(folder: Path) -> Path:
    path = folder / "rec.xyz"
    path.write_bytes(b"\x01\x02\x03")
    return path


def _folder_not_dsec(folder: Path) -> Path:
    (folder / "rec").mkdir()
    return folder / "rec"


BROKEN = [_dsec_truncated, _dsec_without_table, _mvsec_truncated, _aedat4_garbage, _aedat4_truncated, _npz_corrupt,
          _npz_without_p, _txt_malformed, _raw_truncated, _aedat2_truncated, _empty_file, _unknown_extension,
          _folder_not_dsec]


@pytest.mark.parametrize("make", BROKEN, ids=[make.__name__.strip("_") for make in BROKEN])
def test_broken_recording_is_named_by_info(make, tmp_path, capsys):
    path = make(tmp_path)
    fails(capsys, ["events", "info", path], path)


@pytest.mark.parametrize("make", [_dsec_truncated, _npz_corrupt, _raw_truncated],
                         ids=["dsec", "npz", "raw"])
def test_broken_recording_is_named_by_render_and_leaves_nothing(make, tmp_path, capsys):
    path = make(tmp_path)
    fails(capsys, ["events", "render", path, "--out", tmp_path / "frames"], path)
    assert not (tmp_path / "frames").exists()


def test_missing_recording(tmp_path, capsys):
    for action in ("info", "render"):
        fails(capsys, ["events", action, tmp_path / "nowhere.h5", "--out", tmp_path / "o"][: 3 if action == "info" else 5],
              tmp_path / "nowhere.h5")


def test_missing_recording_fails_before_the_model_loads(tmp_path, capsys):
    fails(capsys, ["events", "predict", tmp_path / "nowhere.npz", "--weights", tmp_path / "no_weights.pth",
                   "--out", tmp_path / "o"], tmp_path / "nowhere.npz")


# ---- repairable recordings: the message names the flag where there is one -----------------------
def _unsorted(folder: Path) -> Path:
    return write_npz(folder / "unsorted.npz", [1, 2, 3], [1, 2, 3], [0, 500, 100], [1, 0, 1], SENSOR)


def _outside(folder: Path) -> Path:
    return write_npz(folder / "outside.npz", [1, 200, 3], [1, 2, 3], [0, 100, 500], [1, 0, 1], SENSOR)


def _dsec_unsorted(folder: Path) -> Path:
    t = 10_000_000 + np.array([0, 500, 100, 2000])
    return write_dsec(folder / "events.h5", [1, 2, 3, 4], [1, 2, 3, 4], t, [1, 0, 1, 0], t_offset=10_000_000)


@pytest.mark.parametrize("make", [_unsorted, _outside, _dsec_unsorted], ids=["unsorted", "outside", "dsec_unsorted"])
def test_repairable_recording_names_the_flag_and_the_flag_repairs(make, tmp_path, capsys):
    path = make(tmp_path)
    err = fails(capsys, ["events", "render", path, "--out", tmp_path / "frames"], path, "--repair")
    assert "repair=True" not in err
    assert not (tmp_path / "frames").exists()
    assert main(["events", "render", str(path), "--out", str(tmp_path / "frames"), "--repair"]) == 0
    assert list((tmp_path / "frames").glob("window_*.png"))


def test_repairable_recording_at_info_and_convert(tmp_path, capsys):
    path = _unsorted(tmp_path)
    fails(capsys, ["events", "info", path], path, "--repair")
    fails(capsys, ["events", "convert", path, tmp_path / "sorted.h5"], path, "--repair")
    assert not (tmp_path / "sorted.h5").exists()
    assert main(["events", "convert", str(path), str(tmp_path / "sorted.h5"), "--repair"]) == 0


def test_repair_where_the_format_has_none(recording, monkeypatch, capsys):
    """Every reader offers repair today; a format added without it refuses --repair in one line."""
    import dataclasses

    from anydepth.events.readers import READERS

    def reader_without_repair(path, sensor_size=None):
        raise AssertionError("not reached")

    monkeypatch.setitem(READERS, "npz", dataclasses.replace(READERS["npz"], reader=reader_without_repair))
    fails(capsys, ["events", "info", recording, "--repair"], recording, "--repair", "does not apply")


# ---- window values --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "abc"])
def test_render_window_ms_must_be_positive(value, recording, tmp_path, capsys):
    fails(capsys, ["events", "render", recording, "--window-ms", value, "--out", tmp_path / "o"], "--window-ms", value,
          code=2)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option,value", [("--window-events", "0"), ("--window-events", "-3"), ("--window-ms", "0"),
                                          ("--window-ms", "-1")])
def test_predict_window_must_be_positive(option, value, recording, tiny_daer, tmp_path, capsys):
    fails(capsys, ["events", "predict", recording, "--weights", tiny_daer, option, value, "--out", tmp_path / "o"],
          option, value, code=2)


def test_render_bins_and_fps_must_be_positive(recording, tmp_path, capsys):
    fails(capsys, ["events", "render", recording, "--bins", "0", "--out", tmp_path / "o"], "--bins", code=2)
    fails(capsys, ["events", "render", recording, "--fps", "-2", "--out", tmp_path / "o"], "--fps", code=2)


def test_window_shorter_than_a_microsecond(recording, tiny_daer, tmp_path, capsys):
    fails(capsys, ["events", "predict", recording, "--weights", tiny_daer, "--window-ms", "0.0001",
                   "--out", tmp_path / "o"], "--window-ms")


# ---- degenerate streams: a stray event days away --------------------------------------------------
def test_stray_event_days_away_is_skipped_with_a_warning(tmp_path, capsys):
    x, y, t, p = random_events(500, seed=5, t0=0, span_us=150_000, sensor=SENSOR)
    stray = 3 * 86_400 * 10**6
    path = write_npz(tmp_path / "stray.npz", np.append(x, 1), np.append(y, 1), np.append(t, stray), np.append(p, 1), SENSOR)
    assert main(["events", "render", str(path), "--out", str(tmp_path / "frames")]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "3.0 days" in captured.err and "skipped 5,183,99" in captured.err
    assert len(list((tmp_path / "frames").glob("*.png"))) == 4  # 150 ms of events + the stray one's window


def test_stray_event_in_predict(tmp_path, tiny_daer, capsys):
    path = write_npz(tmp_path / "stray.npz", [1, 2, 3], [1, 2, 3], [0, 10_000, 86_400 * 10**6], [1, 0, 1], SENSOR)
    assert main(["events", "predict", str(path), "--weights", str(tiny_daer), "--out", str(tmp_path / "d")]) == 0
    assert "skipped" in capsys.readouterr().err
    assert len(list((tmp_path / "d").glob("depth_*.npy"))) == 2


def test_empty_recording_cannot_make_a_video(tmp_path, capsys):
    path = write_npz(tmp_path / "empty.npz", [], [], [], [], SENSOR)
    fails(capsys, ["events", "render", path, "--out", tmp_path / "o", "--video", tmp_path / "v.gif"], tmp_path / "v.gif")


# ---- output paths ---------------------------------------------------------------------------------
def test_render_out_is_a_file(recording, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    fails(capsys, ["events", "render", recording, "--out", tmp_path / "taken"], "--out", tmp_path / "taken")


def test_render_out_under_a_file(recording, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    fails(capsys, ["events", "render", recording, "--out", tmp_path / "taken" / "frames"], "--out", tmp_path / "taken")


def test_render_out_in_a_read_only_folder(recording, tmp_path, capsys):
    locked = unwritable(tmp_path / "locked")
    try:
        fails(capsys, ["events", "render", recording, "--out", locked / "frames"], "--out", locked)
    finally:
        locked.chmod(0o755)


def test_render_video_is_a_folder_or_of_another_kind(recording, tmp_path, capsys):
    (tmp_path / "v.mp4").mkdir()
    fails(capsys, ["events", "render", recording, "--out", tmp_path / "o", "--video", tmp_path / "v.mp4"], "--video")
    fails(capsys, ["events", "render", recording, "--out", tmp_path / "o", "--video", tmp_path / "v.avi"], "--video", ".mp4")
    assert not (tmp_path / "o").exists()


def test_predict_out_is_a_file_and_video_not_mp4_or_gif(recording, tiny_daer, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    fails(capsys, ["events", "predict", recording, "--weights", tiny_daer, "--out", tmp_path / "taken"], "--out")
    fails(capsys, ["events", "predict", recording, "--weights", tiny_daer, "--out", tmp_path / "o",
                   "--video", tmp_path / "v.avi"], "--video", ".mp4 or .gif")
    assert not (tmp_path / "o").exists()


def test_convert_output_folder_suffix_and_existing(recording, tmp_path, capsys):
    (tmp_path / "dir.h5").mkdir()
    fails(capsys, ["events", "convert", recording, tmp_path / "dir.h5"], "OUTPUT", tmp_path / "dir.h5")
    fails(capsys, ["events", "convert", recording, tmp_path / "out.txt"], "OUTPUT", ".h5")
    (tmp_path / "old.h5").write_bytes(b"old")
    err = fails(capsys, ["events", "convert", recording, tmp_path / "old.h5"], tmp_path / "old.h5", "--overwrite")
    assert "overwrite=True" not in err and (tmp_path / "old.h5").read_bytes() == b"old"


# ---- devices and checkpoints -----------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cdu", "gpu:0", "cuda:-1"])
def test_misspelt_device(device, recording, tiny_daer, tmp_path, capsys):
    fails(capsys, ["events", "predict", recording, "--weights", tiny_daer, "--device", device, "--out", tmp_path / "o"],
          "--device", device)
    assert not (tmp_path / "o").exists()


def test_device_this_machine_lacks(recording, tiny_daer, tmp_path, capsys):
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    fails(capsys, ["events", "predict", recording, "--weights", tiny_daer, "--device", missing, "--out", tmp_path / "o"],
          "--device", missing)


def test_predict_with_a_checkpoint_of_another_model(recording, tiny_dav2, tmp_path, capsys):
    fails(capsys, ["events", "predict", recording, "--weights", tiny_dav2, "--out", tmp_path / "o"], tiny_dav2)
    assert not (tmp_path / "o").exists()


def test_predict_with_missing_weights(recording, tmp_path, capsys):
    fails(capsys, ["events", "predict", recording, "--weights", tmp_path / "none.pth", "--out", tmp_path / "o"],
          tmp_path / "none.pth")


# ---- anydepth image -------------------------------------------------------------------------------
def test_image_one_pixel_names_the_file(tiny_dav2, tmp_path, capsys):
    path = tmp_path / "dot.png"
    cv2.imwrite(str(path), np.zeros((1, 1, 3), np.uint8))
    fails(capsys, ["image", path, "--weights", tiny_dav2, "--out", tmp_path / "o", "--input-size", "56"], path, "1x1")


def test_image_missing_input(tiny_dav2, tmp_path, capsys):
    fails(capsys, ["image", tmp_path / "nope.png", "--weights", tiny_dav2, "--out", tmp_path / "o"], tmp_path / "nope.png")


def test_image_corrupt_checkpoint(image, tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    fails(capsys, ["image", image, "--weights", junk, "--out", tmp_path / "o"], junk)


def test_image_event_checkpoint_for_an_image_model(image, tiny_daer, tmp_path, capsys):
    fails(capsys, ["image", image, "--weights", tiny_daer, "--out", tmp_path / "o"], tiny_daer)


def test_image_out_is_a_file(image, tiny_dav2, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    fails(capsys, ["image", image, "--weights", tiny_dav2, "--out", tmp_path / "taken"], "--out", tmp_path / "taken")


def test_image_raw_out_is_a_folder_or_not_npy(image, tiny_dav2, tmp_path, capsys):
    (tmp_path / "raw.npy").mkdir()
    fails(capsys, ["image", image, "--weights", tiny_dav2, "--raw-out", tmp_path / "raw.npy", "--out", tmp_path / "o"],
          "--raw-out")
    fails(capsys, ["image", image, "--weights", tiny_dav2, "--raw-out", tmp_path / "raw.png", "--out", tmp_path / "o"],
          "--raw-out", ".npy")
    assert not (tmp_path / "o").exists()


def test_image_out_in_a_read_only_folder(image, tiny_dav2, tmp_path, capsys):
    locked = unwritable(tmp_path / "locked")
    try:
        fails(capsys, ["image", image, "--weights", tiny_dav2, "--out", locked / "o"], "--out", locked)
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("device", ["gpu", "cuda:99"])
def test_image_bad_device(device, image, tiny_dav2, tmp_path, capsys):
    fails(capsys, ["image", image, "--weights", tiny_dav2, "--device", device, "--out", tmp_path / "o"], "--device", device)


def test_image_bad_formats_and_input_size(image, tiny_dav2, tmp_path, capsys):
    fails(capsys, ["image", image, "--weights", tiny_dav2, "--formats", "jpeg", "--out", tmp_path / "o"], "jpeg")
    fails(capsys, ["image", image, "--weights", tiny_dav2, "--input-size", "5", "--out", tmp_path / "o"], "--input-size", code=2)


# ---- synth and demo ---------------------------------------------------------------------------------
def test_synth_out_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    for kind in ("events", "focus"):
        fails(capsys, ["synth", kind, "--out", tmp_path / "taken"], "--out", tmp_path / "taken")


def test_synth_out_in_a_read_only_folder(tmp_path, capsys):
    locked = unwritable(tmp_path / "locked")
    try:
        fails(capsys, ["synth", "focus", "--out", locked / "data"], "--out", locked)
    finally:
        locked.chmod(0o755)


def test_synth_bad_numbers(tmp_path, capsys):
    fails(capsys, ["synth", "events", "--out", tmp_path / "s", "--resolution", "4x4"], "4x4")
    fails(capsys, ["synth", "events", "--out", tmp_path / "s", "--resolution", "big"], "big")
    fails(capsys, ["synth", "events", "--out", tmp_path / "s", "--seconds", "-1"], "--seconds", code=2)
    fails(capsys, ["synth", "events", "--out", tmp_path / "s", "--sequences", "0"], "--sequences", code=2)
    fails(capsys, ["synth", "focus", "--out", tmp_path / "s", "--samples", "0"], "--samples", code=2)
    assert not (tmp_path / "s").exists()


def test_demo_bad_paths(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    fails(capsys, ["demo", "--quick", "--out", tmp_path / "taken"], "--out", tmp_path / "taken")
    fails(capsys, ["demo", "--quick", "--out", tmp_path / "d", "--weights", tmp_path / "none.pth"], tmp_path / "none.pth")
    fails(capsys, ["demo", "--quick", "--out", tmp_path / "d", "--rgbd", tmp_path / "no_rgbd"], tmp_path / "no_rgbd")
    assert not (tmp_path / "d").exists()


# ---- the same checks in the other subcommands ---------------------------------------------------------
def test_shared_checks_in_eval_pseudolabel_train(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    config = tmp_path / "train.yaml"
    config.write_text("out: somewhere\n")
    fails(capsys, ["events", "eval", dataset, "--model", "depthanyevent-r", "--weights", "w.pth",
                   "--out", tmp_path / "taken"], "--out", tmp_path / "taken")
    fails(capsys, ["events", "eval", dataset, "--model", "depthanyevent-r", "--weights", "w.pth",
                   "--device", "cdu", "--out", tmp_path / "o"], "--device", "cdu")
    fails(capsys, ["events", "pseudolabel", dataset, "--out", tmp_path / "taken"], "--out", tmp_path / "taken")
    fails(capsys, ["events", "pseudolabel", dataset, "--device", "cuda:x"], "--device", "cuda:x")
    fails(capsys, ["events", "train", config, "--out", tmp_path / "taken"], "--out", tmp_path / "taken")
    fails(capsys, ["events", "train", config, "--device", "tpu"], "--device", "tpu")


def test_an_internal_error_still_shows_its_traceback(tmp_path, monkeypatch):
    """A bug is not a user mistake: it is not turned into one line."""
    import anydepth.cli.events as events_cli

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(events_cli, "describe_recording", broken)
    with pytest.raises(ZeroDivisionError):
        main(["events", "info", str(tmp_path / "x.npz")])
