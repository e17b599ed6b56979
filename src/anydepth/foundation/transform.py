"""Pre- and post-processing of Depth Anything V2, identical to the official `infer_image`.

BGR uint8 -> RGB float64 / 255 -> OpenCV bicubic resize keeping the aspect ratio so that both
sides are >= input_size ("lower_bound"), each side rounded to a multiple of 14 -> ImageNet
normalisation -> float32 (1, 3, h, w). The prediction is resized back bilinearly with
align_corners=True.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from anydepth.errors import InputError
from anydepth.foundation.config import IMAGENET_MEAN, IMAGENET_STD, PATCH_SIZE


def _round_to_multiple(value: float, multiple: int, min_value: int) -> int:
    rounded = int(np.round(value / multiple) * multiple)
    if rounded < min_value:
        rounded = int(np.ceil(value / multiple) * multiple)
    return rounded


def network_size(height: int, width: int, input_size: int | tuple[int, int] = 518, multiple: int = PATCH_SIZE) -> tuple[int, int]:
    """(h, w) the network sees for an image of (height, width): lower-bound resize keeping the
    aspect ratio, each side a multiple of 14 and at least the target (the official `Resize`).
    input_size: one side for both, or a (target_h, target_w) pair as Depth AnyEvent uses."""
    target_h, target_w = (input_size, input_size) if isinstance(input_size, int) else input_size
    scale = max(target_h / height, target_w / width)
    return (
        _round_to_multiple(scale * height, multiple, target_h),
        _round_to_multiple(scale * width, multiple, target_w),
    )


def as_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Accept (H, W) grey, (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA uint8; return (H, W, 3) BGR."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy image, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an (H, W, 3) image, got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image of size {image.shape[1]}x{image.shape[0]} is too small")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {image.dtype}")
    return image


def image_to_tensor(image_bgr: np.ndarray, input_size: int = 518) -> torch.Tensor:
    """BGR uint8 image (H, W, 3) -> normalised float32 tensor (1, 3, h, w), h and w multiples of 14."""
    image_bgr = as_bgr_uint8(image_bgr)
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) / 255.0
    height, width = network_size(*rgb.shape[:2], input_size)
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    rgb = (rgb - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.float32)
    return torch.from_numpy(chw).unsqueeze(0)


def resize_prediction(prediction: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h, w) network output -> (B, height, width), bilinear with align_corners=True."""
    return F.interpolate(prediction[:, None], (height, width), mode="bilinear", align_corners=True)[:, 0]
