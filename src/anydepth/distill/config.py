"""Training configuration: dataclasses filled from a YAML file (`anydepth events train CONFIG.yaml`).

    model:   {name: depthanyevent-r, config: {encoder: vits, activation: relu, inv_prediction: true},
              weights: null, init_dav2: vits}
    data:    {sources: [{path: data/target, labels: pseudo, pseudolabels: data/target/pseudolabels_vits}],
              window_ms: 50, sequence_length: 8, crop: [224, 224], flip: true, scale: [1.0, 1.25]}
    optim:   {lr: 5.0e-6, weight_decay: 0.01, schedule: onecycle, clip_grad: 1.0}
    loss:    {name: ssi, gradient_weight: 0.25, scales: 4}
    steps: 75000, batch_size: 10, regime: distilled, out: runs/dae-r-distilled

Regimes (SPEC 3.4): synth = ground truth of synthetic (source-domain) sequences; distilled =
pseudo-labels on the target domain; supervised = ground truth on the target domain; mixed = both.
The regime names the run; the sources say what it trains on, and the two are checked against
each other.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from anydepth.errors import InputError


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


REGIMES = ("synth", "distilled", "supervised", "mixed")
LABEL_KINDS = ("gt", "pseudo")
SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass(frozen=True)
class ModelSpec:
    """The student: registry name, config overrides, weights to start from (a checkpoint of that
    student) or DAv2 weights for the encoder and head of a DepthAnyEvent student (`init_dav2`: an
    encoder name resolved like `anydepth image`, or a file)."""

    name: str = "depthanyevent-r"
    config: dict = field(default_factory=dict)
    weights: str | None = None
    init_dav2: str | None = None


@dataclass(frozen=True)
class DataSource:
    """One training set: a dataset folder (or one sequence), where its labels come from (`gt`:
    the dataset's ground truth; `pseudo`: the labels of `anydepth events pseudolabel` in
    `pseudolabels`), and its sampling weight among sources."""

    path: str
    labels: str = "gt"
    pseudolabels: str | None = None
    weight: float = 1.0
    domain: str = "target"

    def __post_init__(self):
        if self.labels not in LABEL_KINDS:
            raise InputError(f"data source {self.path}: labels must be gt or pseudo, got {self.labels!r}")
        if self.weight <= 0:
            raise InputError(f"data source {self.path}: weight must be positive")
        if self.domain not in ("source", "target"):
            raise InputError(f"data source {self.path}: domain must be source or target, got {self.domain!r}")


@dataclass(frozen=True)
class DataConfig:
    """sequence_length: frames per training clip (recurrent students; 1 for the others);
    detach_every: truncated BPTT, the state is detached every this many frames (0 = never within a
    clip); crop (h, w) random crop at sensor resolution after scaling (None = whole frame); flip:
    random horizontal flips; scale (low, high): random zoom factor applied before the crop."""

    sources: tuple[DataSource, ...] = ()
    window_ms: float = 50.0
    sequence_length: int = 1
    detach_every: int = 0
    crop: tuple[int, int] | None = None
    flip: bool = True
    scale: tuple[float, float] = (1.0, 1.0)
    num_workers: int = 0


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a learning-rate schedule (`onecycle` as EReFormer, `cosine` with linear warm-up,
    or `constant`) and gradient-norm clipping (0 = off)."""

    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_steps: int = 0
    clip_grad: float = 1.0

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise InputError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.lr <= 0:
            raise InputError("optim.lr must be positive")


@dataclass(frozen=True)
class LossConfig:
    """name: ssi (scale-and-shift invariant + gradient matching, disparity space), e2depth (scale
    invariant on normalised log depth + gradient, ground truth only) or silog (metres, ground truth
    only); space: the space it compares in (None = the loss's own)."""

    name: str = "ssi"
    gradient_weight: float = 0.25
    scales: int = 4
    space: str | None = None

    @property
    def resolved_space(self) -> str:
        return self.space or {"ssi": "disparity", "e2depth": "log_depth", "silog": "depth"}.get(self.name, "disparity")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    regime: str = "distilled"
    steps: int = 1000
    batch_size: int = 4
    checkpoint_every: int = 500
    log_every: int = 10
    image_every: int = 200
    seed: int = 0
    amp: bool = True
    device: str = "auto"
    out: str = "runs/train"

    def __post_init__(self):
        if self.regime not in REGIMES:
            raise InputError(f"regime must be one of {', '.join(REGIMES)}, got {self.regime!r}")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise InputError("steps, batch_size and checkpoint_every must be at least 1")
        if not self.data.sources:
            raise InputError("data.sources is empty: give at least one dataset to train on")
        kinds = {(source.domain, source.labels) for source in self.data.sources}
        expected = {
            "synth": lambda: kinds == {("source", "gt")},
            "distilled": lambda: kinds == {("target", "pseudo")},
            "supervised": lambda: kinds == {("target", "gt")},
            "mixed": lambda: len({labels for _, labels in kinds}) == 2 or len({domain for domain, _ in kinds}) == 2,
        }[self.regime]
        if not expected():
            raise InputError(f"regime {self.regime!r} does not match the data sources {sorted(kinds)} "
                             "(synth: source gt; distilled: target pseudo; supervised: target gt; mixed: several)")
        if self.loss.name != "ssi" and any(source.labels == "pseudo" for source in self.data.sources):
            raise InputError(f"loss {self.loss.name!r} needs metric ground truth; pseudo-labels are relative: use ssi")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict, where: str):
    """cls(**values) with unknown keys reported by name."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InputError(f"{where} must be a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(names))})")
    converted = {}
    for key, value in values.items():
        converted[key] = tuple(value) if isinstance(value, list) and key != "config" else value
    return cls(**converted)


def config_from_dict(values: dict, base: Path | None = None) -> TrainConfig:
    """A TrainConfig from plain data (YAML); relative paths are taken from `base`."""
    values = dict(values or {})
    data = dict(values.pop("data", {}) or {})
    sources = []
    for index, source in enumerate(data.pop("sources", []) or []):
        source = dict(source)
        for key in ("path", "pseudolabels"):
            if source.get(key) is not None and base is not None and not Path(source[key]).is_absolute():
                source[key] = str(base / source[key])
        sources.append(_build(DataSource, source, f"data.sources[{index}]"))
    data_config = _build(DataConfig, data, "data")
    data_config = dataclasses.replace(data_config, sources=tuple(sources))
    model = _build(ModelSpec, values.pop("model", {}), "model")
    optim = _build(OptimConfig, values.pop("optim", {}), "optim")
    loss = _build(LossConfig, values.pop("loss", {}), "loss")
    if base is not None and "out" in values and not Path(values["out"]).is_absolute():
        values["out"] = str(base / values["out"])
    config = _build(TrainConfig, {**values, "model": model, "data": data_config, "optim": optim, "loss": loss}, "the config")
    return config


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML training config; `overrides` (dotted keys, e.g. {"steps": 10, "optim.lr": 1e-4})
    replace its values. Relative paths in it are relative to the current folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", path)
    try:
        values = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML ({str(error).splitlines()[0]})", path) from None
    if not isinstance(values, dict):
        raise InputError(f"a training config is a mapping of sections (model, data, optim, loss, ...), "
                         f"not a {type(values).__name__}", path)
    for dotted, value in (overrides or {}).items():
        target = values
        *parents, last = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise InputError(f"cannot set {dotted}: {parent} is not a section", path)
        target[last] = value
    try:
        return config_from_dict(values)
    except InputError as error:
        raise InputError(str(error), path) from None
    except TypeError as error:
        raise InputError(f"bad value ({error})", path) from None
