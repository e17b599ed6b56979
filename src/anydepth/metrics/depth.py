"""Depth error metrics on numpy arrays. Every function takes a prediction and a ground truth of the
same shape (any unit, as long as both share it), and an optional boolean mask of pixels to score;
pixels outside the mask, or with a non-finite ground truth, are ignored. An empty selection gives
NaN (so sequence means can skip it with nanmean), never a warning.

Conventions differ between codebases; each function names its own:
- `sq_rel`: denominator "gt" -> mean((d - d*)^2 / d*) (KITTI / Eigen, DDFF-12), "gt2" -> mean((d - d*)^2 / d*^2)
  (Depth AnyEvent's official evaluation).
- `silog`: lam=1, root=False -> mean(D^2) - mean(D)^2 with D = log d* - log d (Depth AnyEvent);
  lam=0.5, root=True -> sqrt(mean(D^2) - 0.5 mean(D)^2) (Eigen et al. 2014).
- `delta`: inclusive=True counts ratio <= 1.25^k (Depth AnyEvent code), False counts < (DDFF-12, most others).
- `eps` is added to denominators and logarithms where a protocol does so (Depth AnyEvent: 1e-5).
"""

from __future__ import annotations

import numpy as np

from anydepth.errors import InputError


def _select(prediction, target, mask=None) -> tuple[np.ndarray, np.ndarray]:
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise InputError(f"prediction shape {prediction.shape} differs from ground truth shape {target.shape}")
    keep = np.isfinite(target) & np.isfinite(prediction)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != target.shape:
            raise InputError(f"mask shape {mask.shape} differs from ground truth shape {target.shape}")
        keep &= mask
    return prediction[keep], target[keep]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def abs_rel(prediction, target, mask=None, eps: float = 0.0) -> float:
    """mean(|d - d*| / (d* + eps))."""
    d, t = _select(prediction, target, mask)
    return _mean(np.abs(d - t) / (t + eps))


def sq_rel(prediction, target, mask=None, denominator: str = "gt", eps: float = 0.0) -> float:
    """mean((d - d*)^2 / d*) for denominator "gt", mean((d - d*)^2 / (d*^2 + eps)) for "gt2"."""
    d, t = _select(prediction, target, mask)
    if denominator == "gt":
        return _mean((d - t) ** 2 / (t + eps))
    if denominator == "gt2":
        return _mean((d - t) ** 2 / (t**2 + eps))
    raise InputError(f"sq_rel denominator must be 'gt' or 'gt2', got {denominator!r}")


def mse(prediction, target, mask=None) -> float:
    """mean((d - d*)^2)."""
    d, t = _select(prediction, target, mask)
    return _mean((d - t) ** 2)


def rmse(prediction, target, mask=None) -> float:
    """sqrt(mean((d - d*)^2)) (called RMS in DDFF-12 tables)."""
    return float(np.sqrt(mse(prediction, target, mask)))


def mae(prediction, target, mask=None) -> float:
    """mean(|d - d*|)."""
    d, t = _select(prediction, target, mask)
    return _mean(np.abs(d - t))


def rmse_log(prediction, target, mask=None, eps: float = 0.0) -> float:
    """sqrt(mean((log(d* + eps) - log(d + eps))^2))."""
    d, t = _select(prediction, target, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sqrt(_mean((np.log(t + eps) - np.log(d + eps)) ** 2)))


def silog(prediction, target, mask=None, lam: float = 1.0, root: bool = False, eps: float = 0.0) -> float:
    """Scale-invariant log error: mean(D^2) - lam mean(D)^2, D = log(d* + eps) - log(d + eps);
    its square root if `root`. Depth AnyEvent: lam=1, root=False. Eigen: lam=0.5, root=True."""
    d, t = _select(prediction, target, mask)
    if not d.size:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.log(t + eps) - np.log(d + eps)
    value = float(np.mean(diff**2) - lam * np.mean(diff) ** 2)
    return float(np.sqrt(max(value, 0.0))) if root else value


def delta(prediction, target, mask=None, k: int = 1, inclusive: bool = False, eps: float = 0.0) -> float:
    """Fraction (0..1) of pixels with max(d / d*, d* / d) below 1.25^k (<= if inclusive)."""
    d, t = _select(prediction, target, mask)
    if not d.size:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(t / (d + eps), d / (t + eps))
    threshold = 1.25**k
    return float(np.mean(ratio <= threshold if inclusive else ratio < threshold))


def badpix(prediction, target, mask=None, threshold: float = 0.07) -> float:
    """Percentage (0..100) of pixels with |d - d*| > threshold (DDFF-12: 0.07 in disparity)."""
    d, t = _select(prediction, target, mask)
    return 100.0 * _mean((np.abs(d - t) > threshold).astype(np.float64))


def _scharr(image: np.ndarray, axis: int) -> np.ndarray:
    """Scharr derivative along `axis` (0: rows / y, 1: columns / x): next minus previous row (or
    column), smoothed across with [3, 10, 3] / 16, reflect padding; equal to scikit-image's
    `scharr_h` / `scharr_v` inside the image. The one-pixel border is set to 0, as scikit-image 0.16
    (the version of the DDFF-12 reference code) does."""
    padded = np.pad(image, 1, mode="symmetric")
    smooth = np.array([3.0, 10.0, 3.0]) / 16.0
    if axis == 0:
        diff = padded[2:, :] - padded[:-2, :]
        result = smooth[0] * diff[:, :-2] + smooth[1] * diff[:, 1:-1] + smooth[2] * diff[:, 2:]
    else:
        diff = padded[:, 2:] - padded[:, :-2]
        result = smooth[0] * diff[:-2, :] + smooth[1] * diff[1:-1, :] + smooth[2] * diff[2:, :]
    result[0, :] = result[-1, :] = 0.0
    result[:, 0] = result[:, -1] = 0.0
    return result


def bumpiness(prediction, target, mask=None, clip: float = 0.05) -> float:
    """DDFF-12 bumpiness: the Frobenius norm of the Hessian of (d - d*) from Scharr derivatives,
    clipped at `clip`, averaged over the scored pixels, x 100. The Hessian is taken on the whole
    (unmasked) difference, as in the reference code."""
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.ndim != 2 or prediction.shape != target.shape:
        raise InputError(f"bumpiness needs two (H, W) maps of one shape, got {prediction.shape} and {target.shape}")
    diff = np.nan_to_num(prediction - target)
    dx, dy = _scharr(diff, 1), _scharr(diff, 0)
    hessian_norm = np.sqrt(_scharr(dx, 1) ** 2 + _scharr(dx, 0) ** 2 + _scharr(dy, 0) ** 2 + _scharr(dy, 1) ** 2)
    keep = np.isfinite(target) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(target))
    return 100.0 * _mean(np.clip(hessian_norm, 0.0, clip)[keep])
