"""Synthetic focal-stack datasets: an all-in-focus image with metric depth (a rendered procedural
scene, or a real RGB-D image), a thin lens, N focus distances, written in a real layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anydepth.errors import FormatError, InputError
from anydepth.focus.stack import DDFF12_FOCUS_DISPARITIES, FOD500_FOCUS_DISTANCES_M, FocalStack
from anydepth.synth.focus_writers import ddff12_focus_distances_m, write_ddff12_h5, write_fod500_folder, write_phone_folder
from anydepth.synth.scenes import PinholeCamera, compile_scene, look_at, random_scene, render
from anydepth.synth.thin_lens import focal_stack, get_lens

PHONE_FOCUS_DISTANCES_M = (0.35, 0.5, 0.9, 1.33, 2.21)  # as ../shared/realdata/phone_focal_stacks/stack_a


@dataclass(frozen=True)
class FocusLayout:
    """Resolution (H, W), lens preset, focus distances (m) and the unit of the written positions."""

    resolution: tuple[int, int]
    lens: str
    focus_distances_m: tuple[float, ...]
    focus_unit: str
    depth_range_m: tuple[float, float]


FOCUS_LAYOUTS = {
    "ddff12": FocusLayout((383, 552), "ddff12", tuple(ddff12_focus_distances_m(DDFF12_FOCUS_DISPARITIES)), "disparity", (0.5, 7.0)),
    "fod500": FocusLayout((256, 256), "fod500", FOD500_FOCUS_DISTANCES_M, "metres", (0.1, 1.6)),
    "phone": FocusLayout((480, 640), "phone", PHONE_FOCUS_DISTANCES_M, "metres", (0.3, 2.5)),
}


def get_layout(name: str) -> FocusLayout:
    if name not in FOCUS_LAYOUTS:
        raise InputError(f"unknown focus layout {name!r}; choose one of {', '.join(FOCUS_LAYOUTS)}")
    return FOCUS_LAYOUTS[name]


def rendered_scene(seed: int, layout: FocusLayout) -> tuple[np.ndarray, np.ndarray]:
    """(AiF (H, W, 3) float32 in [0, 1], depth (H, W) metres) of a seeded scene spanning the layout's
    depth range, seen from slightly above, looking down the scene."""
    near, far = layout.depth_range_m
    height, width = layout.resolution
    camera = PinholeCamera.with_fov(height, width, 60.0)
    rng = np.random.default_rng(seed + 104729)
    eye = (float(rng.uniform(-0.05, 0.05)) * far, 0.12 * far, -0.02 * far)
    target = (float(rng.uniform(-0.1, 0.1)) * far, 0.0, 0.45 * far)
    aif, depth_m = render(compile_scene(random_scene(seed, (near, far), objects=12)), camera, look_at(eye, target), eye)
    return aif, np.where(np.isfinite(depth_m), depth_m, far * 2).astype(np.float32)


def rgbd_scenes(folder: str | Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB float32 in [0, 1], depth metres with holes filled) of every `<scene>/rgb.png` +
    `<scene>/depth_m.npy` pair under `folder` (the layout of ../shared/realdata/nyu_rgbd)."""
    folder = Path(folder)
    pairs = sorted(p.parent for p in folder.rglob("depth_m.npy") if (p.parent / "rgb.png").is_file())
    if not pairs:
        raise InputError("no <scene>/rgb.png + depth_m.npy pairs found", folder)
    scenes = []
    for scene in pairs:
        bgr = cv2.imread(str(scene / "rgb.png"))
        if bgr is None:
            raise FormatError("not a readable image", scene / "rgb.png")
        try:
            depth = np.load(scene / "depth_m.npy").astype(np.float32)
        except (OSError, ValueError) as error:
            raise FormatError(f"cannot read depth ({error})", scene / "depth_m.npy") from None
        if depth.shape != bgr.shape[:2]:
            raise FormatError(f"depth {depth.shape} and image {bgr.shape[:2]} differ in size", scene)
        scenes.append((scene.name, bgr[..., ::-1].astype(np.float32) / 255.0, _fill_invalid(depth)))
    return scenes


def _fill_invalid(depth: np.ndarray) -> np.ndarray:
    """Invalid depth (0 or NaN) takes its nearest valid pixel's value (so every pixel can be blurred)."""
    valid = np.isfinite(depth) & (depth > 0)
    if valid.all() or not valid.any():
        return depth
    _, labels = cv2.distanceTransformWithLabels((~valid).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    rows, cols = np.nonzero(valid)
    lookup = np.zeros((labels.max() + 1, 2), np.int64)
    lookup[labels[rows, cols]] = np.stack([rows, cols], axis=1)
    source = lookup[labels]
    return depth[source[..., 0], source[..., 1]]


def _fit(image: np.ndarray, resolution: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize to (H, W)."""
    height, width = resolution
    rows, cols = image.shape[:2]
    scale = min(rows / height, cols / width)
    crop_h, crop_w = int(round(height * scale)), int(round(width * scale))
    top, left = (rows - crop_h) // 2, (cols - crop_w) // 2
    image = image[top : top + crop_h, left : left + crop_w]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def make_stack(aif: np.ndarray, depth_m: np.ndarray, layout: FocusLayout, mode: str = "layered") -> FocalStack:
    """A focal stack of the layout from an AiF image and depth of any size (cropped and resized)."""
    aif = _fit(aif, layout.resolution)
    depth_m = np.clip(_fit(depth_m, layout.resolution, nearest=True), 1e-3, None)
    lens = get_lens(layout.lens).resized(layout.resolution[1])
    return focal_stack(aif, depth_m, layout.focus_distances_m, lens, mode, focus_unit=layout.focus_unit)


def generate_focus_dataset(out: str | Path, samples: int, layout: str = "ddff12", seed: int = 0,
                           from_rgbd: str | Path | None = None, progress=None) -> list[Path]:
    """Write `samples` focal stacks (rendered scenes, or the RGB-D scenes of `from_rgbd` in turn)
    in `layout`: "ddff12" (one HDF5 file, 80 % train / 20 % val, at least one of each from 2 samples), "fod500" (one folder) or "phone"
    (a folder per stack). Returns the written paths."""
    if samples < 1:
        raise InputError(f"samples must be at least 1, got {samples}")
    spec = get_layout(layout)
    sources = rgbd_scenes(from_rgbd) if from_rgbd is not None else None
    stacks = []
    for index in range(samples):
        if sources:
            _, aif, depth_m = sources[index % len(sources)]
        else:
            aif, depth_m = rendered_scene(seed + index, spec)
        stacks.append(make_stack(aif, depth_m, spec))
        if progress is not None:
            progress(1)
    out = Path(out)
    if layout == "ddff12":
        split = min(samples - 1, max(1, int(round(0.8 * samples)))) if samples > 1 else 1  # val gets >= 1 when it can
        return [write_ddff12_h5(out / "ddff12_synthetic.h5", stacks[:split], stacks[split:])]
    if layout == "fod500":
        return write_fod500_folder(out, stacks)
    return [path for index, stack in enumerate(stacks) for path in write_phone_folder(out / f"stack_{index:03d}", stack)]
