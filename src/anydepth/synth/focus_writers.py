"""Write focal stacks (`anydepth.focus.FocalStack`s, e.g. rendered by `thin_lens.focal_stack`) in the
on-disk layouts that depth-from-focus code reads, so that the authors' loaders run unchanged on
synthetic scenes with ground truth.

Layouts (conventions taken from DFV's loaders, fuy34/DFV `dataloader/DDFF12.py`, `dataloader/
FoD500.py`, `data_preprocess/pack_to_h5.py`):

- **DDFF-12 HDF5** (`write_ddff12_h5`): datasets `stack_train` (M, 10, H, W, 3), `disp_train`
  (M, H, W), `stack_val`, `disp_val`; stacks are RGB 0–255, disparity in pixels = 0.141238 /
  depth_m, 0 = invalid; slice i is focused at disparity linspace(0.28, 0.02, 10)[i] (DFV's loader
  hard-codes these, nothing in the file stores them). variant "ddff12": stack uint8, disp float32.
  variant "dfv" (DFV's repack): adds `AiF_train` / `AiF_val` (M, H, W, 3), and every dataset is
  float32 (DFV's packer creates them without a dtype, h5py's default) with values 0–255.
  anydepth adds HDF5 attributes only (`focus_disparity`, `disparity_scale`), never datasets.
  The official test file holds `stack_test` (M, 10, H, W, 3) only, no ground truth (DFV's
  `DDFF12Loader` gives a dummy target for a "test" key, `DDFF12_submission.py`); `test=` samples are
  written that way (no `disp_test`), and with no train/val samples the file holds nothing else.
- **FoD500 folder** (`write_fod500_folder`): per sample i, the N focus slices
  `{i:06d}_{k:02d}All.tif` (RGB uint8 TIFF), the depth `{i:06d}Dpt.exr` (metres, half floats in
  channels R, G, B; DFV reads channel R as float16), and the AiF `{i:06d}Aif.tif`. DFV lists the
  files ending in "All.tif" and in "Dpt.exr", sorts each list, takes slices idx·5 .. idx·5 + 4 for
  depth idx, and splits train / test by int(name[:6]) < 400: the "All.tif" files are the focal
  slices, not the AiF (whose "Aif.tif" suffix keeps it out of that list, as in DefocusNet-derived
  loaders). Focus distances [0.1, 0.15, 0.3, 0.7, 1.5] m, 256x256.
- **Phone folder** (`write_phone_folder`): `image_<k>_<metres>.<ext>`, k = 1..N in slice order,
  as ../shared/realdata/phone_focal_stacks; optional ground truth `depth_m.npy` (float32 metres,
  0 = invalid) and `aif.png` beside them.

Files go through `anydepth.fileio` (images, OpenEXR depth) and `anydepth.atomic`: every file is
written to a temporary name in its folder and renamed (os.replace). Images in [0, 1] become uint8
by `viz.to_uint8(..., strict=True)` (values outside [0, 1] are an InputError, not clipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from anydepth.atomic import atomic_write
from anydepth.errors import InputError
from anydepth.fileio import write_exr, write_image, write_npy
from anydepth.focus.stack import (
    DDFF12_DISPARITY_SCALE,
    DDFF12_FOCUS_DISPARITIES,
    FOD500_FOCUS_DISTANCES_M,
    FocalStack,
    disparity_to_metres,
)
from anydepth.viz import to_uint8

# The conventions of each layout, in one place (the focus tables and the disparity scale: focus.stack).
DDFF12_STACK_SHAPE = (10, 383, 552, 3)
DDFF12_VARIANTS = ("ddff12", "dfv")
FOD500_SIZE = (256, 256)
FOD500_FIRST_TEST_INDEX = 400  # DFV: int(name[:6]) < 400 is train, the rest test


def ddff12_focus_distances_m(disparities=DDFF12_FOCUS_DISPARITIES, scale: float = DDFF12_DISPARITY_SCALE) -> np.ndarray:
    """Focus distances in metres of DDFF-12's slices: scale / disparity (0.504 .. 7.06 m)."""
    return disparity_to_metres(disparities, scale)


# --------------------------------------------------------------------------- DDFF-12

def _check_same_size(samples: Sequence[FocalStack]) -> tuple[int, int, int]:
    shapes = {s.slices.shape for s in samples}
    if len(shapes) != 1:
        raise InputError(f"all samples must have one stack shape, got {sorted(shapes)}")
    count, height, width, channels = shapes.pop()
    if channels != 3:
        raise InputError(f"stacks must be RGB (N, H, W, 3), got {channels} channels")
    return count, height, width


def _in_metres(sample: FocalStack) -> tuple[np.ndarray, np.ndarray]:
    """(focus distances (N,) metres, depth (H, W) float32 metres, 0 = invalid) of a sample with ground truth."""
    depth = sample.ground_truth_in("metres")
    if depth is None:
        raise InputError("a sample without ground truth cannot be written with its depth", sample.source)
    return sample.positions_in("metres"), depth


def _in_ddff12_disparity(sample: FocalStack) -> FocalStack:
    """The sample with positions and ground truth in DDFF-12 disparity (0.141238 / metres)."""
    if sample.unit == "disparity" and sample.disparity_scale != DDFF12_DISPARITY_SCALE:
        sample = sample.to_unit("metres")
    return sample.to_unit("disparity", DDFF12_DISPARITY_SCALE)


def write_ddff12_h5(path: str | Path, train: Sequence[FocalStack] = (), val: Sequence[FocalStack] = (), *,
                    test: Sequence[FocalStack] = (), variant: str = "ddff12", strict: bool = True) -> Path:
    """Write focal stacks as a DDFF-12 HDF5 file (layout in the module docstring).

    train, val: FocalStacks with images in [0, 1] and depth in metres (0 = invalid); disparity is
    written as 0.141238 / depth. test: stacks written as `stack_test` only, their depth dropped
    (the official test file's layout); with train and val empty the file is a test-only file,
    else the train/val datasets are written as usual beside it. variant "ddff12" (uint8 stacks,
    float32 disparity) or "dfv" (DFV's repack: float32 everywhere, plus AiF_train / AiF_val; its
    test stacks float32 0–255 too). strict: require what DFV's
    DDFF12Loader assumes (10 slices at disparities linspace(0.28, 0.02, 10), 224 < H <= 384,
    224 < W <= 576 for its 224 crops and 384x576 padding). Returns the path.
    """
    if variant not in DDFF12_VARIANTS:
        raise InputError(f"DDFF-12 variant must be one of {', '.join(DDFF12_VARIANTS)}, got {variant!r}")
    train, val, test = ([_in_ddff12_disparity(s) for s in split] for split in (train, val, test))
    samples = train + val + test
    if not samples:
        raise InputError("no samples to write")
    if any(s.ground_truth is None for s in train + val):
        raise InputError("DDFF-12 train and val samples need ground truth (test samples are written without)")
    if variant == "dfv" and any(s.aif is None for s in train + val):
        raise InputError("the dfv variant stores the all-in-focus image: every train and val sample needs one")
    count, height, width = _check_same_size(samples)
    if strict:
        if count != len(DDFF12_FOCUS_DISPARITIES):
            raise InputError(f"DDFF-12 stacks have 10 slices, got {count} (strict=False to write anyway)")
        for sample in samples:
            if not np.allclose(sample.positions, DDFF12_FOCUS_DISPARITIES, rtol=1e-4, atol=1e-6):
                raise InputError("DDFF-12 slices are focused at disparities linspace(0.28, 0.02, 10) "
                                 "(focus distances ddff12_focus_distances_m() m); strict=False to write anyway")
        if not (224 < height <= 384 and 224 < width <= 576):
            raise InputError(f"DFV's DDFF12Loader needs 224 < H <= 384 and 224 < W <= 576, got {height}x{width} "
                             "(strict=False to write anyway)")
    image_dtype = np.uint8 if variant == "ddff12" else np.float32

    def write(temporary):
        with h5py.File(temporary, "w") as h5:
            h5.attrs["disparity_scale"] = DDFF12_DISPARITY_SCALE
            h5.attrs["anydepth_variant"] = variant
            splits = (("train", train), ("val", val)) if train or val else ()
            for split, split_samples in splits + ((("test", test),) if test else ()):
                with_truth = split != "test"  # the official test file has no disp_test
                stacks = h5.create_dataset(f"stack_{split}", (len(split_samples), count, height, width, 3), image_dtype,
                                           chunks=(1, count, height, width, 3) if split_samples else None)
                disparity = (h5.create_dataset(f"disp_{split}", (len(split_samples), height, width), np.float32)
                             if with_truth else None)
                aif = (h5.create_dataset(f"AiF_{split}", (len(split_samples), height, width, 3), np.float32)
                       if with_truth and variant == "dfv" else None)
                if split_samples:
                    stacks.attrs["focus_disparity"] = split_samples[0].positions
                for index, sample in enumerate(split_samples):
                    stacks[index] = to_uint8(sample.slices, strict=True).astype(image_dtype)
                    if disparity is not None:
                        disparity[index] = sample.ground_truth
                    if aif is not None:
                        aif[index] = to_uint8(sample.aif, strict=True).astype(np.float32)

    return atomic_write(Path(path), write)


# --------------------------------------------------------------------------- FoD500

def fod500_names(index: int, slices: int = len(FOD500_FOCUS_DISTANCES_M)) -> dict[str, object]:
    """File names of FoD500 sample `index`: {"slices": [...], "depth": ..., "aif": ...}."""
    if not 0 <= index < 1_000_000:
        raise InputError(f"FoD500 sample index must be in [0, 999999], got {index}")
    return {"slices": [f"{index:06d}_{k:02d}All.tif" for k in range(slices)],
            "depth": f"{index:06d}Dpt.exr", "aif": f"{index:06d}Aif.tif"}


def write_fod500_folder(folder: str | Path, samples: Sequence[FocalStack], *, start_index: int = 0,
                        strict: bool = True) -> list[Path]:
    """Write samples as FoD500 files in `folder` (layout in the module docstring), numbered from
    start_index (DFV: < 400 train, >= 400 test). Depth is stored in metres as half floats in the R,
    G and B channels of an uncompressed EXR (0 = invalid); slices and AiF as RGB uint8 TIFF.
    strict: require what DFV's FoD500 loader assumes (5 slices at [0.1, 0.15, 0.3, 0.7, 1.5] m,
    256x256). Returns the written paths.
    """
    samples = list(samples)
    if not samples:
        raise InputError("no samples to write")
    count, height, width = _check_same_size(samples)
    in_metres = [_in_metres(sample) for sample in samples]
    if strict:
        for focus_m, _ in in_metres:
            if not np.allclose(focus_m, FOD500_FOCUS_DISTANCES_M, rtol=1e-6):
                raise InputError(f"FoD500 stacks are focused at {list(FOD500_FOCUS_DISTANCES_M)} m, got "
                                 f"{[round(float(s), 4) for s in focus_m]} (strict=False to write anyway)")
        if (height, width) != FOD500_SIZE:
            raise InputError(f"DFV's FoD500 loader assumes 256x256 images, got {height}x{width} (strict=False to write anyway)")
    folder = Path(folder)
    written = []
    for offset, (sample, (_, depth)) in enumerate(zip(samples, in_metres)):
        names = fod500_names(start_index + offset, count)
        for name, image in zip(names["slices"], sample.slices):
            written.append(write_image(folder / name, to_uint8(image, strict=True)))
        written.append(write_exr(folder / names["depth"], {"R": depth, "G": depth, "B": depth}, "half"))
        if sample.aif is not None:
            written.append(write_image(folder / names["aif"], to_uint8(sample.aif, strict=True)))
    return written


# --------------------------------------------------------------------------- phone folder

def focus_distance_name(focus_m: float) -> str:
    """Focus distance as it appears in phone file names: metres, at most 4 decimals, no trailing
    zeros ("0.35", "0.5", "1.5", "2")."""
    return np.format_float_positional(round(float(focus_m), 4), trim="-")


def write_phone_folder(folder: str | Path, stack: FocalStack, *, extension: str = ".jpg", quality: int = 95,
                       ground_truth: bool = True) -> list[Path]:
    """Write one stack as `image_<k>_<metres>.<ext>` (k = 1..N in slice order; ".jpg" or ".png"),
    like ../shared/realdata/phone_focal_stacks; with ground_truth, also `depth_m.npy` (float32
    metres, 0 = invalid; the stack must have ground truth) and `aif.png` (when the stack has an
    AiF). Returns the written paths."""
    extension = extension if extension.startswith(".") else "." + extension
    if extension.lower() not in (".jpg", ".jpeg", ".png"):
        raise InputError(f"phone stacks are .jpg or .png, got {extension!r}")
    folder = Path(folder)
    focus_m, depth = _in_metres(stack) if ground_truth else (stack.positions_in("metres"), None)
    written = [write_image(folder / f"image_{k}_{focus_distance_name(focus)}{extension}", to_uint8(image, strict=True), quality)
               for k, (focus, image) in enumerate(zip(focus_m, stack.slices), start=1)]
    if ground_truth:
        written.append(write_npy(folder / "depth_m.npy", depth))
        if stack.aif is not None:
            written.append(write_image(folder / "aif.png", to_uint8(stack.aif, strict=True)))
    return written
