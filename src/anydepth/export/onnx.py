"""ONNX export of the networks, and an onnxruntime runner with the PyTorch model's pre/post-processing.

What is exported is the network only, the `forward` of each model; pre- and post-processing stay in
Python (the PyTorch model's `prepare` / `to_depth` / `infer_image`, reused by `OnnxModel`):

- Depth Anything V2 (relative and metric heads): input `x` (1, 3, h, w) float32, ImageNet-normalised,
  h and w multiples of 14 -> output `depth` (1, h, w): relative disparity, or metres (metric head).
- Event students (`anydepth.eventdepth` registry): input `x` (1, C, h, w) float32 as `prepare` makes
  it, and the recurrent state as explicit tensors `state_in_0 .. state_in_{K-1}` -> outputs `raw`
  (1, 1, h, w) and `state_out_0 .. state_out_{K-1}`, the state of the next window. The state is the
  model's state structure flattened in order (`torch.utils._pytree`); zeros are a fresh sequence.
  Non-recurrent students (DepthAnyEvent) have no state tensors.

State shapes, for a network input (1, C, h, w) (h_p = h / 14, w_p = w / 14 patches):
- DepthAnyEvent-R: K = 8, (hidden, cell) of the ConvLSTMs of DPT levels 4, 3, 2, 1 in that order,
  each (1, F, H_l, W_l) with H_l = (h_p - 1) // 2 - 1, h_p - 2, 2 h_p - 2, 4 h_p - 2 (and W_l alike);
  F = the encoder's DPT features (64 vits, 128 vitb, 256 vitl).
- E2Depth: K = 2 x num_encoders, (hidden, cell) per encoder i = 0, 1, ...: (1, base * 2**(i+1),
  (h - 1) // 2**(i+1) + 1, (w - 1) // 2**(i+1) + 1); `prepare` pads h, w to multiples of 2**num_encoders.
- EReFormer: K = 4 GRViT states (1, h_i * w_i, C_i), one per Swin stage (not exported in the tests:
  the Swin-S export takes over 10 minutes on a 2-core CPU).
`export_onnx` returns the exact input and output shapes of a file (symbolic where dynamic); the CLI
prints them.

Dynamic size: the spatial sides of `x` and of the state are exported as dynamic (torch.export
`Dim.AUTO`); where a model fixes a size the file says so (`OnnxExport.dynamic` False). Depth Anything
V2's position embedding is resized with a scale factor that depends on the size ((n + 0.1) / 37,
DINOv2's rule), which a trace would freeze; for the export it is computed as two bicubic
interpolation matrices built from the input size (same values within float32 rounding, exact at
518 x 518), so every ViT-based export (DAv2, DepthAnyEvent(-R)) takes any multiple of 14. The batch
size is fixed at 1.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import json
import math
import operator
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from anydepth.atomic import atomic_write
from anydepth.errors import CheckpointError, InputError
from anydepth.fileio import first_line
from anydepth.eventdepth.base import EventDepthModel
from anydepth.events.container import EventArray
from anydepth.foundation.config import PATCH_SIZE
from anydepth.foundation.dinov2 import DinoVisionTransformer

INSTALL = "install anydepth[onnx] (pip install 'anydepth[onnx]')"
MIN_OPSET = 18  # the torch.export-based exporter writes opset 18 and newer
DEFAULT_OPSET = 18
DEFAULT_DAV2_SIZE = (518, 518)  # network input (h, w), multiples of 14
DEFAULT_SENSOR_SIZE = (260, 346)  # DAVIS346 (MVSEC): the event window the students are traced on
METADATA_PREFIX = "anydepth."


def _require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f"{' and '.join(missing)} not installed: {INSTALL}")


# ---- the position embedding, resized from tensors (traceable with a dynamic size) ---------------
def _cubic_weight(distance: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """Keys' cubic convolution kernel (PyTorch's and ONNX Resize's bicubic, a = -0.75)."""
    distance = distance.abs()
    near = ((a + 2) * distance - (a + 3)) * distance * distance + 1
    far = ((a * distance - 5 * a) * distance + 8 * a) * distance - 4 * a
    return torch.where(distance <= 1, near, torch.where(distance < 2, far, torch.zeros_like(distance)))


def bicubic_matrix(positions: torch.Tensor, side: int, scale: torch.Tensor) -> torch.Tensor:
    """(n, side) matrix of `F.interpolate(..., mode="bicubic", align_corners=False, scale_factor=scale)`
    along one axis: output positions (n,) float (0 .. n-1), input length `side`, scale (1,) =
    output / input length. Borders are clamped as PyTorch does."""
    source = (positions + 0.5) / scale - 0.5
    base = torch.floor(source)
    fraction = source - base
    columns = torch.arange(side, dtype=source.dtype, device=source.device)
    matrix = torch.zeros((), dtype=source.dtype, device=source.device)
    for offset in (-1, 0, 1, 2):
        index = (base + offset).clamp(0, side - 1)
        matrix = matrix + (index[:, None] == columns[None, :]).to(source.dtype) * _cubic_weight(fraction - offset)[:, None]
    return matrix


def _traceable_pos_embed(self: DinoVisionTransformer, patch_h: int, patch_w: int) -> torch.Tensor:
    """`DinoVisionTransformer.interpolate_pos_embed` with the scale factors computed from tensors, so
    that an export keeps them as functions of the input size: (1, 1 + patch_h * patch_w, D)."""
    num_patches = self.pos_embed.shape[1] - 1
    side, dim = math.isqrt(num_patches), self.pos_embed.shape[-1]
    rows = torch.arange(patch_h, dtype=torch.float32, device=self.pos_embed.device)
    columns = torch.arange(patch_w, dtype=torch.float32, device=self.pos_embed.device)
    count_h, count_w = rows[-1:] + 1, columns[-1:] + 1  # the patch grid as tensors
    if self.pos_embed_interpolation == "official":
        native = (count_h == side) & (count_w == side)  # 518 x 518: the embedding as it is
        scale_h = torch.where(native, torch.ones_like(count_h), (count_h + 0.1) / side)
        scale_w = torch.where(native, torch.ones_like(count_w), (count_w + 0.1) / side)
    else:
        scale_h, scale_w = count_h / side, count_w / side
    grid = self.pos_embed[:, 1:].float().reshape(side, side, dim)
    grid = torch.einsum("hi,ijd,wj->hwd", bicubic_matrix(rows, side, scale_h), grid, bicubic_matrix(columns, side, scale_w))
    grid = grid.reshape(1, -1, dim).to(self.pos_embed.dtype)
    return torch.cat((self.pos_embed[:, :1], grid), dim=1)


@contextlib.contextmanager
def _traceable(model: nn.Module):
    """Within the block, every DINOv2 encoder of `model` resizes its position embedding with
    `_traceable_pos_embed` (an instance attribute, removed afterwards)."""
    encoders = [module for module in model.modules() if isinstance(module, DinoVisionTransformer)]
    try:
        for encoder in encoders:
            encoder.interpolate_pos_embed = types.MethodType(_traceable_pos_embed, encoder)
        yield
    finally:
        for encoder in encoders:
            encoder.__dict__.pop("interpolate_pos_embed", None)


# ---- export ---------------------------------------------------------------------------------------
class _StatefulNetwork(nn.Module):
    """forward(x, *state_in) -> (raw, *state_out): a student's forward with its state flattened."""

    def __init__(self, model: EventDepthModel, state_spec):
        super().__init__()
        self.model, self.state_spec = model, state_spec

    def forward(self, x, *state_in):
        state = None if self.state_spec is None else pytree.tree_unflatten(list(state_in), self.state_spec)
        raw, new_state = self.model(x, state)
        return (raw, *([] if self.state_spec is None else pytree.tree_leaves(new_state)))


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote: the file, its inputs and outputs {name: shape} (ints, or the
    exporter's symbols where dynamic), and whether the image size is dynamic."""

    path: Path
    inputs: dict[str, list]
    outputs: dict[str, list]
    dynamic: bool

    def lines(self) -> list[str]:
        describe = lambda shapes: ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())  # noqa: E731
        return [f"inputs: {describe(self.inputs)}", f"outputs: {describe(self.outputs)}",
                "image size: " + ("dynamic" if self.dynamic else "fixed (export once per size)")]


def fingerprint(model: nn.Module) -> str:
    """sha256 of a model's class, config and weights: ties an exported file to the model it came from."""
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    digest.update(repr(dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def example_input(model: nn.Module, input_size: tuple[int, int] | None = None) -> torch.Tensor:
    """The network input an export is traced with. Depth Anything V2: (1, 3, h, w) normal noise,
    input_size = (h, w) multiples of 14 (default 518 x 518). A student: what its `prepare` makes of
    an empty window of a sensor input_size = (H, W) (default 260 x 346)."""
    if isinstance(model, EventDepthModel):
        height, width = input_size or DEFAULT_SENSOR_SIZE
        if height < 1 or width < 1:
            raise InputError(f"input size must be positive, got {height}x{width}")
        return model.prepare(EventArray.empty((height, width)))
    height, width = input_size or DEFAULT_DAV2_SIZE
    if height < PATCH_SIZE or width < PATCH_SIZE or height % PATCH_SIZE or width % PATCH_SIZE:
        raise InputError(f"Depth Anything V2 input size must be multiples of {PATCH_SIZE} (at least 14), got {height}x{width}")
    parameter = next(model.parameters())
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(parameter.device)


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int] | None = None,
                opset: int = DEFAULT_OPSET, dynamic: bool = True) -> OnnxExport:
    """Write `model`'s network (its `forward`) as an ONNX file, atomically.

    model: a `DepthAnythingV2` or an event student (`EventDepthModel`), in eval mode on any device;
    input_size: the size traced (see `example_input`); opset: ONNX opset (18 or newer);
    dynamic: export the image size (and the state's) as dynamic where the model allows it. The file
    records the model's class, config and weight fingerprint in its metadata (`anydepth.*`)."""
    _require("onnx", "onnxscript")
    import onnx

    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise InputError(f"opset must be between {MIN_OPSET} and {onnx.defs.onnx_opset_version()}, got {opset}")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise InputError("the output must be an .onnx file", path)
    model = model.eval()
    x = example_input(model, input_size)
    stateful = isinstance(model, EventDepthModel)
    state_leaves, state_spec = [], None
    if stateful:
        with torch.no_grad():
            _, state = model(x, None)
        if state is not None:
            leaves, state_spec = pytree.tree_flatten(state)
            state_leaves = [torch.zeros_like(leaf) for leaf in leaves]  # zeros = a fresh sequence
            if dynamic and any(side < 2 for leaf in leaves for side in leaf.shape[2:]):
                raise InputError(f"at this input size ({tuple(x.shape[-2:])} network input) a state tensor has a side "
                                 f"of 1 ({[tuple(leaf.shape) for leaf in leaves]}), which cannot be exported as dynamic; "
                                 "trace at a larger input size")
    network = _StatefulNetwork(model, state_spec) if stateful else model
    input_names = ["x", *(f"state_in_{i}" for i in range(len(state_leaves)))]
    output_names = ["raw" if stateful else "depth", *(f"state_out_{i}" for i in range(len(state_leaves)))]
    auto = torch.export.Dim.AUTO
    image_dims = {2: auto, 3: auto} if dynamic else None
    dynamic_shapes = (image_dims, tuple({d: auto for d in range(2, leaf.ndim)} if dynamic else None
                                        for leaf in state_leaves)) if stateful else (image_dims,)
    metadata = {"model": type(model).__name__, "fingerprint": fingerprint(model), "returns_state": str(int(stateful)),
                "config": json.dumps(dataclasses.asdict(model.config) if dataclasses.is_dataclass(model.config) else None),
                "traced_input": json.dumps(list(x.shape))}

    def write(temporary: str) -> None:
        with _traceable(model), torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(network, (x, *state_leaves), temporary, input_names=input_names,
                              output_names=output_names, opset_version=opset, dynamo=True,
                              dynamic_shapes=dynamic_shapes, external_data=False, verbose=False)
        exported = onnx.load(temporary)
        for key, value in metadata.items():
            exported.metadata_props.add(key=METADATA_PREFIX + key, value=value)
        onnx.save(exported, temporary)

    atomic_write(path, write)
    graph = onnx.load(str(path), load_external_data=False).graph
    shape = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    inputs = {value.name: shape(value) for value in graph.input}
    outputs = {value.name: shape(value) for value in graph.output}
    return OnnxExport(path, inputs, outputs, dynamic=all(isinstance(d, str) for d in inputs["x"][2:]))


# ---- onnxruntime ---------------------------------------------------------------------------------
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
              ast.Mod: operator.mod}
_FUNCTIONS = {"Max": max, "Min": min, "max": max, "min": min}


def evaluate_dim(expression, symbols: dict[str, int]) -> int:
    """A dimension of an exported file (an int, or the exporter's integer expression of the input
    symbols such as '(((s0 - 1)//2)) + 1') for the given symbol values."""
    if isinstance(expression, int):
        return expression

    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in symbols:
            return symbols[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
            return _FUNCTIONS[node.func.id](*(value(arg) for arg in node.args))
        raise InputError(f"cannot evaluate the exported dimension {expression!r}")

    return int(value(ast.parse(str(expression), mode="eval")))


class OnnxModel:
    """A network exported by `export_onnx`, run by onnxruntime, behind the interface of the PyTorch
    model it came from: `config`, `prepare`, `to_depth`, `event_image`, `predict`, `recurrent`,
    `output_kind` (students) or `infer_image` (Depth Anything V2) are the PyTorch model's
    pre/post-processing; only `forward` runs the ONNX file. It plugs into `DepthStream`,
    `predict_recording` and `predict_images` unchanged.

    forward(x, state=None): Depth Anything V2: x (1, 3, h, w) -> depth (1, h, w); a student: x
    (1, C, h, w) -> (raw (1, 1, h, w), state), the state a tuple of numpy arrays in the order of
    `state_in_*` (None = zeros, a fresh sequence; None again for stateless students).
    model: the PyTorch model (same weights: checked against the file's fingerprint unless
    check=False); threads: onnxruntime intra-op threads (default torch.get_num_threads());
    providers: onnxruntime execution providers (default CPU)."""

    def __init__(self, path: str | Path, model: nn.Module, threads: int | None = None,
                 providers: list[str] | None = None, check: bool = True):
        _require("onnxruntime")
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise InputError("ONNX file not found", path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception classes for bad files
            raise CheckpointError(f"onnxruntime cannot load this file: {first_line(error)[:200]}", path) from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.model, self.path = model.eval(), path
        if check and metadata.get(METADATA_PREFIX + "fingerprint") != fingerprint(model):
            raise CheckpointError("this ONNX file was not exported from these weights (or this model); "
                                  "export it again with `anydepth export onnx`", path)
        self.returns_state = metadata.get(METADATA_PREFIX + "returns_state", "0") == "1"
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.state_names = [value.name for value in inputs[1:]]
        self._image_dims = inputs[0].shape[2:]
        self._state_shapes = [value.shape for value in self.session.get_outputs()[1:]]
        self._state_in_shapes = [value.shape for value in inputs[1:]]

    def __getattr__(self, name):  # the PyTorch model's attributes and pre/post-processing
        model = self.__dict__.get("model")
        if model is None:
            raise AttributeError(name)
        return getattr(model, name)

    def zero_state(self, height: int, width: int) -> tuple[np.ndarray, ...]:
        """The zero state (a fresh sequence) for a network input (1, C, height, width): the
        `state_out_*` shapes of the file for that input (a state dimension the exporter names by an
        input state symbol is resolved through `state_in_*` = `state_out_*`)."""
        symbols = {}
        for dim, side in zip(self._image_dims, (height, width)):
            if isinstance(dim, str):
                symbols[dim] = side
            elif dim != side:
                raise InputError(f"{self.path}: exported for a fixed input of {self._image_dims}, got {height}x{width}")

        def known(dim):
            try:
                return evaluate_dim(dim, symbols)
            except InputError:
                return None

        pairs = [pair for shapes in zip(self._state_in_shapes, self._state_shapes) for pair in zip(*shapes)]
        changed = True
        while changed:  # the state goes round: state_in_k and state_out_k have one shape
            changed = False
            for dim_in, dim_out in pairs:
                for name, other in ((dim_in, dim_out), (dim_out, dim_in)):
                    value = known(other)
                    if isinstance(name, str) and name.isidentifier() and name not in symbols and value is not None:
                        symbols[name], changed = value, True
        return tuple(np.zeros([evaluate_dim(d, symbols) for d in shape], np.float32) for shape in self._state_shapes)

    def forward(self, x: torch.Tensor, state=None):
        feeds = {self.input_name: np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())}
        if self.state_names:
            state = self.zero_state(*x.shape[-2:]) if state is None else tuple(state)
            if len(state) != len(self.state_names):
                raise InputError(f"{self.path}: the state has {len(state)} tensors, the file takes {len(self.state_names)}")
            feeds.update((name, np.ascontiguousarray(np.asarray(tensor, np.float32))) for name, tensor in zip(self.state_names, state))
        outputs = self.session.run(None, feeds)
        prediction = torch.from_numpy(outputs[0]).to(x.device)
        if not self.returns_state:
            return prediction
        return prediction, (tuple(outputs[1:]) if self.state_names else None)

    __call__ = forward

    def predict(self, *args, **kwargs):
        """The PyTorch model's `predict` (a student's), with this runner's forward."""
        return type(self.model).predict(self, *args, **kwargs)

    def infer_image(self, *args, **kwargs):
        """The PyTorch model's `infer_image` (Depth Anything V2's), with this runner's forward."""
        return type(self.model).infer_image(self, *args, **kwargs)


def providers_for(device: str | torch.device) -> list[str]:
    """onnxruntime execution providers for a torch device: CUDA (then CPU) on a CUDA device when
    this onnxruntime has it (onnxruntime-gpu), else the CPU; an `InputError` for CUDA without it."""
    _require("onnxruntime")
    import onnxruntime

    if torch.device(device).type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise InputError("this onnxruntime has no CUDA execution provider; install onnxruntime-gpu, or run "
                         "--backend onnxruntime with --device cpu")
    return [("CUDAExecutionProvider", {"device_id": torch.device(device).index or 0}), "CPUExecutionProvider"]


def onnx_backend(model: nn.Module, onnx_path: str | Path | None = None, cache: str | Path | None = None,
                 providers: list | None = None) -> OnnxModel:
    """`model` run by onnxruntime: from `onnx_path` (exported from the same weights), else from an
    export cached under `cache` (default <anydepth cache>/onnx) by the model's fingerprint, written
    on first use. providers: onnxruntime execution providers (default the CPU; `providers_for`)."""
    _require("onnxruntime")
    if onnx_path is None:
        from anydepth.foundation.weights import cache_dir

        onnx_path = Path(cache or Path(cache_dir()) / "onnx") / f"{type(model).__name__.lower()}-{fingerprint(model)[:16]}.onnx"
        if not onnx_path.is_file():
            export_onnx(model, onnx_path)
    return OnnxModel(onnx_path, model, providers=providers)
