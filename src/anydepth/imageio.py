"""Reading images and writing depth outputs, with one-line errors and atomic writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from anydepth.atomic import atomic_write
from anydepth.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image_bgr(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) BGR uint8 (grey and 16-bit images are converted)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError("not a readable image", path)
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"unsupported image sample type {image.dtype}", path)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def find_images(inputs: list[str | Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files and folders (recursively) into (image path, output stem relative to --out).

    Returns (images, problems): a missing input or a folder without images is a problem line, and
    the other inputs still go on. Files named explicitly are kept whatever their extension (a
    non-image then fails at read time with its own message).
    """
    images: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append(f"{path}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            images += [(p, p.relative_to(path).with_suffix("")) for p in found]
        elif path.is_file():
            images.append((path, Path(path.stem)))
        else:
            problems.append(f"{path}: no such file or folder")
    return images, problems


def write_png(path: str | Path, image: np.ndarray, rgb: bool = True) -> None:
    """Write a uint8 (H, W, 3) RGB (or BGR with rgb=False) or (H, W) uint8/uint16 image atomically."""
    path = Path(path)
    if image.ndim == 3 and rgb:
        image = image[..., ::-1]

    def write(temporary):
        if not cv2.imwrite(temporary, np.ascontiguousarray(image)):
            raise InputError("could not write image", path)

    atomic_write(path, write)


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """np.save atomically."""

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.save(handle, array)

    atomic_write(Path(path), write)


def to_uint16(values: np.ndarray) -> np.ndarray:
    """Min-max scaling of a relative map to the full 0..65535 range."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if not np.isfinite(high - low) or high <= low:
        return np.zeros(values.shape, dtype=np.uint16)
    return np.round((np.nan_to_num(values, nan=low) - low) / (high - low) * 65535.0).astype(np.uint16)
