"""Training configuration: dataclasses filled from a YAML file (`anydepth events train CONFIG.yaml`).

    model:   {name: depthanyevent-r, config: {encoder: vits, activation: relu, inv_prediction: true},
              weights: null, init_dav2: vits}
    data:    {sources: [{path: data/target, labels: pseudo, pseudolabels: data/target/pseudolabels_vits}],
              window_ms: 50, sequence_length: 8, crop: [224, 224], flip: true, scale: [1.0, 1.25]}
    optim:   {lr: 5.0e-6, weight_decay: 0.01, schedule: onecycle, clip_grad: 1.0}
    loss:    {name: ssi, gradient_weight: 0.25, scales: 4}
    steps: 75000, batch_size: 10, regime: distilled, out: runs/dae-r-distilled

Regimes (Depth AnyEvent's training settings): synth = ground truth of synthetic (source-domain) sequences; distilled =
pseudo-labels on the target domain; supervised = ground truth on the target domain; mixed = both.
The regime names the run; the sources say what it trains on, and the two are checked against
each other.

Validation is driven by the dataclasses below: every value is checked against its field's type
(`int`, `float`, `bool`, `str`, `Literal[...]` choices, `X | None`, tuples, nested sections) and its
field's metadata (`min` / `above` bounds, `path` kinds), unknown keys and missing required keys are
refused, and each problem is one line naming the file and the dotted key, e.g.
`train.yaml: optim.lr: expected a number, got 'fast'`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from anydepth.errors import InputError
from anydepth.fileio import first_line


class YamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads `1e-4` as a float (YAML 1.1 wants `1.0e-4`; a string would
    reach the config as a bad value)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def load_yaml(text: str):
    return yaml.load(text, Loader=YamlLoader)


Regime = Literal["synth", "distilled", "supervised", "mixed"]
LabelKind = Literal["gt", "pseudo"]
Domain = Literal["source", "target"]
Schedule = Literal["onecycle", "cosine", "constant"]
LossName = Literal["ssi", "e2depth", "silog"]
LossSpace = Literal["disparity", "log_depth", "depth"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
REGIMES = typing.get_args(Regime)
LABEL_KINDS = typing.get_args(LabelKind)
SCHEDULES = typing.get_args(Schedule)


def _field(default=dataclasses.MISSING, *, factory=dataclasses.MISSING, **rules):
    """A dataclass field with validation rules in its metadata: min (>=), above (>), path ("input":
    a file or folder that must exist, "output": a folder to write, "weights": an encoder name or a
    weights file), models (True: a student registry name)."""
    return field(default=default, default_factory=factory, metadata=rules)


class ConfigValueError(InputError):
    """A bad value of one field, raised in `__post_init__` with the field's name (relative to its
    section); `_build` names it by its dotted key from the root of the config."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


@dataclass(frozen=True)
class ModelSpec:
    """The student: registry name, config overrides, weights to start from (a checkpoint of that
    student) or DAv2 weights for the encoder and head of a DepthAnyEvent student (`init_dav2`: an
    encoder name resolved like `anydepth image`, or a file)."""

    name: str = _field("depthanyevent-r", models=True)
    config: dict = _field(factory=dict)
    weights: str | None = _field(None, path="input")
    init_dav2: str | None = _field(None, path="weights")

    def __post_init__(self):
        from anydepth.eventdepth.registry import MODELS

        if self.name in MODELS:  # the keys of `config` are the fields of the student's config class
            known = [f.name for f in dataclasses.fields(MODELS[self.name].resolve("config_class"))]
            unknown = sorted(set(self.config) - set(known), key=str)
            if unknown:
                raise ConfigValueError(f"config.{unknown[0]}", f"unknown key for {self.name} (known: {', '.join(known)})")


@dataclass(frozen=True)
class DataSource:
    """One training set: a dataset folder (or one sequence), where its labels come from (`gt`:
    the dataset's ground truth; `pseudo`: the labels of `anydepth events pseudolabel` in
    `pseudolabels`), and its sampling weight among sources."""

    path: str = _field(path="input")
    labels: LabelKind = "gt"
    pseudolabels: str | None = _field(None, path="labels")
    weight: float = _field(1.0, above=0)
    domain: Domain = "target"

    def __post_init__(self):
        if self.labels == "pseudo" and self.pseudolabels is None:
            raise ConfigValueError("pseudolabels", "labels: pseudo needs pseudolabels: FOLDER (the output of "
                                   "anydepth events pseudolabel)")


@dataclass(frozen=True)
class DataConfig:
    """sequence_length: frames per training clip (recurrent students; 1 for the others);
    detach_every: truncated BPTT, the state is detached every this many frames (0 = never within a
    clip); crop (h, w) random crop at sensor resolution after scaling (None = whole frame); flip:
    random horizontal flips; scale (low, high): random zoom factor applied before the crop."""

    sources: tuple[DataSource, ...] = ()
    window_ms: float = _field(50.0, above=0)
    sequence_length: int = _field(1, min=1)
    detach_every: int = _field(0, min=0)
    crop: tuple[int, int] | None = _field(None, min=1)
    flip: bool = True
    scale: tuple[float, float] = _field((1.0, 1.0), above=0)
    num_workers: int = _field(0, min=0)

    def __post_init__(self):
        if self.scale[0] > self.scale[1]:
            raise ConfigValueError("scale", f"expected [low, high] with low <= high, got {list(self.scale)}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a learning-rate schedule (`onecycle` as EReFormer, `cosine` with linear warm-up,
    or `constant`) and gradient-norm clipping (0 = off)."""

    lr: float = _field(1e-4, above=0)
    weight_decay: float = _field(0.01, min=0)
    betas: tuple[float, float] = _field((0.9, 0.999), min=0)
    schedule: Schedule = "cosine"
    warmup_steps: int = _field(0, min=0)
    clip_grad: float = _field(1.0, min=0)


@dataclass(frozen=True)
class LossConfig:
    """name: ssi (scale-and-shift invariant + gradient matching, disparity space), e2depth (scale
    invariant on normalised log depth + gradient, ground truth only) or silog (metres, ground truth
    only); space: the space it compares in (None = the loss's own)."""

    name: LossName = "ssi"
    gradient_weight: float = _field(0.25, min=0)
    scales: int = _field(4, min=1)
    space: LossSpace | None = None

    @property
    def resolved_space(self) -> str:
        return self.space or {"ssi": "disparity", "e2depth": "log_depth", "silog": "depth"}.get(self.name, "disparity")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run. precision: the student's arithmetic (`anydepth.precision`): "auto" =
    bf16 autocast on CUDA (fp32 with `amp: false`, kept for configs written before `precision`),
    fp32 elsewhere; "fp16" (CUDA only) scales the loss against gradient underflow. Losses run in
    float32 in every case."""

    model: ModelSpec = _field(factory=ModelSpec)
    data: DataConfig = _field(factory=DataConfig)
    optim: OptimConfig = _field(factory=OptimConfig)
    loss: LossConfig = _field(factory=LossConfig)
    regime: Regime = "distilled"
    steps: int = _field(1000, min=1)
    batch_size: int = _field(4, min=1)
    checkpoint_every: int = _field(500, min=1)
    log_every: int = _field(10, min=1)
    image_every: int = _field(200, min=1)
    seed: int = 0
    precision: Precision = "auto"
    amp: bool = True
    device: str = "auto"
    out: str = _field("runs/train", path="output")

    def __post_init__(self):
        if not self.data.sources:
            raise ConfigValueError("data.sources", "is empty: give at least one dataset to train on")
        kinds = {(source.domain, source.labels) for source in self.data.sources}
        expected = {
            "synth": lambda: kinds == {("source", "gt")},
            "distilled": lambda: kinds == {("target", "pseudo")},
            "supervised": lambda: kinds == {("target", "gt")},
            "mixed": lambda: len({labels for _, labels in kinds}) == 2 or len({domain for domain, _ in kinds}) == 2,
        }[self.regime]
        if not expected():
            raise ConfigValueError("regime", f"regime {self.regime!r} does not match the data sources {sorted(kinds)} "
                                   "(synth: source gt; distilled: target pseudo; supervised: target gt; mixed: several)")
        if self.loss.name != "ssi" and any(source.labels == "pseudo" for source in self.data.sources):
            raise ConfigValueError("loss.name", f"loss {self.loss.name!r} needs metric ground truth; pseudo-labels are "
                                   "relative: use ssi")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- validation driven by the field types -----------------------------------------------------------
class _Mismatch(Exception):
    """A value that does not fit a type; carries what was expected."""

    def __init__(self, expected: str, key: str | None = None, value=None, message: str | None = None):
        super().__init__(expected)
        self.expected, self.key, self.value, self.message = expected, key, value, message


def _join(key: str, name) -> str:
    if isinstance(name, int):
        return f"{key}[{name}]"
    return f"{key}.{name}" if key else str(name)


def _describe(annotation) -> str:
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in arguments)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in arguments)
    if origin is tuple:
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return "a list"
        kinds = {_describe(a) for a in arguments}
        plural = {"an integer": "integers", "a number": "numbers"}.get(kinds.pop(), "values") if len(kinds) == 1 else "values"
        return f"a list of {len(arguments)} {plural}"
    if dataclasses.is_dataclass(annotation) or annotation is dict or origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(annotation, str(annotation))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(value, annotation, key: str):
    """`value` (plain YAML data) as `annotation` says, or _Mismatch."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        for option in arguments:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except _Mismatch as mismatch:
                if mismatch.key not in (None, key):  # a deeper key failed: that is the error to show
                    raise
        raise _Mismatch(_describe(annotation))
    if origin is Literal:
        if isinstance(value, str) and value in arguments:
            return value
        raise _Mismatch(_describe(annotation))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch(_describe(annotation))
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch(_describe(annotation))
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch(_describe(annotation))
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch(_describe(annotation))
    if annotation is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise _Mismatch(_describe(annotation))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(_describe(annotation))
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            items = [(arguments[0], item) for item in value]
        elif len(value) == len(arguments):
            items = list(zip(arguments, value))
        else:
            raise _Mismatch(_describe(annotation))
        converted = []
        for index, (item_type, item) in enumerate(items):
            item_key = _join(key, index)
            try:
                converted.append(_convert(item, item_type, item_key))
            except _Mismatch as mismatch:
                if mismatch.key is None:
                    raise _Mismatch(mismatch.expected, item_key, item) from None
                raise
        return tuple(converted)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    raise TypeError(f"no conversion for {annotation}")  # a field type this module does not handle: a bug


def _check_rules(value, rules: dict, key: str) -> None:
    """The `min` / `above` bounds of a field (on every number of a tuple) and `models` names."""
    numbers = value if isinstance(value, tuple) else (value,)
    for number in numbers:
        if not isinstance(number, (int, float)):
            continue
        if "min" in rules and number < rules["min"]:
            raise _Mismatch(f"{'values' if isinstance(value, tuple) else 'a value'} of at least {rules['min']}", key, value)
        if "above" in rules and not number > rules["above"]:
            raise _Mismatch(f"{'values' if isinstance(value, tuple) else 'a value'} above {rules['above']}", key, value)
    if rules.get("models") and isinstance(value, str):
        from anydepth.eventdepth.registry import MODELS

        if value not in MODELS:
            raise _Mismatch("one of " + ", ".join(MODELS), key, value)


def _build(cls, values, key: str = ""):
    """`cls` from a mapping of plain data, each value checked against its field's type and rules."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise _Mismatch("a mapping (a section of keys)", key or None, values)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields), key=str)
    if unknown:
        raise _Mismatch(None, _join(key, unknown[0]), message=f"unknown key (known in {key or 'the config'}: "
                                                                f"{', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    converted = {}
    for name, spec in fields.items():
        field_key = _join(key, name)
        if name not in values:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                kind = {"input": "a path"}.get(spec.metadata.get("path"), _describe(hints[name]))
                raise _Mismatch(None, field_key, message=f"missing (expected {kind})")
            continue
        try:
            converted[name] = _convert(values[name], hints[name], field_key)
        except _Mismatch as mismatch:
            if mismatch.key is None:
                raise _Mismatch(mismatch.expected, field_key, values[name]) from None
            raise
        _check_rules(converted[name], spec.metadata, field_key)
    try:
        return cls(**converted)
    except ConfigValueError as error:
        name = error.name if cls is TrainConfig else _join(key, error.name)  # TrainConfig names keys from the root
        raise _Mismatch(None, name, message=error.reason) from None


def _message(mismatch: _Mismatch) -> str:
    if mismatch.message is not None:
        return f"{mismatch.key}: {mismatch.message}"
    return f"{mismatch.key}: expected {mismatch.expected}, got {_shown(mismatch.value)}"


def _resolve_paths(values: dict, cls, base: Path) -> dict:
    """Relative `path` fields (input, labels, output; weights files, not encoder names) taken from `base`."""
    from anydepth.foundation.config import ENCODERS

    values = dict(values)
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        value = values.get(spec.name)
        if isinstance(value, str) and spec.metadata.get("path") and not Path(value).is_absolute():
            if not (spec.metadata["path"] == "weights" and value in ENCODERS):
                values[spec.name] = str(base / value)
        elif isinstance(value, dict) and dataclasses.is_dataclass(hints[spec.name]):
            values[spec.name] = _resolve_paths(value, hints[spec.name], base)
        elif isinstance(value, list) and typing.get_origin(hints[spec.name]) is tuple:
            item_type = typing.get_args(hints[spec.name])[0]
            if dataclasses.is_dataclass(item_type):
                values[spec.name] = [_resolve_paths(v, item_type, base) if isinstance(v, dict) else v for v in value]
    return values


def config_from_dict(values: dict, base: Path | None = None) -> TrainConfig:
    """A TrainConfig from plain data (YAML); relative paths are taken from `base`. InputError (one
    line: the dotted key and what was expected) on a value of the wrong type, an unknown key or a
    missing required one."""
    if base is not None and isinstance(values, dict):
        values = _resolve_paths(values, TrainConfig, Path(base))
    try:
        return _build(TrainConfig, values)
    except _Mismatch as mismatch:
        raise InputError(_message(mismatch)) from None


def check_paths(config, key: str = "") -> None:
    """InputError naming the dotted key when an input path of `config` (a dataset, a labels folder, a
    weights file) does not exist, or the output path is an existing file."""
    from anydepth.foundation.config import ENCODERS

    for spec in dataclasses.fields(config):
        value, field_key = getattr(config, spec.name), _join(key, spec.name)
        kind = spec.metadata.get("path")
        if isinstance(value, str) and kind:
            path = Path(value)
            if kind == "input" and not path.exists():
                raise InputError(f"{field_key}: no such file or folder: {path}")
            if kind == "labels" and not path.is_dir():
                raise InputError(f"{field_key}: no such labels folder: {path} (make it with anydepth events pseudolabel)")
            if kind == "weights" and value not in ENCODERS and not path.is_file():
                raise InputError(f"{field_key}: neither an encoder name ({', '.join(ENCODERS)}) nor a file: {path}")
            if kind == "output" and path.exists() and not path.is_dir():
                raise InputError(f"{field_key}: is a file, not a folder: {path}")
        elif dataclasses.is_dataclass(value):
            check_paths(value, field_key)
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    check_paths(item, _join(field_key, index))


def _set(values: dict, dotted: str, value) -> None:
    target = values
    *parents, last = dotted.split(".")
    for depth, parent in enumerate(parents):
        target = target.setdefault(parent, {})
        if not isinstance(target, dict):
            raise InputError(f"cannot set {dotted}: {'.'.join(parents[:depth + 1])} is not a section")
    target[last] = value


def load_config(path: str | Path, overrides: dict | None = None, check: bool = False) -> TrainConfig:
    """Read a YAML training config; `overrides` (dotted keys, e.g. {"steps": 10, "optim.lr": 1e-4})
    replace its values. Relative paths in it are relative to the current folder. check: also
    `check_paths` (the datasets, labels and weights exist). Every error is an InputError naming the
    file and the dotted key (and `(set on the command line)` when the value came from `overrides`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", path)
    try:
        values = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML ({first_line(error)})", path) from None
    except UnicodeDecodeError:
        raise InputError("not a text file (a training config is YAML)", path) from None
    if not isinstance(values, dict):
        raise InputError(f"a training config is a mapping of sections (model, data, optim, loss, ...), "
                         f"not a {type(values).__name__}", path)
    overrides = dict(overrides or {})
    for dotted, value in overrides.items():
        try:
            _set(values, dotted, value)
        except InputError as error:
            raise InputError(f"{error} (set on the command line)", path) from None
    try:
        config = _build(TrainConfig, values)
    except _Mismatch as mismatch:
        origin = next((d for d in overrides if mismatch.key == d or mismatch.key.startswith((d + ".", d + "["))), None)
        note = " (set on the command line)" if origin is not None else ""
        raise InputError(_message(mismatch) + note, path) from None
    if check:
        try:
            check_paths(config)
        except InputError as error:
            raise InputError(str(error), path) from None
    return config
