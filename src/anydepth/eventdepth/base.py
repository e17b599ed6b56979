"""The one interface every event depth student follows, so that streaming, training and
evaluation code never special-cases a model.

A model is a plain `nn.Module` with:
- `prepare(window) -> x`: an event window (`EventArray`) or a precomputed voxel grid (B, H, W) ->
  the network input (1, C, h, w) float32 on the model's device: representation, normalisation,
  resizing or padding, all from the model's config;
- `forward(x, state) -> (raw, new_state)`: x (N, C, h, w) and the recurrent state (None = zero
  state; stateless models take and return None) -> raw network output (N, 1, h, w);
- `to_depth(raw, size) -> (N, H, W)`: raw output -> the model's output quantity at `size`
  (H, W): metres for `output_kind == "metric"`, an affine-invariant depth-like map for
  "relative" (to be aligned by the evaluation protocol);
- attributes `config` (a dataclass that `load_model` can rebuild it from), `recurrent` (bool),
  `output_kind` ("metric" or "relative").

`DepthStream` carries the state from window to window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from anydepth.events.container import EventArray


class EventDepthModel(nn.Module):
    """Base class: subclasses implement `prepare`, `forward` and `to_depth`."""

    config = None
    recurrent: bool = False
    output_kind: str = "relative"

    def prepare(self, window: EventArray | np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def to_depth(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict(self, window: EventArray | np.ndarray, state=None) -> tuple[np.ndarray, object]:
        """One window -> (depth (H, W) float32 at the sensor resolution, new state)."""
        size = window.sensor_size if isinstance(window, EventArray) else tuple(np.asarray(window).shape[-2:])
        raw, state = self(self.prepare(window), state)
        return self.to_depth(raw, size)[0].float().cpu().numpy(), state


@dataclass
class DepthStream:
    """Streams windows through a model, carrying its recurrent state; `reset()` starts a new
    sequence. Records the wall time of each step (model and pre/post-processing)."""

    model: EventDepthModel
    state: object = None
    step_seconds: list[float] = field(default_factory=list)

    def reset(self) -> None:
        self.state = None

    def step(self, window: EventArray | np.ndarray) -> np.ndarray:
        """The depth (H, W) of this window; the state moves on."""
        started = time.perf_counter()
        depth, self.state = self.model.predict(window, self.state)
        self.step_seconds.append(time.perf_counter() - started)
        return depth

    @property
    def mean_latency_ms(self) -> float:
        """Mean wall time per window after the first (which pays one-off costs such as kernel
        compilation); the single time when only one window ran."""
        steps = self.step_seconds[1:] or self.step_seconds
        return 1000.0 * float(np.mean(steps)) if steps else float("nan")

    @property
    def first_latency_ms(self) -> float:
        return 1000.0 * self.step_seconds[0] if self.step_seconds else float("nan")
