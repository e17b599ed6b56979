"""What every subcommand shares: the flags several of them take (declared once here, so `--device`
means the same everywhere), the progress bar, and the checks run on arguments before any work starts
(output paths, devices, precisions, positive numbers). Each failed check is an `InputError` naming the
option and the value, so the user sees one line and nothing has been written yet (the checks create
nothing)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from anydepth.errors import InputError
from anydepth.foundation.config import ENCODERS
from anydepth.precision import PRECISIONS, check_precision


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists (`.` for a relative path with none)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_creatable(path: Path, option: str, what: str) -> None:
    """`path` does not exist: its nearest existing ancestor must be a folder we may write into."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise InputError(f"{option} {path}: cannot create this {what}, {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create this {what}, the folder {ancestor} is not writable")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """An output folder: an existing writable folder, or one that can be created (its nearest
    existing ancestor is a writable folder). Creates nothing."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{option} {path}: is a file; expected a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option} {path}: the folder is not writable")
        return path
    _check_creatable(path, option, "folder")
    return path


def check_output_file(path: str | Path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """An output file: not a folder, with one of `suffixes` (lower case, with the dot; any when
    empty), writable if it exists, else creatable. Creates nothing."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{option} {path}: must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; expected a file")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise InputError(f"{option} {path}: the file is not writable")
        return path
    _check_creatable(path, option, "file")
    return path


def resolve_device(name: str, option: str = "--device") -> str:
    """`auto` -> `cuda` when this machine has a CUDA device, else `cpu`; any other name is checked
    against this machine (a misspelt name, `cuda` without a GPU, `cuda:3` with one GPU are errors)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"{option} {name!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return name
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"{option} {name}: this machine has no CUDA device; use cpu (or auto)")
        if device.index is not None and device.index >= count:
            raise InputError(f"{option} {name}: this machine has {count} CUDA device{'s' if count > 1 else ''} "
                             f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
        return name
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"{option} {name}: MPS is not available on this machine; use cpu (or auto)")
        return name
    raise InputError(f"{option} {name}: {device.type} devices are not supported; use auto, cpu, cuda or cuda:N")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (e.g. --window-ms, --fps)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (e.g. --window-events, --bins)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_repair(parser) -> None:
    """--repair, for subcommands that open one recording (readers' repair=True)."""
    parser.add_argument("--repair", action="store_true",
                        help="sort unsorted timestamps and drop events outside the sensor instead of stopping "
                             "(loads the whole recording)")


# --- shared flags -------------------------------------------------------------------------------------

def add_device(parser, note: str = "", default: str | None = "auto") -> None:
    """--device: where the networks run (checked by `resolve_device` before any work starts)."""
    choices = "auto (cuda when this machine has one, else cpu), cpu, cuda, cuda:N"
    parser.add_argument("--device", default=default,
                        help=f"{choices}{note} (default {default})" if default else f"{choices}{note}")


def add_precision(parser) -> None:
    """--precision: the arithmetic the networks run in (`anydepth.precision`)."""
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="network arithmetic: fp32 (default), bf16 (autocast; CPU and CUDA), fp16 (autocast; "
                             "CUDA only); outputs, losses and metrics stay float32")


def add_network(parser, precision: bool = True, note: str = "", default_device: str | None = "auto") -> None:
    """--device and --precision, for every subcommand that runs a network."""
    add_device(parser, note, default_device)
    if precision:
        add_precision(parser)


def add_weights(parser, what: str = "Depth Anything V2 weights (official .pth, HF .safetensors or anydepth checkpoint)",
                default: str = "the official release from the cache ($ANYDEPTH_CACHE, ~/.cache/anydepth) or the hub",
                required: bool = False) -> None:
    """--weights FILE."""
    parser.add_argument("--weights", required=required, help=what if required else f"{what}; default: {default}")


def add_encoder(parser, what: str = "Depth Anything V2 encoder", default: str = "read from --weights, else vits",
                choices: tuple[str, ...] | None = tuple(ENCODERS)) -> None:
    """--encoder vits|vitb|vitl|vitg."""
    parser.add_argument("--encoder", choices=choices, help=f"{what}; default: {default}")


def add_out(parser, default: str | None, what: str = "output folder") -> None:
    """--out FOLDER (checked by `check_output_dir`)."""
    parser.add_argument("--out", default=default, help=f"{what} (default {default})" if default and "default" not in what else what)


def add_limit(parser, what: str) -> None:
    """--limit N: a whole number >= 1."""
    parser.add_argument("--limit", type=positive_int, metavar="N", help=what)


def add_input_size(parser, default: int | None = 518, what: str = "Depth Anything V2 input: shorter network side, "
                                                                     "rounded to 14") -> None:
    """--input-size N (>= 14)."""
    parser.add_argument("--input-size", type=network_side, default=default,
                        help=f"{what} (default {default})" if default is not None else what)


def network_side(text: str) -> int:
    """argparse type: a network input side, a whole number >= 14 (one ViT patch)."""
    value = positive_int(text)
    if value < 14:
        raise argparse.ArgumentTypeError(f"must be at least 14 (one ViT patch), got {value}")
    return value


def add_progress(parser) -> None:
    """--no-progress, on the top-level parser: no progress bars (they are also off when stderr is not a terminal)."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


_PROGRESS = {"disable": None}  # None: tqdm's own choice (off when stderr is not a terminal)


def set_progress(enabled: bool) -> None:
    _PROGRESS["disable"] = None if enabled else True


def progress(iterable=None, **options):
    """The one progress bar of the CLI (tqdm), honouring --no-progress."""
    from tqdm import tqdm

    options.setdefault("disable", _PROGRESS["disable"])
    return tqdm(iterable, **options)


def print_error(command: str, error) -> None:
    """One error line (`anydepth image: error: ...`) on stderr, above any progress bar, for a failure
    that does not stop the run (the run exits non-zero at the end)."""
    import sys

    from tqdm import tqdm

    tqdm.write(f"{command}: error: {error}", file=sys.stderr)


def add_backend(parser) -> None:
    """--backend torch|onnxruntime and --onnx FILE (`with_backend`)."""
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                        help="network runtime (default torch; onnxruntime: install anydepth[onnx])")
    parser.add_argument("--onnx", metavar="FILE.onnx", help="--backend onnxruntime: a file `anydepth export onnx` wrote "
                        "from these weights (default: exported once into the cache)")


def with_backend(args, model):
    """`model`, or with --backend onnxruntime the same model run by onnxruntime (`onnx_backend`) on
    --device (CUDA through onnxruntime-gpu's provider, else the CPU)."""
    if args.onnx and args.backend != "onnxruntime":
        raise InputError("--onnx needs --backend onnxruntime")
    if args.backend != "onnxruntime":
        return model
    if args.precision != "fp32":
        raise InputError(f"--precision {args.precision} applies to the torch backend; onnxruntime runs the "
                         "exported file's own precision")
    from anydepth.export.onnx import onnx_backend, providers_for

    return onnx_backend(model, args.onnx, providers=providers_for(resolve_device(args.device)))


def check_network(args) -> str:
    """Resolve args.device (and check args.precision against it where the subcommand has one);
    returns the device name."""
    device = resolve_device(args.device)
    if getattr(args, "precision", None) is not None:
        check_precision(args.precision, device, "--precision")
    return device
