"""One table of event depth students: `load_model(name, checkpoint=None, **config)`.

    model = load_model("depthanyevent-r", "depthanyevent_r_vits.pth")   # released weights, strict
    model = load_model("e2depth", "E2DEPTH_si_grad_loss_mixed.pth.tar")
    model = load_model("depthanyevent", encoder="vitb")                 # fresh, for training

Adding a model is one entry here plus its module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from anydepth.errors import InputError
from anydepth.eventdepth.base import EventDepthModel


@dataclass(frozen=True)
class ModelEntry:
    """A student: module, model class, its config class, checkpoint loader and saver names,
    config overrides that define the entry (e.g. recurrent=True), and a one-line description."""

    module: str
    model_class: str
    config_class: str
    loader: str
    saver: str
    defaults: tuple[tuple[str, object], ...]
    description: str

    def resolve(self, attribute: str):
        return getattr(importlib.import_module(f"anydepth.eventdepth.{self.module}"), getattr(self, attribute))


MODELS: dict[str, ModelEntry] = {
    "e2depth": ModelEntry("e2depth", "E2Depth", "E2DepthConfig", "load_e2depth", "save_e2depth", (),
                          "E2Depth (3DV 2020): recurrent UNet on 5-bin voxel grids, metric depth"),
    "ereformer": ModelEntry("ereformer", "EReFormer", "EReFormerConfig", "load_ereformer", "save_ereformer", (),
                            "EReFormer: Swin-S + recurrent linear attention on 3-channel event images, metric depth"),
    "depthanyevent": ModelEntry("depthanyevent", "DepthAnyEvent", "DepthAnyEventConfig", "load_depthanyevent",
                                "save_depthanyevent", (("recurrent", False),),
                                "DepthAnyEvent (ICCV 2025): Depth Anything V2 on Tencode, relative depth"),
    "depthanyevent-r": ModelEntry("depthanyevent", "DepthAnyEvent", "DepthAnyEventConfig", "load_depthanyevent",
                                  "save_depthanyevent", (("recurrent", True),),
                                  "DepthAnyEvent-R: with a ConvLSTM per DPT level, relative depth"),
}


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise InputError(f"unknown event depth model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def load_model(name: str, checkpoint=None, **config) -> EventDepthModel:
    """A student by registry name. With `checkpoint`: the model its file describes, loaded strictly
    (config fields given here override the file's, e.g. input_size); without: a freshly
    initialised model built from the entry's defaults and `config`."""
    entry = get_entry(name)
    overrides = {**dict(entry.defaults), **config}
    if checkpoint is not None:
        model = entry.resolve("loader")(checkpoint, **config)
        for key, value in entry.defaults:
            if getattr(model.config, key, value) != value:
                raise InputError(f"{checkpoint}: holds a {'recurrent' if getattr(model.config, key) else 'non-recurrent'} "
                                 f"model, not {name}")
        return model
    config_class = entry.resolve("config_class")
    return entry.resolve("model_class")(config_class(**overrides)).eval()


def save_model(name: str, model: EventDepthModel, path) -> None:
    """Write `model` in the checkpoint container of its official release (atomically)."""
    get_entry(name).resolve("saver")(model, path)
