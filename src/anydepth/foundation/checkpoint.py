"""Reading, checking and writing Depth Anything V2 weights.

Containers understood:
- the official `.pth`: a plain state dict with `pretrained.*` and `depth_head.*` keys;
- Hugging Face `model.safetensors` of the `Depth-Anything-V2-*-hf` repos (mapped by `hf_keys`);
- anydepth's own `.pth`: {"format": "anydepth.depth_anything", "config": {...}, "state_dict": {...}},
  which carries the config that built the model (custom encoders, metric heads);
- a training checkpoint {"model": state_dict, ...} as the official metric fine-tuning writes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from anydepth.atomic import atomic_write, write_json
from anydepth.errors import CheckpointError
from anydepth.fileio import first_line
from anydepth.foundation import hf_keys
from anydepth.foundation.config import ENCODERS, PRETRAIN_IMAGE_SIZE, DepthAnythingConfig, get_config
from anydepth.foundation.model import DepthAnythingV2

ANYDEPTH_FORMAT = "anydepth.depth_anything"


def read_container(path: str | Path) -> dict:
    """Load a checkpoint file (torch pickle with weights_only=True, or safetensors) into a dict,
    with one-line CheckpointErrors for missing, truncated, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            container = load_file(str(path))
        else:
            container = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch/safetensors raise many types for corrupt files
        reason = first_line(error)
        raise CheckpointError(f"cannot read checkpoint ({reason})", path) from None
    if not isinstance(container, dict):
        raise CheckpointError(f"expected a checkpoint dict, found a {type(container).__name__}", path)
    return container


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], DepthAnythingConfig | None]:
    """Read a weights file. Returns (state dict in the official layout, config if the file carries one)."""
    path = Path(path)
    container = read_container(path)

    config = None
    if container.get("format") == ANYDEPTH_FORMAT:
        config = DepthAnythingConfig.from_dict(container["config"])
        state_dict = container["state_dict"]
    elif "state_dict" in container and isinstance(container["state_dict"], dict):
        state_dict = container["state_dict"]
    elif "model" in container and isinstance(container["model"], dict):
        state_dict = container["model"]
    else:
        state_dict = container
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError("not a state dict: some values are not tensors", path)

    if hf_keys.is_hf_layout(state_dict):
        try:
            state_dict = hf_keys.hf_to_official(state_dict)
        except KeyError as error:
            raise CheckpointError(f"unexpected key {error.args[0]!r} in a Hugging Face Depth Anything checkpoint", path) from None
    elif not hf_keys.is_official_layout(state_dict):
        sample = ", ".join(list(state_dict)[:3]) or "no keys"
        raise CheckpointError(f"not a Depth Anything V2 checkpoint (keys: {sample})", path)
    return state_dict, config


def infer_config(state_dict: dict[str, torch.Tensor], path: str | Path | None = None) -> DepthAnythingConfig:
    """The preset whose shapes match an official-layout state dict (head defaults to relative)."""
    try:
        embed_dim = state_dict["pretrained.cls_token"].shape[-1]
        features = state_dict["depth_head.scratch.layer1_rn.weight"].shape[0]
        out_channels = tuple(state_dict[f"depth_head.projects.{i}.weight"].shape[0] for i in range(4))
    except KeyError as error:
        raise CheckpointError(f"missing key {error.args[0]!r}", path) from None
    depth = 1 + max(int(k.split(".")[2]) for k in state_dict if k.startswith("pretrained.blocks."))
    for preset in ENCODERS.values():
        if (preset.embed_dim, preset.depth, preset.features, preset.out_channels) == (embed_dim, depth, features, out_channels):
            return preset
    raise CheckpointError(
        f"no encoder preset has embed_dim {embed_dim}, {depth} blocks, features {features}, "
        f"out_channels {list(out_channels)}; save it with its config (anydepth.foundation.save_checkpoint)",
        path,
    )


def describe(config: DepthAnythingConfig) -> str:
    return f"{config.encoder} (embed_dim {config.embed_dim}, {config.depth} blocks)"


# every in-place initialiser of torch.nn.init (the layers' reset_parameters call these)
_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                 "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def skip_weight_init():
    """Build modules without their random initialisation, for a model whose every parameter a strict
    load overwrites at once (the loaders below): building Depth Anything V2 vitb takes ~0.3 s instead
    of ~2.4 s (vitl: 4x that). The torch.nn.init functions return their tensor untouched inside the
    block, so parameters hold whatever memory they were given until the load."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in saved:
            setattr(nn.init, name, _untouched)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def _untouched(tensor, *args, **kwargs):
    return tensor


def load_strict(model: nn.Module, state_dict: dict, path: str | Path | None, description: str) -> None:
    """load_state_dict with a strict key and shape match; a mismatch raises one line naming what
    differs (`description` names the model, e.g. "Depth Anything V2 vits (...)")."""
    if not isinstance(state_dict, dict):
        raise CheckpointError("the checkpoint holds no state dict", path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(f"does not match {description}: " + "; ".join(parts), path)
    for key, value in state_dict.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"shape of {key} is {tuple(value.shape)}, {description} expects {tuple(expected[key].shape)}", path)
    model.load_state_dict(state_dict, strict=True)


def load_depth_anything_file(
    path: str | Path,
    encoder: str | None = None,
    head: str | None = None,
    max_depth: float | None = None,
) -> DepthAnythingV2:
    """Build a model from a weights file alone (config from the file, else inferred from its shapes).

    encoder: if given, the file must hold that encoder, else a CheckpointError says which it holds.
    head / max_depth: the keys of relative and metric checkpoints are the same; a file whose name
    contains "metric" defaults to the metric head, max_depth 80 with "vkitti" in its name, else 20.
    """
    state_dict, config = read_state_dict(path)
    if config is None:
        config = infer_config(state_dict, path)
        name = Path(path).name.lower()
        if head is None and "metric" in name:
            head = "metric"
            max_depth = max_depth if max_depth is not None else (80.0 if "vkitti" in name else 20.0)
    if encoder is not None and encoder != config.encoder:
        requested = get_config(encoder)
        if (requested.embed_dim, requested.depth) != (config.embed_dim, config.depth):
            raise CheckpointError(f"checkpoint holds {describe(config)}, not the requested {describe(requested)}", path)
    overrides = {}
    if head is not None:
        overrides["head"] = head
    if max_depth is not None:
        overrides["max_depth"] = float(max_depth)
    config = config.replace(**overrides)
    with skip_weight_init():
        model = DepthAnythingV2(config)
    load_strict(model, state_dict, path, f"Depth Anything V2 {describe(config)}")
    return model.eval()


def atomic_torch_save(obj, path: str | Path) -> None:
    """torch.save through `atomic_write`: a killed write leaves no partial file at `path`."""
    atomic_write(path, lambda temporary: torch.save(obj, temporary))


def save_checkpoint(model: DepthAnythingV2, path: str | Path, official: bool = False) -> None:
    """Write a model atomically: anydepth's container with its config, or (official=True) the
    plain official state dict."""
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    container = state_dict if official else {
        "format": ANYDEPTH_FORMAT, "config": model.config.to_dict(), "state_dict": state_dict,
    }
    atomic_torch_save(container, path)


def export_hf_folder(model: DepthAnythingV2, folder: str | Path, input_size: int = PRETRAIN_IMAGE_SIZE) -> Path:
    """Write what the hub's `depth-anything/Depth-Anything-V2-{Small,Base,Large}-hf` repos hold
    (and, for metric heads, the `...-Metric-{Indoor,Outdoor}-*-hf` ones) into `folder`:
    `model.safetensors` (hub key names), `config.json` (`hf_keys.hf_config_dict`) and
    `preprocessor_config.json` (`DPTImageProcessor`, `hf_keys.hf_preprocessor_config_dict`), so
    that `transformers.pipeline("depth-estimation", model=folder)`,
    `AutoModelForDepthEstimation.from_pretrained(folder)` and
    `AutoImageProcessor.from_pretrained(folder)` load it.

    input_size: the processor's target size in pixels (518 as on the hub; smaller is faster).
    Each file is written atomically. Returns `folder`.
    """
    from safetensors.torch import save_file

    config_json = hf_keys.hf_config_dict(model.config)  # checks first: a failed export writes nothing
    preprocessor_json = hf_keys.hf_preprocessor_config_dict(input_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in hf_keys.official_to_hf(model.state_dict()).items()}
    atomic_write(folder / "model.safetensors", lambda temporary: save_file(state_dict, temporary, metadata={"format": "pt"}))
    write_json(folder / "config.json", config_json)
    write_json(folder / "preprocessor_config.json", preprocessor_json)
    return folder
