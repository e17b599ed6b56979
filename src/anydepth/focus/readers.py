"""Readers of focal-stack data sets into `FocalStack`s, and slice alignment.

Layouts (those written by `anydepth.synth.focus_writers`, which follow DFV's loaders):

- **DDFF-12 HDF5** (`read_ddff12`): `stack_<split>` (M, N, H, W, 3) and `disp_<split>` (M, H, W),
  optional `AiF_<split>` (M, H, W, 3). Splits train and val (the trainval file) and test: the
  official test file holds `stack_test` only, no ground truth (DFV's `DDFF12Loader` returns a dummy
  target for any "test" key), so its stacks come back with ground_truth None. Stacks uint8
  (original) or float32 with values 0–255 (DFV's repack, read back as float32 / 255). Ground truth is disparity in pixels (0 = invalid); slice i is
  focused at disparity linspace(0.28, 0.02, 10)[i] unless the caller (or the stack dataset's
  `focus_disparity` attribute) says otherwise. Samples are read lazily, one per access.
- **FoD500 folder** (`read_fod500`): `{i:06d}_{k:02d}All.tif` slices, `{i:06d}Dpt.exr` depth in
  metres (channel R), optional `{i:06d}Aif.tif`; focus [0.1, 0.15, 0.3, 0.7, 1.5] m.
- **Image folder** (`read_image_folder`): phone stacks `image_<k>_<metres>.<ext>` (k = slice
  order), or any images listed in a `focus.csv` (`file,metres` rows) / `focus.json`
  ({"file": metres}) sidecar; optional `depth_m.npy` (metres, 0 = invalid) and `aif.png`.

`open_focal_stacks(path)` picks the reader from the layout. `align_slices` registers every slice to
the middle one (focus breathing, hand shake) with ECC or ORB + RANSAC homographies.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np

from anydepth import viz
from anydepth.errors import AnydepthError, AnydepthWarning, FormatError, InputError
from anydepth.fileio import (IMAGE_EXTENSIONS, first_line, has_hdf5_signature, hdf5_keys, open_hdf5, read_exr,
                             read_rgb, require_dataset)
from anydepth.focus.stack import DDFF12_DISPARITY_SCALE, DDFF12_FOCUS_DISPARITIES, FOD500_FOCUS_DISTANCES_M, FocalStack

DDFF12_SPLITS = ("train", "val", "test")
DDFF12_SPLITS_WITHOUT_TRUTH = ("test",)  # official layout: stack_test only
PHONE_NAME = re.compile(r"^image_(\d+)_(\d+(?:\.\d*)?|\.\d+)\.([A-Za-z]+)$")
MIN_SLICE_SIDE = 3  # pixels: a focus measure compares a pixel with its neighbours
FOD500_SLICE = re.compile(r"^(\d{6})_(\d{2})All\.tif$")
ALIGN_METHODS = ("ecc", "homography")
ECC_MOTIONS = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN,
               "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


class AlignmentError(InputError):
    """A slice could not be registered to the reference slice (no convergence, too few matches)."""


# --------------------------------------------------------------------------- DDFF-12

class DDFF12Samples(Sequence):
    """The samples of one split of a DDFF-12 HDF5 file, read lazily: `samples[i]` opens the file,
    reads sample i and closes it. len() is the number of samples. has_ground_truth: whether the
    split has its `disp_<split>` (required for train and val; the official test split has none, and
    its stacks come back with ground_truth None)."""

    def __init__(self, path: str | Path, split: str = "val", focus_disparities=None):
        if split not in DDFF12_SPLITS:
            raise InputError(f"DDFF-12 split must be one of {', '.join(DDFF12_SPLITS)}, got {split!r}")
        self.path, self.split = Path(path), split
        if not self.path.is_file():
            raise InputError("no such file", self.path)
        if focus_disparities is not None:
            try:
                focus_disparities = np.asarray(focus_disparities, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise InputError(f"focus disparities must be numbers, got {focus_disparities!r}") from None
        try:
            self._inspect(focus_disparities)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
            raise FormatError(f"corrupt DDFF-12 file ({first_line(error)})", self.path) from None

    def _inspect(self, focus_disparities) -> None:
        split = self.split
        with _open_h5(self.path) as h5:
            if f"stack_{split}" not in h5:
                raise FormatError(f"no DDFF-12 {split} split: no dataset 'stack_{split}' (has {hdf5_keys(h5)})", self.path)
            stack = h5[f"stack_{split}"]
            if stack.ndim != 5 or stack.shape[-1] != 3:
                raise FormatError(f"stack_{split} must be (M, N, H, W, 3), got {stack.shape}", self.path)
            count, slices, height, width = stack.shape[:4]
            if slices < 2 or min(height, width) < MIN_SLICE_SIDE:
                raise FormatError(f"stack_{split} is {stack.shape}: depth from focus needs at least two slices "
                                  f"of at least {MIN_SLICE_SIDE}x{MIN_SLICE_SIDE} pixels", self.path)
            self.has_ground_truth = split not in DDFF12_SPLITS_WITHOUT_TRUTH or f"disp_{split}" in h5
            if self.has_ground_truth:
                disparity = require_dataset(h5, f"disp_{split}", self.path, list_keys=True)
                if disparity.shape != (count, height, width):
                    raise FormatError(f"disp_{split} is {disparity.shape}, expected {(count, height, width)}",
                                      self.path)
            self.has_aif = f"AiF_{split}" in h5
            if self.has_aif and h5[f"AiF_{split}"].shape != (count, height, width, 3):
                raise FormatError(f"AiF_{split} is {h5[f'AiF_{split}'].shape}, expected {(count, height, width, 3)}",
                                  self.path)
            if focus_disparities is None:
                focus_disparities = stack.attrs.get("focus_disparity", DDFF12_FOCUS_DISPARITIES)
            self.scale = float(h5.attrs.get("disparity_scale", DDFF12_DISPARITY_SCALE))
        self.focus_disparities = np.asarray(focus_disparities, dtype=np.float64)
        if self.focus_disparities.shape != (slices,):
            raise FormatError(f"stacks have {slices} slices but {self.focus_disparities.size} focus disparities "
                              "are given", self.path)
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __iter__(self):  # Sequence's default stops on IndexError; an out-of-range index here is an InputError
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise InputError(f"DDFF-12 {self.split} sample {index} out of range (0..{len(self) - 1})", self.path)
        index %= len(self)
        with _open_h5(self.path) as h5:
            try:
                slices = _ddff12_images(h5[f"stack_{self.split}"][index], self.path)
                disparity = (np.asarray(h5[f"disp_{self.split}"][index], dtype=np.float32) if self.has_ground_truth
                             else None)
                aif = _ddff12_images(h5[f"AiF_{self.split}"][index], self.path) if self.has_aif else None
            except (OSError, RuntimeError, ValueError, KeyError, TypeError) as error:
                raise FormatError(f"cannot read DDFF-12 {self.split} sample {index} ({first_line(error)})",
                                  self.path) from None
        return FocalStack(slices, self.focus_disparities, "disparity", disparity, aif, self.scale,
                          f"{self.path}[{self.split}][{index}]")


def _open_h5(path: Path) -> h5py.File:
    return open_hdf5(path, "not a readable HDF5 file", signature=False)


def _ddff12_images(values: np.ndarray, path: Path) -> np.ndarray:
    """uint8 stays uint8; float (DFV's repack, 0–255) becomes float32 in [0, 1]."""
    if values.dtype == np.uint8:
        return values
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all() or values.min() < -0.5 or values.max() > 255.5:
        raise FormatError(f"float stack values must lie in 0–255, got [{values.min():g}, {values.max():g}]", path)
    return np.clip(values / 255.0, 0.0, 1.0)


def read_ddff12(path: str | Path, split: str = "val", index: int | None = None, focus_disparities=None):
    """A DDFF-12 HDF5 file (original trainval or test file, or DFV's repack); split "train", "val"
    or "test". index None: a lazy `DDFF12Samples` sequence of the split; an int: that sample's
    `FocalStack` (unit "disparity", ground truth disparity px, None for the test split). A split
    the file does not hold raises FormatError naming the file and its datasets."""
    samples = DDFF12Samples(path, split, focus_disparities)
    return samples if index is None else samples[index]


# --------------------------------------------------------------------------- FoD500

def fod500_indices(folder: str | Path) -> list[int]:
    """Sample indices i with at least one `{i:06d}_{k:02d}All.tif` slice in `folder`, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    return sorted({int(m.group(1)) for p in folder.iterdir() if (m := FOD500_SLICE.match(p.name))})


def read_fod500(folder: str | Path, index: int, focus_distances_m=FOD500_FOCUS_DISTANCES_M) -> FocalStack:
    """FoD500 sample `index` of `folder`: slices `{index:06d}_{k:02d}All.tif` (k = 0, 1, ... as long
    as they exist), depth `{index:06d}Dpt.exr` (metres, channel R; required), AiF `{index:06d}Aif.tif`
    (optional). Unit "metres"."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    names = []
    while (folder / f"{index:06d}_{len(names):02d}All.tif").is_file():
        names.append(f"{index:06d}_{len(names):02d}All.tif")
    if not names:
        raise InputError(f"no FoD500 slices {index:06d}_00All.tif ... in this folder", folder)
    slices = _same_size([(folder / n, read_rgb(folder / n)) for n in names], folder)
    depth_path = folder / f"{index:06d}Dpt.exr"
    if not depth_path.is_file():
        raise FormatError(f"missing depth file {depth_path.name}", folder)
    channels = read_exr(depth_path)
    if "R" not in channels:
        raise FormatError(f"EXR depth has no R channel (has {', '.join(sorted(channels))})", depth_path)
    depth_m = channels["R"].astype(np.float32)
    if depth_m.shape != slices.shape[1:3]:
        raise FormatError(f"depth is {depth_m.shape}, slices are {slices.shape[1:3]}", depth_path)
    aif_path = folder / f"{index:06d}Aif.tif"
    aif = read_rgb(aif_path) if aif_path.is_file() else None
    return FocalStack(slices, np.asarray(focus_distances_m, np.float64), "metres", depth_m, aif, None,
                      str(folder / names[0]))


class FoD500Samples(Sequence):
    """Every sample of a FoD500 folder, read lazily (`samples[i]` is `read_fod500` of the i-th index)."""

    def __init__(self, folder: str | Path):
        self.folder, self.indices = Path(folder), fod500_indices(folder)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return read_fod500(self.folder, self.indices[i])


# --------------------------------------------------------------------------- image folders

def _sidecar_focus(folder: Path) -> tuple[Path, list[tuple[str, float]]] | None:
    """(sidecar path, [(file name, metres), ...] in file order) from focus.json ({"file": metres})
    or focus.csv (`file,metres` rows, an optional header); None when neither exists. A name listed
    twice (also a repeated JSON key, which json.loads would keep silently) raises FormatError."""
    json_path, csv_path = folder / "focus.json", folder / "focus.csv"
    if json_path.is_file():
        try:
            pairs = json.loads(json_path.read_text(), object_pairs_hook=lambda items: items)
        except (OSError, ValueError) as error:
            raise FormatError(f"not valid JSON ({first_line(error)})", json_path) from None
        if not isinstance(pairs, list) or not pairs or not all(isinstance(p, tuple) for p in pairs):
            raise FormatError('expected a non-empty object {"file name": metres, ...}', json_path)
        source, rows = json_path, pairs
    elif csv_path.is_file():
        try:
            rows = [r for r in csv.reader(csv_path.read_text().splitlines()) if r and any(c.strip() for c in r)]
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise FormatError(f"not a readable CSV file ({first_line(error)})", csv_path) from None
        source = csv_path
        if rows and len(rows[0]) >= 2 and not _is_number(rows[0][1]):
            rows = rows[1:]  # header
        if not rows or any(len(r) != 2 for r in rows):
            raise FormatError("expected rows `file,metres`", csv_path)
    else:
        return None
    entries = []
    for name, metres in rows:
        name = str(name).strip()
        if not _is_number(metres):
            raise FormatError(f"focus distance of {name!r} is not a number: {metres!r}", source)
        entries.append((name, float(metres)))
    names = [name for name, _ in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FormatError(f"lists {', '.join(repeated)} more than once", source)
    return source, entries


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _looks_like_slice(name: str) -> bool:
    """A name a phone stack's slice would have: image_... with an image extension, or any
    image_<k>_<metres>.<ext> (an extension the reader does not decode is still a slice meant)."""
    return (name.lower().startswith("image_") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
            or PHONE_NAME.match(name) is not None)


def _phone_slices(folder: Path) -> list[tuple[str, float]]:
    """[(file name, metres), ...] ordered by k from image_<k>_<metres>.<ext> names. A file that
    looks like a slice but whose name does not parse (a negative distance, no number, an
    extension that is no image), or a repeated k, raises FormatError naming the files."""
    parsed, unparsed = [], []
    for path in folder.iterdir():
        if not path.is_file() or not _looks_like_slice(path.name):
            continue
        match = PHONE_NAME.match(path.name)
        if match and path.suffix.lower() in IMAGE_EXTENSIONS:
            parsed.append((int(match.group(1)), float(match.group(2)), path.name))
        else:
            unparsed.append(path.name)
    if unparsed:
        raise FormatError(f"{', '.join(sorted(unparsed))}: looks like a focus slice but the name is not "
                          f"image_<k>_<metres>.<ext> (k a slice number, metres a positive distance, ext one of "
                          f"{' '.join(IMAGE_EXTENSIONS)}); rename or move it", folder)
    if not parsed:
        raise InputError("no focus slices: expected image_<k>_<metres>.<ext> files or a focus.csv / "
                         "focus.json sidecar", folder)
    parsed.sort()
    for k in sorted({k for k, _, _ in parsed}):
        same = [name for number, _, name in parsed if number == k]
        if len(same) > 1:
            raise FormatError(f"slice number {k} repeats: {', '.join(same)}", folder)
    return [(name, metres) for _, metres, name in parsed]


def _check_focus_distances(entries: list[tuple[str, float]], folder: Path, what: str) -> None:
    """Every distance finite and > 0, at least two slices, distances strictly monotonic in slice
    order; errors name the files."""
    bad = [f"{name} ({metres:g})" for name, metres in entries if not (np.isfinite(metres) and metres > 0)]
    if bad:
        raise InputError(f"focus distances must be finite and positive metres: {', '.join(bad)} in {what}", folder)
    if len(entries) < 2:
        listed = ", ".join(name for name, _ in entries)
        raise InputError(f"depth from focus needs at least two slices, found one ({listed}) in {what}", folder)
    steps = np.sign(np.diff([metres for _, metres in entries]))
    for i, step in enumerate(steps):
        if step == 0 or step != steps[0]:
            (first, a), (second, b) = entries[i], entries[i + 1]
            raise InputError(f"focus distances must be strictly monotonic in slice order ({what}): {first} "
                             f"({a:g} m) then {second} ({b:g} m)", folder)


def read_image_folder(folder: str | Path, reduce: int = 1) -> FocalStack:
    """A focal stack from a folder of images (unit "metres").

    Focus distances come from a `focus.json` / `focus.csv` sidecar (file -> metres; slices ordered by
    distance) when present, else from `image_<k>_<metres>.<ext>` names (ordered by k). Optional
    ground truth `depth_m.npy` (float metres, 0 = invalid) and `aif.png`. reduce 1, 2, 4 or 8 reads
    every image downscaled by that factor (fast JPEG decoding; ground truth resized to match).

    Nothing is dropped or accepted in silence: a file that looks like a slice but whose name does
    not parse, a sidecar listing a file twice or a missing file, a non-positive or repeated focus
    distance, fewer than two slices, slices smaller than 3x3 or of different sizes, an unreadable
    image: an error naming the files. Images of a sidecar folder it does not list are named in an
    `AnydepthWarning` (not used).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    if reduce not in (1, 2, 4, 8):
        raise InputError(f"reduce must be 1, 2, 4 or 8, got {reduce}")
    sidecar = _sidecar_focus(folder)
    if sidecar is not None:
        source, entries = sidecar
        missing = [name for name, _ in entries if not (folder / name).is_file()]
        if missing:
            raise FormatError(f"focus sidecar lists missing files {', '.join(missing)}", folder)
        listed = {name for name, _ in entries} | {"aif.png"}
        unlisted = sorted(p.name for p in folder.iterdir()
                          if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and p.name not in listed)
        if unlisted:
            warnings.warn(f"{folder}: {source.name} does not list {', '.join(unlisted)}: not used",
                          AnydepthWarning, stacklevel=2)
        entries = sorted(entries, key=lambda item: item[1])
        what = source.name
    else:
        entries = _phone_slices(folder)
        what = "the image_<k>_<metres> names"
    _check_focus_distances(entries, folder, what)
    names, focus_m = [n for n, _ in entries], [m for _, m in entries]
    slices = _same_size([(folder / n, read_rgb(folder / n, reduce)) for n in names], folder)
    height, width = slices.shape[1:3]
    depth_m, aif = None, None
    if (folder / "depth_m.npy").is_file():
        try:
            depth_m = np.load(folder / "depth_m.npy").astype(np.float32)
        except (OSError, ValueError) as error:
            raise FormatError(f"cannot read depth ({first_line(error)})", folder / "depth_m.npy") from None
        if depth_m.ndim != 2:
            raise FormatError(f"depth must be (H, W), got {depth_m.shape}", folder / "depth_m.npy")
        if depth_m.shape != (height, width):
            if reduce == 1 or not _reduced_size_matches(depth_m.shape, (height, width), reduce):
                raise FormatError(f"depth is {depth_m.shape}, slices are {(height, width)}", folder / "depth_m.npy")
            depth_m = cv2.resize(depth_m, (width, height), interpolation=cv2.INTER_NEAREST)
    if (folder / "aif.png").is_file():
        aif = read_rgb(folder / "aif.png", reduce)
        if aif.shape[:2] != (height, width):
            raise FormatError(f"AiF is {aif.shape[:2]}, slices are {(height, width)}", folder / "aif.png")
    return FocalStack(slices, np.asarray(focus_m, np.float64), "metres", depth_m, aif, None, str(folder))


def _reduced_size_matches(full: tuple[int, int], reduced: tuple[int, int], reduce: int) -> bool:
    return all(abs(-(-f // reduce) - r) <= 1 for f, r in zip(full, reduced))


def _same_size(images: list[tuple[Path, np.ndarray]], folder: Path) -> np.ndarray:
    """(N, H, W, 3) of the decoded slices; fewer than two, a slice under 3x3 or two sizes raise
    InputError naming the files."""
    if len(images) < 2:
        raise InputError(f"depth from focus needs at least two slices, found {len(images)} "
                         f"({', '.join(path.name for path, _ in images) or 'none'})", folder)
    first_path, first = images[0]
    for path, image in images[1:]:
        if image.shape != first.shape:
            raise InputError(f"slices differ in size: {path.name} is {image.shape[1]}x{image.shape[0]}, "
                             f"{first_path.name} is {first.shape[1]}x{first.shape[0]}", folder)
    if min(first.shape[:2]) < MIN_SLICE_SIDE:
        raise InputError(f"{first_path.name} is {first.shape[1]}x{first.shape[0]}: focus slices must be at least "
                         f"{MIN_SLICE_SIDE}x{MIN_SLICE_SIDE} pixels", folder)
    return np.stack([image for _, image in images])


# --------------------------------------------------------------------------- any layout

class ImageFolderStacks(Sequence):
    """The stacks of a folder of stack folders, read lazily: `stacks[i]` is `read_image_folder` of
    the i-th sub-folder (by name), so one bad folder fails alone."""

    def __init__(self, folders: list[Path], reduce: int = 1):
        self.folders, self.reduce = folders, reduce

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return read_image_folder(self.folders[i], self.reduce)


def open_focal_stacks(path: str | Path, split: str = "val", reduce: int = 1) -> Sequence[FocalStack]:
    """Every focal stack at `path`, choosing the reader by layout: an HDF5 file (by signature) ->
    DDFF-12 `split` (lazy); a folder of `*All.tif` -> FoD500 (lazy); a folder of images with focus
    names or a sidecar -> one stack; a folder of such folders -> one stack per sub-folder, by name
    (lazy; every sub-folder holding an image counts, so a folder whose names do not parse is
    reported, not skipped)."""
    path = Path(path)
    if path.is_file():
        if has_hdf5_signature(path):
            return read_ddff12(path, split)
        raise FormatError("not a focal-stack file (only DDFF-12 HDF5 files are read as files)", path)
    if not path.is_dir():
        raise InputError("no such file or folder", path)
    if fod500_indices(path):
        return FoD500Samples(path)
    if _is_image_folder(path):
        return [read_image_folder(path, reduce)]
    folders = sorted(p for p in path.iterdir() if p.is_dir() and _holds_images(p))
    if not folders:
        raise InputError("no focal stacks here (DDFF-12 HDF5, FoD500 *All.tif, image_<k>_<metres> files, "
                         "focus.csv / focus.json)", path)
    return ImageFolderStacks(folders, reduce)


@dataclass
class CheckedStack:
    """One stack found by `check_focal_stacks`: its output name and either the error that makes it
    unusable or the sequence it comes from (`collection`, e.g. a `DDFF12Samples`) and its index.
    `load()` returns the stack read during the check (once), or reads it again."""

    name: str
    error: AnydepthError | None = None
    collection: Sequence[FocalStack] | None = None
    index: int = 0
    stack: FocalStack | None = field(default=None, repr=False)

    def load(self) -> FocalStack:
        if self.error is not None:
            raise self.error
        stack, self.stack = self.stack, None
        return stack if stack is not None else self.collection[self.index]


def check_focal_stacks(paths: str | Path | Sequence[str | Path], split: str = "val", reduce: int = 1,
                       limit: int | None = None, keep_bytes: int = 1 << 30) -> list[CheckedStack]:
    """Open every path (`open_focal_stacks`) and read every stack in it, up to `limit` stacks in
    all, before any model is loaded. A path or stack that cannot be read becomes an entry with its
    `error` (one line naming the file), so the good ones can still be processed; two stacks whose
    outputs would share a name (out/<name>) make the later one an error. Stacks read here are kept
    for `load()` while their slices total at most `keep_bytes`, later ones are read again."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    checked: list[CheckedStack] = []
    kept_bytes, sources = 0, {}
    for path in paths:
        if limit is not None and len(checked) >= limit:
            break
        try:
            stacks = open_focal_stacks(path, split, reduce)
        except AnydepthError as error:
            checked.append(CheckedStack(Path(path).name or str(path), error))
            continue
        for index in range(len(stacks)):
            if limit is not None and len(checked) >= limit:
                break
            try:
                stack = stacks[index]
            except AnydepthError as error:
                name = stacks.folders[index].name if isinstance(stacks, ImageFolderStacks) else f"stack_{index:03d}"
                checked.append(CheckedStack(name, error, stacks, index))
                continue
            name = Path(stack.source).name if stack.source else f"stack_{index:03d}"
            source = stack.source or f"{path}[{index}]"
            if name in sources:
                error = InputError(f"its outputs would go to <out>/{name} as those of {sources[name]}: rename one "
                                   "of the two", source)
                checked.append(CheckedStack(name, error, stacks, index))
                continue
            sources[name] = source
            keep = kept_bytes + stack.slices.nbytes <= keep_bytes
            kept_bytes += stack.slices.nbytes if keep else 0
            checked.append(CheckedStack(name, None, stacks, index, stack if keep else None))
    return checked


def _is_image_folder(folder: Path) -> bool:
    return ((folder / "focus.json").is_file() or (folder / "focus.csv").is_file()
            or any(_looks_like_slice(p.name) for p in folder.iterdir()))


def _holds_images(folder: Path) -> bool:
    return _is_image_folder(folder) or any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


# --------------------------------------------------------------------------- alignment

def _grey(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def align_slices(stack: FocalStack, method: str = "ecc", motion: str = "affine", reference: int | None = None,
                 max_side: int = 1024, iterations: int = 200, epsilon: float = 1e-6, min_correlation: float = 0.5,
                 strict: bool = True) -> tuple[FocalStack, np.ndarray]:
    """Register every slice to the reference slice (default the middle one, N // 2).

    method "ecc": OpenCV's ECC maximisation (`motion` "translation", "euclidean", "affine" or
    "homography"), on grey images downscaled to at most `max_side` pixels and smoothed (so defocus
    differences matter less); "homography": ORB features matched to the reference, RANSAC
    homography refitted on its inliers, then refined sub-pixel by ECC (homography) started from it
    (kept as is when that refinement does not converge; `motion` is not used). Returns (aligned stack, transforms (N, 3, 3) float64), transform i mapping reference
    pixel coordinates (x, y, 1) to slice i's (the slice is resampled with it, bilinear, replicated
    borders); the reference's is the identity. Ground truth and AiF are kept as they are (they live
    in the reference frame).

    A slice that does not converge, or whose ECC correlation stays below `min_correlation`, or with
    too few feature matches raises AlignmentError (strict) or, with strict=False, keeps the
    identity and warns (RuntimeWarning naming the slice).
    """
    if method not in ALIGN_METHODS:
        raise InputError(f"alignment method must be one of {', '.join(ALIGN_METHODS)}, got {method!r}")
    if motion not in ECC_MOTIONS:
        raise InputError(f"ECC motion must be one of {', '.join(ECC_MOTIONS)}, got {motion!r}")
    reference = stack.count // 2 if reference is None else reference
    if not 0 <= reference < stack.count:
        raise InputError(f"reference slice {reference} out of range (0..{stack.count - 1})")
    height, width = stack.shape
    scale = min(1.0, max_side / max(height, width))
    greys = [_grey(s) for s in stack.slices]
    if scale < 1.0:
        greys = [cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for g in greys]
    offset = 0.5 * scale - 0.5  # pixel centres: x_small = (x + 0.5) * scale - 0.5
    to_small = np.array([[scale, 0.0, offset], [0.0, scale, offset], [0.0, 0.0, 1.0]])
    transforms = np.tile(np.eye(3), (stack.count, 1, 1))
    for i in range(stack.count):
        if i == reference:
            continue
        try:
            if method == "ecc":
                small = _ecc(greys[reference], greys[i], motion, iterations, epsilon, min_correlation)
            else:
                small = _orb_homography(greys[reference], greys[i])
                try:  # ORB keypoints are coarse (pyramid levels): refine sub-pixel with ECC from there
                    small = _ecc(greys[reference], greys[i], "homography", iterations, epsilon, min_correlation, small)
                except AlignmentError:
                    pass  # the RANSAC homography stands (it passed its own inlier check)
            transforms[i] = np.linalg.inv(to_small) @ small @ to_small
        except AlignmentError as error:
            message = f"slice {i} not aligned to slice {reference}: {error}"
            if strict:
                raise AlignmentError(message, stack.source) from None
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    aligned = np.stack([stack.slices[i] if i == reference else
                        cv2.warpPerspective(stack.slices[i], transforms[i], (width, height),
                                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                            borderMode=cv2.BORDER_REPLICATE)
                        for i in range(stack.count)])
    return FocalStack(aligned, stack.positions, stack.unit, stack.ground_truth, stack.aif, stack.disparity_scale,
                      stack.source), transforms


def _ecc(template: np.ndarray, image: np.ndarray, motion: str, iterations: int, epsilon: float,
         min_correlation: float, initial: np.ndarray | None = None) -> np.ndarray:
    rows = 3 if motion == "homography" else 2
    warp = np.eye(rows, 3, dtype=np.float32) if initial is None else initial[:rows].astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, epsilon)
    try:
        correlation, warp = cv2.findTransformECC(template, image, warp, ECC_MOTIONS[motion], criteria, None, 5)
    except cv2.error as error:
        raise AlignmentError(f"ECC did not converge ({first_line(error)[-120:]})") from None
    if not np.isfinite(warp).all() or not np.isfinite(correlation) or correlation < min_correlation:
        raise AlignmentError(f"ECC correlation {correlation:.3f} below {min_correlation}")
    full = np.eye(3)
    full[: warp.shape[0]] = warp
    return full


def _orb_homography(template: np.ndarray, image: np.ndarray, features: int = 4000, min_inliers: int = 12) -> np.ndarray:
    orb = cv2.ORB_create(features)
    points_ref, descriptors_ref = orb.detectAndCompute(viz.to_uint8(template), None)
    points, descriptors = orb.detectAndCompute(viz.to_uint8(image), None)
    if descriptors_ref is None or descriptors is None or len(points_ref) < 4 or len(points) < 4:
        raise AlignmentError("too few ORB features")
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(descriptors_ref, descriptors)
    if len(matches) < min_inliers:
        raise AlignmentError(f"only {len(matches)} ORB matches (need {min_inliers})")
    source = np.float32([points_ref[m.queryIdx].pt for m in matches])
    target = np.float32([points[m.trainIdx].pt for m in matches])
    homography, inliers = cv2.findHomography(source, target, cv2.RANSAC, 2.0)
    if homography is None or inliers is None or int(inliers.sum()) < min_inliers:
        raise AlignmentError(f"RANSAC homography failed ({0 if inliers is None else int(inliers.sum())} inliers, "
                             f"need {min_inliers})")
    keep = inliers.ravel().astype(bool)
    refit, _ = cv2.findHomography(source[keep], target[keep], 0)  # least squares on all inliers
    return (homography if refit is None else refit).astype(np.float64)
