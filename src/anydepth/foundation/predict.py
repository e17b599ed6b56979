"""Depth Anything V2 on image files: the library side of `anydepth image`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anydepth import fileio, viz
from anydepth.errors import AnydepthError
from anydepth.foundation.model import DepthAnythingV2

OUTPUT_FORMATS = ("color", "png16", "npy")


@dataclass
class ImageDepth:
    """One processed image: the prediction (H, W) float32 at input resolution (relative
    disparity, or metres for a metric model), the files written, or the one-line error."""

    source: Path
    prediction: np.ndarray | None = None
    written: list[Path] = field(default_factory=list)
    error: str | None = None


def write_outputs(prediction: np.ndarray, stem: Path, formats, metric: bool, grayscale: bool = False) -> list[Path]:
    """Write `<stem>_depth.png` (colour-mapped, Spectral_r as the official CLI, or grey),
    `<stem>_depth16.png` (16-bit: min-max scaled relative disparity, or millimetres for metric
    depth) and `<stem>_depth.npy` (raw float32) as asked by `formats`."""
    written = []
    if "color" in formats:
        # metric depth: near = large disparity, so colour 1/depth to keep "red is near"
        shown = 1.0 / np.maximum(prediction, 1e-6) if metric else prediction
        picture = viz.grayscale(shown) if grayscale else viz.colorize(shown, "Spectral_r")
        path = stem.parent / f"{stem.name}_depth.png"
        fileio.write_image(path, picture)
        written.append(path)
    if "png16" in formats:
        values = np.clip(np.round(prediction * 1000.0), 0, 65535).astype(np.uint16) if metric else viz.to_uint16(prediction)
        path = stem.parent / f"{stem.name}_depth16.png"
        fileio.write_image(path, values)
        written.append(path)
    if "npy" in formats:
        path = stem.parent / f"{stem.name}_depth.npy"
        fileio.write_npy(path, prediction.astype(np.float32))
        written.append(path)
    return written


def predict_images(
    model: DepthAnythingV2,
    images: list[tuple[Path, Path]],
    out_dir: str | Path | None,
    formats=OUTPUT_FORMATS,
    input_size: int = 518,
    grayscale: bool = False,
    raw_out: str | Path | None = None,
    precision: str = "fp32",
) -> Iterator[ImageDepth]:
    """Run `model.infer_image` on each (image path, output stem) and write its outputs under
    `out_dir`. A bad image yields an ImageDepth with `error` set and the loop goes on.
    raw_out: with exactly one image, also write the raw float32 (H, W) prediction to this .npy.
    precision: the network's arithmetic ("fp32", "bf16", "fp16" on CUDA; `anydepth.precision`)."""
    metric = model.config.head == "metric"
    for source, stem in images:
        result = ImageDepth(source)
        try:
            image = fileio.read_image_bgr(source)
            result.prediction = model.infer_image(image, input_size, precision)
            if out_dir is not None and formats:
                result.written = write_outputs(result.prediction, Path(out_dir) / stem, formats, metric, grayscale)
            if raw_out is not None:
                fileio.write_npy(raw_out, result.prediction)
                result.written.append(Path(raw_out))
        except AnydepthError as error:  # named after the image when the problem is in it, not in a file
            result.error = str(error) if error.path else f"{source}: {error}"
        yield result
