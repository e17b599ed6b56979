"""Bad inputs to `anydepth focus` and `anydepth focus eval` (issue 13): each ends with a non-zero
exit, no traceback, and a message naming the offending file or option. Run in process (fast); no
case needs Depth Anything weights unless it is about them."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from anydepth.cli.main import main
from anydepth.foundation import DepthAnythingV2, save_checkpoint


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `anydepth argv`; an argparse error is exit code 2."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fails_naming(result: tuple[int, str, str], *names: str) -> str:
    code, out, err = result
    assert code not in (0, None), f"exit {code}: {out}{err}"
    assert "Traceback" not in out + err
    for name in names:
        assert str(name) in err, f"{name!r} not in {err!r}"
    return err


def png(path: Path, height: int = 16, width: int = 16, seed: int = 0) -> Path:
    image = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def stack_folder(folder: Path, names=("image_1_0.5.png", "image_2_1.0.png", "image_3_2.0.png"), size=(16, 16)) -> Path:
    for seed, name in enumerate(names):
        png(folder / name, *size, seed=seed)
    return folder


def ddff12(path: Path, datasets: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w") as h5:
        for key, values in datasets.items():
            h5[key] = values
    return path


def good_ddff12_arrays(split: str = "val", slices: int = 10, height: int = 8, width: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"stack_{split}": (rng.random((1, slices, height, width, 3)) * 255).astype(np.uint8),
            f"disp_{split}": rng.uniform(0.02, 0.28, (1, height, width)).astype(np.float32)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "vitp.pth"
    save_checkpoint(DepthAnythingV2("vitp"), path)
    return path


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """No cached weights and a hub endpoint on a closed local port."""
    import huggingface_hub.constants

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ANYDEPTH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("ANYDEPTH_OFFLINE", raising=False)


# --------------------------------------------------------------------------- focus folders and names

FOLDER_CASES = {
    "negative distance in a name": (("image_1_0.5.png", "image_2_-1.0.png"), "image_2_-1.0.png: looks like a focus slice"),
    "distance not a number": (("image_1_0.5.png", "image_2_far.png"), "image_2_far.png"),
    "slice name without a distance": (("image_1_0.5.png", "image_2_1.0.png", "image_3.png"), "image_3.png"),
    "zero distance": (("image_1_0.png", "image_2_1.0.png"), "image_1_0.png (0)"),
    "slice number twice": (("image_1_0.5.png", "image_1_0.8.png", "image_2_1.png"),
                           "slice number 1 repeats: image_1_0.5.png, image_1_0.8.png"),
    "one slice": (("image_1_0.5.png",), "found one (image_1_0.5.png)"),
    "distances not monotonic": (("image_1_0.5.png", "image_2_2.png", "image_3_1.png"),
                                "image_2_2.png (2 m) then image_3_1.png (1 m)"),
    "slice that is no image format": (("image_1_0.5.png", "image_2_1.0.txt"), "image_2_1.0.txt"),
}


@pytest.mark.parametrize("case", FOLDER_CASES)
def test_bad_slice_names(case, tmp_path, capsys):
    names, message = FOLDER_CASES[case]
    folder = tmp_path / "stack"
    for seed, name in enumerate(names):
        png(folder / name, seed=seed) if name.endswith(".png") else (folder / name).write_text("x")
    err = fails_naming(run(["focus", "run", folder, "--prior", "none", "--out", tmp_path / "out"], capsys), folder, message)
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing written


def test_missing_path(tmp_path, capsys):
    fails_naming(run(["focus", "run", tmp_path / "nope", "--prior", "none", "--out", tmp_path / "out"], capsys),
                 tmp_path / "nope", "no such file or folder")


def test_folder_without_stacks(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    fails_naming(run(["focus", "run", tmp_path / "empty", "--prior", "none"], capsys), tmp_path / "empty", "no focal stacks here")


def test_text_file_as_stack(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    fails_naming(run(["focus", "run", tmp_path / "notes.txt", "--prior", "none"], capsys), "notes.txt", "not a focal-stack file")


def test_slices_of_different_sizes(tmp_path, capsys):
    folder = tmp_path / "stack"
    png(folder / "image_1_0.5.png", 16, 16)
    png(folder / "image_2_1.png", 16, 20)
    fails_naming(run(["focus", "run", folder, "--prior", "none"], capsys), "image_2_1.png is 20x16", "image_1_0.5.png is 16x16")


def test_1x1_slices(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack", size=(1, 1))
    fails_naming(run(["focus", "run", folder, "--prior", "none"], capsys), folder, "image_1_0.5.png is 1x1")


def test_corrupt_slice(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    (folder / "image_2_1.0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    fails_naming(run(["focus", "run", folder, "--prior", "none"], capsys), "image_2_1.0.png", "not a readable image")


def test_truncated_slice(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    data = (folder / "image_3_2.0.png").read_bytes()
    (folder / "image_3_2.0.png").write_bytes(data[: len(data) // 2])
    fails_naming(run(["focus", "run", folder, "--prior", "none"], capsys), "image_3_2.0.png", "not a readable image")


def test_ground_truth_of_another_size(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    np.save(folder / "depth_m.npy", np.ones((3, 3), np.float32))
    fails_naming(run(["focus", "run", folder, "--prior", "none"], capsys), folder / "depth_m.npy", "depth is (3, 3)")


# --------------------------------------------------------------------------- sidecars

SIDECAR_CASES = {
    "csv lists a file twice": ("focus.csv", "a.png,0.5\nb.png,1.0\na.png,2.0\n", "focus.csv: lists a.png more than once"),
    "json lists a file twice": ("focus.json", '{"a.png": 0.5, "b.png": 1.0, "a.png": 2.0}',
                                "focus.json: lists a.png more than once"),
    "non-positive distance": ("focus.csv", "a.png,0.5\nb.png,-1\n", "b.png (-1) in focus.csv"),
    "infinite distance": ("focus.json", '{"a.png": 0.5, "b.png": Infinity}', "b.png (inf) in focus.json"),
    "distance not a number": ("focus.csv", "a.png,0.5\nb.png,near\n", "focus distance of 'b.png' is not a number"),
    "listed file missing": ("focus.json", '{"a.png": 0.5, "gone.png": 1.0}', "lists missing files gone.png"),
    "not JSON": ("focus.json", "{a.png: 0.5", "focus.json: not valid JSON"),
    "two files at one distance": ("focus.csv", "a.png,1\nb.png,1\n", "a.png (1 m) then b.png (1 m)"),
}


@pytest.mark.parametrize("case", SIDECAR_CASES)
def test_bad_sidecars(case, tmp_path, capsys):
    name, text, message = SIDECAR_CASES[case]
    folder = tmp_path / "stack"
    png(folder / "a.png", seed=1)
    png(folder / "b.png", seed=2)
    (folder / name).write_text(text)
    fails_naming(run(["focus", "run", folder, "--prior", "none", "--out", tmp_path / "out"], capsys), folder, message)
    assert not (tmp_path / "out").exists()


def test_sidecar_that_leaves_images_out_is_named(tmp_path, capsys):
    """Not an error (the sidecar chooses the slices), but never silent: a warning names them."""
    folder = tmp_path / "stack"
    for seed, name in enumerate(("a.png", "b.png", "c.png")):
        png(folder / name, seed=seed)
    (folder / "focus.json").write_text(json.dumps({"a.png": 0.5, "b.png": 1.0}))
    code, _, err = run(["focus", "run", folder, "--prior", "none", "--out", tmp_path / "out"], capsys)
    assert code == 0 and "warning" in err and "focus.json does not list c.png" in err
    assert (tmp_path / "out" / "stack" / "dff_m.npy").is_file()


# --------------------------------------------------------------------------- several stacks

def test_a_bad_stack_among_good_ones_is_reported_and_the_others_written(tmp_path, capsys):
    parent = tmp_path / "stacks"
    stack_folder(parent / "a")
    stack_folder(parent / "b", names=("image_1_0.5.png", "image_2_-2.png"))
    stack_folder(parent / "c")
    single = stack_folder(tmp_path / "d")
    code, out, err = run(["focus", "run", parent, single, tmp_path / "missing", "--prior", "none", "--out", tmp_path / "out"],
                         capsys)
    fails_naming((code, out, err), parent / "b", "image_2_-2.png", tmp_path / "missing")
    assert code == 1 and err.count("error:") == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "c", "d"]
    for name in ("a", "c", "d"):
        assert (tmp_path / "out" / name / "dff_m.npy").is_file() and (tmp_path / "out" / name / "depth_m.npy").is_file()
    assert "3 of 5 stacks done" in out


def test_bad_stacks_are_reported_before_any_weights_load(tmp_path, capsys):
    """With a good and a bad stack and weights that do not exist: the stack error comes first
    (reading and checking come before the model), then the weights error; nothing is written."""
    good = stack_folder(tmp_path / "good")
    bad = stack_folder(tmp_path / "bad", names=("image_1_0.5.png", "image_2_0.png"))
    err = fails_naming(run(["focus", "run", good, bad, "--weights", tmp_path / "none.pth", "--out", tmp_path / "out"], capsys),
                       "image_2_0.png", "none.pth")
    assert err.index("image_2_0.png") < err.index("none.pth")
    assert not (tmp_path / "out").exists()


def test_two_stacks_with_one_output_name(tmp_path, capsys):
    first = stack_folder(tmp_path / "x" / "scene")
    second = stack_folder(tmp_path / "y" / "scene")
    fails_naming(run(["focus", "run", first, second, "--prior", "none", "--out", tmp_path / "out"], capsys),
                 second, "<out>/scene", first)
    assert (tmp_path / "out" / "scene" / "dff_m.npy").is_file()  # the first one is written, not overwritten


def test_stack_that_cannot_be_aligned_does_not_stop_the_others(tmp_path, capsys):
    flat = tmp_path / "flat"
    for name in ("image_1_0.5.png", "image_2_1.0.png", "image_3_2.0.png"):
        flat.mkdir(exist_ok=True)
        cv2.imwrite(str(flat / name), np.full((32, 32, 3), 128, np.uint8))  # no texture: ECC cannot register
    good = tmp_path / "good"
    aif = cv2.GaussianBlur(np.random.default_rng(0).random((64, 64, 3)).astype(np.float32), (0, 0), 1.0)
    for name, sigma in (("image_1_0.5.png", 0.5), ("image_2_1.0.png", 1.0), ("image_3_2.0.png", 1.5)):
        good.mkdir(exist_ok=True)
        cv2.imwrite(str(good / name), (cv2.GaussianBlur(aif, (0, 0), sigma) * 255).astype(np.uint8))
    code, out, err = run(["focus", "run", flat, good, "--prior", "none", "--align", "--out", tmp_path / "out"], capsys)
    fails_naming((code, out, err), flat, "not aligned")
    assert (tmp_path / "out" / "good" / "dff_m.npy").is_file() and not (tmp_path / "out" / "flat").exists()


# --------------------------------------------------------------------------- DDFF-12 files

def test_ddff12_without_the_split(tmp_path, capsys):
    path = ddff12(tmp_path / "d.h5", good_ddff12_arrays("train"))
    fails_naming(run(["focus", "run", path, "--prior", "none"], capsys), path, "no DDFF-12 val split", "has disp_train, stack_train")


def test_ddff12_disparity_of_another_shape(tmp_path, capsys):
    arrays = good_ddff12_arrays()
    arrays["disp_val"] = arrays["disp_val"][:, :4]
    path = ddff12(tmp_path / "d.h5", arrays)
    fails_naming(run(["focus", "run", path, "--prior", "none"], capsys), path, "disp_val is (1, 4, 8), expected (1, 8, 8)")


def test_ddff12_with_one_slice(tmp_path, capsys):
    path = ddff12(tmp_path / "d.h5", good_ddff12_arrays(slices=1))
    fails_naming(run(["focus", "run", path, "--prior", "none"], capsys), path, "at least two slices")


def test_ddff12_truncated(tmp_path, capsys):
    good = ddff12(tmp_path / "good.h5", good_ddff12_arrays())
    path = tmp_path / "cut.h5"
    path.write_bytes(good.read_bytes()[:1500])
    fails_naming(run(["focus", "run", path, "--prior", "none"], capsys), path)


def test_eval_on_a_file_without_ground_truth_key(tmp_path, capsys, weights):
    arrays = good_ddff12_arrays()
    del arrays["disp_val"]
    path = ddff12(tmp_path / "d.h5", arrays)
    fails_naming(run(["focus", "eval", path, "--weights", weights], capsys), path, "missing dataset 'disp_val'")


def test_eval_on_a_folder(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    fails_naming(run(["focus", "eval", folder], capsys), folder, "no such file")


def test_eval_on_a_text_file(tmp_path, capsys):
    (tmp_path / "x.h5").write_text("not hdf5")
    fails_naming(run(["focus", "eval", tmp_path / "x.h5"], capsys), tmp_path / "x.h5", "not a readable HDF5 file")


def test_eval_json_that_is_a_folder(tmp_path, capsys):
    path = ddff12(tmp_path / "d.h5", good_ddff12_arrays())
    (tmp_path / "table").mkdir()
    fails_naming(run(["focus", "eval", path, "--json", tmp_path / "table"], capsys), "--json", tmp_path / "table")


# --------------------------------------------------------------------------- options

@pytest.mark.parametrize("argv, option", [
    (["focus", "eval", "{h5}", "--split", "tset"], "--split"),
    (["focus", "run", "{stack}", "--split", "validation"], "--split"),
    (["focus", "run", "{stack}", "--focus-volume", "sobel"], "--focus-volume"),
    (["focus", "eval", "{h5}", "--focus-volume", "laplace"], "--focus-volume"),
    (["focus", "run", "{stack}", "--confidence", "both"], "--confidence"),
    (["focus", "run", "{stack}", "--prior", "midas"], "--prior"),
    (["focus", "run", "{stack}", "--reduce", "3"], "--reduce"),
    (["focus", "run", "{stack}", "--tto", "slow"], "--tto"),
    (["focus", "eval", "{h5}", "--tto", "off"], "--tto"),
])
def test_bad_option_values(argv, option, tmp_path, capsys):
    stack = stack_folder(tmp_path / "stack")
    h5 = ddff12(tmp_path / "d.h5", good_ddff12_arrays())
    argv = [a.format(stack=stack, h5=h5) for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 2
    fails_naming((code, "", err), option, "invalid choice")


@pytest.mark.parametrize("extra, named", [
    (["--weights", "w.pth"], "--weights"),
    (["--encoder", "vits"], "--encoder"),
    (["--tto", "paper"], "--tto paper"),
    (["--input-size", "70"], "--input-size"),
])
def test_prior_none_refuses_options_of_the_prior(extra, named, tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    fails_naming(run(["focus", "run", folder, "--prior", "none", *extra], capsys), named, "--prior dav2")


def test_dfv_volume_without_dfv_weights(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    fails_naming(run(["focus", "run", folder, "--prior", "none", "--focus-volume", "dfv"], capsys), "--dfv-weights")


def test_dfv_weights_that_do_not_exist(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    fails_naming(run(["focus", "run", folder, "--prior", "none", "--focus-volume", "dfv", "--dfv-weights",
                      tmp_path / "DFF-DFV.tar"], capsys), "DFF-DFV.tar")


def test_limit_zero(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    fails_naming(run(["focus", "run", folder, "--prior", "none", "--limit", "0"], capsys), "--limit")


def test_out_is_an_existing_file(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    (tmp_path / "out").write_text("mine")
    fails_naming(run(["focus", "run", folder, "--prior", "none", "--out", tmp_path / "out"], capsys), "--out", tmp_path / "out")
    assert (tmp_path / "out").read_text() == "mine"


def test_weights_file_that_does_not_exist(tmp_path, capsys):
    folder = stack_folder(tmp_path / "stack")
    fails_naming(run(["focus", "run", folder, "--weights", tmp_path / "nope.pth", "--out", tmp_path / "out"], capsys),
                 tmp_path / "nope.pth", "weights file not found")
    assert not (tmp_path / "out").exists()


def test_weights_not_cached_and_no_network_fails_within_seconds(tmp_path, capsys, no_network):
    folder = stack_folder(tmp_path / "stack")
    started = time.perf_counter()
    result = run(["focus", "run", folder, "--out", tmp_path / "out"], capsys)
    elapsed = time.perf_counter() - started
    err = fails_naming(result, "weights not found", "no network", "--weights", "--prior none")
    assert elapsed < 5.0, f"{elapsed:.1f} s"
    assert err.count("\n") == 1 and "Retrying" not in err


def test_eval_weights_not_cached_and_no_network(tmp_path, capsys, no_network):
    path = ddff12(tmp_path / "d.h5", good_ddff12_arrays())
    started = time.perf_counter()
    fails_naming(run(["focus", "eval", path], capsys), "weights not found", "no network")
    assert time.perf_counter() - started < 5.0
