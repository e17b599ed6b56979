"""Aligning an affine-invariant or scale-less prediction to a reference before scoring.

All functions accept numpy arrays or torch tensors of shape (H, W) or (B, H, W) and work per
image (over the last two axes). Masked-out pixels and non-finite references never enter the fit.
"""

from __future__ import annotations

import numpy as np
import torch

from anydepth.errors import InputError


def _prepare(prediction, target, mask, weights):
    is_torch = isinstance(prediction, torch.Tensor)
    if is_torch:
        target = torch.as_tensor(target, dtype=prediction.dtype, device=prediction.device)
        valid = torch.isfinite(target) & torch.isfinite(prediction)
        if mask is not None:
            valid = valid & torch.as_tensor(mask, dtype=torch.bool, device=prediction.device)
        w = valid.to(prediction.dtype)
        if weights is not None:
            w = w * torch.as_tensor(weights, dtype=prediction.dtype, device=prediction.device)
        target = torch.where(valid, target, torch.zeros_like(target))
        prediction = torch.where(valid, prediction, torch.zeros_like(prediction))
    else:
        prediction = np.asarray(prediction, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        valid = np.isfinite(target) & np.isfinite(prediction)
        if mask is not None:
            valid &= np.asarray(mask, dtype=bool)
        w = valid.astype(np.float64)
        if weights is not None:
            w = w * np.asarray(weights, dtype=np.float64)
        target = np.where(valid, target, 0.0)
        prediction = np.where(valid, prediction, 0.0)
    if prediction.shape != target.shape:
        raise InputError(f"prediction shape {tuple(prediction.shape)} differs from reference shape {tuple(target.shape)}")
    return prediction, target, w


def scale_shift_lstsq(prediction, target, mask=None, weights=None):
    """Closed-form (scale, shift) minimising sum w (scale * prediction + shift - target)^2 per image.

    Returns scalars for (H, W) inputs, (B,) arrays/tensors for (B, H, W). An image whose system is
    singular (fewer than two distinct valid values) gets scale 0 and shift 0, as the Depth AnyEvent
    code does.
    """
    d, t, w = _prepare(prediction, target, mask, weights)
    axes = (-2, -1)
    a00 = (w * d * d).sum(axes)
    a01 = (w * d).sum(axes)
    a11 = w.sum(axes)
    b0 = (w * d * t).sum(axes)
    b1 = (w * t).sum(axes)
    det = a00 * a11 - a01 * a01
    if isinstance(det, torch.Tensor):
        ok = det != 0
        safe = torch.where(ok, det, torch.ones_like(det))
        scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
        shift = torch.where(ok, (a00 * b1 - a01 * b0) / safe, torch.zeros_like(det))
        return scale, shift
    ok = det != 0
    safe = np.where(ok, det, 1.0)
    scale = np.where(ok, (a11 * b0 - a01 * b1) / safe, 0.0)
    shift = np.where(ok, (a00 * b1 - a01 * b0) / safe, 0.0)
    return (float(scale), float(shift)) if np.ndim(scale) == 0 else (scale, shift)


def align_scale_shift(prediction, target, mask=None, weights=None, space: str = "depth", eps: float = 1e-8):
    """Align `prediction` to the metric depth `target` with a least-squares scale and shift.

    space="depth": fit in depth, return scale * prediction + shift (prediction is depth-like).
    space="disparity": the prediction is a disparity (e.g. DAv2 relative output); fit it to
        1 / target over valid target > 0, and return the aligned depth 1 / max(aligned disparity, eps).
    """
    if space == "depth":
        scale, shift = scale_shift_lstsq(prediction, target, mask, weights)
        return _apply(prediction, scale, shift)
    if space == "disparity":
        if isinstance(target, torch.Tensor):
            positive = target > 0
            inverse = torch.where(positive, 1.0 / torch.where(positive, target, torch.ones_like(target)), torch.full_like(target, float("nan")))
        else:
            target = np.asarray(target, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                inverse = np.where(target > 0, 1.0 / target, np.nan)
        scale, shift = scale_shift_lstsq(prediction, inverse, mask, weights)
        disparity = _apply(prediction, scale, shift)
        if isinstance(disparity, torch.Tensor):
            return 1.0 / disparity.clamp_min(eps)
        return 1.0 / np.maximum(disparity, eps)
    raise InputError(f"alignment space must be 'depth' or 'disparity', got {space!r}")


def align_median(prediction, target, mask=None):
    """Median scaling: prediction * median(target) / median(prediction) over valid pixels, per image."""
    d, t, w = _prepare(prediction, target, mask, None)
    if isinstance(d, torch.Tensor):
        raise InputError("align_median takes numpy arrays")
    d2, t2, w2 = d.reshape(-1, *d.shape[-2:]), t.reshape(-1, *t.shape[-2:]), w.reshape(-1, *w.shape[-2:])
    ratios = []
    for di, ti, wi in zip(d2, t2, w2):
        keep = wi > 0
        median_prediction = np.median(di[keep]) if keep.any() else 0.0
        ratios.append(np.median(ti[keep]) / median_prediction if median_prediction != 0 else 0.0)
    ratio = np.asarray(ratios).reshape(d.shape[:-2] + (1, 1))
    return np.asarray(prediction, dtype=np.float64) * ratio


def _apply(prediction, scale, shift):
    if isinstance(prediction, torch.Tensor):
        if isinstance(scale, torch.Tensor) and scale.ndim:
            scale, shift = scale[..., None, None], shift[..., None, None]
        return scale * prediction + shift
    prediction = np.asarray(prediction, dtype=np.float64)
    scale, shift = np.asarray(scale), np.asarray(shift)
    if scale.ndim:
        scale, shift = scale[..., None, None], shift[..., None, None]
    return scale * prediction + shift
