"""The focal-stack pipeline end to end: outputs on disk, the DDFF-12 evaluation table, and the
classical DFF, AiF and TTO behaviour on rendered stacks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.focus import DDFF12_DISPARITY_SCALE, estimate_depth, focus_volume, write_focus_outputs
from anydepth.foundation import DepthAnythingV2, save_checkpoint
from anydepth.synth.focus_sets import FOCUS_LAYOUTS, generate_focus_dataset, make_stack, rendered_scene
from anydepth.synth.focus_writers import ddff12_focus_distances_m, write_ddff12_h5
from anydepth.synth.thin_lens import LENS_PRESETS, focal_stack


@pytest.fixture(scope="module", autouse=True)
def _one_thread_module():
    """Every test here on one torch thread: the tiny networks' small convolutions on the shared
    2-core machine run ~10x faster so (see conftest.one_thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dav2(tmp_path_factory):
    torch.manual_seed(0)
    model = DepthAnythingV2("vitp")
    path = tmp_path_factory.mktemp("weights") / "vitp.pth"
    save_checkpoint(model, path)
    return model, path


def _sharpness(image: np.ndarray) -> float:
    grey = cv2.cvtColor(np.asarray(image, np.float32), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def test_aif_is_sharper_than_every_slice_and_dff_tracks_depth():
    layout = FOCUS_LAYOUTS["fod500"]
    aif, depth = rendered_scene(2, layout)
    stack = make_stack(aif, depth, layout)
    assert stack.unit == "metres"
    np.testing.assert_array_equal(stack.positions, layout.focus_distances_m)
    from anydepth.focus import dff_from_volume

    dff = dff_from_volume(focus_volume(stack, "laplacian_energy"), stack.positions, stack)
    assert _sharpness(dff.aif) > max(_sharpness(s) for s in stack.slices)
    grey = aif.mean(-1)
    textured = np.hypot(*np.gradient(grey)) > 0.02  # DFF only sees depth where there is texture
    inside = (depth > 0.12) & (depth < 1.4) & textured  # within the focus range
    correlation = np.corrcoef(1 / dff.depth[inside], 1 / depth[inside])[0, 1]
    assert inside.mean() > 0.05 and correlation > 0.7


def test_estimate_depth_and_outputs(tiny_dav2, tmp_path):
    model, _ = tiny_dav2
    layout = FOCUS_LAYOUTS["ddff12"]
    aif, depth = rendered_scene(0, layout)
    stack = make_stack(aif[::2, ::2], depth[::2, ::2], layout)
    assert stack.unit == "disparity" and stack.disparity_scale == DDFF12_DISPARITY_SCALE
    from anydepth.focus.tto import TTOConfig

    result = estimate_depth(stack, model, "sml", tto=TTOConfig(iterations=5, lr=1e-4, input_size=70), confidence="volume")
    assert result.depth.shape == result.dff.shape == (383, 552)
    assert len(result.tto.losses) == 6 and result.tto.losses[-2] <= result.tto.losses[0] + 1e-9
    written = write_focus_outputs(result, tmp_path, "sample", 0.141238)
    names = {p.name for p in written}
    assert names == {"depth_m.npy", "dff_m.npy", "depth_mm.png", "depth.png", "aif.png", "confidence.png", "loss.png",
                     "summary.png"}
    depth_m = np.load(tmp_path / "sample" / "depth_m.npy")
    dff_m = np.load(tmp_path / "sample" / "dff_m.npy")
    assert dff_m.dtype == np.float32 and dff_m.shape == depth_m.shape
    np.testing.assert_allclose(dff_m, 0.141238 / result.dff, rtol=1e-6)  # DFF alone, in metres
    millimetres = cv2.imread(str(tmp_path / "sample" / "depth_mm.png"), cv2.IMREAD_UNCHANGED)
    expected = np.clip(np.round(depth_m * 1000), 0, 65535)  # the PNG holds up to 65.535 m
    assert millimetres.dtype == np.uint16 and np.abs(millimetres.astype(np.int64) - expected).max() <= 1


def test_focus_cli_on_the_real_phone_stack(realdata, tiny_dav2, tmp_path, capsys):
    _, weights = tiny_dav2
    code = main(["focus", "run", str(realdata / "phone_focal_stacks" / "stack_a"), "--weights", str(weights), "--reduce", "8",
                 "--tto", "fast", "--input-size", "70", "--align", "--out", str(tmp_path)])
    assert code == 0
    depth = np.load(tmp_path / "stack_a" / "depth_m.npy")
    assert depth.shape == (384, 510) and np.isfinite(depth).all()
    assert "TTO" in capsys.readouterr().out


def test_focus_eval_prints_the_paper_table(tiny_dav2, tmp_path, capsys):
    _, weights = tiny_dav2
    generate_focus_dataset(tmp_path, 2, "ddff12", seed=3)
    table = tmp_path / "table.json"
    code = main(["focus", "eval", str(tmp_path / "ddff12_synthetic.h5"), "--weights", str(weights), "--input-size", "70",
                 "--focus-volume", "sml", "--json", str(table)])
    assert code == 0
    out = capsys.readouterr().out
    for row in ("DFF", "linear", "TTO (volume confidence)", "TTO (stack confidence)"):
        assert row in out
    scores = json.loads(table.read_text())["table"]
    assert scores["DFF"]["mse"] > 0 and 0 <= scores["DFF"]["delta1"] <= 100


@pytest.fixture(scope="module")
def ddff12_small(tmp_path_factory):
    """A small DDFF-12 file with train and val ground truth beside a test split (no disp_test), and
    a test-only file as the official one (stack_test only)."""
    folder = tmp_path_factory.mktemp("ddff12")
    samples = []
    for seed in range(3):  # random texture, depth ramp 0.6 -> 6 m along x, 32x48
        aif = cv2.GaussianBlur(np.random.default_rng(seed).random((32, 48, 3)).astype(np.float32), (0, 0), 0.8)
        depth_m = np.broadcast_to(np.linspace(0.6, 6.0, 48, dtype=np.float32), (32, 48)).copy()
        lens = LENS_PRESETS["ddff12"].resized(48)
        samples.append(focal_stack(aif, depth_m, ddff12_focus_distances_m(), lens, "gather"))
    splits = write_ddff12_h5(folder / "splits.h5", samples[:1], samples[1:2], test=samples[2:], strict=False)
    test_only = write_ddff12_h5(folder / "test.h5", test=samples[1:], strict=False)
    return splits, test_only


def test_focus_cli_test_split_writes_depth_maps_and_no_scores(tiny_dav2, ddff12_small, tmp_path, capsys):
    _, weights = tiny_dav2
    _, test_only = ddff12_small
    code = main(["focus", "run", str(test_only), "--split", "test", "--weights", str(weights), "--input-size", "70",
                 "--tto", "off", "--focus-volume", "sml", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "test split has no ground truth" in out and "MSE" not in out and "δ1" not in out
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["test.h5[test][0]", "test.h5[test][1]"]
    for folder in folders:
        names = {p.name for p in (tmp_path / folder).iterdir()}
        assert names == {"depth_m.npy", "dff_m.npy", "depth_mm.png", "depth.png", "aif.png", "confidence.png",
                         "summary.png"}
        depth_m = np.load(tmp_path / folder / "depth_m.npy")
        assert depth_m.shape == (32, 48) and np.isfinite(depth_m).all() and (depth_m > 0).all()
    # without --split the default val split is absent: one line naming the file and what it holds
    assert main(["focus", "run", str(test_only), "--weights", str(weights), "--out", str(tmp_path / "none")]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and str(test_only) in error
    assert "no DDFF-12 val split" in error and "has stack_test" in error


def test_focus_eval_test_split_fails_in_one_line(tiny_dav2, ddff12_small, capsys):
    _, weights = tiny_dav2
    splits, test_only = ddff12_small
    for path in (splits, test_only):
        assert main(["focus", "eval", str(path), "--split", "test", "--weights", str(weights)]) == 1
        captured = capsys.readouterr()
        error = captured.err.strip()
        assert "\n" not in error and "Traceback" not in error and captured.out == ""
        assert error.startswith(f"anydepth focus eval: error: {path}: the DDFF-12 test split has no ground truth")
    assert main(["focus", "eval", str(test_only), "--weights", str(weights)]) == 1  # default val: absent
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no DDFF-12 val split" in error and "has stack_test" in error


@pytest.mark.parametrize("split", ["val", "train"])
def test_focus_eval_scores_each_split_with_ground_truth(tiny_dav2, ddff12_small, tmp_path, capsys, split):
    _, weights = tiny_dav2
    splits, _ = ddff12_small
    table = tmp_path / "table.json"
    code = main(["focus", "eval", str(splits), "--split", split, "--weights", str(weights), "--input-size", "70",
                 "--focus-volume", "sml", "--json", str(table)])
    assert code == 0
    assert f"DDFF-12 {split}, 1 samples" in capsys.readouterr().out
    scores = json.loads(table.read_text())
    assert scores["samples"] == 1 and scores["table"]["DFF"]["mse"] > 0


def test_focus_cli_errors(tmp_path, tiny_dav2):
    _, weights = tiny_dav2
    (tmp_path / "empty").mkdir()
    assert main(["focus", "run", str(tmp_path / "empty"), "--weights", str(weights)]) == 1
    assert main(["focus", "run", str(tmp_path / "empty"), "--weights", str(weights), "--focus-volume", "dfv"]) == 1


def test_focus_prior_none_is_dff_alone_without_weights(realdata, tmp_path, capsys, monkeypatch):
    """--prior none: focus volume and DFF only; no Depth Anything weights are looked for."""
    import anydepth.foundation

    def no_weights(*args, **kwargs):
        raise AssertionError("--prior none must not load Depth Anything")

    monkeypatch.setattr(anydepth.foundation, "load_depth_anything", no_weights)
    code = main(["focus", "run", str(realdata / "phone_focal_stacks" / "stack_c"), "--prior", "none", "--reduce", "8",
                 "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in (tmp_path / "stack_c").iterdir()}
    assert names == {"depth_m.npy", "dff_m.npy", "depth_mm.png", "depth.png", "aif.png", "confidence.png", "summary.png"}
    depth_m, dff_m = np.load(tmp_path / "stack_c" / "depth_m.npy"), np.load(tmp_path / "stack_c" / "dff_m.npy")
    np.testing.assert_array_equal(depth_m, dff_m)
    assert dff_m.shape == (121, 160) and 0.24 <= dff_m.min() and dff_m.max() <= 2.5  # within the focus sweep, metres


def test_cli_offers_every_tto_recipe():
    from anydepth.cli.focus import TTO_RECIPES
    from anydepth.focus.pipeline import TTO_MODES

    assert TTO_RECIPES == list(TTO_MODES)
