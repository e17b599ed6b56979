"""Focal-stack readers (anydepth.focus.readers): round trips through the synthetic writers
(anydepth.synth.focus_writers, generate_focus_dataset), the real phone stacks, one-line errors for
broken files, and slice alignment recovering known warps."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from anydepth.errors import AnydepthWarning, FormatError, InputError
from anydepth.focus.readers import (
    AlignmentError,
    DDFF12Samples,
    FoD500Samples,
    align_slices,
    check_focal_stacks,
    open_focal_stacks,
    read_ddff12,
    read_fod500,
    read_image_folder,
)
from anydepth.focus.stack import DDFF12_FOCUS_DISPARITIES, FOD500_FOCUS_DISTANCES_M, FocalStack, metres_to_disparity
from anydepth.synth.focus_sets import generate_focus_dataset
from anydepth.synth.focus_writers import (
    ddff12_focus_distances_m,
    write_ddff12_h5,
    write_fod500_folder,
    write_phone_folder,
)
from anydepth.synth.thin_lens import LENS_PRESETS, focal_stack
from anydepth.viz import to_uint8


def rendered(height, width, focus_m, lens="fod500", seed=0, near=0.2, far=1.5):
    """A small rendered FocalStack (unit metres): smooth random texture, depth ramp along x."""
    rng = np.random.default_rng(seed)
    aif = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 0.8)
    depth = np.broadcast_to(np.linspace(near, far, width, dtype=np.float32)[None], (height, width)).copy()
    return focal_stack(aif, depth, focus_m, LENS_PRESETS[lens].resized(width), "gather")


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------- DDFF-12

@pytest.mark.parametrize("variant", ["ddff12", "dfv"])
def test_ddff12_round_trip_both_variants(tmp_path, variant):
    focus = ddff12_focus_distances_m()
    train = [rendered(24, 32, focus, "ddff12", seed, 0.5, 7.0) for seed in (0, 1)]
    val = [rendered(24, 32, focus, "ddff12", 2, 0.5, 7.0)]
    path = write_ddff12_h5(tmp_path / "d.h5", train, val, variant=variant, strict=False)
    samples = read_ddff12(path, "train")
    assert isinstance(samples, DDFF12Samples) and len(samples) == 2 and len(read_ddff12(path, "val")) == 1
    for index, written in enumerate(train):
        stack = samples[index]
        assert stack.unit == "disparity" and stack.disparity_scale == pytest.approx(0.141238)
        np.testing.assert_allclose(stack.positions, DDFF12_FOCUS_DISPARITIES, rtol=1e-12)
        np.testing.assert_array_equal(stack.ground_truth, metres_to_disparity(written.ground_truth, 0.141238).astype(np.float32))
        if variant == "ddff12":
            assert stack.slices.dtype == np.uint8 and stack.aif is None
            np.testing.assert_array_equal(stack.slices, to_uint8(written.slices))
        else:  # float32 0-255 in the file, float32 [0, 1] in the stack
            assert stack.slices.dtype == np.float32 and stack.slices.max() <= 1.0
            np.testing.assert_array_equal(np.round(stack.slices * 255).astype(np.uint8), to_uint8(written.slices))
            np.testing.assert_array_equal(np.round(stack.aif * 255).astype(np.uint8), to_uint8(written.aif))
    assert samples[-1].source.endswith("[train][1]")
    assert [s.source for s in samples[0:2]] == [samples[0].source, samples[1].source]
    np.testing.assert_array_equal(read_ddff12(path, "val", 0).ground_truth,
                                  metres_to_disparity(val[0].ground_truth, 0.141238).astype(np.float32))


def test_ddff12_from_generate_focus_dataset_matches_the_file(tmp_path):
    path = generate_focus_dataset(tmp_path, 2, "ddff12", seed=5)[0]
    stack = read_ddff12(path, "val", 0)
    with h5py.File(path) as h5:
        np.testing.assert_array_equal(stack.slices, h5["stack_val"][0])
        np.testing.assert_array_equal(stack.ground_truth, h5["disp_val"][0])
    assert stack.slices.shape == (10, 383, 552, 3)
    np.testing.assert_allclose(stack.positions, np.linspace(0.28, 0.02, 10))
    assert (stack.ground_truth > 0).all()
    np.testing.assert_allclose(stack.to_unit("metres").positions, ddff12_focus_distances_m(), rtol=1e-6)


def test_ddff12_focus_disparities_override_and_lazy_index_errors(tmp_path):
    focus = ddff12_focus_distances_m()
    path = write_ddff12_h5(tmp_path / "d.h5", [rendered(24, 32, focus, "ddff12", 0, 0.5, 7.0)], strict=False)
    custom = np.linspace(0.3, 0.03, 10)
    np.testing.assert_allclose(read_ddff12(path, "train", 0, focus_disparities=custom).positions, custom)
    with pytest.raises(FormatError, match="10 slices but 3 focus disparities") as caught:
        read_ddff12(path, "train", focus_disparities=[0.3, 0.2, 0.1])
    assert str(path) in one_line(caught)
    with pytest.raises(InputError, match=r"train sample 1 out of range \(0..0\)"):
        read_ddff12(path, "train", 1)
    with pytest.raises(InputError, match="split must be one of train, val, test"):
        read_ddff12(path, "holdout")
    with pytest.raises(FormatError, match=r"no DDFF-12 test split: no dataset 'stack_test' \(has disp_train, "
                       r"disp_val, stack_train, stack_val\)") as caught:
        read_ddff12(path, "test")
    assert one_line(caught).startswith(str(path))
    assert len(read_ddff12(path, "val")) == 0


def test_ddff12_test_only_file_reads_stacks_without_ground_truth(tmp_path):
    focus = ddff12_focus_distances_m()
    test = [rendered(24, 32, focus, "ddff12", seed, 0.5, 7.0) for seed in (0, 1)]
    path = write_ddff12_h5(tmp_path / "test.h5", test=test, strict=False)
    with h5py.File(path) as h5:
        assert list(h5.keys()) == ["stack_test"] and h5["stack_test"].dtype == np.uint8
    samples = read_ddff12(path, "test")
    assert len(samples) == 2 and not samples.has_ground_truth
    stacks = list(samples)  # iteration stops at the end (no out-of-range error)
    for index, (stack, written) in enumerate(zip(stacks, test)):
        assert stack.ground_truth is None and stack.unit == "disparity" and stack.source.endswith(f"[test][{index}]")
        np.testing.assert_array_equal(stack.slices, to_uint8(written.slices))
        np.testing.assert_allclose(stack.positions, DDFF12_FOCUS_DISPARITIES, rtol=1e-12)
    assert read_ddff12(path, "test", 1).ground_truth is None
    for split in ("val", "train"):
        with pytest.raises(FormatError, match=f"no DDFF-12 {split} split: no dataset 'stack_{split}' "
                           r"\(has stack_test\)") as caught:
            read_ddff12(path, split)
        assert one_line(caught).startswith(str(path))
    assert open_focal_stacks(path, split="test")[0].ground_truth is None


def test_ddff12_official_test_layout_reads_with_the_default_focus(tmp_path):
    """Laid out as the official ddff-dataset-test.h5 that DFV's DDFF12_submission.py reads with
    DDFF12Loader(stack_key="stack_test"): one uint8 dataset, no disp_test, no attributes."""
    stacks = np.random.default_rng(0).integers(0, 256, (2, 10, 6, 7, 3), dtype=np.uint8)
    path = tmp_path / "ddff-dataset-test.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("stack_test", data=stacks)
    samples = read_ddff12(path, "test")
    assert len(samples) == 2 and not samples.has_ground_truth and samples.has_aif is False
    np.testing.assert_array_equal(samples[1].slices, stacks[1])
    np.testing.assert_allclose(samples[1].positions, np.linspace(0.28, 0.02, 10))
    assert samples[1].disparity_scale == pytest.approx(0.141238) and samples[1].ground_truth is None


def test_ddff12_test_split_keeps_a_disp_test_when_a_file_has_one(tmp_path):
    path = tmp_path / "own.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("stack_test", data=np.zeros((1, 10, 4, 5, 3), np.uint8))
        h5.create_dataset("disp_test", data=np.full((1, 4, 5), 0.1, np.float32))
    samples = read_ddff12(path, "test")
    assert samples.has_ground_truth
    np.testing.assert_array_equal(samples[0].ground_truth, np.full((4, 5), 0.1, np.float32))


def test_ddff12_bad_files_raise_one_line_format_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_ddff12(tmp_path / "missing.h5")
    not_h5 = tmp_path / "not.h5"
    not_h5.write_bytes(b"hello world" * 100)
    with pytest.raises(FormatError, match="not a readable HDF5 file") as caught:
        read_ddff12(not_h5)
    assert str(not_h5) in one_line(caught)

    missing_key = tmp_path / "missing_key.h5"
    with h5py.File(missing_key, "w") as h5:
        h5.create_dataset("stack_val", data=np.zeros((1, 10, 4, 5, 3), np.uint8))
    with pytest.raises(FormatError, match="missing dataset 'disp_val' \\(has stack_val\\)") as caught:
        read_ddff12(missing_key)
    assert one_line(caught).startswith(str(missing_key))

    bad_shape = tmp_path / "bad_shape.h5"
    with h5py.File(bad_shape, "w") as h5:
        h5.create_dataset("stack_val", data=np.zeros((1, 10, 4, 5, 3), np.uint8))
        h5.create_dataset("disp_val", data=np.zeros((1, 4, 6), np.float32))
    with pytest.raises(FormatError, match=r"disp_val is \(1, 4, 6\), expected \(1, 4, 5\)"):
        read_ddff12(bad_shape)

    out_of_range = tmp_path / "range.h5"
    with h5py.File(out_of_range, "w") as h5:
        h5.create_dataset("stack_val", data=np.full((1, 10, 4, 5, 3), 300.0, np.float32))
        h5.create_dataset("disp_val", data=np.zeros((1, 4, 5), np.float32))
    with pytest.raises(FormatError, match="float stack values must lie in 0–255"):
        read_ddff12(out_of_range, index=0)

    focus = ddff12_focus_distances_m()
    good = write_ddff12_h5(tmp_path / "good.h5", [rendered(24, 32, focus, "ddff12", 0, 0.5, 7.0)] * 3, strict=False)
    truncated = tmp_path / "truncated.h5"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as caught:
        samples = read_ddff12(truncated, "train")
        samples[2]
    assert str(truncated) in one_line(caught)


def test_ddff12_truncated_anywhere_gives_only_one_line_errors(tmp_path):
    focus = ddff12_focus_distances_m()
    data = write_ddff12_h5(tmp_path / "good.h5", [rendered(24, 32, focus, "ddff12", 0, 0.5, 7.0)] * 2,
                           [rendered(24, 32, focus, "ddff12", 1, 0.5, 7.0)], strict=False).read_bytes()
    broken = tmp_path / "broken.h5"
    for cut in np.linspace(0, len(data) - 1, 25).astype(int):
        broken.write_bytes(data[:cut])
        try:
            [stack.slices.sum() for stack in read_ddff12(broken, "train")]
        except (FormatError, InputError) as error:
            assert "\n" not in str(error) and str(broken) in str(error)


# --------------------------------------------------------------------------- FoD500

def test_fod500_round_trip(tmp_path):
    written = [rendered(256, 256, FOD500_FOCUS_DISTANCES_M, seed=seed, near=0.1, far=1.6) for seed in (0, 1)]
    write_fod500_folder(tmp_path, written, start_index=399)
    for index, sample in zip((399, 400), written):
        stack = read_fod500(tmp_path, index)
        assert stack.unit == "metres" and stack.slices.shape == (5, 256, 256, 3)
        np.testing.assert_array_equal(stack.positions, FOD500_FOCUS_DISTANCES_M)
        np.testing.assert_array_equal(stack.slices, to_uint8(sample.slices))
        np.testing.assert_array_equal(stack.aif, to_uint8(sample.aif))
        np.testing.assert_array_equal(stack.ground_truth, sample.ground_truth.astype(np.float16).astype(np.float32))
    samples = open_focal_stacks(tmp_path)
    assert isinstance(samples, FoD500Samples) and samples.indices == [399, 400] and len(samples[:]) == 2


def test_fod500_from_generate_focus_dataset(tmp_path):
    generate_focus_dataset(tmp_path, 1, "fod500", seed=2)
    stack = read_fod500(tmp_path, 0)
    assert stack.slices.shape == (5, 256, 256, 3) and (stack.ground_truth > 0).all()
    assert stack.ground_truth.max() < 4.0


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_fod500_bad_files(tmp_path):
    write_fod500_folder(tmp_path, [rendered(256, 256, FOD500_FOCUS_DISTANCES_M, near=0.1, far=1.6)])
    with pytest.raises(InputError, match="no FoD500 slices 000007_00All.tif"):
        read_fod500(tmp_path, 7)
    with pytest.raises(InputError, match="no such folder"):
        read_fod500(tmp_path / "nope", 0)
    (tmp_path / "000000_02All.tif").write_bytes(b"II*\0garbage")
    with pytest.raises(FormatError, match="not a readable image") as caught:
        read_fod500(tmp_path, 0)
    assert "000000_02All.tif" in one_line(caught)

    write_fod500_folder(tmp_path, [rendered(256, 256, FOD500_FOCUS_DISTANCES_M, near=0.1, far=1.6)])
    depth = tmp_path / "000000Dpt.exr"
    data = depth.read_bytes()
    depth.write_bytes(data[: len(data) - 1000])
    with pytest.raises(FormatError, match="truncated EXR pixel data") as caught:
        read_fod500(tmp_path, 0)
    assert "000000Dpt.exr" in one_line(caught)
    for cut in np.linspace(0, len(data) - 1, 25).astype(int):
        depth.write_bytes(data[:cut])
        with pytest.raises((FormatError, InputError)) as caught:
            read_fod500(tmp_path, 0)
        assert "000000Dpt.exr" in one_line(caught)
    depth.unlink()
    with pytest.raises(FormatError, match="missing depth file 000000Dpt.exr"):
        read_fod500(tmp_path, 0)


# --------------------------------------------------------------------------- image folders

def test_phone_folder_round_trip_png_and_jpeg(tmp_path):
    written = rendered(48, 64, (0.35, 0.5, 0.9, 1.33, 2.21), "phone", near=0.3, far=2.5)
    write_phone_folder(tmp_path / "png", written, extension=".png")
    stack = read_image_folder(tmp_path / "png")
    np.testing.assert_array_equal(stack.positions, [0.35, 0.5, 0.9, 1.33, 2.21])
    np.testing.assert_array_equal(stack.slices, to_uint8(written.slices))
    np.testing.assert_array_equal(stack.aif, to_uint8(written.aif))
    np.testing.assert_array_equal(stack.ground_truth, written.ground_truth)
    write_phone_folder(tmp_path / "jpg", written, extension=".jpg", quality=95, ground_truth=False)
    stack = read_image_folder(tmp_path / "jpg")
    assert stack.ground_truth is None and stack.aif is None
    # JPEG (lossy, chroma subsampled) of fine noise: close, not equal.
    assert np.corrcoef(stack.slices.ravel(), to_uint8(written.slices).ravel())[0, 1] > 0.8


def test_phone_dataset_from_generate_focus_dataset(tmp_path):
    generate_focus_dataset(tmp_path, 1, "phone", seed=1)
    stacks = open_focal_stacks(tmp_path)
    assert len(stacks) == 1 and stacks[0].slices.shape == (5, 480, 640, 3)
    np.testing.assert_array_equal(stacks[0].positions, [0.35, 0.5, 0.9, 1.33, 2.21])
    np.testing.assert_array_equal(stacks[0].ground_truth, np.load(tmp_path / "stack_000" / "depth_m.npy"))
    half = read_image_folder(tmp_path / "stack_000", reduce=2)  # ground truth follows the reduced size
    assert half.slices.shape == (5, 240, 320, 3) and half.ground_truth.shape == (240, 320)


def test_real_phone_stacks(realdata):
    folder = realdata / "phone_focal_stacks"
    stack_a = read_image_folder(folder / "stack_a", reduce=8)
    assert stack_a.slices.shape == (5, 384, 510, 3) and stack_a.slices.dtype == np.uint8
    np.testing.assert_array_equal(stack_a.positions, [0.35, 0.5, 0.9, 1.33, 2.21])
    assert stack_a.unit == "metres" and stack_a.ground_truth is None
    stack_c = read_image_folder(folder / "stack_c")
    assert stack_c.slices.shape == (5, 964, 1280, 3)
    np.testing.assert_array_equal(stack_c.positions, [0.24, 0.36, 0.6, 1.5, 2.5])
    stacks = open_focal_stacks(folder, reduce=8)
    assert [s.source.rsplit("/", 1)[-1] for s in stacks] == ["stack_a", "stack_b", "stack_c"]
    np.testing.assert_array_equal(stacks[1].positions, [0.5, 0.65, 0.8, 0.95, 1.3])
    # The slices really differ in focus: the stack is not five copies of one image.
    assert np.abs(stack_a.slices[0].astype(int) - stack_a.slices[-1]).mean() > 1.0
    # Focus breathing: ECC converges on every slice, and the magnification relative to the middle
    # slice falls as the focus distance grows (about +1.4 % at 0.35 m, -0.4 % at 2.21 m here).
    _, transforms = align_slices(stack_a, method="ecc", motion="affine")
    magnification = np.sqrt(np.abs(np.linalg.det(transforms[:, :2, :2])))
    assert (np.diff(magnification) < 0).all() and np.abs(magnification - 1).max() < 0.03


def _write_png(path: Path, image: np.ndarray):
    cv2.imwrite(str(path), image[..., ::-1])


def test_focus_sidecars_csv_and_json(tmp_path):
    rng = np.random.default_rng(0)
    images = [(rng.random((6, 7, 3)) * 255).astype(np.uint8) for _ in range(3)]
    for name, image in zip(("far.png", "near.png", "mid.png"), images):
        _write_png(tmp_path / name, image)
    (tmp_path / "focus.csv").write_text("file,focus_m\nfar.png,3.0\nnear.png,0.5\nmid.png,1.0\n")
    stack = read_image_folder(tmp_path)
    np.testing.assert_array_equal(stack.positions, [0.5, 1.0, 3.0])  # ordered by distance
    np.testing.assert_array_equal(stack.slices, [images[1], images[2], images[0]])
    (tmp_path / "focus.csv").unlink()
    (tmp_path / "focus.json").write_text(json.dumps({"near.png": 0.5, "far.png": 3}))
    with pytest.warns(AnydepthWarning, match="focus.json does not list mid.png: not used"):  # named, not dropped silently
        stack = read_image_folder(tmp_path)
    np.testing.assert_array_equal(stack.positions, [0.5, 3.0])
    (tmp_path / "mid.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(open_focal_stacks(tmp_path)) == 1


@pytest.mark.parametrize("name, text, error, message", [
    ("focus.json", "{not json", FormatError, "not valid JSON"),
    ("focus.json", "[1, 2]", FormatError, "expected a non-empty object"),
    ("focus.json", '{"a.png": "near"}', FormatError, "focus distance of 'a.png' is not a number"),
    ("focus.json", '{"gone.png": 1.0}', FormatError, "focus sidecar lists missing files gone.png"),
    ("focus.csv", "a.png;1.0\n", FormatError, "expected rows `file,metres`"),
    ("focus.csv", "a.png,1.0\nb.png,x\n", FormatError, "focus distance of 'b.png' is not a number"),
    ("focus.json", '{"a.png": 1.0, "b.png": 1.0}', InputError, r"strictly monotonic.*a.png \(1 m\) then b.png \(1 m\)"),
    ("focus.json", '{"a.png": 1.0, "b.png": 0}', InputError, r"finite and positive metres: b.png \(0\) in focus.json"),
    ("focus.csv", "a.png,-1\nb.png,2\n", InputError, r"finite and positive metres: a.png \(-1\) in focus.csv"),
    ("focus.csv", "a.png,nan\nb.png,2\n", InputError, r"finite and positive metres: a.png \(nan\)"),
    ("focus.json", '{"a.png": 1.0, "b.png": 2.0, "a.png": 3.0}', FormatError, "focus.json: lists a.png more than once"),
    ("focus.csv", "a.png,1\nb.png,2\na.png,3\n", FormatError, "focus.csv: lists a.png more than once"),
])
def test_bad_sidecars(tmp_path, name, text, error, message):
    for image in ("a.png", "b.png"):
        _write_png(tmp_path / image, np.zeros((4, 5, 3), np.uint8))
    (tmp_path / name).write_text(text)
    with pytest.raises(error, match=message) as caught:
        read_image_folder(tmp_path)
    one_line(caught)


def test_sidecar_with_one_slice_warns_of_the_unlisted_image_then_fails(tmp_path):
    for image in ("a.png", "b.png"):
        _write_png(tmp_path / image, np.zeros((4, 5, 3), np.uint8))
    (tmp_path / "focus.csv").write_text("a.png,1\n")
    with pytest.warns(AnydepthWarning, match="focus.csv does not list b.png: not used"), \
            pytest.raises(InputError, match=r"at least two slices, found one \(a.png\) in focus.csv") as caught:
        read_image_folder(tmp_path)
    one_line(caught)


def test_image_folder_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        read_image_folder(tmp_path / "nope")
    with pytest.raises(InputError, match="no focus slices"):
        read_image_folder(tmp_path)
    _write_png(tmp_path / "image_1_0.5.png", np.zeros((4, 5, 3), np.uint8))
    _write_png(tmp_path / "image_2_1.png", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(InputError, match="slices differ in size: image_2_1.png is 6x4, image_1_0.5.png is 5x4") as caught:
        read_image_folder(tmp_path)
    assert one_line(caught).startswith(str(tmp_path))
    _write_png(tmp_path / "image_2_1.png", np.zeros((4, 5, 3), np.uint8))
    assert read_image_folder(tmp_path).count == 2
    np.save(tmp_path / "depth_m.npy", np.ones((3, 3), np.float32))
    with pytest.raises(FormatError, match=r"depth is \(3, 3\), slices are \(4, 5\)"):
        read_image_folder(tmp_path)
    (tmp_path / "depth_m.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(FormatError, match="cannot read depth") as caught:
        read_image_folder(tmp_path)
    one_line(caught)
    (tmp_path / "depth_m.npy").unlink()
    data = (tmp_path / "image_1_0.5.png").read_bytes()
    (tmp_path / "image_1_0.5.png").write_bytes(data[:20])
    with pytest.raises(FormatError, match="not a readable image") as caught:
        read_image_folder(tmp_path)
    assert "image_1_0.5.png" in one_line(caught)
    with pytest.raises(InputError, match="reduce must be 1, 2, 4 or 8"):
        read_image_folder(tmp_path, reduce=3)


@pytest.mark.parametrize("names, error, message", [
    (["image_1_0.5.png", "image_2_-1.0.png"], FormatError, r"image_2_-1.0.png: looks like a focus slice but the name is not"),
    (["image_1_0.5.png", "image_2_far.png", "image_3.png"], FormatError, r"image_2_far.png, image_3.png: looks like"),
    (["image_1_0.5.png", "image_2_1.0.txt"], FormatError, r"image_2_1.0.txt: looks like a focus slice"),
    (["image_1_0.5.png", "image_2_0.png"], InputError, r"finite and positive metres: image_2_0.png \(0\)"),
    (["image_1_0.5.png", "image_1_0.7.png"], FormatError, r"slice number 1 repeats: image_1_0.5.png, image_1_0.7.png"),
    (["image_1_0.5.png"], InputError, r"at least two slices, found one \(image_1_0.5.png\) in the image_<k>_<metres> names"),
    (["image_1_0.5.png", "image_2_2.png", "image_3_1.png"], InputError,
     r"strictly monotonic in slice order .*image_2_2.png \(2 m\) then image_3_1.png \(1 m\)"),
])
def test_image_folder_names_never_drop_a_slice_silently(tmp_path, names, error, message):
    for name in names:
        _write_png(tmp_path / name, np.zeros((4, 5, 3), np.uint8)) if name.endswith(".png") else \
            (tmp_path / name).write_bytes(b"not an image")
    with pytest.raises(error, match=message) as caught:
        read_image_folder(tmp_path)
    assert one_line(caught).startswith(f"{tmp_path}: ")


@pytest.mark.parametrize("size", [(1, 1), (2, 7)])
def test_slices_smaller_than_3x3_are_named(tmp_path, size):
    for name in ("image_1_0.5.png", "image_2_1.png"):
        _write_png(tmp_path / name, np.zeros((*size, 3), np.uint8))
    with pytest.raises(InputError, match=f"image_1_0.5.png is {size[1]}x{size[0]}: focus slices must be at least 3x3"):
        read_image_folder(tmp_path)


def test_a_folder_of_stack_folders_is_read_one_folder_at_a_time(tmp_path):
    for name, distances in (("a_good", ("0.5", "1")), ("b_bad", ("0.5", "-1")), ("c_good", ("0.3", "2"))):
        (tmp_path / name).mkdir()
        for k, metres in enumerate(distances, start=1):
            _write_png(tmp_path / name / f"image_{k}_{metres}.png", np.zeros((4, 5, 3), np.uint8))
    (tmp_path / "notes").mkdir()  # no images: not a stack
    (tmp_path / "notes" / "readme.txt").write_text("x")
    stacks = open_focal_stacks(tmp_path)
    assert len(stacks) == 3  # the bad folder is one of them, not skipped
    assert stacks[0].positions.tolist() == [0.5, 1.0] and stacks[2].positions.tolist() == [0.3, 2.0]
    with pytest.raises(FormatError, match="b_bad: image_2_-1.png: looks like a focus slice"):
        stacks[1]
    checked = check_focal_stacks(tmp_path)
    assert [(c.name, c.error is None) for c in checked] == [("a_good", True), ("b_bad", False), ("c_good", True)]
    assert checked[0].load().positions.tolist() == [0.5, 1.0]
    assert checked[0].stack is None and checked[0].load().count == 2  # read again after the first load
    with pytest.raises(FormatError, match="b_bad"):
        checked[1].load()
    assert [c.name for c in check_focal_stacks(tmp_path, limit=2)] == ["a_good", "b_bad"]
    kept = check_focal_stacks(tmp_path, keep_bytes=0)
    assert all(c.stack is None for c in kept) and kept[2].load().positions.tolist() == [0.3, 2.0]


def test_check_focal_stacks_refuses_two_stacks_with_one_output_name(tmp_path):
    for parent in ("x", "y"):
        folder = tmp_path / parent / "scene"
        folder.mkdir(parents=True)
        for k, metres in ((1, "0.5"), (2, "1")):
            _write_png(folder / f"image_{k}_{metres}.png", np.zeros((4, 5, 3), np.uint8))
    first, second, missing = check_focal_stacks([tmp_path / "x" / "scene", tmp_path / "y" / "scene",
                                                  tmp_path / "missing"])
    assert first.error is None and second.error is not None
    assert str(missing.error) == f"{tmp_path / 'missing'}: no such file or folder"
    message = str(second.error)
    assert message.startswith(str(tmp_path / "y" / "scene")) and str(tmp_path / "x" / "scene") in message
    assert "<out>/scene" in message


def test_truncated_real_jpeg_is_a_format_error(realdata, tmp_path):
    source = realdata / "phone_focal_stacks" / "stack_c"
    for path in source.iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "image_3_0.6.png").write_bytes((source / "image_3_0.6.png").read_bytes()[:3000])
    with pytest.raises(FormatError, match="image_3_0.6.png: not a readable image"):
        read_image_folder(tmp_path)


def test_open_focal_stacks_by_layout(tmp_path):
    focus = ddff12_focus_distances_m()
    path = write_ddff12_h5(tmp_path / "d.bin", [rendered(24, 32, focus, "ddff12", 0, 0.5, 7.0)], strict=False)
    assert isinstance(open_focal_stacks(path, split="train"), DDFF12Samples)  # by signature, not extension
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(FormatError, match="not a focal-stack file"):
        open_focal_stacks(tmp_path / "x.txt")
    with pytest.raises(InputError, match="no such file or folder"):
        open_focal_stacks(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no focal stacks here"):
        open_focal_stacks(tmp_path / "empty")


# --------------------------------------------------------------------------- alignment

def textured(height=240, width=320, seed=0) -> np.ndarray:
    """Smooth noise at two scales plus random rectangles (corners for ORB), RGB uint8."""
    rng = np.random.default_rng(seed)
    image = (cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 2.0)
             + cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 8.0))
    image = (image - image.min()) / (image.max() - image.min())
    for _ in range(40):
        y, x = rng.integers(0, height - 20), rng.integers(0, width - 20)
        h, w = rng.integers(6, 30, size=2)
        image[y:y + h, x:x + w] = rng.random(3)
    return (image * 255).astype(np.uint8)


def warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Slice that shows reference point p at matrix @ p (so `matrix` is the transform to recover):
    slice(x) = reference(matrix^-1 x)."""
    height, width = image.shape[:2]
    return cv2.warpPerspective(image, np.linalg.inv(matrix), (width, height),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def corner_error(found: np.ndarray, true: np.ndarray, height: int, width: int) -> float:
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T
    a, b = found @ corners, true @ corners
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).max())


@pytest.mark.parametrize("method, motion", [("ecc", "affine"), ("ecc", "homography"), ("homography", "affine")])
def test_alignment_recovers_known_warps(method, motion):
    reference = textured()
    height, width = reference.shape[:2]
    shift = np.array([[1, 0, 3.4], [0, 1, -2.1], [0, 0, 1.0]])
    # Focus breathing: a magnification about the centre, plus a small rotation (hand shake).
    angle, zoom = np.deg2rad(1.0), 1.02
    centre = np.array([[1, 0, width / 2], [0, 1, height / 2], [0, 0, 1.0]])
    affine = centre @ np.array([[zoom * np.cos(angle), -zoom * np.sin(angle), 1.5],
                                [zoom * np.sin(angle), zoom * np.cos(angle), 0.5], [0, 0, 1]]) @ np.linalg.inv(centre)
    blurred = cv2.GaussianBlur(reference, (0, 0), 1.2)  # slices differ in focus too
    slices = [warp(blurred, shift), reference, warp(reference, affine)]
    stack = FocalStack(slices, [0.5, 1.0, 2.0])
    aligned, transforms = align_slices(stack, method=method, motion=motion)
    assert transforms.shape == (3, 3, 3)
    np.testing.assert_array_equal(transforms[1], np.eye(3))
    assert corner_error(transforms[0], shift, height, width) < 1.0
    assert corner_error(transforms[2], affine, height, width) < 1.0
    inner = (slice(12, -12), slice(12, -12))
    residual = np.abs(aligned.slices[2][inner].astype(float) - reference[inner]).mean()
    before = np.abs(stack.slices[2][inner].astype(float) - reference[inner]).mean()
    assert residual < 0.3 * before
    np.testing.assert_array_equal(aligned.slices[1], reference)
    np.testing.assert_array_equal(aligned.positions, stack.positions)


def test_alignment_downscales_large_images_and_scales_the_transform_back():
    reference = textured(400, 600, seed=3)
    shift = np.array([[1, 0, 5.3], [0, 1, 2.6], [0, 0, 1.0]])
    stack = FocalStack([reference, warp(reference, shift)], [1.0, 2.0])
    _, transforms = align_slices(stack, motion="translation", reference=0, max_side=300)
    assert corner_error(transforms[1], shift, 400, 600) < 0.5


def test_alignment_failure_is_reported():
    rng = np.random.default_rng(1)
    reference = textured()
    noise = (rng.random(reference.shape) * 255).astype(np.uint8)
    flat = np.full_like(reference, 128)
    stack = FocalStack([reference, noise, flat], [1.0, 2.0, 3.0])
    with pytest.raises(AlignmentError, match="slice 1 not aligned to slice 0") as caught:
        align_slices(stack, reference=0)
    one_line(caught)
    with pytest.raises(AlignmentError, match="slice 2 not aligned to slice 0: too few ORB features"):
        align_slices(FocalStack([reference, reference, flat], [1.0, 2.0, 3.0]), method="homography", reference=0)
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        aligned, transforms = align_slices(stack, reference=0, strict=False)
    assert any("slice 1 not aligned" in str(w.message) for w in caught_warnings)
    np.testing.assert_array_equal(transforms[1], np.eye(3))
    np.testing.assert_array_equal(aligned.slices[1], noise)
    with pytest.raises(InputError, match="alignment method"):
        align_slices(stack, method="sift")
    with pytest.raises(InputError, match="reference slice 5 out of range"):
        align_slices(stack, reference=5)
