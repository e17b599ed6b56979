"""The one interface every event depth student follows, so that streaming, training and
evaluation code never special-cases a model.

A model is a plain `nn.Module` with:
- `event_image(window, representation=None) -> (C, H, W)`: the representation the network takes,
  at the sensor resolution, float32 numpy. `window` is raw events (an `EventArray`) or a
  precomputed array, and then the caller says what the array is: `representation="tencode"` (a
  (3, H, W) Tencode image in [0, 1]) or `"voxel"` (a (B, H, W) voxel grid). An array is never
  guessed from its shape;
- `prepare_images(images, input_size=None) -> x`: a batch of such images (N, C, H, W) float32 on
  the model's device -> the network input (N, C, h, w) (normalisation, resizing or padding).
  `input_size` (h, w) replaces the configured resize target for this call where the model resizes
  (DepthAnyEvent, as the authors' `infer_image(input_size_width, input_size_height)`);
  `prepare(window, representation=None, input_size=None)` is the same for one window;
- `forward(x, state) -> (raw, new_state)`: x (N, C, h, w) and the recurrent state (None = zero
  state; stateless models take and return None) -> raw network output (N, 1, h, w);
- `raw_at_size(raw, size) -> (N, H, W)`: the raw output back at the event image size (H, W)
  (padding cropped away, or resized back), still in the raw output's own space;
- `to_depth(raw, size) -> (N, H, W)`: raw output -> the model's output quantity at `size`
  (H, W): metres for `output_kind == "metric"`, an affine-invariant depth-like map for
  "relative" (to be aligned by the evaluation protocol); metric students also have
  `to_log_depth(raw, size)`, their normalised log depth in [0, 1] before the conversion to metres;
- for training: `native_space` (the space of `SPACES` the raw output lives in), `to_space(raw_map,
  space)` (a map of `raw_at_size` -> the same map in a loss's space, differentiable),
  `depth_to_space(depth_m, space)` (labels in metres -> that space) and `init_for_training()`
  (what a freshly built student needs before training from scratch);
- attributes `config` (a dataclass that `load_model` can rebuild it from), `recurrent` (bool),
  `output_kind` ("metric" or "relative"), `run_config` (the whole authors' run config of the file
  it was loaded from, e.g. its `trainer` section, or None), `takes_dav2_weights` (whether
  `init_from_dav2` can copy Depth Anything V2 weights into it).

Spaces of a training loss (`SPACES`):
- "disparity": relative inverse depth, the space of DAv2 pseudo-labels (affine-invariant losses);
- "log_depth": the normalised log depth in [0, 1] of the metric students, for metric ground truth;
- "depth": metres (metric students only).

`DepthStream` carries the state from window to window.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from anydepth.errors import InputError
from anydepth.events.container import EventArray
from anydepth.precision import autocast

REPRESENTATIONS = ("tencode", "voxel")  # what a precomputed array can be
OUTPUTS = ("depth", "log_depth")  # what `predict` can return
SPACES = ("disparity", "log_depth", "depth")  # what a training loss can compare in


def event_input(window, representation: str | None) -> EventArray | np.ndarray:
    """Check what the caller passes: raw events (representation None) or a precomputed (C, H, W)
    array with its representation named. Returns the events, or the array as finite float32."""
    if isinstance(window, EventArray):
        if representation is not None:
            raise InputError(f"representation={representation!r} describes a precomputed array; raw events need none")
        return window
    if representation is None:
        raise InputError("a precomputed array needs its representation: pass representation='tencode' "
                         "(a (3, H, W) Tencode image in [0, 1]) or 'voxel' (a (B, H, W) voxel grid)")
    if representation not in REPRESENTATIONS:
        raise InputError(f"unknown representation {representation!r}; choose one of {', '.join(REPRESENTATIONS)}")
    array = window.detach().cpu().numpy() if isinstance(window, torch.Tensor) else np.asarray(window)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3:
        raise InputError(f"a precomputed {representation} must be (C, H, W), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"the {representation} array contains NaN or infinity")
    if representation == "tencode":
        if array.shape[0] != 3:
            raise InputError(f"a Tencode image has 3 channels, got shape {array.shape}")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise InputError(f"a Tencode image holds values in [0, 1], got [{array.min():g}, {array.max():g}] "
                             "(divide a 0..255 image by 255)")
    return array


class ConfigDict:
    """`to_dict` / `from_dict` for a student's config dataclass (the checkpoint's `config`); an
    unknown key is an `InputError` naming it."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"unknown {cls.__name__.removesuffix('Config')} config keys: {', '.join(unknown)}")
        return cls(**values)


class EventDepthModel(nn.Module):
    """Base class: subclasses implement `event_image`, `prepare_images`, `forward`, `raw_at_size`,
    `to_depth` and `to_space` (see the module docstring)."""

    config = None
    recurrent: bool = False
    output_kind: str = "relative"
    native_space: str = "disparity"
    takes_dav2_weights: bool = False
    run_config: dict | None = None  # the whole run config of the file the model came from, if any

    # ---- inference ------------------------------------------------------------------------------
    def event_image(self, window: EventArray | np.ndarray, representation: str | None = None) -> np.ndarray:
        raise NotImplementedError

    def prepare_images(self, images: torch.Tensor, input_size: tuple[int, int] | None = None) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, window: EventArray | np.ndarray, representation: str | None = None,
                input_size: tuple[int, int] | None = None) -> torch.Tensor:
        """`event_image` -> the network input (1, C, h, w) float32 on the model's device."""
        image = torch.from_numpy(self.event_image(window, representation))[None].to(self.device)
        return self.prepare_images(image, input_size)

    def raw_at_size(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    def to_depth(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    def to_log_depth(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        raise InputError(f"{type(self).__name__} predicts {self.output_kind} depth; it has no normalised log depth output")

    # ---- training -------------------------------------------------------------------------------
    def to_space(self, raw_map: torch.Tensor, space: str) -> torch.Tensor:
        """A map of `raw_at_size` (N, H, W) -> the same map in `space` (differentiable); InputError
        for a space the model cannot be trained in."""
        raise NotImplementedError

    def depth_to_space(self, depth_m: np.ndarray, space: str) -> np.ndarray:
        """Labels in metres (any shape, float32, NaN where invalid, > 0 elsewhere) -> `space`:
        1 / depth for "disparity", the metres for "depth" (NaN stays NaN)."""
        if space == "disparity":
            return 1.0 / depth_m
        if space == "depth":
            return depth_m
        raise InputError(f"{type(self).__name__} has no {space!r} labels; choose one of disparity, depth")

    def init_for_training(self) -> None:
        """Prepare a freshly built student for training from scratch (nothing by default)."""

    def init_from_dav2(self, dav2_state_dict: dict[str, torch.Tensor]) -> None:
        """Copy Depth Anything V2 weights into the student (those with `takes_dav2_weights`)."""
        raise InputError(f"Depth Anything V2 weights apply to DepthAnyEvent students, not {type(self).__name__}")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict(self, window: EventArray | np.ndarray, state=None, *, representation: str | None = None,
                input_size: tuple[int, int] | None = None, output: str = "depth",
                precision: str = "fp32") -> tuple[np.ndarray, object]:
        """One window -> (map (H, W) float32 at the sensor resolution, new state).

        window: raw events, or a precomputed (C, H, W) array named by `representation`
        ("tencode" or "voxel"); input_size: the resize target (h, w) for this call (models that
        resize); output: "depth" (metres or relative, as `output_kind`) or "log_depth" (the
        normalised log depth in [0, 1] of E2Depth and EReFormer); precision: the network's
        arithmetic ("fp32", "bf16", "fp16" on CUDA; `anydepth.precision`), the conversion to depth
        runs in float32."""
        if output not in OUTPUTS:
            raise InputError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
        x = self.prepare(window, representation, input_size)  # checks the window (event_input) once
        size = window.sensor_size if isinstance(window, EventArray) else tuple(np.shape(window)[-2:])
        with autocast(self.device, precision):
            raw, state = self(x, state)
        convert = self.to_depth if output == "depth" else self.to_log_depth
        return convert(raw.float(), size)[0].float().cpu().numpy(), state


@dataclass
class DepthStream:
    """Streams windows through a model, carrying its recurrent state; `reset()` starts a new
    sequence. Records the wall time of each step (model and pre/post-processing)."""

    model: EventDepthModel
    state: object = None
    step_seconds: list[float] = field(default_factory=list)
    precision: str = "fp32"  # the network's arithmetic (`anydepth.precision`)

    def reset(self) -> None:
        self.state = None

    def step(self, window: EventArray | np.ndarray, *, representation: str | None = None,
             input_size: tuple[int, int] | None = None, output: str = "depth") -> np.ndarray:
        """The map (H, W) of this window (see `EventDepthModel.predict` for the options); the
        state moves on."""
        started = time.perf_counter()
        depth, self.state = self.model.predict(window, self.state, representation=representation,
                                               input_size=input_size, output=output, precision=self.precision)
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
