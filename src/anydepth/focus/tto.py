"""Test-time optimisation (TTO) of Depth Anything V2 on a focal stack (SPEC §4.2, seed 004).

Notation: focus positions l_i (N,) in the stack's unit (metres, or disparity for DDFF-12); the
focus probability volume p_ji (N, H, W), softmax over i per pixel j; the DFF estimate
mu_j = sum_i p_ji l_i and its spread s_j = sum_i p_ji (l_i - mu_j)^2; DAv2's relative disparity
f_theta(x') of the all-in-focus image x'.

Metric prediction (our choice, documented as the SPEC asks): the network's relative disparity is
mapped by an affine fit refitted in closed form at every step (weighted least squares with the
confidence m, (a, b) detached from the graph):
- positions in disparity: d_hat = a f + b, (a, b) = argmin sum_j m_j (a f_j + b - mu_j)^2;
- positions in metres: the fit is made in inverse depth, d_hat = 1 / max(a f + b, eps) with
  (a, b) = argmin sum_j m_j (a f_j + b - 1 / mu_j)^2.

Loss: L(theta) = sum_j m_j sum_i p_ji (l_i - d_hat_j)^2 / sum_j m_j
               = sum_j m_j [(mu_j - d_hat_j)^2 + s_j] / sum_j m_j   (computed in this form).

Confidence m_j in [0, 1] (the seed's printed formulas are non-positive; the intended monotone forms):
- "volume": m = exp(-s / tau), a peaked focus distribution is trusted;
- "stack":  m = 1 - exp(-v / tau), v = per-pixel intensity variance across the slices (texture-less
  pixels barely change with focus, so DFF is unreliable there);
- "none":   m = 1 (then TTO only pulls DAv2 towards DFF and cannot beat it).
tau defaults to the median of s (or v) over the image.

The paper's recipe (`PAPER`): encoder parameters only, Adam, lr 1e-5, 500 iterations, from the
pretrained weights. `FAST` reaches the same loss much sooner: only the last k encoder blocks are
optimised (the frozen prefix and its tapped features are computed once), a higher learning rate and
early stopping on a plateau of the reducible loss. Other fast options: LayerNorm + bias or LoRA
subsets, and optimisation at a lower input size with a full-size final pass.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from anydepth.errors import InputError
from anydepth.focus.measures import dff_from_volume
from anydepth.foundation.model import DepthAnythingV2
from anydepth.foundation.transform import image_to_tensor
from anydepth.metrics.align import scale_shift_lstsq

CONFIDENCES = ("stack", "volume", "none")
PARAMETER_SETS = ("encoder", "norm-bias", "last-k", "lora", "all")


@dataclass(frozen=True)
class TTOConfig:
    """iterations, lr (Adam); parameters: "encoder" (the paper), "norm-bias" (LayerNorm weights and
    all biases of the encoder), "last-k" (the last `last_k` encoder blocks), "lora" (rank-`lora_rank`
    updates of every attention qkv projection, the weights frozen), "all"; input_size: the
    network's shorter side while optimising; final_input_size: a last forward pass at this size
    (None: input_size); patience / tolerance: stop when the loss has not improved by `tolerance`
    (relative) for `patience` iterations (0: never stop early); amp: bfloat16 autocast on CUDA
    (ignored on the CPU)."""

    iterations: int = 500
    lr: float = 1e-5
    parameters: str = "encoder"
    last_k: int = 4
    input_size: int = 518
    final_input_size: int | None = None
    patience: int = 0
    tolerance: float = 1e-4
    confidence: str = "stack"
    tau: float | None = None
    lora_rank: int = 8
    amp: bool = True

    def __post_init__(self):
        if self.parameters not in PARAMETER_SETS:
            raise InputError(f"parameters must be one of {', '.join(PARAMETER_SETS)}, got {self.parameters!r}")
        if self.confidence not in CONFIDENCES:
            raise InputError(f"confidence must be one of {', '.join(CONFIDENCES)}, got {self.confidence!r}")
        if self.iterations < 0 or self.lr <= 0:
            raise InputError("iterations must be >= 0 and lr > 0")


PAPER = TTOConfig()
# Tuned on held-out rendered stacks (benchmarks/focus.py): the last 3 blocks at lr 1e-3 reach the paper
# recipe's final loss 9-16x sooner; optimising at a lower input size with a full-size final pass
# (input_size / final_input_size) made the final loss 4-5x worse there, so FAST keeps one size.
FAST = TTOConfig(iterations=150, lr=1e-3, parameters="last-k", last_k=3, patience=20, tolerance=1e-3)


@dataclass
class TTOResult:
    """depth: (H, W) metric prediction in the stack's unit; relative: (H, W) DAv2 output after TTO;
    scale, shift of the final fit; confidence (H, W); losses: the loss at every iteration (and the
    final pass last); elapsed: seconds since the start at each of those losses; floor: the part of
    the loss no prediction can remove (sum m s / sum m, the focus spread), so loss - floor is what TTO
    reduces; seconds; iterations run."""

    depth: np.ndarray
    relative: np.ndarray
    scale: float
    shift: float
    confidence: np.ndarray
    losses: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    floor: float = 0.0
    seconds: float = 0.0
    iterations: int = 0


# ---- the pieces -----------------------------------------------------------------------------------
def dff_statistics(volume: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, spread) of a focus probability volume (N, H, W) over positions (N,): the expectation and
    the variance of the position per pixel, each (H, W) float64 (from `dff_from_volume`)."""
    volume = np.asarray(volume)
    positions = np.asarray(positions, dtype=np.float64)
    if volume.ndim != 3 or volume.shape[0] != positions.shape[0]:
        raise InputError(f"volume {volume.shape} and positions {positions.shape} do not match (N, H, W) and (N,)")
    if not np.isfinite(volume).all() or not np.isfinite(positions).all():
        raise InputError("the focus volume or the positions contain NaN or infinity")
    dff = dff_from_volume(volume, positions)
    return dff.depth.astype(np.float64), np.maximum(dff.spread.astype(np.float64), 0.0)


def confidence_map(kind: str, spread: np.ndarray | None = None, slices: np.ndarray | None = None,
                   tau: float | None = None) -> np.ndarray:
    """Per-pixel confidence (H, W) in [0, 1] (formulas in the module docstring).
    slices: (N, H, W[, 3]) for "stack"; spread: (H, W) for "volume"."""
    if kind == "none":
        shape = spread.shape if spread is not None else np.asarray(slices).shape[1:3]
        return np.ones(shape)
    if kind == "volume":
        if spread is None:
            raise InputError("volume confidence needs the focus spread")
        values, decreasing = np.asarray(spread, dtype=np.float64), True
    elif kind == "stack":
        if slices is None:
            raise InputError("stack confidence needs the slices")
        grey = np.asarray(slices, dtype=np.float64)
        grey = grey.mean(axis=-1) if grey.ndim == 4 else grey
        values, decreasing = grey.var(axis=0), False
    else:
        raise InputError(f"confidence must be one of {', '.join(CONFIDENCES)}, got {kind!r}")
    scale = float(np.median(values)) if tau is None else float(tau)
    scale = scale if scale > 0 else float(values.mean()) or 1.0
    return np.exp(-values / scale) if decreasing else 1.0 - np.exp(-values / scale)


def metric_from_relative(relative, scale, shift, unit: str, eps: float = 1e-6):
    """d_hat from relative disparity (numpy or torch): a f + b (disparity) or 1 / max(a f + b, eps) (metres)."""
    affine = scale * relative + shift
    if unit == "disparity":
        return affine
    if unit != "metres":
        raise InputError(f"unit must be metres or disparity, got {unit!r}")
    return 1.0 / (affine.clamp_min(eps) if isinstance(affine, torch.Tensor) else np.maximum(affine, eps))


def fit_to_dff(relative, mu, weights, unit: str):
    """(scale, shift) of the weighted least-squares fit of relative disparity to the DFF estimate,
    in disparity (mu itself, or 1 / mu for metres)."""
    if unit == "disparity":
        target = mu
    elif isinstance(mu, torch.Tensor):
        target = 1.0 / mu.clamp_min(1e-6)
    else:
        target = 1.0 / np.maximum(mu, 1e-6)
    return scale_shift_lstsq(relative, target, weights=weights)


def focus_loss(prediction: torch.Tensor, mu: torch.Tensor, spread: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_j m_j [(mu_j - d_hat_j)^2 + s_j] / sum_j m_j, i.e. sum_j m_j sum_i p_ji (l_i - d_hat_j)^2 / sum m."""
    return (weights * ((mu - prediction) ** 2 + spread)).sum() / weights.sum().clamp_min(1e-12)


# ---- the optimisation -------------------------------------------------------------------------------
class _PrefixCache:
    """For "last-k": the tokens entering the first trainable block and the tapped features of the
    frozen blocks, computed once per input size."""

    def __init__(self, model: DepthAnythingV2, first_trainable: int):
        self.model, self.first = model, first_trainable
        self.cached: dict[tuple, tuple] = {}

    def tapped(self, x: torch.Tensor):
        encoder, blocks = self.model.pretrained, self.model.config.tapped_blocks
        key = tuple(x.shape)
        if key not in self.cached:
            with torch.no_grad():
                tokens = encoder.prepare_tokens(x)
                frozen = {}
                for index, block in enumerate(encoder.blocks[: self.first]):
                    tokens = block(tokens)
                    if index in blocks:
                        normed = encoder.norm(tokens)
                        frozen[index] = (normed[:, 1:], normed[:, 0])
            self.cached = {key: (tokens, frozen)}
        tokens, frozen = self.cached[key]
        tapped = [frozen[i] for i in blocks if i < self.first]
        for index in range(self.first, len(encoder.blocks)):
            tokens = encoder.blocks[index](tokens)
            if index in blocks:
                normed = encoder.norm(tokens)
                tapped.append((normed[:, 1:], normed[:, 0]))
        return tapped


class LoRALinear(torch.nn.Module):
    """A frozen linear layer plus a trainable low-rank update: y = W x + b + (B A x), B starts at 0."""

    def __init__(self, base: torch.nn.Linear, rank: int):
        super().__init__()
        self.base = base
        self.down = torch.nn.Parameter(torch.randn(rank, base.in_features, device=base.weight.device) / base.in_features**0.5)
        self.up = torch.nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.down.T) @ self.up.T


def _trainable(model: DepthAnythingV2, config: TTOConfig) -> list[torch.nn.Parameter]:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    encoder = model.pretrained
    if config.parameters == "all":
        chosen = list(model.parameters())
    elif config.parameters == "encoder":
        chosen = list(encoder.parameters())
    elif config.parameters == "lora":
        chosen = []
        for block in encoder.blocks:
            block.attn.qkv = LoRALinear(block.attn.qkv, config.lora_rank)
            chosen += [block.attn.qkv.down, block.attn.qkv.up]
    elif config.parameters == "norm-bias":
        chosen = [p for name, p in encoder.named_parameters() if "norm" in name or name.endswith(".bias")]
    else:
        chosen = [p for block in encoder.blocks[len(encoder.blocks) - config.last_k:] for p in block.parameters()]
        chosen += list(encoder.norm.parameters())
    for parameter in chosen:
        parameter.requires_grad_(True)
    return chosen


def _relative(model: DepthAnythingV2, x: torch.Tensor, size: tuple[int, int], cache: _PrefixCache | None) -> torch.Tensor:
    """DAv2 relative disparity at the stack's (H, W), differentiable."""
    patch_h, patch_w = model.patch_grid(x)
    tapped = cache.tapped(x) if cache is not None else model.tapped_features(x)
    levels = model.depth_head.reassemble(tapped, patch_h, patch_w)
    relative = model.decode(levels, patch_h, patch_w)
    return F.interpolate(relative[:, None], size, mode="bilinear", align_corners=True)[0, 0]


def run_tto(model: DepthAnythingV2, aif_bgr: np.ndarray, volume: np.ndarray, positions: np.ndarray, unit: str,
            slices: np.ndarray | None = None, config: TTOConfig = PAPER, progress=None) -> TTOResult:
    """Optimise a copy of `model` (the caller's model is left untouched) on one focal stack.

    aif_bgr: (H, W, 3) uint8 all-in-focus image (BGR, as `infer_image` takes it); volume (N, H, W)
    focus probabilities; positions (N,) in `unit` ("metres" or "disparity"); slices (N, H, W, 3) for
    the stack confidence. progress(step) is called after every iteration."""
    started = time.perf_counter()
    height, width = aif_bgr.shape[:2]
    mu_np, spread_np = dff_statistics(volume, positions)
    if mu_np.shape != (height, width):
        raise InputError(f"volume is {mu_np.shape}, the all-in-focus image {height}x{width}")
    confidence = confidence_map(config.confidence, spread_np, slices, config.tau)
    model = copy.deepcopy(model).float().train(False)
    device = next(model.parameters()).device
    mu, spread, weights = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (mu_np, spread_np, confidence))
    parameters = _trainable(model, config)
    cache = _PrefixCache(model, len(model.pretrained.blocks) - config.last_k) if config.parameters == "last-k" else None
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    floor = float((weights * spread).sum() / weights.sum().clamp_min(1e-12))
    x = image_to_tensor(aif_bgr, config.input_size).to(device)
    losses, elapsed, best, stale, iterations = [], [], float("inf"), 0, 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if config.amp and device.type == "cuda" else contextlib.nullcontext()
    for iteration in range(config.iterations):
        with autocast:
            relative = _relative(model, x, (height, width), cache).float()
        with torch.no_grad():
            scale, shift = fit_to_dff(relative, mu, weights, unit)
        loss = focus_loss(metric_from_relative(relative, scale, shift, unit), mu, spread, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        elapsed.append(time.perf_counter() - started)
        iterations = iteration + 1
        if progress is not None:
            progress(1)
        if config.patience:  # on the reducible part of the loss
            if losses[-1] - floor < best * (1 - config.tolerance):
                best, stale = losses[-1] - floor, 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
    final_size = config.final_input_size or config.input_size
    with torch.no_grad():
        x_final = x if final_size == config.input_size else image_to_tensor(aif_bgr, final_size).to(device)
        relative = _relative(model, x_final, (height, width), None)
        scale, shift = fit_to_dff(relative, mu, weights, unit)
        depth = metric_from_relative(relative, scale, shift, unit)
        losses.append(float(focus_loss(depth, mu, spread, weights)))
    elapsed.append(time.perf_counter() - started)
    return TTOResult(depth.cpu().numpy(), relative.cpu().numpy(), float(scale), float(shift), confidence, losses,
                     elapsed, floor, elapsed[-1], iterations)


def linear_baseline(model: DepthAnythingV2, aif_bgr: np.ndarray, volume: np.ndarray, positions: np.ndarray,
                    unit: str, slices: np.ndarray | None = None, confidence: str = "none", input_size: int = 518):
    """The "linear" baseline: DAv2 on the AiF, mapped by the (confidence-weighted) least-squares fit
    to the DFF depth. Returns (depth (H, W) in `unit`, relative (H, W), scale, shift)."""
    mu, spread = dff_statistics(volume, positions)
    weights = confidence_map(confidence, spread, slices)
    relative = model.infer_image(aif_bgr, input_size).astype(np.float64)
    scale, shift = fit_to_dff(relative, mu, weights, unit)
    return metric_from_relative(relative, scale, shift, unit), relative, scale, shift
