"""Test-time optimisation (TTO) of Depth Anything V2 on a focal stack (the TTO paper's recipe and
faster ones).

Notation: focus positions l_i (N,) in the stack's unit (metres, or disparity for DDFF-12); the
focus probability volume p_ji (N, H, W), softmax over i per pixel j; the DFF estimate
mu_j = sum_i p_ji l_i and its variance s_j = sum_i p_ji (l_i - mu_j)^2; DAv2's relative disparity
f_theta(x') of the all-in-focus image x'.

Metric prediction (our choice: the paper only says d_hat = a f_theta + b with (a, b) from the linear
fit, refitted or learned): the network's relative disparity is mapped by an affine fit refitted in
closed form at every step (weighted least squares with the confidence m, (a, b) detached from the
graph):
- positions in disparity: d_hat = a f + b, (a, b) = argmin sum_j m_j (a f_j + b - mu_j)^2;
- positions in metres: the fit is made in inverse depth, d_hat = 1 / max(a f + b, eps) with
  (a, b) = argmin sum_j m_j (a f_j + b - 1 / mu_j)^2.

Loss: L(theta) = sum_j m_j sum_i p_ji (l_i - d_hat_j)^2 / sum_j m_j
               = sum_j m_j [(mu_j - d_hat_j)^2 + s_j] / sum_j m_j   (computed in this form).

Confidence m_j in [0, 1] (the paper prints m = -exp(s) and m = 1 - exp(s), non-positive, a misprint;
these are the intended monotone forms):
- "volume": m = exp(-s / tau), a peaked focus distribution is trusted;
- "stack":  m = 1 - exp(-v / tau), v = per-pixel intensity variance across the slices (texture-less
  pixels barely change with focus, so DFF is unreliable there);
- "none":   m = 1 (then TTO only pulls DAv2 towards DFF and cannot beat it).
tau defaults to the median of s (or v) over the image.

The paper's recipe (`PAPER`): encoder parameters only, Adam, lr 1e-5, 500 iterations, from the
pretrained weights. `FAST` reaches the paper recipe's final loss over 30x sooner (39x on
NYU-derived stacks, 33x on rendered ones in `benchmarks/focus.py`; module constants below): the
head solve at every step, the last k encoder blocks (the frozen prefix, the DPT levels of its taps
and their fusion skips computed once) and the head's two output convolutions before the solved
layer optimised at a high learning rate for 30 steps, the loss on the network's grid, bf16
autocast. `FASTEST`: the closed-form head solve alone, no gradient step. Other options: LayerNorm +
bias, LoRA or head-only subsets, early stopping on a plateau, and optimisation at a lower input size
with a full-size final pass.

Head solve (`head_solve`): the network's output before its final ReLU is affine in the weights of
the DPT head's last 1x1 convolution (32 -> 1) given the 32 features phi_j entering it (bilinear
resizing to the stack's size commutes with a 1x1 convolution). So that layer is solved in closed
form, as the (a, b) refit generalised from 2 to 33 unknowns: (w, c) = argmin
sum_j m_j (w . phi_j + c - t_j)^2 + ridge |w - w_a|^2, t = mu (disparity) or 1 / mu (metres, the
same inverse-depth fit as the (a, b) refit), w_a = 0 or (`anchored`) the pretrained layer rescaled
by the (a, b) refit, and d_hat = w . phi + c (or its inverse). It is solved at every step with
(w, c) detached (variable projection: at the optimum the gradient through the solve is zero, so the
detached gradient is the exact one) and once more on the final pass (with `final_ridge`), at the
stack's size or (`final_on_grid`) on the network's grid against the focus statistics averaged onto
it, the solved layer's output then resized; the solved layer is put back into the model's copy. Only
the relative ("relu") head can be solved. `loss_grid` evaluates the loss of the steps on the
network's output grid (cheaper than at the stack's size); the final loss is always the exact one at
the stack's size.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from anydepth.errors import InputError
from anydepth.focus.measures import DFFResult, dff_from_volume
from anydepth.foundation.model import DepthAnythingV2
from anydepth.foundation.transform import image_to_tensor
from anydepth.metrics.align import scale_shift_lstsq
from anydepth.precision import autocast as precision_autocast

CONFIDENCES = ("stack", "volume", "none")
PARAMETER_SETS = ("encoder", "norm-bias", "last-k", "last-k-head", "lora", "head", "none", "all")
AMP_MODES = ("off", "cuda", "on")


@dataclass(frozen=True)
class TTOConfig:
    """iterations, lr (Adam); parameters: "encoder" (the paper), "norm-bias" (LayerNorm weights and all
    biases of the encoder), "last-k" (the last `last_k` encoder blocks; the final LayerNorm stays
    frozen), "last-k-head" (those and the DPT head's two output convolutions before its last one),
    "lora" (rank-`lora_rank` updates of every attention qkv projection, the weights frozen), "head"
    (the DPT head's two output convolutions before its last one; the encoder and the fusion are
    computed once), "none" (no gradient steps: with head_solve, the closed-form solve alone), "all";
    input_size: the network's shorter side while optimising; final_input_size: a last forward pass
    at this size (None: input_size); patience / tolerance: stop when the loss has not improved by
    `tolerance` (relative) for `patience` iterations (0: never stop early); head_solve: solve the
    head's last 1x1 convolution in closed form at every step and on the final pass (module
    docstring), ridge its Tikhonov term relative to the mean eigenvalue of the normal equations,
    towards 0 or, when anchored, towards the pretrained layer rescaled by the (a, b) refit
    (`solve_last_layer`); loss_grid: while iterating, evaluate the loss (and the solve) on the
    network's output grid (14 patch_h x 14 patch_w) against the focus statistics averaged onto it
    (confidence-weighted; exact for a prediction constant per cell) instead of at the stack's size:
    about 2.5x cheaper a step at 196; the per-iteration losses are then those of the grid (the final
    pass is always at the stack's size); amp: autocast "cuda" (on CUDA only: the default, so the CPU
    runs float32), "on" (the CPU too) or "off" (True and False are read as "cuda" and "off");
    amp_dtype: its type, "bf16" or "fp16" (CUDA only; the gradients are then scaled against
    underflow); final_ridge: the final solve's ridge (None: `ridge`); final_on_grid: the final solve
    on the network's output grid (as `loss_grid`), its output resized to the stack's size, instead
    of the 32 features resized and solved there."""

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
    amp: str = "cuda"
    amp_dtype: str = "bf16"
    head_solve: bool = False
    ridge: float = 1e-6
    loss_grid: bool = False
    anchored: bool = False
    final_ridge: float | None = None
    final_on_grid: bool = False

    def __post_init__(self):
        if isinstance(self.amp, bool):
            object.__setattr__(self, "amp", "cuda" if self.amp else "off")
        if self.amp not in AMP_MODES:
            raise InputError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.amp_dtype not in ("bf16", "fp16"):
            raise InputError(f"amp_dtype must be bf16 or fp16, got {self.amp_dtype!r}")
        if self.parameters == "none" and not self.head_solve and self.iterations:
            raise InputError('parameters "none" leaves nothing to optimise without head_solve')
        if self.ridge < 0 or (self.final_ridge is not None and self.final_ridge < 0):
            raise InputError("ridge and final_ridge must be >= 0")
        if self.parameters not in PARAMETER_SETS:
            raise InputError(f"parameters must be one of {', '.join(PARAMETER_SETS)}, got {self.parameters!r}")
        if self.confidence not in CONFIDENCES:
            raise InputError(f"confidence must be one of {', '.join(CONFIDENCES)}, got {self.confidence!r}")
        if self.iterations < 0 or self.lr <= 0:
            raise InputError("iterations must be >= 0 and lr > 0")


PAPER = TTOConfig()
# Chosen on rendered stacks of seeds 2000-2002 only (neither NYU nor the benchmark's held-out seeds
# 1000+), against TTO-paper run there (/tmp tuning script, CPU, one thread, input 196): the head's
# last layer solved at every step pulled towards the pretrained one (ridge 3e-3; lowering it to 1e-3
# or raising it to 1e-2 left a higher final loss), a free final solve (final_ridge: 3-4 % lower final
# loss, AbsRel no worse) on the network's grid (final_on_grid: 1-8 % less time, same loss), the loss of
# the steps on the grid, bf16 autocast on the CPU too, the last 3 blocks plus the head's two output
# convolutions before the solved layer (the blocks alone: 1.12x paper's final loss on one scene; the
# whole DPT head at this rate: up to 1.9x) at lr 3e-3 (5e-3 and 1e-2 worse), 30 steps (26: 1.04x);
# a warm-up or a cosine decay, optimising at 140 or 168 with a full-size final pass, 2 or 6 blocks
# all left a higher final loss at equal time. Rechecked on seeds 2000-2005 with the benchmark's prior
# (final LayerNorm frozen, the attention written out): final reducible loss 0.72-1.09x paper's (above
# it on 2003 and 2005), AbsRel -0.0003 on average; 15 variants there trade final loss against AbsRel
# along one line (README, "Focal stacks").
FAST = TTOConfig(iterations=30, lr=3e-3, parameters="last-k-head", last_k=3, head_solve=True, anchored=True,
                 ridge=3e-3, final_ridge=1e-6, loss_grid=True, final_on_grid=True, amp="on")
# The closed-form solve alone (no gradient step), free, on the grid: ~0.06 s there, final reducible
# loss 1.8-4.3x paper's (the (a, b) refit alone: 2.5-7.5x).
FASTEST = TTOConfig(iterations=0, parameters="none", head_solve=True, final_on_grid=True)


@dataclass
class TTOResult:
    """depth: (H, W) metric prediction in the stack's unit; relative: (H, W) DAv2 output after TTO;
    scale, shift of the final fit; confidence (H, W); losses: the loss at every iteration (and the
    final pass last); elapsed: seconds since the start at each of those losses; floor: the part of
    the loss no prediction can remove (sum m s / sum m, s the focus variance), so loss - floor is what TTO
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
def dff_statistics(volume: np.ndarray, positions: np.ndarray, dff: DFFResult | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mu, variance) of a focus probability volume (N, H, W) over positions (N,): the expectation and
    the variance of the position per pixel, each (H, W) float64. dff: the volume's `dff_from_volume`
    result when the caller has it already (else computed here); the volume is checked either way."""
    volume = np.asarray(volume)
    positions = np.asarray(positions, dtype=np.float64)
    if volume.ndim != 3 or volume.shape[0] != positions.shape[0]:
        raise InputError(f"volume {volume.shape} and positions {positions.shape} do not match (N, H, W) and (N,)")
    if not np.isfinite(volume).all() or not np.isfinite(positions).all():
        raise InputError("the focus volume or the positions contain NaN or infinity")
    dff = dff_from_volume(volume, positions) if dff is None else dff
    return dff.depth.astype(np.float64), np.maximum(dff.variance.astype(np.float64), 0.0)


def confidence_map(kind: str, variance: np.ndarray | None = None, slices: np.ndarray | None = None,
                   tau: float | None = None) -> np.ndarray:
    """Per-pixel confidence (H, W) in [0, 1] (formulas in the module docstring).
    slices: (N, H, W[, 3]) for "stack"; variance: (H, W) the focus variance s, for "volume"."""
    if kind == "none":
        shape = variance.shape if variance is not None else np.asarray(slices).shape[1:3]
        return np.ones(shape)
    if kind == "volume":
        if variance is None:
            raise InputError("volume confidence needs the focus variance")
        values, decreasing = np.asarray(variance, dtype=np.float64), True
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


def focus_loss(prediction: torch.Tensor, mu: torch.Tensor, variance: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_j m_j [(mu_j - d_hat_j)^2 + s_j] / sum_j m_j, i.e. sum_j m_j sum_i p_ji (l_i - d_hat_j)^2 / sum m
    (s: the focus variance)."""
    return (weights * ((mu - prediction) ** 2 + variance)).sum() / weights.sum().clamp_min(1e-12)


_CPU_SQRT_SETTLED = False


def _settle_cpu_sqrt() -> None:
    """One throwaway multi-threaded `torch.sqrt` on the CPU, once per process. Measured with torch
    2.13: the first parallel call of the vectorised sqrt in a process, when it comes after MKL work
    on the calling thread, can compute that thread's chunk by another implementation (in 4-13 % of
    fresh processes, 1-ulp differences in half the array, float32 and float64 alike); later calls
    agree. In `solve_last_layer` that was enough for FAST's first step, and so its whole trajectory,
    to differ between processes (2 of 36); with this call first, the solve agreed in 50 of 50 fresh
    processes and FAST's first step in 30 of 30."""
    global _CPU_SQRT_SETTLED
    if not _CPU_SQRT_SETTLED:
        torch.ones(1 << 16).sqrt()
        _CPU_SQRT_SETTLED = True


def solve_last_layer(features: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                     ridge: float = 0.0, anchor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(w (C,), c ()) = argmin_{w, c} sum_j m_j (w . phi_j + c - t_j)^2 + ridge * mean(eig) * |w - w_a|^2:
    the weighted least-squares fit of a 1x1 convolution (C -> 1, with bias) to a target, pulled
    towards w_a = a * anchor (anchor (C,): the pretrained layer's weights; a its least-squares scale,
    i.e. the (a, b) refit of the pretrained output) or towards 0 without an anchor. ridge -> infinity
    gives the (a, b) refit of the anchor's output; ridge 0 the free solve. mean(eig): the mean
    eigenvalue of the weighted feature covariance.

    features (C, H, W), target (H, W), weights (H, W) >= 0, all on one device; the sums run in the
    features' dtype (at least float32) after centring on the weighted means, the C x C system in
    float64 by an eigendecomposition (directions with no weighted variance, e.g. dead ReLU channels,
    get 0). Returns w and c in float32 (float64 for float64 features), detached."""
    if features.ndim != 3 or target.shape != features.shape[1:] or weights.shape != target.shape:
        raise InputError(f"features {tuple(features.shape)}, target {tuple(target.shape)} and weights "
                         f"{tuple(weights.shape)} do not match (C, H, W), (H, W), (H, W)")
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        phi = features.detach().to(dtype).flatten(1)
        t, m = target.detach().to(dtype).flatten(), weights.detach().to(dtype).flatten()
        total = m.sum().clamp_min(torch.finfo(dtype).tiny)
        phi_mean, t_mean = (phi @ m) / total, (t @ m) / total
        # (phi - mean) sqrt(m): the weighted Gram matrix is then one product of a map with itself
        # (two passes over the C x HW features and one temporary: the solve runs at every FAST step)
        if m.device.type == "cpu":
            _settle_cpu_sqrt()
        root = m.sqrt()
        scaled = torch.sub(phi, phi_mean[:, None]).mul_(root)
        gram = (scaled @ scaled.T).double()
        moment = (scaled @ ((t - t_mean) * root)).double()
        eigenvalues, vectors = torch.linalg.eigh(gram)
        top = eigenvalues.max().clamp_min(0)
        keep = eigenvalues > top * 1e-10 * gram.shape[0]
        strength = ridge * eigenvalues.clamp_min(0).mean()
        pulled = torch.zeros_like(moment)
        if anchor is not None:
            anchor = anchor.detach().double().flatten()
            pulled = anchor * (anchor @ moment) / (anchor @ gram @ anchor).clamp_min(torch.finfo(torch.float64).tiny)
        shifted = eigenvalues + strength
        inverse = torch.where(keep, 1.0 / torch.where(keep, shifted, torch.ones_like(shifted)), torch.zeros_like(shifted))
        w = vectors @ (inverse * (vectors.T @ (moment + strength * pulled)))
        c = t_mean.double() - phi_mean.double() @ w
    return w.to(dtype), c.to(dtype)


# ---- the optimisation -------------------------------------------------------------------------------
class _FusedCache:
    """For "head" and "none": the DPT head's fused map (everything before its output convolutions),
    computed once per input size."""

    def __init__(self, model: DepthAnythingV2):
        self.model, self.cached = model, {}

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self.cached:
            with torch.no_grad():
                patch_h, patch_w = self.model.patch_grid(x)
                head = self.model.depth_head
                fused = head.fuse(head.reassemble(self.model.tapped_features(x), patch_h, patch_w))
                self.cached = {key: fused.float()}  # float32 also when computed under autocast
        return self.cached[key]


class _PrefixCache:
    """For "last-k": the tokens entering the first trainable block, and the DPT levels of the frozen
    blocks' taps with what the fusion adds for them (`DPTHead.refine_skip`): their tokens pass only
    frozen layers, so these are constants, computed once per input size. The final LayerNorm is
    frozen with them (`_trainable`)."""

    def __init__(self, model: DepthAnythingV2, first_trainable: int):
        self.model, self.first = model, first_trainable
        self.cached: dict[tuple, tuple] = {}

    def prefix(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """(tokens entering the first trainable block, {tap position: its DPT level}, {tap position:
        its refined skip})."""
        key = tuple(x.shape)
        if key not in self.cached:
            with torch.no_grad():
                tokens, frozen = self._blocks(self.model.pretrained.prepare_tokens(x), 0, self.first, x)
                last = len(self.model.config.tapped_blocks) - 1
                refined = {position: self.model.depth_head.refine_skip(position, level)
                           for position, level in frozen.items() if position < last}
            self.cached = {key: (tokens, frozen, refined)}
        return self.cached[key]

    def refined(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The refined skips of the frozen levels, for `DPTHead.fuse`."""
        return self.prefix(x)[2]

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four DPT levels (`DPTHead.reassemble`) of x, differentiable where trainable."""
        tokens, frozen, _ = self.prefix(x)
        _, trained = self._blocks(tokens, self.first, len(self.model.pretrained.blocks), x)
        levels = frozen | trained
        return [levels[position] for position in range(len(levels))]

    def _blocks(self, tokens: torch.Tensor, start: int, stop: int,
                x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Encoder blocks [start, stop) on `tokens`: (their output, {tap position: its DPT level}
        for the tapped blocks among them)."""
        encoder, blocks = self.model.pretrained, self.model.config.tapped_blocks
        patch_h, patch_w = self.model.patch_grid(x)
        levels = {}
        for index in range(start, stop):
            tokens = encoder.blocks[index](tokens)
            if index in blocks:
                position = blocks.index(index)
                patches = encoder.norm(tokens)[:, 1:]
                levels[position] = self.model.depth_head.reassemble_level(position, patches, patch_h, patch_w)
        return tokens, levels


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
    elif config.parameters == "none":
        chosen = []
    elif config.parameters == "head":
        chosen = _output_convolutions(model)
    elif config.parameters == "lora":
        chosen = []
        for block in encoder.blocks:
            block.attn.qkv = LoRALinear(block.attn.qkv, config.lora_rank)
            chosen += [block.attn.qkv.down, block.attn.qkv.up]
    elif config.parameters == "norm-bias":
        chosen = [p for name, p in encoder.named_parameters() if "norm" in name or name.endswith(".bias")]
    else:  # "last-k", "last-k-head"
        # the final LayerNorm stays frozen: it also normalises the frozen blocks' taps, which
        # _PrefixCache computes once (trained, the steps saw those taps with its initial weights
        # and the final pass with the trained ones; on the rendered tuning seeds 2000-2005 FAST's
        # mean AbsRel against paper's was +0.002 with it trained, -0.0003 frozen: within noise)
        chosen = [p for block in encoder.blocks[len(encoder.blocks) - config.last_k:] for p in block.parameters()]
        if config.parameters == "last-k-head":
            chosen += _output_convolutions(model)
    for parameter in chosen:
        parameter.requires_grad_(True)
    return chosen


def _output_convolutions(model: DepthAnythingV2) -> list[torch.nn.Parameter]:
    """The parameters of the DPT head's two output convolutions before its last (1x1) one."""
    scratch = model.depth_head.scratch
    return [*scratch.output_conv1.parameters(), *scratch.output_conv2[0].parameters()]


def _head_output(model: DepthAnythingV2, x: torch.Tensor, cache) -> torch.Tensor:
    """`DPTHead.predict` of the input (1, C, 14 patch_h, 14 patch_w), differentiable where trainable;
    C = 1 (before the final activation) or, with the last convolution taken out, its 32 features."""
    patch_h, patch_w = model.patch_grid(x)
    head = model.depth_head
    if isinstance(cache, _FusedCache):
        fused = cache.fused(x)
    elif cache is not None:
        fused = head.fuse(cache.levels(x), cache.refined(x))
    else:
        fused = head.fuse(head.reassemble(model.tapped_features(x), patch_h, patch_w))
    return head.predict(fused, patch_h, patch_w)


def _relative(model: DepthAnythingV2, x: torch.Tensor, size: tuple[int, int], cache) -> torch.Tensor:
    """DAv2 relative disparity at the stack's (H, W), differentiable."""
    if isinstance(cache, _FusedCache):  # "head": the relative head's decode from the cached fusion
        relative = torch.relu(_head_output(model, x, cache).squeeze(1))
    else:
        patch_h, patch_w = model.patch_grid(x)
        if cache is not None:
            relative = model.decode(cache.levels(x), patch_h, patch_w, cache.refined(x))
        else:
            relative = model.decode(model.feature_maps(x), patch_h, patch_w)
    # squeeze: a view (see _last_features)
    return F.interpolate(relative[:, None], size, mode="bilinear", align_corners=True).squeeze((0, 1))


def _last_features(model: DepthAnythingV2, x: torch.Tensor, size: tuple[int, int], cache) -> torch.Tensor:
    """The 32 features entering the head's (taken out) last 1x1 convolution, resized to the stack's
    (H, W): (32, H, W) float32, differentiable."""
    features = _head_output(model, x, cache).float()
    if tuple(features.shape[-2:]) != tuple(size):
        features = F.interpolate(features, size, mode="bilinear", align_corners=True)
    # squeeze, a view, rather than [0]: the backward of an index fills a zero map of the input's
    # size and copies the gradient into it (about 2 ms of a 37 ms FAST step on the CPU)
    return features.squeeze(0)


def _statistics_on_grid(mu: torch.Tensor, variance: torch.Tensor, weights: torch.Tensor, grid: tuple[int, int]):
    """(mu, variance, weights) (H, W) averaged onto a coarser grid (h, w): m is averaged, mu and the
    second moment s + mu^2 are m-weighted averages, so sum m [(mu - d)^2 + s] is kept for any d
    constant per cell (up to the cells' overlap in adaptive pooling)."""
    pool = lambda a: F.adaptive_avg_pool2d(a[None, None], grid)[0, 0]  # noqa: E731
    mass = pool(weights)
    safe = mass.clamp_min(1e-12)
    mu_grid = pool(weights * mu) / safe
    moment = pool(weights * (variance + mu * mu)) / safe
    return mu_grid, (moment - mu_grid * mu_grid).clamp_min(0), mass


def _autocast(config: TTOConfig, device: torch.device):
    if config.amp == "on" or (config.amp == "cuda" and device.type == "cuda"):
        return precision_autocast(device, config.amp_dtype)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _frozen_weights_in(model: torch.nn.Module, dtype: torch.dtype | None):
    """While the steps run under autocast to `dtype`: the frozen (requires_grad False) float32
    weights and biases of the convolutions and linear layers held in `dtype`, the float32 tensors
    put back on exit. Autocast casts those at every use (it caches only trainable leaves, and only
    within one `with`): about 50 casts per FAST step of the benchmark's `vitt` model. The values are
    the ones autocast would produce (the same rounding), so the steps are unchanged bit for bit.
    dtype None: no change."""
    kept = []
    if dtype is not None:
        layers = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)
        for module in model.modules():
            if isinstance(module, layers):
                for parameter in module.parameters(recurse=False):
                    if not parameter.requires_grad and parameter.dtype == torch.float32:
                        kept.append((parameter, parameter.data))
                        parameter.data = parameter.data.to(dtype)
    try:
        yield
    finally:
        for parameter, data in kept:
            parameter.data = data


def with_precision(config: TTOConfig, precision: str | None) -> TTOConfig:
    """`config` running at `precision` ("fp32", "bf16", "fp16"; `anydepth.precision`); None keeps
    the recipe's own choice."""
    if precision is None:
        return config
    if precision == "fp32":
        return dataclasses.replace(config, amp="off")
    return dataclasses.replace(config, amp="on", amp_dtype=precision)


def run_tto(model: DepthAnythingV2, aif_bgr: np.ndarray, volume: np.ndarray, positions: np.ndarray, unit: str,
            slices: np.ndarray | None = None, config: TTOConfig = PAPER, progress=None, *,
            statistics: tuple[np.ndarray, np.ndarray] | None = None, weights: np.ndarray | None = None) -> TTOResult:
    """Optimise a copy of `model` (the caller's model is left untouched) on one focal stack.

    aif_bgr: (H, W, 3) uint8 all-in-focus image (BGR, as `infer_image` takes it); volume (N, H, W)
    focus probabilities; positions (N,) in `unit` ("metres" or "disparity"); slices (N, H, W, 3) for
    the stack confidence. progress(step) is called after every iteration. statistics: (mu,
    variance) of the volume (`dff_statistics`) and weights: its confidence map (H, W)
    (`confidence_map` of config.confidence and config.tau), when the caller has them already."""
    started = time.perf_counter()
    height, width = aif_bgr.shape[:2]
    mu_np, variance_np = dff_statistics(volume, positions) if statistics is None else statistics
    if mu_np.shape != (height, width):
        raise InputError(f"volume is {mu_np.shape}, the all-in-focus image {height}x{width}")
    solve = config.head_solve
    if (solve or config.parameters == "head") and model.config.head != "relative":
        raise InputError("head_solve and the 'head' parameters need a relative (relu) head")
    confidence = confidence_map(config.confidence, variance_np, slices, config.tau) if weights is None else weights
    model = copy.deepcopy(model).float().train(False)
    device = next(model.parameters()).device
    mu, variance, weights = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (mu_np, variance_np, confidence))
    target = mu if unit == "disparity" else 1.0 / mu.clamp_min(1e-6)  # what the (a, b) refit fits
    parameters = _trainable(model, config)
    if config.parameters in ("last-k", "last-k-head"):
        cache = _PrefixCache(model, len(model.pretrained.blocks) - config.last_k)
    elif config.parameters in ("head", "none"):
        cache = _FusedCache(model)
    else:
        cache = None
    output_conv = model.depth_head.scratch.output_conv2
    last_conv = output_conv[2]
    anchor = last_conv.weight.detach().flatten().clone() if config.anchored else None
    if solve:  # take the last 1x1 convolution and the final ReLU out: the head then ends in its 32 features
        output_conv[2], output_conv[3] = torch.nn.Identity(), torch.nn.Identity()
    # one fused kernel per parameter instead of ~8 ops (FAST 6 % faster on a rendered stack on the
    # CPU, interleaved; Adam's update in another summation order, the same method)
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.Adam(parameters, lr=config.lr, fused=fused) if parameters else None
    floor = float((weights * variance).sum() / weights.sum().clamp_min(1e-12))
    x = image_to_tensor(aif_bgr, config.input_size).to(device)
    losses, elapsed, best, stale, iterations = [], [], float("inf"), 0, 0
    autocast = _autocast(config, device)
    fp16 = config.amp_dtype == "fp16" and not isinstance(autocast, contextlib.nullcontext)
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)  # fp16 gradients underflow unscaled
    size, step_mu, step_variance, step_weights, step_target = (height, width), mu, variance, weights, target
    if config.loss_grid:
        patch_h, patch_w = model.patch_grid(x)
        size = (patch_h * 14, patch_w * 14)
        step_mu, step_variance, step_weights = _statistics_on_grid(mu, variance, weights, size)
        step_target = step_mu if unit == "disparity" else 1.0 / step_mu.clamp_min(1e-6)
    step_floor = float((step_weights * step_variance).sum() / step_weights.sum().clamp_min(1e-12))
    low_precision = None if isinstance(autocast, contextlib.nullcontext) or optimizer is None else autocast.fast_dtype
    with _frozen_weights_in(model, low_precision):
        for iteration in range(config.iterations if optimizer is not None else 0):
            with autocast:
                if solve:
                    features = _last_features(model, x, size, cache)
                else:
                    relative = _relative(model, x, size, cache).float()
            if solve:
                w, c = solve_last_layer(features, step_target, step_weights, config.ridge, anchor)
                relative, scale, shift = torch.einsum("c,chw->hw", w, features) + c, 1.0, 0.0
            else:
                with torch.no_grad():
                    scale, shift = fit_to_dff(relative, step_mu, step_weights, unit)
            loss = focus_loss(metric_from_relative(relative, scale, shift, unit), step_mu, step_variance, step_weights)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
            elapsed.append(time.perf_counter() - started)
            iterations = iteration + 1
            if progress is not None:
                progress(1)
            if config.patience:  # on the reducible part of the loss
                if losses[-1] - step_floor < best * (1 - config.tolerance):
                    best, stale = losses[-1] - step_floor, 0
                else:
                    stale += 1
                    if stale >= config.patience:
                        break
    final_size = config.final_input_size or config.input_size
    final_ridge = config.ridge if config.final_ridge is None else config.final_ridge
    with torch.no_grad():  # in float32
        x_final = x if final_size == config.input_size else image_to_tensor(aif_bgr, final_size).to(device)
        # the caches are keyed by the input's shape; a prefix computed under autocast is not reused
        reuse = isinstance(cache, _FusedCache) or isinstance(autocast, contextlib.nullcontext)
        final_cache = cache if reuse else None
        if solve:  # solve once more on the final features and put the layer back with the ReLU
            if config.final_on_grid:  # on the network's grid; the solved layer's output is then resized
                features = _head_output(model, x_final, final_cache).float()[0]
                grid = tuple(features.shape[-2:])
                grid_mu, _, grid_weights = ((step_mu, step_variance, step_weights) if grid == size
                                            else _statistics_on_grid(mu, variance, weights, grid))
                grid_target = grid_mu if unit == "disparity" else 1.0 / grid_mu.clamp_min(1e-6)
                w, c = solve_last_layer(features, grid_target, grid_weights, final_ridge, anchor)
                output = torch.einsum("c,chw->hw", w, features) + c
                output = F.interpolate(output[None, None], (height, width), mode="bilinear", align_corners=True)[0, 0]
            else:
                features = _last_features(model, x_final, (height, width), final_cache)
                w, c = solve_last_layer(features, target, weights, final_ridge, anchor)
                output = torch.einsum("c,chw->hw", w, features) + c
            last_conv.weight.copy_(w.view_as(last_conv.weight))
            last_conv.bias.copy_(c.view_as(last_conv.bias))
            output_conv[2], output_conv[3] = last_conv, torch.nn.ReLU()
            relative = torch.relu(output)
        else:
            relative = _relative(model, x_final, (height, width), final_cache).float()
    scale, shift = fit_to_dff(relative, mu, weights, unit)
    depth = metric_from_relative(relative, scale, shift, unit)
    losses.append(float(focus_loss(depth, mu, variance, weights)))
    elapsed.append(time.perf_counter() - started)
    return TTOResult(depth.cpu().numpy(), relative.cpu().numpy(), float(scale), float(shift), confidence, losses,
                     elapsed, floor, elapsed[-1], iterations)


def linear_baseline(model: DepthAnythingV2, aif_bgr: np.ndarray, volume: np.ndarray, positions: np.ndarray,
                    unit: str, slices: np.ndarray | None = None, confidence: str = "none", input_size: int = 518, *,
                    statistics: tuple[np.ndarray, np.ndarray] | None = None, weights: np.ndarray | None = None,
                    precision: str = "fp32"):
    """The "linear" baseline: DAv2 on the AiF, mapped by the (confidence-weighted) least-squares fit
    to the DFF depth. Returns (depth (H, W) in `unit`, relative (H, W), scale, shift). statistics
    and weights: as in `run_tto` (weights then replace the `confidence` map); precision: DAv2's
    arithmetic (`anydepth.precision`)."""
    mu, variance = dff_statistics(volume, positions) if statistics is None else statistics
    weights = confidence_map(confidence, variance, slices) if weights is None else weights
    relative = model.infer_image(aif_bgr, input_size, precision).astype(np.float64)
    scale, shift = fit_to_dff(relative, mu, weights, unit)
    return metric_from_relative(relative, scale, shift, unit), relative, scale, shift
