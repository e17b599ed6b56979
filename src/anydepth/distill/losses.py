"""Training losses for the event-depth students: scale-and-shift invariant + gradient matching, E2Depth's, SILog.

* `scale_shift_invariant_loss` + `multiscale_gradient_loss` = the Depth AnyEvent distillation loss
  L = L_si + 0.25 * L_reg (`DistillationLoss`, `distillation_loss`): the prediction D is aligned to
  the pseudo-label D* with the per-image closed-form least-squares (s, t), then
  L_si = 1 / (2 |M|) sum_M (s D + t - D*)^2 and L_reg is the MiDaS multi-scale gradient matching of
  the aligned residual R = s D + t - D*.  The loss lives in the space of the target (for DAv2
  pseudo-labels: relative inverse depth); the caller picks it.
* `e2depth_loss`: the E2Depth (rpg_e2depth) training loss on normalised log depth: the
  scale-invariant loss mean(d^2) - mean(d)^2 (lambda = 1, no sqrt) plus 0.25 * the same multi-scale
  gradient loss on d = prediction - target.
* `silog_loss`: Eigen et al. SILog, scale * sqrt(mean(D^2) - lam * mean(D)^2), D = log pred - log gt.

Every function takes (B, H, W) or (B, 1, H, W) tensors ((H, W) is read as B = 1); masks are boolean
(or 0/1) of the same shape, True where a pixel enters the loss.  Non-finite targets are always
masked out.  `LOSSES` maps a config name to a callable (prediction, target, mask) -> (total, parts).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from anydepth.errors import InputError


def _as_bhw(x: torch.Tensor, name: str) -> torch.Tensor:
    """(B, 1, H, W) / (B, H, W) / (H, W) -> (B, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 3:
        return x
    if x.ndim == 2:
        return x[None]
    raise InputError(f"{name} must have shape (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")


def _valid_mask(target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Boolean (B, H, W): finite target and (when given) the caller's mask."""
    valid = torch.isfinite(target)
    if mask is not None:
        mask = _as_bhw(torch.as_tensor(mask, device=target.device), "mask")
        if mask.shape != target.shape:
            raise InputError(f"mask shape {tuple(mask.shape)} differs from target shape {tuple(target.shape)}")
        valid = valid & mask.bool()
    return valid


def _prepare(prediction, target, mask):
    prediction = _as_bhw(prediction, "prediction")
    target = _as_bhw(target, "target").to(dtype=prediction.dtype, device=prediction.device)
    if prediction.shape != target.shape:
        raise InputError(f"prediction shape {tuple(prediction.shape)} differs from target shape {tuple(target.shape)}")
    return prediction, target, _valid_mask(target, mask)


def _fit_scale_shift(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor):
    """Differentiable per-image least squares (s, t) = argmin sum_valid (s D + t - D*)^2.

    Same minimiser as `anydepth.metrics.align.scale_shift_lstsq`, solved in centred form
    (s = cov(D, D*) / var(D), t = mean D* - s mean D), which is better conditioned in float32 and
    lets degenerate images be detected reliably.  Gradients flow through s and t.

    Returns scale (B,), shift (B,), ok (B,) bool: False for images with < 2 valid pixels or a
    constant prediction on the mask; those get s = t = 0 and finite (zero) gradients.
    """
    w = valid.to(prediction.dtype)
    d = torch.where(valid, prediction, torch.zeros_like(prediction))
    y = torch.where(valid, target, torch.zeros_like(target))
    n = w.sum((-2, -1))
    n_safe = n.clamp_min(1.0)
    mean_d = d.sum((-2, -1)) / n_safe
    mean_y = y.sum((-2, -1)) / n_safe
    dc = (d - mean_d[:, None, None]) * w
    yc = (y - mean_y[:, None, None]) * w
    var = (dc * dc).sum((-2, -1))
    cov = (dc * yc).sum((-2, -1))
    # A constant prediction leaves only rounding noise in `var` (a few ulp of mean^2 per pixel).
    tol = (64.0 * torch.finfo(prediction.dtype).eps) ** 2 * (w * d * d).sum((-2, -1))
    ok = (n >= 2) & (var > tol)
    var_safe = torch.where(ok, var, torch.ones_like(var))
    scale = torch.where(ok, cov / var_safe, torch.zeros_like(var))
    shift = torch.where(ok, mean_y - scale * mean_d, torch.zeros_like(var))
    return scale, shift, ok


def multiscale_gradient_loss(residual: torch.Tensor, mask: torch.Tensor | None = None, scales: int = 4) -> torch.Tensor:
    """MiDaS multi-scale gradient matching loss of a residual, batch-based reduction.

    residual: (B, H, W) or (B, 1, H, W), e.g. s D + t - D* or log pred - log gt (target units).
    mask: same shape, True where the residual is valid (None = finite residual).
    For k = 0 .. scales-1 the residual and mask are subsampled with stride 2^k (x[:, ::2^k, ::2^k]);
    at each scale  sum_images sum (|dx R| + |dy R|) / sum_images |M|,  a difference counting only
    where both neighbouring pixels are valid; a scale with no valid pixel adds 0.  Returns the sum
    over scales, a scalar tensor.
    """
    residual = _as_bhw(residual, "residual")
    valid = _valid_mask(residual, mask)
    r = torch.where(valid, residual, torch.zeros_like(residual))
    total = r.sum() * 0.0  # keeps the graph (and dtype/device) when every scale is empty
    for k in range(scales):
        step = 2**k
        rk, mk = r[:, ::step, ::step], valid[:, ::step, ::step]
        count = mk.sum()
        if count == 0:
            continue
        mx = mk[:, :, 1:] & mk[:, :, :-1]
        my = mk[:, 1:, :] & mk[:, :-1, :]
        gx = torch.where(mx, (rk[:, :, 1:] - rk[:, :, :-1]).abs(), torch.zeros_like(rk[:, :, 1:]))
        gy = torch.where(my, (rk[:, 1:, :] - rk[:, :-1, :]).abs(), torch.zeros_like(rk[:, 1:, :]))
        total = total + (gx.sum() + gy.sum()) / count.to(r.dtype)
    return total


def _aligned_residual(prediction, target, mask):
    """(R, usable mask, si term): R = s D + t - D* (zero where unusable), all (B, H, W)."""
    prediction, target, valid = _prepare(prediction, target, mask)
    scale, shift, ok = _fit_scale_shift(prediction, target, valid)
    usable = valid & ok[:, None, None]
    aligned = scale[:, None, None] * prediction + shift[:, None, None]
    residual = torch.where(usable, aligned - torch.where(usable, target, torch.zeros_like(target)), torch.zeros_like(target))
    n = usable.sum((-2, -1)).to(prediction.dtype)
    per_image = (residual * residual).sum((-2, -1)) / (2.0 * n.clamp_min(1.0))
    images = ok.sum().to(prediction.dtype)
    si = per_image.sum() / images.clamp_min(1.0)
    return residual, usable, si


def scale_shift_invariant_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Depth AnyEvent L_si: per image 1 / (2|M|) sum_M (s D + t - D*)^2 with the closed-form (s, t).

    prediction D, target D*: (B, H, W) or (B, 1, H, W), in the target's space (e.g. relative
    inverse depth for DAv2 labels); mask: same shape, None = finite target.  Returns the mean over
    the images whose fit is defined (>= 2 valid pixels, non-constant prediction); the others
    contribute 0 and are not counted; 0 when there is none.  Scalar tensor, target units squared.
    """
    return _aligned_residual(prediction, target, mask)[2]


def distillation_loss(prediction, target, mask=None, gradient_weight: float = 0.25, scales: int = 4):
    """L = L_si + gradient_weight * L_reg (Depth AnyEvent).  Returns (total, {"si": .., "grad": ..}).

    L_reg = `multiscale_gradient_loss` of the aligned residual s D + t - D* over the usable pixels.
    Shapes and spaces as in `scale_shift_invariant_loss`.
    """
    residual, usable, si = _aligned_residual(prediction, target, mask)
    grad = multiscale_gradient_loss(residual, usable, scales)
    return si + gradient_weight * grad, {"si": si, "grad": grad}


class DistillationLoss(nn.Module):
    """Module form of `distillation_loss`: forward(prediction, target, mask=None) -> (total, parts)."""

    def __init__(self, gradient_weight: float = 0.25, scales: int = 4):
        super().__init__()
        self.gradient_weight = gradient_weight
        self.scales = scales

    def forward(self, prediction, target, mask=None):
        return distillation_loss(prediction, target, mask, self.gradient_weight, self.scales)


def e2depth_loss(prediction_log, target_log, mask=None, gradient_weight: float = 0.25, scales: int = 4):
    """E2Depth training loss on (normalised) log depth.  Returns (total, {"si": .., "grad": ..}).

    prediction_log, target_log: (B, H, W) or (B, 1, H, W) in the model's normalised log-depth space;
    mask: same shape, None = finite target (NaN targets are always masked).  With d = prediction -
    target on the valid pixels, si = mean over images of (mean(d^2) - mean(d)^2) (lambda = 1, no
    sqrt; computed as the centred variance; images without valid pixels are skipped) and
    grad = `multiscale_gradient_loss(d)`; total = si + gradient_weight * grad.
    """
    prediction, target, valid = _prepare(prediction_log, target_log, mask)
    w = valid.to(prediction.dtype)
    d = torch.where(valid, prediction - torch.where(valid, target, torch.zeros_like(target)), torch.zeros_like(target))
    n = w.sum((-2, -1))
    n_safe = n.clamp_min(1.0)
    mean_d = d.sum((-2, -1)) / n_safe
    centred = (d - mean_d[:, None, None]) * w
    per_image = (centred * centred).sum((-2, -1)) / n_safe
    si = per_image.sum() / (n > 0).sum().to(prediction.dtype).clamp_min(1.0)
    grad = multiscale_gradient_loss(d, valid, scales)
    return si + gradient_weight * grad, {"si": si, "grad": grad}


def silog_loss(prediction, target, mask=None, lam: float = 0.85, scale: float = 10.0, eps: float = 1e-12) -> torch.Tensor:
    """SILog (Eigen et al. 2014): scale * sqrt(mean(D^2) - lam * mean(D)^2), D = log pred - log gt.

    prediction, target: (B, H, W) or (B, 1, H, W) positive depths (any unit; the loss is unitless);
    mask: same shape, None = finite target.  Pixels with target <= 0 or prediction <= 0 are dropped.
    Convention of BTS / AdaBins: the means run over all valid pixels of the batch together, and
    lam = 0.85 ("variance focus"), scale = 10 are the training defaults; lam = 1 makes it fully
    scale-invariant, scale = 1 gives the plain metric.  When the radicand is <= eps the loss is 0
    with zero gradient (sqrt has an infinite slope at 0).  Scalar tensor.
    """
    prediction, target, valid = _prepare(prediction, target, mask)
    valid = valid & (target > 0) & (prediction > 0)
    one = torch.ones_like(prediction)
    log_ratio = torch.log(torch.where(valid, prediction, one)) - torch.log(torch.where(valid, target, one))
    delta = torch.where(valid, log_ratio, torch.zeros_like(prediction))
    n = valid.sum().to(prediction.dtype).clamp_min(1.0)
    mean = delta.sum() / n
    radicand = (delta * delta).sum() / n - lam * mean * mean
    positive = radicand > eps
    root = torch.sqrt(torch.where(positive, radicand, torch.ones_like(radicand)))
    return scale * torch.where(positive, root, torch.zeros_like(radicand))


def _silog_entry(prediction, target, mask=None):
    value = silog_loss(prediction, target, mask)
    return value, {"silog": value}


LOSSES: dict[str, Callable] = {
    "ssi": distillation_loss,
    "e2depth": e2depth_loss,
    "silog": _silog_entry,
}
"""Config name -> callable (prediction, target, mask) -> (total tensor, {part name: tensor}), defaults."""
