"""Focal-stack writers (anydepth.synth.focus_writers): write, read back with h5py / Pillow /
OpenCV / the EXR reader, and replay what DFV's loaders (fuy34/DFV dataloader/DDFF12.py and
FoD500.py) do with the files: which names they list, how they sort and index them, which keys,
shapes, dtypes and value ranges they expect. The OpenEXR library, when installed (it is not a
dependency), cross-checks the EXR writer and reader."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from anydepth import viz
from anydepth.errors import FormatError, InputError
from anydepth.fileio import exr_bytes, read_exr, write_exr
from anydepth.focus import DDFF12_DISPARITY_SCALE, DDFF12_FOCUS_DISPARITIES, FOD500_FOCUS_DISTANCES_M
from anydepth.synth.focus_writers import (
    ddff12_focus_distances_m,
    fod500_names,
    focus_distance_name,
    write_ddff12_h5,
    write_fod500_folder,
    write_phone_folder,
)
from anydepth.synth.thin_lens import LENS_PRESETS, focal_stack


def to_uint8(image):
    """What the writers store for an image in [0, 1]."""
    return viz.to_uint8(image, strict=True)


def scene(height: int, width: int, near: float, far: float, seed: int, smooth: float = 0.8):
    """Smooth random texture in [0, 1] and a depth ramp (inverse depth linear along x)."""
    rng = np.random.default_rng(seed)
    aif = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), smooth)
    aif = (aif - aif.min()) / (aif.max() - aif.min())
    inverse = 1 / near + (1 / far - 1 / near) * np.arange(width) / (width - 1)
    return aif, np.broadcast_to(1 / inverse, (height, width)).copy()


def ddff_stack(height=383, width=552, seed=0, invalid=True):
    aif, depth = scene(height, width, 0.55, 6.5, seed)
    stack = focal_stack(aif, depth, ddff12_focus_distances_m(), LENS_PRESETS["ddff12"], mode="gather",
                        focus_unit="disparity")
    if invalid:  # ground truth with holes, as DDFF-12's registered depth has
        stack.ground_truth[:20, :30] = 0.0
    return stack


def fod_stack(seed=0):
    aif, depth = scene(256, 256, 0.12, 2.5, seed)
    return focal_stack(aif, depth, FOD500_FOCUS_DISTANCES_M, LENS_PRESETS["fod500"], mode="layered")


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.fixture(scope="module")
def ddff_samples():
    return [ddff_stack(seed=1), ddff_stack(seed=2, invalid=False)]


@pytest.fixture(scope="module")
def fod_samples():
    return [fod_stack(seed=3), fod_stack(seed=4)]


# --------------------------------------------------------------------------- DDFF-12

def test_ddff12_h5_keys_dtypes_shapes_and_values(tmp_path, ddff_samples):
    path = write_ddff12_h5(tmp_path / "synth_ddff12.h5", train=ddff_samples[:1], val=ddff_samples[1:])
    assert path.is_file() and no_temporaries(tmp_path)
    with h5py.File(path, "r") as h5:
        assert set(h5.keys()) == {"stack_train", "disp_train", "stack_val", "disp_val"}
        for split, sample in (("train", ddff_samples[0]), ("val", ddff_samples[1])):
            stacks, disparity = h5[f"stack_{split}"], h5[f"disp_{split}"]
            assert stacks.shape == (1, 10, 383, 552, 3) and stacks.dtype == np.uint8
            assert disparity.shape == (1, 383, 552) and disparity.dtype == np.float32
            np.testing.assert_array_equal(stacks[0], to_uint8(sample.slices))
            depth_m = sample.ground_truth_in("metres")
            expected = np.where(depth_m > 0, DDFF12_DISPARITY_SCALE / np.maximum(depth_m, 1e-9), 0)
            np.testing.assert_allclose(disparity[0], expected, rtol=1e-6)
            np.testing.assert_allclose(stacks.attrs["focus_disparity"], DDFF12_FOCUS_DISPARITIES, rtol=1e-9)
        assert (h5["disp_train"][0][:20, :30] == 0).all()  # 0 = invalid
        assert h5.attrs["disparity_scale"] == pytest.approx(DDFF12_DISPARITY_SCALE)


def test_ddff12_h5_meets_dfv_loader_conventions(tmp_path, ddff_samples):
    """What DFV's DDFF12Loader does with the file, step by step."""
    path = write_ddff12_h5(tmp_path / "ddff.h5", train=ddff_samples[:1], val=ddff_samples[1:])
    disp_dist = torch.linspace(0.28, 0.02, steps=10)  # hard-coded in the loader, slice order
    np.testing.assert_allclose(disp_dist.numpy(), DDFF12_FOCUS_DISPARITIES, atol=1e-7)
    with h5py.File(path, "r") as h5:
        for stack_key, disp_key in (("stack_train", "disp_train"), ("stack_val", "disp_val")):
            assert h5[stack_key].shape[0] == 1  # __len__
            images = h5[stack_key][0].astype(float)  # __getitem__
            disparity = h5[disp_key][0]
            assert images.shape == (10, 383, 552, 3) and 0 <= images.min() and images.max() <= 255
            tensor = torch.from_numpy(images.transpose((0, 3, 1, 2))).float().div(255)  # ToTensor
            assert tensor.shape == (10, 3, 383, 552) and float(tensor.max()) <= 1.0
            height, width = images.shape[1:3]
            assert height - 224 > 0 and width - 224 > 0  # RandomCrop(224) candidates exist
            assert 384 - height >= 0 and 576 - width >= 0  # PadSamples((384, 576)) pads, never crops
            assert disparity[:256, :256].shape == (256, 256)  # the validation crop
            # the training mask keeps gt within the focus range: the scene spans it
            valid = disparity[disparity > 0]
            assert valid.min() >= 0.02 and valid.max() <= 0.28
            # the sharpest slice at a pixel is the one whose focus disparity is nearest its gt
            energy = [cv2.Laplacian(image.mean(-1).astype(np.float32), cv2.CV_32F) ** 2 for image in images]
            column_energy = np.stack([cv2.GaussianBlur(e, (0, 0), 6).mean(axis=0) for e in energy])
            columns = [100, 300, 500]
            nearest = np.abs(disparity[200, columns][None] - DDFF12_FOCUS_DISPARITIES[:, None]).argmin(axis=0)
            assert np.all(np.abs(column_energy[:, columns].argmax(axis=0) - nearest) <= 1)


def test_ddff12_dfv_repack_variant(tmp_path):
    samples = [ddff_stack(32, 48, seed=5), ddff_stack(32, 48, seed=6)]
    path = write_ddff12_h5(tmp_path / "dfv.h5", train=samples, val=[], variant="dfv", strict=False)
    with h5py.File(path, "r") as h5:
        assert set(h5.keys()) == {"stack_train", "disp_train", "AiF_train", "stack_val", "disp_val", "AiF_val"}
        assert all(h5[key].dtype == np.float32 for key in h5.keys())  # DFV's packer: h5py's default dtype
        assert h5["stack_train"].shape == (2, 10, 32, 48, 3) and h5["AiF_train"].shape == (2, 32, 48, 3)
        assert h5["stack_val"].shape == (0, 10, 32, 48, 3) and h5["disp_val"].shape == (0, 32, 48)
        for index, sample in enumerate(samples):
            np.testing.assert_array_equal(h5["stack_train"][index], to_uint8(sample.slices).astype(np.float32))
            np.testing.assert_array_equal(h5["AiF_train"][index], to_uint8(sample.aif).astype(np.float32))


def test_ddff12_test_split_is_stack_test_only(tmp_path, ddff_samples):
    """The official test file holds stack_test only (DFV's DDFF12Loader gives a dummy target for a
    "test" key): test= writes that, alone or beside train/val, never a disp_test."""
    path = write_ddff12_h5(tmp_path / "test.h5", test=ddff_samples)
    with h5py.File(path, "r") as h5:
        assert list(h5.keys()) == ["stack_test"]
        assert h5["stack_test"].shape == (2, 10, 383, 552, 3) and h5["stack_test"].dtype == np.uint8
        for index, sample in enumerate(ddff_samples):
            np.testing.assert_array_equal(h5["stack_test"][index], to_uint8(sample.slices))
    small = [ddff_stack(32, 48, seed=5), ddff_stack(32, 48, seed=6)]
    both = write_ddff12_h5(tmp_path / "both.h5", small[:1], test=small[1:], variant="dfv", strict=False)
    with h5py.File(both, "r") as h5:
        assert set(h5.keys()) == {"stack_train", "disp_train", "AiF_train", "stack_val", "disp_val", "AiF_val",
                                  "stack_test"}
        assert h5["stack_test"].dtype == np.float32 and h5["stack_test"].shape == (1, 10, 32, 48, 3)
        np.testing.assert_array_equal(h5["stack_test"][0], to_uint8(small[1].slices).astype(np.float32))
    with pytest.raises(InputError, match="224 < H"):  # the strict checks cover test samples too
        write_ddff12_h5(tmp_path / "bad.h5", test=[ddff_stack(32, 48)])


def test_ddff12_strict_checks(tmp_path):
    small = ddff_stack(32, 48)
    with pytest.raises(InputError, match="224 < H"):
        write_ddff12_h5(tmp_path / "a.h5", train=[small])
    aif, depth = scene(240, 320, 0.6, 6.0, 7)
    five = focal_stack(aif, depth, ddff12_focus_distances_m()[::2], LENS_PRESETS["ddff12"], mode="gather")
    with pytest.raises(InputError, match="10 slices"):
        write_ddff12_h5(tmp_path / "a.h5", train=[five])
    elsewhere = focal_stack(aif, depth, np.linspace(0.6, 6.0, 10), LENS_PRESETS["ddff12"], mode="gather")
    with pytest.raises(InputError, match="linspace"):
        write_ddff12_h5(tmp_path / "a.h5", train=[elsewhere])
    with pytest.raises(InputError, match="variant"):
        write_ddff12_h5(tmp_path / "a.h5", train=[small], variant="hci", strict=False)
    with pytest.raises(InputError, match="no samples"):
        write_ddff12_h5(tmp_path / "a.h5", train=[])
    with pytest.raises(InputError, match="one stack shape"):
        write_ddff12_h5(tmp_path / "a.h5", train=[small, five], strict=False)
    assert not (tmp_path / "a.h5").exists() and no_temporaries(tmp_path)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    good = ddff_stack(32, 48, seed=8)
    path = write_ddff12_h5(tmp_path / "x.h5", train=[good], strict=False)
    before = path.read_bytes()
    bad = ddff_stack(32, 48, seed=9)
    bad.slices *= 255.0  # an image already scaled to 0–255 is refused mid-write
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        write_ddff12_h5(path, train=[good, bad], strict=False)
    assert path.read_bytes() == before and no_temporaries(tmp_path)


# --------------------------------------------------------------------------- FoD500

def test_fod500_folder_names_and_values(tmp_path, fod_samples):
    written = write_fod500_folder(tmp_path, fod_samples, start_index=399)
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted([f"000399_{k:02d}All.tif" for k in range(5)] + ["000399Dpt.exr", "000399Aif.tif"]
                      + [f"000400_{k:02d}All.tif" for k in range(5)] + ["000400Dpt.exr", "000400Aif.tif"])
    assert names == expected and sorted(p.name for p in written) == expected
    assert fod500_names(7) == {"slices": [f"000007_{k:02d}All.tif" for k in range(5)],
                               "depth": "000007Dpt.exr", "aif": "000007Aif.tif"}
    for index, sample in zip((399, 400), fod_samples):
        for k in range(5):
            image = np.array(Image.open(tmp_path / f"{index:06d}_{k:02d}All.tif"))
            assert image.dtype == np.uint8 and image.shape == (256, 256, 3)
            np.testing.assert_array_equal(image, to_uint8(sample.slices[k]))
        np.testing.assert_array_equal(np.array(Image.open(tmp_path / f"{index:06d}Aif.tif")), to_uint8(sample.aif))
        channels = read_exr(tmp_path / f"{index:06d}Dpt.exr")
        assert set(channels) == {"R", "G", "B"} and channels["R"].dtype == np.float16
        np.testing.assert_allclose(channels["R"].astype(np.float32), sample.ground_truth, rtol=1e-3)
        np.testing.assert_array_equal(channels["G"], channels["R"])
        np.testing.assert_array_equal(channels["B"], channels["R"])


def test_fod500_folder_meets_dfv_loader_conventions(tmp_path, fod_samples):
    """What DFV's FoD500Loader / ImageDataset do: list by suffix, split by int(name[:6]) < 400,
    sort, take slices idx·5 .. idx·5 + 4 for depth file idx, read with PIL, /255."""
    write_fod500_folder(tmp_path, fod_samples, start_index=399)
    files = [f.name for f in tmp_path.iterdir() if f.is_file()]
    for split, keep in (("train", lambda f: int(f[:6]) < 400), ("val", lambda f: int(f[:6]) >= 400)):
        images = sorted(f for f in files if f[-7:] == "All.tif" and keep(f))
        depths = sorted(f for f in files if f[-7:] == "Dpt.exr" and keep(f))
        assert len(depths) == 1 and len(images) == 5 * len(depths)
        sample = fod_samples[0 if split == "train" else 1]
        for idx in range(len(depths)):
            stack = np.stack([np.array(Image.open(tmp_path / images[idx * 5 + i])) / 255.0 for i in range(5)])
            assert stack.shape == (5, 256, 256, 3)
            np.testing.assert_allclose(stack, to_uint8(sample.slices) / 255.0)
            depth = read_exr(tmp_path / depths[idx])["R"]
            assert np.concatenate([np.zeros((256, 256, 0)), depth[:, :, None]], axis=2).shape == (256, 256, 1)
    # the files DFV takes as slice k are focused at its focus_dist[k]: on the train sample read
    # back in DFV's order, the sharpest slice per column is the one predicted by the thin lens
    images = sorted(f for f in files if f[-7:] == "All.tif" and int(f[:6]) < 400)
    stack = np.stack([np.array(Image.open(tmp_path / name)) / 255.0 for name in images]).astype(np.float32)
    energy = np.stack([cv2.GaussianBlur(cv2.Laplacian(s.mean(-1), cv2.CV_32F) ** 2, (0, 0), 5).mean(0) for s in stack])
    sigma = np.sort(LENS_PRESETS["fod500"].slice_sigmas_px(fod_samples[0])[:, 128], axis=0)
    clear = np.flatnonzero(sigma[1] - sigma[0] > 0.3)
    clear = clear[(clear > 10) & (clear < 246)]
    assert clear.size > 50
    predicted = LENS_PRESETS["fod500"].slice_sigmas_px(fod_samples[0])[:, 128].argmin(0)
    np.testing.assert_array_equal(energy[:, clear].argmax(0), predicted[clear])


def test_fod500_strict_checks(tmp_path):
    aif, depth = scene(64, 64, 0.12, 2.5, 9)
    small = focal_stack(aif, depth, FOD500_FOCUS_DISTANCES_M, LENS_PRESETS["fod500"], mode="gather")
    with pytest.raises(InputError, match="256x256"):
        write_fod500_folder(tmp_path, [small])
    other = focal_stack(aif, depth, [0.1, 0.2, 0.4, 0.8, 1.6], LENS_PRESETS["fod500"], mode="gather")
    with pytest.raises(InputError, match="focused at"):
        write_fod500_folder(tmp_path, [other])
    assert not list(tmp_path.iterdir())
    write_fod500_folder(tmp_path, [other], strict=False, start_index=12)
    assert (tmp_path / "000012_04All.tif").is_file()
    with pytest.raises(InputError, match="index"):
        fod500_names(1_000_000)


# --------------------------------------------------------------------------- phone folder

PHONE_NAME = re.compile(r"^image_(\d+)_(\d+(?:\.\d+)?)\.(jpg|png)$")


@pytest.mark.parametrize("extension", [".jpg", ".png"])
def test_phone_folder_names_values_and_ground_truth(tmp_path, extension):
    focus = [0.35, 0.5, 0.9, 1.33, 2.21]  # ../shared/realdata/phone_focal_stacks/stack_a's distances
    aif, depth = scene(48, 64, 0.3, 3.0, 10, smooth=3.0)  # JPEG's chroma subsampling spares smooth colour
    stack = focal_stack(aif, depth, focus, LENS_PRESETS["phone"].resized(64))
    written = write_phone_folder(tmp_path, stack, extension=extension)
    images = sorted(p for p in tmp_path.iterdir() if p.name.startswith("image_"))
    assert [p.name for p in images] == [f"image_{k}_{name}{extension}" for k, name in
                                        enumerate(["0.35", "0.5", "0.9", "1.33", "2.21"], start=1)]
    assert set(written) == set(images) | {tmp_path / "depth_m.npy", tmp_path / "aif.png"}
    for k, path in enumerate(images):
        match = PHONE_NAME.match(path.name)
        assert int(match[1]) == k + 1 and float(match[2]) == focus[k]
        rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
        if extension == ".png":
            np.testing.assert_array_equal(rgb, to_uint8(stack.slices[k]))
        else:
            assert np.abs(rgb.astype(int) - to_uint8(stack.slices[k])).mean() < 4  # JPEG, quality 95
    depth_back = np.load(tmp_path / "depth_m.npy")
    assert depth_back.dtype == np.float32
    np.testing.assert_array_equal(depth_back, stack.ground_truth)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "aif.png"))[..., ::-1], to_uint8(stack.aif))
    assert no_temporaries(tmp_path)


def test_phone_names_parse_like_the_real_phone_stacks(realdata):
    real = sorted(p.name for p in (realdata / "phone_focal_stacks").rglob("image_*"))
    assert real and all(PHONE_NAME.match(name) for name in real)
    for metres in (0.35, 0.5, 0.8, 1.3, 2.21, 2.5, 0.24, 0.141238 / 0.28, 2.0):
        name = f"image_1_{focus_distance_name(metres)}.jpg"
        assert PHONE_NAME.match(name) and float(PHONE_NAME.match(name)[2]) == pytest.approx(metres, abs=5e-5)


# --------------------------------------------------------------------------- EXR and helpers

@pytest.mark.parametrize("pixel_type, dtype", [("half", np.float16), ("float", np.float32), ("uint", np.uint32)])
def test_exr_round_trip(tmp_path, pixel_type, dtype):
    rng = np.random.default_rng(11)
    planes = {name: (rng.random((13, 21)) * 50).astype(dtype) for name in ("Z", "R", "A")}
    write_exr(tmp_path / "x.exr", planes, pixel_type)
    back = read_exr(tmp_path / "x.exr")
    assert set(back) == set(planes)
    for name, plane in planes.items():
        assert back[name].dtype == dtype
        np.testing.assert_array_equal(back[name], plane)
    with pytest.raises(InputError, match="one shape"):
        exr_bytes({"R": np.zeros((2, 3)), "G": np.zeros((3, 2))})
    (tmp_path / "bad.exr").write_bytes(b"not an exr file")
    with pytest.raises(FormatError, match="not an OpenEXR"):
        read_exr(tmp_path / "bad.exr")


def test_exr_against_the_openexr_library(tmp_path):
    openexr = pytest.importorskip("OpenEXR")
    rng = np.random.default_rng(12)
    depth = (0.1 + 2.9 * rng.random((31, 45))).astype(np.float32)
    write_exr(tmp_path / "000000Dpt.exr", {"R": depth, "G": depth, "B": depth})
    # DFV's read_dpt: OpenEXR.InputFile, dataWindow, channels("RGB"), R as float16
    dpt_img = openexr.InputFile(str(tmp_path / "000000Dpt.exr"))
    window = dpt_img.header()["dataWindow"]
    size = (window.max.x - window.min.x + 1, window.max.y - window.min.y + 1)
    red, _, _ = dpt_img.channels("RGB")
    dpt = np.frombuffer(red, dtype=np.float16).reshape(size[1], size[0])
    np.testing.assert_array_equal(dpt, depth.astype(np.float16))
    # and read_exr reads what the library writes, for each compression it supports
    for compression in ("NO_COMPRESSION", "RLE_COMPRESSION", "ZIPS_COMPRESSION", "ZIP_COMPRESSION"):
        for dtype in (np.float16, np.float32, np.uint32):
            plane = (rng.random((37, 53)) * 100).astype(dtype)
            plane[5:20, 3:40] = 7  # runs for RLE
            header = {"compression": getattr(openexr, compression), "type": openexr.scanlineimage}
            openexr.File(header, {"Z": plane, "A": plane * 2}).write(str(tmp_path / "lib.exr"))
            back = read_exr(tmp_path / "lib.exr")
            np.testing.assert_array_equal(back["Z"], plane)
            np.testing.assert_array_equal(back["A"], (plane * 2).astype(dtype))


def test_to_uint8_and_focus_names():
    np.testing.assert_array_equal(to_uint8(np.array([0.0, 0.5, 1.0, 1.0004])), [0, 128, 255, 255])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        to_uint8(np.array([0.0, 200.0]))
    assert [focus_distance_name(m) for m in (0.35, 0.5, 1.5, 2.0, 0.1412381)] == ["0.35", "0.5", "1.5", "2", "0.1412"]
    np.testing.assert_allclose(ddff12_focus_distances_m(), DDFF12_DISPARITY_SCALE / np.linspace(0.28, 0.02, 10))
